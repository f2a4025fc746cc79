//! Many sticks at once: one thread per stick, a stall watchdog, and results as they come.
//!
//! Each stick's job runs on its own thread with its own buffer, so a slow or dead stick never
//! holds up another. The station never blocks on a job. A stick without progress is stopped
//! by the watchdog; its job then wipes the stick's ends and reports it failed. A job stuck in
//! the kernel (a stick that stopped answering) cannot wipe it: after [`WIPE_GRACE`] the stick
//! is reported with its state unknown, to be set aside and checked, never as failed while it
//! may hold a good image.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::devices::Device;
use crate::stick::{self, Image, Phase, StickState, Target};

/// How long a stopped job has to wipe its stick before the stick is reported unknown.
pub const WIPE_GRACE: Duration = Duration::from_secs(30);

/// How one stick ended.
#[derive(Debug)]
pub struct Outcome {
    /// The stick.
    pub device: Device,
    /// `None` if it verified; otherwise why not.
    pub error: Option<String>,
    /// It did not verify and could not be wiped either: it may hold a good image. Set it aside
    /// and check it; its user is not handed out again.
    pub unknown: bool,
    /// Bytes written to it.
    pub bytes_written: u64,
    /// Seconds from start to result.
    pub seconds: f64,
    /// What was written to it.
    pub image: Arc<Image>,
}

impl Outcome {
    /// Verified.
    pub fn good(&self) -> bool {
        self.error.is_none()
    }
}

#[derive(Debug)]
struct Running {
    device: Device,
    image: Arc<Image>,
    state: Arc<StickState>,
    started: Instant,
    /// Already reported; the job's own result is then ignored.
    reported: bool,
    /// The job returned.
    ended: bool,
    /// The watchdog stopped it (when, and why): its result is awaited for [`WIPE_GRACE`].
    stalled: Option<(Instant, String)>,
}

/// The sticks in flight.
#[derive(Debug)]
pub struct Station {
    stall: Duration,
    grace: Duration,
    running: Vec<Running>,
    tx: mpsc::Sender<(usize, Result<(), stick::StickError>)>,
    rx: mpsc::Receiver<(usize, Result<(), stick::StickError>)>,
}

impl Station {
    /// A station; a stick without progress for `stall` is stopped (and wiped, or reported
    /// unknown after [`WIPE_GRACE`]).
    pub fn new(stall: Duration) -> Station {
        Station::with_grace(stall, WIPE_GRACE)
    }

    /// [`Station::new`] with another grace for a stopped job to wipe its stick.
    pub fn with_grace(stall: Duration, grace: Duration) -> Station {
        let (tx, rx) = mpsc::channel();
        Station {
            stall,
            grace,
            running: Vec::new(),
            tx,
            rx,
        }
    }

    /// Start writing `image` to `device` through `target`.
    pub fn start(&mut self, device: Device, target: Box<dyn Target>, image: Arc<Image>) {
        let state = Arc::new(StickState::default());
        let i = self.running.len();
        let (st, tx) = (Arc::clone(&state), self.tx.clone());
        let job_image = Arc::clone(&image);
        std::thread::spawn(move || {
            let r = stick::flash(&job_image, &*target, &st);
            // The receiver lives as long as the station: a send fails only once the station is
            // dropped, and then nobody waits for this stick's result.
            let _ = tx.send((i, r));
        });
        self.running.push(Running {
            device,
            image,
            state,
            started: Instant::now(),
            reported: false,
            ended: false,
            stalled: None,
        });
    }

    /// Sticks that have not been reported yet, with their state.
    pub fn in_flight(&self) -> impl Iterator<Item = (&Device, &StickState)> {
        self.running
            .iter()
            .filter(|r| !r.reported)
            .map(|r| (&r.device, &*r.state))
    }

    /// True while a stick has no result yet.
    pub fn busy(&self) -> bool {
        self.running.iter().any(|r| !r.reported)
    }

    /// Ask every stick being written to stop: it fails and is wiped. A verification already
    /// under way finishes (only the stall watchdog stops one).
    pub fn abort_all(&self) {
        for r in self
            .running
            .iter()
            .filter(|r| !r.reported && r.state.phase() != Phase::Verify)
        {
            r.state.abort();
        }
    }

    /// Results since the last call: finished jobs (a stalled one with the stall as its
    /// reason), and stalled jobs that did not end within [`WIPE_GRACE`] (state unknown).
    /// Waits at most `wait`.
    pub fn poll(&mut self, wait: Duration) -> Vec<Outcome> {
        let mut out = Vec::new();
        let mut got = self.rx.recv_timeout(wait).ok();
        while let Some((i, r)) = got {
            let run = &mut self.running[i];
            run.ended = true;
            if !run.reported {
                run.reported = true;
                out.push(ended(run, r));
            }
            got = self.rx.try_recv().ok();
        }
        for run in self.running.iter_mut().filter(|r| !r.reported) {
            let idle = run.state.idle();
            let active = matches!(run.state.phase(), Phase::Write | Phase::Verify);
            if run.stalled.is_none() && active && idle > self.stall {
                run.state.abort();
                let why = format!(
                    "stalled: no progress for {} s ({} bytes written)",
                    idle.as_secs(),
                    run.state.written()
                );
                run.stalled = Some((Instant::now(), why));
            }
            if let Some((at, why)) = &run.stalled {
                if at.elapsed() > self.grace {
                    run.reported = true;
                    let complete = run.state.may_be_complete();
                    let e = if complete {
                        format!(
                            "{why}; the stick did not answer for {} s more and could not be wiped: set it aside, its state is unknown",
                            self.grace.as_secs()
                        )
                    } else {
                        format!(
                            "{why}; the stick does not answer (not wiped, but it never got this image's partition tables)"
                        )
                    };
                    out.push(outcome(run, Some(e), complete));
                }
            }
        }
        out
    }
}

/// The outcome of a job that returned: a stalled one says so first.
fn ended(run: &Running, r: Result<(), stick::StickError>) -> Outcome {
    match (r, &run.stalled) {
        (Ok(()), _) => outcome(run, None, false),
        (Err(e), Some((_, why))) => {
            let unknown = e.state_unknown();
            let tail = if unknown {
                "could not be wiped: set it aside, its state is unknown"
            } else {
                "its first and last MiB are wiped"
            };
            outcome(run, Some(format!("{why}; {tail}")), unknown)
        }
        (Err(e), None) => outcome(run, Some(e.to_string()), e.state_unknown()),
    }
}

fn outcome(run: &Running, error: Option<String>, unknown: bool) -> Outcome {
    Outcome {
        device: run.device.clone(),
        error,
        unknown,
        bytes_written: run.state.written(),
        seconds: run.started.elapsed().as_secs_f64(),
        image: Arc::clone(&run.image),
    }
}
