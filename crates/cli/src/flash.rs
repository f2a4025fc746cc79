//! `homestick flash` and `homestick sticks`: choosing the sticks, asking, showing progress,
//! writing the report. The work itself is in the homestick-flash library.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use homestick_flash::claim;
use homestick_flash::devices::{self, human, Device, Roots};
use homestick_flash::report::{self, Record, Report};
use homestick_flash::station::{Outcome, Station};
use homestick_flash::stick::{BlockTarget, Image, ImageError, Phase};
use homestick_image::hash::hex;
use homestick_image::keys;
use homestick_image::policy::Expectations;
use homestick_image::set::{SetVerifier, StickSet};
use homestick_image::verify::VerifyError;
use homestick_ledger::{Finish, Ledger, LedgerError, NewAttempt};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::cli::{FlashArgs, ReportFormat, SticksArgs};
use crate::progress::Reporter;
use crate::{open_target, read_manifest, usage, Failure};

/// `homestick sticks`
pub fn sticks(a: &SticksArgs) -> Result<(), Failure> {
    let roots = Roots::default();
    let need = match &a.image {
        Some(p) => image_min_size(p)?,
        None => 0,
    };
    let all = devices::scan(&roots).map_err(|e| usage(format!("/sys/block: {e}")))?;
    let used = devices::in_use(&roots).map_err(|e| usage(format!("/proc/self/mountinfo: {e}")))?;
    let rows: Vec<(Device, Vec<String>)> = all
        .into_iter()
        .map(|d| {
            let r = devices::refusals(&d, &used, need, a.allow_non_removable);
            (d, r.iter().map(ToString::to_string).collect())
        })
        .collect();
    if a.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(d, r)| json!({"device": d, "would_flash": r.is_empty(), "refused": r}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no disks found under /sys/block");
    }
    for (d, r) in &rows {
        println!("{}", describe(d));
        if r.is_empty() {
            println!("    would be flashed");
        }
        for why in r {
            println!("    refused: {why}");
        }
    }
    Ok(())
}

/// The image's minimum target size, from its manifest (not verified: for listing only).
fn image_min_size(p: &Path) -> Result<u64, Failure> {
    let disk = open_target(p)?;
    let (_, m) = read_manifest(&disk, &p.display().to_string())?;
    Ok(m.disk.min_size_bytes)
}

/// `/dev/sdb  14.9 GiB  SanDisk Ultra  serial 4C53…  USB 2-1.3`; what the device says about
/// itself is escaped for the terminal.
fn describe(d: &Device) -> String {
    use crate::terminal::text;
    let mut s = format!(
        "{}  {}  {} {}",
        d.path.display(),
        human(d.size),
        text(&d.vendor),
        text(&d.model)
    );
    if let Some(serial) = &d.serial {
        s += &format!("  serial {}", text(serial));
    }
    match &d.port {
        Some(p) => s += &format!("  USB {}", text(p)),
        None if d.removable => s += "  removable",
        None => {}
    }
    s
}

