//! One run of the flasher: the sticks queued and in flight, the claim of a user in the
//! ledger for each, the result of each recorded, the label sheet.

use super::*;

/// One run of the flasher.
pub(crate) struct Run {
    pub(crate) roots: Roots,
    pub(crate) allow_non_removable: bool,
    pub(crate) station: Station,
    pub(crate) ui: Ui,
    pub(crate) source: Source,
    pub(crate) ledger: Ledger,
    /// The ledger's row of each stick being written, by device name.
    pub(crate) attempts: BTreeMap<String, i64>,
    /// Last heartbeat sent to the ledger.
    pub(crate) heartbeat: Instant,
    /// Good sticks of this run: (user or image, serial), for the label sheet.
    pub(crate) labels: Vec<(String, String)>,
    /// Sticks not written because no user of the set was left.
    pub(crate) unassigned: usize,
    pub(crate) report: Option<Report>,
    pub(crate) jobs: usize,
    pub(crate) queue: Vec<Device>,
    pub(crate) failed: usize,
    pub(crate) good: usize,
    /// Sticks (serial, or name and size without one) verified in this run.
    pub(crate) written: BTreeSet<String>,
    /// --watch: sticks with a result that have stayed plugged in since; a failed one is tried
    /// again only once it is unplugged and plugged in again.
    pub(crate) settled: BTreeSet<String>,
    /// --watch: what was last said about a stick that is not written (by identity), so it is
    /// said once, not every second.
    pub(crate) announced: BTreeMap<String, String>,
}

pub(crate) fn identity(d: &Device) -> String {
    d.serial
        .clone()
        .unwrap_or_else(|| format!("{} {} {} {}", d.name, d.size, d.vendor, d.model))
}

impl Run {
    /// A run that writes `chosen` (and, with --watch, what is plugged in) from `source`.
    pub(crate) fn new(
        a: &FlashArgs,
        roots: Roots,
        source: Source,
        ledger: Ledger,
        report: Option<Report>,
        chosen: Vec<Device>,
    ) -> Run {
        Run {
            roots,
            allow_non_removable: a.allow_non_removable,
            station: Station::new(Duration::from_secs(a.stall_seconds)),
            ui: Ui::new(),
            source,
            ledger,
            attempts: BTreeMap::new(),
            heartbeat: Instant::now(),
            labels: Vec::new(),
            unassigned: 0,
            report,
            jobs: a.jobs.map_or(usize::MAX, usize::from),
            queue: chosen,
            failed: 0,
            good: 0,
            written: BTreeSet::new(),
            settled: BTreeSet::new(),
            announced: BTreeMap::new(),
        }
    }

    pub(crate) fn go(
        &mut self,
        a: &FlashArgs,
        roots: &Roots,
        cancel: &AtomicUsize,
    ) -> Result<(), Failure> {
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

    pub(crate) fn on_ctrl_c(&mut self, presses: usize) {
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
    pub(crate) fn announce(&mut self, d: &Device, why: String) {
        let id = identity(d);
        if self.announced.get(&id) != Some(&why) {
            self.ui
                .line(&format!("homestick: not writing {}: {why}", describe(d)));
            self.announced.insert(id, why);
        }
    }

    pub(crate) fn watch_scan(&mut self, a: &FlashArgs, roots: &Roots) {
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

    pub(crate) fn start_queued(&mut self) {
        while !self.queue.is_empty() && self.station.in_flight().count() < self.jobs {
            let d = self.queue.remove(0);
            let opened = homestick_flash::open::open_checked(
                &self.roots,
                &d,
                self.source.first().min_size(),
                self.allow_non_removable,
            );
            let (d, t) = match opened {
                Ok(dt) => dt,
                Err(e) => {
                    let o = Outcome {
                        error: Some(e.to_string()),
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

    pub(crate) fn finished(&mut self, o: &Outcome) {
        let d = &o.device;
        self.settled.insert(identity(d));
        let user = o.image.manifest.user.clone();
        let who = format!(
            "{} (serial {}{}{})",
            d.path.display(),
            crate::terminal::text(d.serial.as_deref().unwrap_or("none")),
            // Not on USB (allowed with --allow-non-removable): no port.
            d.port
                .as_ref()
                .map(|p| format!(", USB {}", crate::terminal::text(p)))
                .unwrap_or_default(),
            // A customer-wide image has no user.
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
    pub(crate) fn record(&mut self, o: &Outcome, who: &str) -> (Option<String>, bool) {
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
    pub(crate) fn append_report(&mut self, o: &Outcome, error: Option<String>, unknown: bool) {
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

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A printable page: one label per good stick of this run (user, serial, the hotline), new
/// file or replaced whole.
pub(crate) fn write_labels(path: &Path, run: &Run) -> std::io::Result<()> {
    let (customer, hotline) = match &run.source {
        Source::Set { set, .. } => (
            set.index.customer.name.clone(),
            // No hotline in the set: the label leaves it out.
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
