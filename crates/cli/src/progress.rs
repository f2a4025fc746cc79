//! Progress for long work: an indicatif bar on a terminal, a few plain lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use homestick_build::BuildProgress;
use homestick_image::verify::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// Reports to stderr.
#[derive(Debug)]
pub struct Reporter {
    bar: Option<ProgressBar>,
    quiet: bool,
    total: AtomicU64,
    done: AtomicU64,
    last_quarter: AtomicU64,
    cancel: Arc<AtomicBool>,
}

impl Reporter {
    /// A bar if stderr is a terminal and `quiet` is false; plain lines if not a terminal.
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template(
                    "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        });
        Reporter {
            bar,
            quiet,
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            last_quarter: AtomicU64::new(0),
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Let Ctrl-C (SIGINT/SIGTERM) ask the running work to stop cleanly instead of dying.
    pub fn cancel_on_interrupt(&self) {
        let flag = Arc::clone(&self.cancel);
        // One handler per process; a failed registration only means Ctrl-C kills outright.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }

    /// Print a line without tearing the bar.
    pub fn line(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None if !self.quiet => eprintln!("{msg}"),
            None => {}
        }
    }

    /// Remove the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for Reporter {
    fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.last_quarter.store(0, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_length(total);
            b.set_position(0);
        }
    }

    fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(b) = &self.bar {
            b.inc(n);
            return;
        }
        let total = self.total.load(Ordering::Relaxed);
        if self.quiet || total < (256 << 20) {
            return;
        }
        let quarter = done * 4 / total;
        let prev = self.last_quarter.fetch_max(quarter, Ordering::Relaxed);
        if quarter > prev && quarter < 4 {
            eprintln!(
                "homestick:   {}% ({} of {} MiB)",
                quarter * 25,
                done >> 20,
                total >> 20
            );
        }
    }
}

impl BuildProgress for Reporter {
    fn stage(&self, what: &str) {
        if let Some(b) = &self.bar {
            b.set_message(what.to_string());
        }
        self.line(&format!("homestick: {what}"));
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}
