//! Many sticks at once: one thread per stick, a stall watchdog, and results as they come.
//!
//! Each stick's job runs on its own thread with its own buffer, so a slow or dead stick never
//! holds up another. The station never blocks on a job: a job stuck in the kernel (a stick that
//! stopped answering) is reported failed by the watchdog and left to end on its own.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::devices::Device;
use crate::stick::{self, Image, Phase, StickState, Target};

/// How one stick ended.
#[derive(Debug)]
pub struct Outcome {
    /// The stick.
    pub device: Device,
    /// `None` if it verified; otherwise why not.
    pub error: Option<String>,
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
    /// Already reported (by the watchdog); the job's own result is then ignored.
    reported: bool,
    /// The job returned.
    ended: bool,
}

/// The sticks in flight.
#[derive(Debug)]
pub struct Station {
    stall: Duration,
    running: Vec<Running>,
    tx: mpsc::Sender<(usize, Result<(), stick::StickError>)>,
    rx: mpsc::Receiver<(usize, Result<(), stick::StickError>)>,
}

impl Station {
    /// A station; a stick without progress for `stall` fails.
    pub fn new(stall: Duration) -> Station {
        let (tx, rx) = mpsc::channel();
        Station {
            stall,
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
            let _ = tx.send((i, r));
        });
        self.running.push(Running {
            device,
            image,
            state,
            started: Instant::now(),
            reported: false,
            ended: false,
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

    /// Ask every stick in flight to stop: one being written fails and is wiped; a verification
    /// already under way finishes.
    pub fn abort_all(&self) {
        for r in self.running.iter().filter(|r| !r.reported) {
            r.state.abort();
        }
    }

    /// Results since the last call: finished jobs and stalled ones. Waits at most `wait`.
    pub fn poll(&mut self, wait: Duration) -> Vec<Outcome> {
        let mut out = Vec::new();
        let mut got = self.rx.recv_timeout(wait).ok();
        while let Some((i, r)) = got {
            let run = &mut self.running[i];
            run.ended = true;
            if !run.reported {
                run.reported = true;
                out.push(outcome(run, r.err().map(|e| e.to_string())));
            }
            got = self.rx.try_recv().ok();
        }
        for run in self.running.iter_mut().filter(|r| !r.reported) {
            let idle = run.state.idle();
            if matches!(run.state.phase(), Phase::Write | Phase::Verify) && idle > self.stall {
                run.state.abort();
                run.reported = true;
                let e = format!(
                    "stalled: no progress for {} s ({} bytes written)",
                    idle.as_secs(),
                    run.state.written()
                );
                out.push(outcome(run, Some(e)));
            }
        }
        out
    }
}

fn outcome(run: &Running, error: Option<String>) -> Outcome {
    Outcome {
        device: run.device.clone(),
        error,
        bytes_written: run.state.written(),
        seconds: run.started.elapsed().as_secs_f64(),
        image: Arc::clone(&run.image),
    }
}
