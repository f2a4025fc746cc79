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
use homestick_flash::open::join;
use homestick_flash::report::{self, Record, Report};
use homestick_flash::station::{Outcome, Station};
use homestick_flash::stick::{Image, ImageError, Phase};
use homestick_image::hash::hex;
use homestick_image::keys;
use homestick_image::policy::Expectations;
use homestick_image::set::{SetVerifier, StickSet};
use homestick_image::verify::VerifyError;
use homestick_ledger::{Finish, Ledger, LedgerError, NewAttempt};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

mod claims;
mod labels;
mod outcome;
mod run;
mod source;
mod sticks;
mod ui;

pub(crate) use source::Source;
use source::{open_image, open_set_source};
pub(crate) use sticks::sticks;

use labels::write_labels;
use run::Run;
use ui::Ui;

use crate::cli::{FlashArgs, ReportFormat, SticksArgs};
use crate::progress::Reporter;
use crate::{open_target, read_manifest, usage, Failure};

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
    check_args(a)?;
    let keys = keys::load_keyring(&a.keyring).map_err(usage)?;
    let expect =
        crate::offline_expectations(a.revocations.as_deref(), a.min_revocation_version, &keys)?;
    let mut ledger = crate::cmd::ledger::open_ledger(
        a.ledger.as_deref(),
        a.ledger_ca.as_deref(),
        a.ledger_insecure_plaintext,
    )?;
    let report = match &a.report {
        Some(p) => Some(
            Report::open(p, report_format(a.report_format))
                .map_err(|e| usage(format!("--report {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let source = if homestick_image::set::is_set(&a.image) {
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
        // Without a handler (another one is set) Ctrl-C ends the program as it would anyway.
        let _ = ctrlc::set_handler(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
    }
    let mut run = Run::new(a, roots.clone(), source, ledger, report, chosen);
    let r = run.go(a, &roots, &cancel);
    if let Some(path) = &a.labels {
        write_label_sheet(path, &run);
    }
    r
}

/// The options that go together, and a terminal to ask at unless --yes.
fn check_args(a: &FlashArgs) -> Result<(), Failure> {
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
    if a.user.is_some() && !homestick_image::set::is_set(&a.image) {
        return Err(usage(format!(
            "--user: {} is not a stick set (a directory with set.json)",
            a.image.display()
        )));
    }
    if a.user.is_some() && (a.watch || a.all_removable || a.targets.len() != 1) {
        return Err(usage("--user writes one stick: give exactly one --target"));
    }
    Ok(())
}

/// --labels: the sheet of this run's good sticks; a failure to write it is a warning (the
/// sticks are written and recorded).
fn write_label_sheet(path: &Path, run: &Run) {
    match write_labels(path, run) {
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

fn report_format(f: ReportFormat) -> report::Format {
    match f {
        ReportFormat::Json => report::Format::Json,
        ReportFormat::Csv => report::Format::Csv,
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
    // A prompt on a closed stderr: the answer read next decides.
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| usage(format!("reading the answer: {e}")))?;
    Ok(line.trim() == "yes")
}