/// `homestick flash`
pub fn flash(a: &FlashArgs) -> Result<(), Failure> {
    if a.targets.is_empty() && !a.all_removable && !a.watch {
        return Err(usage(
            "say which sticks: --target DEV (repeatable), --all-removable or --watch",
        ));
    }
    if !a.yes && !std::io::stdin().is_terminal() {
        return Err(usage(
            "not asking for confirmation without a terminal: add --yes to write without asking",
        ));
    }
    let keys = keys::load_keyring(&a.keyring).map_err(usage)?;
    let expect =
        crate::offline_expectations(a.revocations.as_deref(), a.min_revocation_version, &keys)?;
    let is_set = homestick_image::set::is_set(&a.image);
    if a.user.is_some() && !is_set {
        return Err(usage(format!(
            "--user: {} is not a stick set (a directory with set.json)",
            a.image.display()
        )));
    }
    if a.user.is_some() && (a.watch || a.all_removable || a.targets.len() != 1) {
        return Err(usage("--user writes one stick: give exactly one --target"));
    }
    let ledger_at = a
        .ledger
        .clone()
        .unwrap_or_else(homestick_ledger::default_location);
    let tls = homestick_ledger::Tls {
        ca: a.ledger_ca.clone(),
        insecure_plaintext: a.ledger_insecure_plaintext,
    };
    let mut ledger = crate::ledger::open_ledger(&ledger_at, &tls)?;
    let mut report = match &a.report {
        Some(p) => Some(
            Report::open(p, report_format(a.report_format))
                .map_err(|e| usage(format!("--report {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let source = if is_set {
        open_set_source(a, keys, expect, &mut ledger)?
    } else {
        Source::Image(Arc::new(open_image(&a.image, keys, expect)?))
    };
    let image = source.first();
    eprintln!("homestick: ledger {}", ledger.location());
    let roots = Roots::default();
    let chosen = if a.watch {
        Vec::new()
    } else {
        choose(a, &roots, &image)?
    };
    if !a.yes && !confirm(&source, &chosen)? {
        return Err(usage("nothing written: not confirmed"));
    }
    // From here (not at the prompt, where Ctrl-C simply ends the program): Ctrl-C once, no new
    // sticks and the ones in progress finish; twice, those stop too (each fails and is wiped).
    let cancel = Arc::new(AtomicUsize::new(0));
    {
        let c = Arc::clone(&cancel);
        let _ = ctrlc::set_handler(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
    }
    let mut run = Run {
        roots: roots.clone(),
        allow_non_removable: a.allow_non_removable,
        station: Station::new(Duration::from_secs(a.stall_seconds)),
        ui: Ui::new(),
        source,
        ledger,
        attempts: BTreeMap::new(),
        heartbeat: Instant::now(),
        labels: Vec::new(),
        unassigned: 0,
        report: report.take(),
        jobs: a.jobs.map_or(usize::MAX, usize::from),
        queue: chosen,
        failed: 0,
        good: 0,
        written: BTreeSet::new(),
        settled: BTreeSet::new(),
        announced: BTreeMap::new(),
    };
    let r = run.go(a, &roots, &cancel);
    if let Some(path) = &a.labels {
        match write_labels(path, &run) {
            Ok(()) => eprintln!(
                "homestick: label sheet for {} stick(s): {}",
                run.labels.len(),
                path.display()
            ),
            Err(e) => eprintln!(
                "homestick: warning: cannot write the label sheet {}: {e}",
                path.display()
            ),
        }
    }
    r
}

/// What the sticks get: one image, or a user's image of a set per stick.
enum Source {
    Image(Arc<Image>),
    Set {
        set: Box<StickSet>,
        checker: SetVerifier,
        keys: Vec<keys::TrustedKey>,
        /// What every user's image must also satisfy (revocation list, expiry).
        expect: Box<Expectations>,
        /// The user verified first (in full), for sizes and the confirmation.
        first: Arc<Image>,
        /// Who may be handed a stick (--user, revoked, did not verify in this run).
        users: claim::Users,
    },
}

impl Source {
    fn first(&self) -> Arc<Image> {
        match self {
            Source::Image(i) | Source::Set { first: i, .. } => Arc::clone(i),
        }
    }
}

/// Open a stick set: its signature, then the first user to hand out (or --user) in full,
/// which also checks the partitions every user shares.
fn open_set_source(
    a: &FlashArgs,
    keys: Vec<keys::TrustedKey>,
    expect: Expectations,
    ledger: &mut Ledger,
) -> Result<Source, Failure> {
    let set = crate::open_set(&a.image, &keys, false)?;
    let set_id = set.index.set_id.to_string();
    let taken: BTreeSet<String> = ledger.taken(&set_id).map_err(usage)?.into_iter().collect();
    let customer = &set.index.customer.id;
    let users = claim::Users {
        order: set.index.users.iter().map(|u| u.id.clone()).collect(),
        only: a.user.clone(),
        // A user the revocation list revokes is never handed a stick.
        revoked: (set.index.users.iter())
            .filter(|u| (expect.revoked.as_ref()).is_some_and(|r| r.revokes_user(customer, &u.id)))
            .map(|u| u.id.clone())
            .collect(),
        bad: BTreeSet::new(),
    };
    if let Some(u) = &a.user {
        set.user(u).map_err(usage)?;
        if users.unavailable(u, &taken) == Some(claim::Unavailable::Taken) {
            return Err(usage(format!(
                "--user {u}: already has a stick being written, a good or a revoked one in the ledger (`homestick ledger user {u}`)"
            )));
        }
    }
    let first_user = match (&a.user, users.candidates(&taken).next()) {
        // A revoked --user is verified, and refused as NOT TRUSTED with the list's reason.
        (Some(u), _) => u.clone(),
        (None, Some(u)) => u.to_string(),
        (None, None) => {
            return Err(usage(format!(
                "{}: every user of this set already has a stick (see `homestick ledger list`)",
                a.image.display()
            )))
        }
    };
    let checker = SetVerifier::new();
    let progress = Reporter::new(false);
    eprintln!(
        "homestick: verifying stick set {} ({} users, {} without a stick yet)",
        a.image.display(),
        set.index.users.len(),
        set.index.users.len() - taken.len().min(set.index.users.len())
    );
    let r = Image::from_set(
        &set,
        &first_user,
        &checker,
        keys.clone(),
        expect.clone(),
        &progress,
    );
    progress.finish();
    let first = match r {
        Ok(i) => i,
        Err(ImageError::Verify {
            source: VerifyError::Untrusted { failures, .. },
            ..
        }) => {
            println!("NOT TRUSTED: {} (user {first_user})", a.image.display());
            for f in &failures {
                println!("  - {f}");
            }
            println!("nothing was written");
            return Err(Failure::Untrusted);
        }
        Err(e) => return Err(usage(e)),
    };
    eprintln!(
        "homestick: stick set {} for {} ({}), version {}: trusted",
        set.index.set_id, set.index.customer.id, set.index.customer.name, set.index.version
    );
    Ok(Source::Set {
        set: Box::new(set),
        checker,
        keys,
        expect: Box::new(expect),
        first: Arc::new(first),
        users,
    })
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A printable page: one label per good stick of this run (user, serial, the hotline), new
/// file or replaced whole.
fn write_labels(path: &Path, run: &Run) -> std::io::Result<()> {
    let (customer, hotline) = match &run.source {
        Source::Set { set, .. } => (
            set.index.customer.name.clone(),
            set.index.hotline.clone().unwrap_or_default(),
        ),
        Source::Image(i) => (i.manifest.customer.name.clone(), String::new()),
    };
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=\"de\"><head><meta charset=\"utf-8\"><title>homestick labels</title>\n\
         <style>body{font-family:sans-serif} .l{display:inline-block;width:8cm;height:3.5cm;border:1px dashed #999;\
         margin:2mm;padding:3mm;box-sizing:border-box;vertical-align:top} .n{font-size:14pt;font-weight:bold}\
         @media print{.l{page-break-inside:avoid}}</style></head><body>\n",
    );
    for (user, serial) in &run.labels {
        html.push_str(&format!(
            "<div class=\"l\"><div class=\"n\">{}</div><div>{}</div><div>Stick {}</div>\
             <div>Hilfe / Help: {}</div></div>\n",
            html_escape(user),
            html_escape(&customer),
            html_escape(serial),
            html_escape(&hotline)
        ));
    }
    html.push_str("</body></html>\n");
    homestick_image::files::write_atomic(path, html.as_bytes())
}

fn report_format(f: ReportFormat) -> report::Format {
    match f {
        ReportFormat::Json => report::Format::Json,
        ReportFormat::Csv => report::Format::Csv,
    }
}

/// Verify the image before anything is written: exit 1 if not trusted, 2 if unusable.
fn open_image(
    path: &Path,
    keys: Vec<keys::TrustedKey>,
    expect: Expectations,
) -> Result<Image, Failure> {
    let progress = Reporter::new(false);
    eprintln!("homestick: verifying {}", path.display());
    let r = Image::open(path, keys, expect, &progress);
    progress.finish();
    match r {
        Ok(i) => {
            let m = &i.manifest;
            eprintln!(
                "homestick: image {} for {} ({}), version {}: trusted",
                m.image_id, m.customer.id, m.customer.name, m.version
            );
            Ok(i)
        }
        Err(ImageError::Verify {
            source: VerifyError::Untrusted { failures, .. },
            ..
        }) => {
            println!("NOT TRUSTED: {}", path.display());
            for f in &failures {
                println!("  - {f}");
            }
            println!("nothing was written");
            Err(Failure::Untrusted)
        }
        Err(e) => Err(usage(e)),
    }
}

/// The sticks named or found, each checked; a refused named target ends the run before any
/// write, a refused found one is only listed.
fn choose(a: &FlashArgs, roots: &Roots, image: &Image) -> Result<Vec<Device>, Failure> {
    let used = devices::in_use(roots).map_err(|e| usage(format!("/proc/self/mountinfo: {e}")))?;
    let need = image.min_size();
    if !a.targets.is_empty() {
        let mut out = Vec::new();
        let mut refused = Vec::new();
        for t in &a.targets {
            let d = devices::resolve(roots, t).map_err(usage)?;
            let r = devices::refusals(&d, &used, need, a.allow_non_removable);
            if r.is_empty() {
                out.push(d);
            } else {
                refused.push(format!("{}: refused: {}", t.display(), join(&r)));
            }
        }
        if !refused.is_empty() {
            return Err(usage(format!(
                "nothing written:\n  {}",
                refused.join("\n  ")
            )));
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    for d in devices::scan(roots).map_err(|e| usage(format!("/sys/block: {e}")))? {
        if !(d.removable || d.usb || a.allow_non_removable) {
            continue;
        }
        let mut r = devices::refusals(&d, &used, need, a.allow_non_removable);
        r.extend(devices::too_large(&d, a.max_size));
        if r.is_empty() {
            out.push(d);
        } else {
            eprintln!("homestick: skipping {}: {}", d.path.display(), join(&r));
        }
    }
    if out.is_empty() {
        return Err(usage(
            "no stick to write: none found that is not refused (see `homestick sticks`)",
        ));
    }
    Ok(out)
}

fn join(r: &[devices::Refusal]) -> String {
    r.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Show what is about to be written and ask; `chosen` empty means --watch (every stick that
/// is plugged in from now on).
fn confirm(source: &Source, chosen: &[Device]) -> Result<bool, Failure> {
    let image = source.first();
    let m = &image.manifest;
    let what = match source {
        Source::Image(_) => format!("{} ({} {})", image.path.display(), m.customer.id, m.version),
        Source::Set {
            users: claim::Users { only: Some(u), .. },
            ..
        } => format!(
            "user {u}'s stick of set {} ({} {})",
            image.path.display(),
            m.customer.id,
            m.version
        ),
        Source::Set { .. } => format!(
            "per-user sticks of set {} ({} {}), the next user without a stick on each",
            image.path.display(),
            m.customer.id,
            m.version
        ),
    };
    if chosen.is_empty() {
        eprintln!(
            "homestick: about to write {what} to every removable or USB stick plugged in until \
             Ctrl-C; everything on them is lost"
        );
    } else {
        eprintln!(
            "homestick: about to write {what} to {} stick(s); everything on them is lost:",
            chosen.len()
        );
    }
    for d in chosen {
        eprintln!("  {}", describe(d));
    }
    eprint!("Type yes to write: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| usage(format!("reading the answer: {e}")))?;
    Ok(line.trim() == "yes")
}

/// One run of the flasher.
struct Run {
    roots: Roots,
    allow_non_removable: bool,
    station: Station,
    ui: Ui,
    source: Source,
    ledger: Ledger,
    /// The ledger's row of each stick being written, by device name.
    attempts: BTreeMap<String, i64>,
    /// Last heartbeat sent to the ledger.
    heartbeat: Instant,
    /// Good sticks of this run: (user or image, serial), for the label sheet.
    labels: Vec<(String, String)>,
    /// Sticks not written because no user of the set was left.
    unassigned: usize,
    report: Option<Report>,
    jobs: usize,
    queue: Vec<Device>,
    failed: usize,
    good: usize,
    /// Sticks (serial, or name and size without one) verified in this run.
    written: BTreeSet<String>,
    /// --watch: sticks with a result that have stayed plugged in since; a failed one is tried
    /// again only once it is unplugged and plugged in again.
    settled: BTreeSet<String>,
    /// --watch: what was last said about a stick that is not written (by identity), so it is
    /// said once, not every second.
    announced: BTreeMap<String, String>,
}

fn identity(d: &Device) -> String {
    d.serial
        .clone()
        .unwrap_or_else(|| format!("{} {} {} {}", d.name, d.size, d.vendor, d.model))
}

impl Run {
    fn go(&mut self, a: &FlashArgs, roots: &Roots, cancel: &AtomicUsize) -> Result<(), Failure> {
        let mut last_scan = Instant::now() - Duration::from_secs(10);
        if a.watch {
            eprintln!("homestick: waiting for sticks (Ctrl-C to end)");
        }
        let mut said = 0;
        loop {
            let presses = cancel.load(Ordering::SeqCst);
            let stopping = presses > 0;
            if presses != said {
                said = presses;
                self.on_ctrl_c(presses);
            }
            if a.watch && !stopping && last_scan.elapsed() >= Duration::from_secs(1) {
                last_scan = Instant::now();
                self.watch_scan(a, roots);
            }
            if !stopping {
                self.start_queued();
            }
            for o in self.station.poll(Duration::from_millis(200)) {
                self.finished(&o);
            }
            if self.heartbeat.elapsed() >= Duration::from_secs(20) {
                self.heartbeat = Instant::now();
                let ids: Vec<i64> = self.attempts.values().copied().collect();
                if let Err(e) = self.ledger.heartbeat(&ids) {
                    self.ui.line(&format!("homestick: warning: {e}"));
                }
            }
            self.ui.show(&self.station, self.good, self.failed);
            let idle = !self.station.busy() && (self.queue.is_empty() || stopping);
            if idle && (!a.watch || stopping) {
                break;
            }
        }
        self.ui.clear();
        eprintln!(
            "homestick: {} stick(s) verified, {} failed",
            self.good, self.failed
        );
        if self.unassigned > 0 {
            eprintln!(
                "homestick: {} stick(s) not written: every user of the set has a stick",
                self.unassigned
            );
        }
        if self.failed > 0 || self.unassigned > 0 {
            return Err(Failure::SticksFailed);
        }
        if !self.queue.is_empty() {
            return Err(Failure::Interrupted(format!(
                "stopped by Ctrl-C; {} stick(s) not written",
                self.queue.len()
            )));
        }
        Ok(())
    }

    fn on_ctrl_c(&mut self, presses: usize) {
        let n = self.station.in_flight().count();
        let writing = self
            .station
            .in_flight()
            .filter(|(_, st)| st.phase() != Phase::Verify)
            .count();
        if presses == 1 && n > 0 {
            self.ui.line(&format!(
                "homestick: stopping: no new sticks; finishing the {n} in progress \
                 (Ctrl-C again stops those still being written; they are wiped)"
            ));
        } else if presses == 1 {
            self.ui.line("homestick: stopping");
        } else if writing > 0 {
            self.ui.line(&format!(
                "homestick: stopping the {writing} stick(s) still being written; they are wiped and reported failed"
            ));
            self.station.abort_all();
        }
    }

    /// Say once per stick why it is not written (refused, or already written in this run).
    fn announce(&mut self, d: &Device, why: String) {
        let id = identity(d);
        if self.announced.get(&id) != Some(&why) {
            self.ui
                .line(&format!("homestick: not writing {}: {why}", describe(d)));
            self.announced.insert(id, why);
        }
    }

    fn watch_scan(&mut self, a: &FlashArgs, roots: &Roots) {
        let (Ok(all), Ok(used)) = (devices::scan(roots), devices::in_use(roots)) else {
            return;
        };
        let busy: BTreeSet<String> = self
            .station
            .in_flight()
            .map(|(d, _)| d.name.clone())
            .collect();
        let present: BTreeSet<String> = all.iter().map(identity).collect();
        // A stick that was pulled is looked at afresh when it comes back.
        self.announced.retain(|id, _| present.contains(id));
        self.settled.retain(|id| present.contains(id));
        for d in all {
            if !(d.removable || d.usb) || busy.contains(&d.name) {
                continue;
            }
            let id = identity(&d);
            if self.settled.contains(&id) || self.queue.iter().any(|q| q.name == d.name) {
                continue;
            }
            if self.written.contains(&id) && !a.again {
                self.announce(
                    &d,
                    "already written and verified in this run (--again writes it again)".into(),
                );
                continue;
            }
            let mut r = devices::refusals(
                &d,
                &used,
                self.source.first().min_size(),
                a.allow_non_removable,
            );
            r.extend(devices::too_large(&d, a.max_size));
            if r.is_empty() {
                self.announced.remove(&identity(&d));
                self.ui
                    .line(&format!("homestick: new stick {}", describe(&d)));
                self.queue.push(d);
            } else {
                self.announce(&d, join(&r));
            }
        }
    }

    /// Open the stick as the device that was checked, and check it again on the open
    /// descriptor's device number: what is written and read back is what the refusal rules
    /// passed, with its serial as sysfs now says.
    fn open_checked(&self, d: &Device) -> Result<(Device, BlockTarget), String> {
        let t = BlockTarget::open(&d.path, d.dev, d.size)
            .map_err(|e| format!("cannot open it exclusively for writing: {e}"))?;
        let fresh = devices::describe_dev(&self.roots, d.dev)
            .map_err(|e| format!("cannot describe it again after opening: {e}"))?;
        let used =
            devices::in_use(&self.roots).map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
        let r = devices::refusals(
            &fresh,
            &used,
            self.source.first().min_size(),
            self.allow_non_removable,
        );
        if !r.is_empty() {
            return Err(format!("refused when opened: {}", join(&r)));
        }
        if fresh.serial != d.serial || fresh.size != d.size {
            return Err("it is not the stick that was checked (serial or size changed)".into());
        }
        Ok((
            Device {
                path: d.path.clone(),
                ..fresh
            },
            t,
        ))
    }

    fn start_queued(&mut self) {
        while !self.queue.is_empty() && self.station.in_flight().count() < self.jobs {
            let d = self.queue.remove(0);
            let (d, t) = match self.open_checked(&d) {
                Ok(dt) => dt,
                Err(e) => {
                    let o = Outcome {
                        error: Some(e),
                        unknown: false,
                        device: d,
                        bytes_written: 0,
                        seconds: 0.0,
                        image: self.source.first(),
                    };
                    self.finished(&o);
                    continue;
                }
            };
            match self.claim(&d) {
                Ok(Some((image, id))) => {
                    if let Some(u) = &image.manifest.user {
                        self.ui.line(&format!(
                            "homestick: {} (serial {}): writing the stick of {} ({})",
                            d.path.display(),
                            crate::terminal::text(d.serial.as_deref().unwrap_or("none")),
                            u.name,
                            u.id
                        ));
                        self.ui.label(&d.name, &u.id);
                    }
                    self.attempts.insert(d.name.clone(), id);
                    self.station.start(d, Box::new(t), image);
                }
                Ok(None) => {
                    self.unassigned += 1;
                    self.settled.insert(identity(&d));
                    self.ui.line(&format!(
                        "homestick: not writing {}: every user of the set has a stick",
                        describe(&d)
                    ));
                }
                Err(e) => {
                    let o = Outcome {
                        error: Some(format!("not written: {e}")),
                        unknown: false,
                        device: d,
                        bytes_written: 0,
                        seconds: 0.0,
                        image: self.source.first(),
                    };
                    self.finished(&o);
                }
            }
        }
    }

    /// The image for stick `d` and its ledger row: the image, or the next user of the set
    /// that the ledger lets this station have ([`claim::claim_next`]: its unique index decides
    /// a race with another station). `None`: no user left.
    fn claim(&mut self, d: &Device) -> Result<Option<(Arc<Image>, i64)>, LedgerError> {
        let attempt = NewAttempt {
            device: d.path.display().to_string(),
            device_number: format!("{}:{}", d.dev.0, d.dev.1),
            serial: d.serial.clone().unwrap_or_default(),
            ..NewAttempt::default()
        };
        let Source::Set {
            set,
            checker,
            keys,
            expect,
            users,
            ..
        } = &mut self.source
        else {
            let image = self.source.first();
            let attempt = attempt_for(attempt, &image, None);
            let id = self.ledger.begin(&attempt)?;
            return Ok(id.map(|id| (image, id)));
        };
        let mut claims = LedgerClaims {
            ledger: &mut self.ledger,
            set,
            attempt,
        };
        let prepare = |user: &str| {
            let expect = (**expect).clone();
            let progress = &homestick_image::verify::NoProgress;
            match Image::from_set(set, user, checker, keys.clone(), expect, progress) {
                Ok(i) => Ok(Arc::new(i)),
                Err(ImageError::Verify {
                    source: VerifyError::Untrusted { failures, .. },
                    ..
                }) => Err(homestick_image::verify::join(&failures)),
                Err(e) => Err(e.to_string()),
            }
        };
        let ui = &self.ui;
        let on_bad = |user: &str, why: &str| {
            ui.line(&format!(
                "homestick: user {user}: NOT TRUSTED, never handed out in this run: {why}"
            ));
        };
        let claimed = claim::claim_next(users, &mut claims, prepare, on_bad)?;
        Ok(claimed.map(|c| (c.image, c.row)))
    }

    fn finished(&mut self, o: &Outcome) {
        let d = &o.device;
        self.settled.insert(identity(d));
        let user = o.image.manifest.user.clone();
        let who = format!(
            "{} (serial {}{}{})",
            d.path.display(),
            crate::terminal::text(d.serial.as_deref().unwrap_or("none")),
            d.port
                .as_ref()
                .map(|p| format!(", USB {}", crate::terminal::text(p)))
                .unwrap_or_default(),
            user.as_ref()
                .map(|u| format!(", user {} ({})", u.id, u.name))
                .unwrap_or_default()
        );
        let (error, unknown) = self.record(o, &who);
        if error.is_none() {
            self.written.insert(identity(d));
            self.labels.push((
                user.as_ref().map_or_else(
                    || o.image.manifest.customer.name.clone(),
                    |u| format!("{} ({})", u.name, u.id),
                ),
                d.serial.clone().unwrap_or_else(|| "-".into()),
            ));
        }
        match &error {
            None => {
                self.good += 1;
                self.ui
                    .line(&format!("homestick: {who}: verified, may be unplugged"));
            }
            Some(e) if unknown => {
                self.failed += 1;
                self.ui.line(&format!(
                    "homestick: {who}: UNKNOWN, set it aside and check it (homestick ledger check): {e}"
                ));
            }
            Some(e) => {
                self.failed += 1;
                self.ui.line(&format!("homestick: {who}: FAILED: {e}"));
            }
        }
        self.append_report(o, error, unknown);
    }

    /// Record `o` in the ledger; the stick's result as it stands then: a verified stick whose
    /// row is no longer this station's (changed by another station or by hand) is not handed
    /// out as good: its state is unknown.
    fn record(&mut self, o: &Outcome, who: &str) -> (Option<String>, bool) {
        let Some(id) = self.attempts.remove(&o.device.name) else {
            return (o.error.clone(), o.unknown);
        };
        let how = match (&o.error, o.unknown) {
            (None, _) => Finish::Good,
            (Some(e), false) => Finish::Failed(e),
            (Some(e), true) => Finish::NeedsCheck(e),
        };
        match self.ledger.finish(id, how) {
            Ok(()) => (o.error.clone(), o.unknown),
            Err(e) if o.good() => (
                Some(format!(
                    "verified, but the ledger does not hold it as this station's any more ({e})"
                )),
                true,
            ),
            Err(e) => {
                self.ui.line(&format!(
                    "homestick: warning: {who}: not recorded in the ledger: {e}"
                ));
                (o.error.clone(), o.unknown)
            }
        }
    }

    /// The report's line for `o`, with its result as recorded.
    fn append_report(&mut self, o: &Outcome, error: Option<String>, unknown: bool) {
        let Some(report) = self.report.as_mut() else {
            return;
        };
        let (d, m) = (&o.device, &o.image.manifest);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |t| t.as_secs() as i64);
        let rec = Record {
            time: homestick_image::fat::rfc3339(now),
            station: report::station_name(),
            device: d.path.display().to_string(),
            device_number: format!("{}:{}", d.dev.0, d.dev.1),
            port: d.port.clone(),
            vendor: d.vendor.clone(),
            model: d.model.clone(),
            serial: d.serial.clone(),
            size: d.size,
            image_id: m.image_id.to_string(),
            customer: m.customer.id.clone(),
            version: m.version.clone(),
            manifest_sha256: hex(&o.image.manifest_sha256),
            result: match (error.is_none(), unknown) {
                (true, _) => "ok",
                (false, true) => "unknown",
                (false, false) => "failed",
            },
            bytes_written: o.bytes_written,
            seconds: (o.seconds * 1000.0).round() / 1000.0,
            mb_per_s: if o.seconds > 0.0 {
                ((o.bytes_written as f64 / o.seconds / 1e6) * 10.0).round() / 10.0
            } else {
                0.0
            },
            error,
            user: m.user.as_ref().map(|u| u.id.clone()),
        };
        if let Err(e) = report.append(&rec) {
            self.ui
                .line(&format!("homestick: warning: cannot write the report: {e}"));
        }
    }
}

/// Progress: a bar per stick and a total on a terminal; otherwise a line per stick (phase,
/// percent, MB/s, ETA) and a total line every 10 s.
struct Ui {
    /// Whose stick each device gets (device name -> user id), shown on its line.
    users: BTreeMap<String, String>,
    multi: Option<MultiProgress>,
    bars: Vec<(String, ProgressBar)>,
    total: Option<ProgressBar>,
    last_plain: Instant,
    speed: Speed,
}

const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// Each stick's recent progress, for its speed and time left: measured over the last few
/// seconds of the current phase, so a jump (a reset, a fast cache) does not give a wild figure.
#[derive(Default)]
struct Speed(BTreeMap<String, (Phase, VecDeque<(Instant, u64)>)>);

const SPEED_WINDOW: Duration = Duration::from_secs(5);

impl Speed {
    fn sample(&mut self, station: &Station) {
        let now = Instant::now();
        let live: BTreeSet<&str> = station.in_flight().map(|(d, _)| d.name.as_str()).collect();
        self.0.retain(|n, _| live.contains(n.as_str()));
        for (d, st) in station.in_flight() {
            let (phase, done) = (st.phase(), st.progress().0);
            let e = self
                .0
                .entry(d.name.clone())
                .or_insert_with(|| (phase, VecDeque::new()));
            if e.0 != phase {
                *e = (phase, VecDeque::new());
            }
            e.1.push_back((now, done));
            while e.1.len() > 2 && now.duration_since(e.1[1].0) >= SPEED_WINDOW {
                e.1.pop_front();
            }
        }
    }

    /// Bytes per second, once a second of the phase has been seen.
    fn rate(&self, name: &str) -> Option<f64> {
        let (_, s) = self.0.get(name)?;
        let (&(t0, d0), &(t1, d1)) = (s.front()?, s.back()?);
        let secs = t1.duration_since(t0).as_secs_f64();
        (secs >= 1.0).then(|| d1.saturating_sub(d0) as f64 / secs)
    }

    /// `12.3 MB/s, eta 40 s`, or `starting` before there is a rate.
    fn text(&self, name: &str, done: u64, total: u64) -> String {
        match self.rate(name) {
            Some(r) if r >= 1.0 => format!(
                "{:.1} MB/s, eta {:.0} s",
                r / 1e6,
                total.saturating_sub(done) as f64 / r
            ),
            Some(r) => format!("{:.1} MB/s, eta ?", r / 1e6),
            None => "starting".into(),
        }
    }
}

impl Ui {
    fn new() -> Ui {
        let multi = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Ui {
            users: BTreeMap::new(),
            multi,
            bars: Vec::new(),
            total: None,
            last_plain: Instant::now(),
            speed: Speed::default(),
        }
    }

    fn label(&mut self, device: &str, user: &str) {
        self.users.insert(device.to_string(), user.to_string());
    }

    /// ` user anna` for a per-user stick.
    fn user_of(&self, device: &str) -> String {
        self.users
            .get(device)
            .map(|u| format!(" user {u}"))
            .unwrap_or_default()
    }

    fn line(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }

    fn show(&mut self, station: &Station, good: usize, failed: usize) {
        self.speed.sample(station);
        let busy = station.in_flight().count();
        let total = format!("{busy} in progress, {good} verified, {failed} failed");
        if self.multi.is_none() {
            if self.last_plain.elapsed() >= PLAIN_EVERY && busy > 0 {
                self.last_plain = Instant::now();
                self.plain_lines(station, &total);
            }
            return;
        }
        self.sync_bars(station);
        if let Some(t) = &self.total {
            t.set_message(total);
        }
    }

    fn plain_lines(&self, station: &Station, total: &str) {
        for (d, st) in station.in_flight() {
            let (done, size) = st.progress();
            let pct = (done * 100).checked_div(size).unwrap_or(0);
            eprintln!(
                "homestick: {} ({}{}): {} {pct}% of {}, {}",
                d.path.display(),
                d.serial.as_deref().unwrap_or("no serial"),
                self.user_of(&d.name),
                st.phase().name(),
                human(size),
                self.speed.text(&d.name, done, size),
            );
        }
        eprintln!("homestick: total: {total}");
    }

    fn sync_bars(&mut self, station: &Station) {
        let Some(multi) = &self.multi else {
            return;
        };
        let live: Vec<String> = station.in_flight().map(|(d, _)| d.name.clone()).collect();
        self.bars.retain(|(name, bar)| {
            let keep = live.contains(name);
            if !keep {
                bar.finish_and_clear();
            }
            keep
        });
        let total_bar = self.total.get_or_insert_with(|| {
            let t = ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{prefix:36} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            t.set_prefix("total");
            multi.add(t)
        });
        for (d, st) in station.in_flight() {
            let (done, total) = st.progress();
            if total == 0 {
                continue; // not started: an empty bar would be drawn full
            }
            let phase = st.phase();
            let prefix = format!(
                "{} {}{} {}",
                d.name,
                d.serial.as_deref().unwrap_or(""),
                self.users
                    .get(&d.name)
                    .map(|u| format!(" user {u}"))
                    .unwrap_or_default(),
                phase.name()
            );
            let bar = match self.bars.iter().find(|(n, _)| *n == d.name) {
                Some((_, b)) => b.clone(),
                None => {
                    // Made whole before it is shown; each stick's bar goes above the total.
                    let b = ProgressBar::new(total).with_style(
                        ProgressStyle::with_template(
                            "{prefix:36} [{bar:25}] {bytes}/{total_bytes} {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    b.set_prefix(prefix.clone());
                    b.set_position(done);
                    let b = multi.insert_before(total_bar, b);
                    self.bars.push((d.name.clone(), b.clone()));
                    b
                }
            };
            bar.set_prefix(prefix);
            bar.set_length(total);
            bar.set_position(done);
            bar.set_message(self.speed.text(&d.name, done, total));
        }
    }

    fn clear(&mut self) {
        for (_, b) in self.bars.drain(..) {
            b.finish_and_clear();
        }
        if let Some(t) = self.total.take() {
            t.finish_and_clear();
        }
    }
}

/// The ledger row of a stick that gets `image` (of `user` in a set).
fn attempt_for(
    mut a: NewAttempt,
    image: &Image,
    user: Option<&homestick_image::set::SetUser>,
) -> NewAttempt {
    let m = &image.manifest;
    a.customer = m.customer.id.clone();
    a.image_id = m.image_id.to_string();
    a.manifest_sha256 = hex(&image.manifest_sha256);
    if let Some(u) = user {
        a.user_id = Some(u.id.clone());
        a.user_name = Some(u.name.clone());
        a.credentials = serde_json::to_string(&u.credentials).ok();
    }
    a
}

/// The station's ledger, as [`claim::claim_next`] claims users of `set` in it.
struct LedgerClaims<'a> {
    ledger: &'a mut Ledger,
    set: &'a StickSet,
    attempt: NewAttempt,
}

impl claim::Claims<Arc<Image>> for LedgerClaims<'_> {
    type Error = LedgerError;

    fn taken(&mut self) -> Result<BTreeSet<String>, LedgerError> {
        let set_id = self.set.index.set_id.to_string();
        Ok(self.ledger.taken(&set_id)?.into_iter().collect())
    }

    fn claim(&mut self, user: &str, image: &Arc<Image>) -> Result<Option<i64>, LedgerError> {
        let mut a = attempt_for(self.attempt.clone(), image, self.set.index.user(user));
        a.set_id = Some(self.set.index.set_id.to_string());
        a.user_id = Some(user.to_string());
        self.ledger.begin(&a)
    }
}
