//! What a station shows while it writes: a bar per stick on a terminal, plain lines
//! otherwise, with each stick's speed.

use super::*;

/// Progress: a bar per stick and a total on a terminal; otherwise a line per stick (phase,
/// percent, MB/s, ETA) and a total line every 10 s.
pub(crate) struct Ui {
    /// Whose stick each device gets (device name -> user id), shown on its line.
    pub(crate) users: BTreeMap<String, String>,
    pub(crate) multi: Option<MultiProgress>,
    pub(crate) bars: Vec<(String, ProgressBar)>,
    pub(crate) total: Option<ProgressBar>,
    pub(crate) last_plain: Instant,
    pub(crate) speed: Speed,
}

pub(crate) const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// Each stick's recent progress, for its speed and time left: measured over the last few
/// seconds of the current phase, so a jump (a reset, a fast cache) does not give a wild figure.
#[derive(Default)]
pub(crate) struct Speed(BTreeMap<String, (Phase, VecDeque<(Instant, u64)>)>);

pub(crate) const SPEED_WINDOW: Duration = Duration::from_secs(5);

impl Speed {
    pub(crate) fn sample(&mut self, station: &Station) {
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
    pub(crate) fn rate(&self, name: &str) -> Option<f64> {
        let (_, s) = self.0.get(name)?;
        let (&(t0, d0), &(t1, d1)) = (s.front()?, s.back()?);
        let secs = t1.duration_since(t0).as_secs_f64();
        (secs >= 1.0).then(|| d1.saturating_sub(d0) as f64 / secs)
    }

    /// `12.3 MB/s, eta 40 s`, or `starting` before there is a rate.
    pub(crate) fn text(&self, name: &str, done: u64, total: u64) -> String {
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
    pub(crate) fn new() -> Ui {
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

    pub(crate) fn label(&mut self, device: &str, user: &str) {
        self.users.insert(device.to_string(), user.to_string());
    }

    /// ` user anna` for a per-user stick.
    pub(crate) fn user_of(&self, device: &str) -> String {
        // A stick of a customer-wide image has no user.
        self.users
            .get(device)
            .map(|u| format!(" user {u}"))
            .unwrap_or_default()
    }

    pub(crate) fn line(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                // indicatif fails only when the terminal is gone: nowhere left to show the line.
                let _ = m.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }

    pub(crate) fn show(&mut self, station: &Station, good: usize, failed: usize) {
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

    pub(crate) fn plain_lines(&self, station: &Station, total: &str) {
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

    pub(crate) fn sync_bars(&mut self, station: &Station) {
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
                // A stick of a customer-wide image has no user.
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

    pub(crate) fn clear(&mut self) {
        for (_, b) in self.bars.drain(..) {
            b.finish_and_clear();
        }
        if let Some(t) = self.total.take() {
            t.finish_and_clear();
        }
    }
}
