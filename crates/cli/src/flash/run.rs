//! One run of the flasher: the sticks queued and in flight, the claim of a user in the
//! ledger for each, the result of each recorded.

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
}
