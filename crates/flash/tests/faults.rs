//! Faults at the writer's I/O seam (a stick that takes short writes, fails with EIO or ENODEV
//! at a given byte, stalls, or reads back other bytes than it took): each gives that stick the
//! right result, the others on the same station are undisturbed, and no stick is reported good
//! that is not. The real-device path is tested on loop devices in tests/e2e/flash.rs.

#![allow(clippy::unwrap_used)]

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use homestick_flash::devices::Device;
use homestick_flash::station::{Outcome, Station};
use homestick_flash::stick::{self, Image, StickError, StickState, Target};
use homestick_image::disk::{Disk, SECTOR};
use homestick_image::gpt;
use homestick_image::policy::Expectations;
use homestick_image::verify::{self, NoProgress};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Every write takes at most 3 sectors.
    Short,
    /// Writes touching bytes from here on fail with this errno.
    ErrorFrom(u64, i32),
    /// A write at or after this byte hangs for 5 s.
    StallAt(u64),
    /// The read-back shows this byte flipped.
    FlipOnReadBack(u64),
    /// Every read of the read-back takes 2 s (a stick that stops answering while verified).
    SlowReadBack,
    /// A write from this byte on never returns (a stick dead in the kernel).
    DeadAt(u64),
}

/// A read-back whose every read takes 2 s.
struct Slow(Vec<u8>);

impl Disk for Slow {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::thread::sleep(Duration::from_secs(2));
        self.0.read_exact_at(buf, offset)
    }
}

#[derive(Debug)]
struct Mem {
    data: Mutex<Vec<u8>>,
    fault: Fault,
}

impl Mem {
    fn new(size: u64, fault: Fault) -> Mem {
        // Not zeros: a stick bought in a shop holds a FAT file system, an old one anything.
        Mem {
            data: Mutex::new(homestick_testkit::pseudo_random(7, size as usize)),
            fault,
        }
    }
    fn bytes(&self) -> Vec<u8> {
        self.data.lock().unwrap().clone()
    }
}

impl Target for Mem {
    fn size(&self) -> u64 {
        self.data.lock().unwrap().len() as u64
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let mut n = buf.len();
        match self.fault {
            Fault::Short => n = n.min(3 * SECTOR as usize),
            Fault::ErrorFrom(at, errno) if offset + n as u64 > at => {
                return Err(io::Error::from_raw_os_error(errno))
            }
            Fault::StallAt(at) if offset >= at => std::thread::sleep(Duration::from_secs(5)),
            Fault::DeadAt(at) if offset >= at => std::thread::sleep(Duration::from_secs(3600)),
            _ => {}
        }
        let mut d = self.data.lock().unwrap();
        d[offset as usize..offset as usize + n].copy_from_slice(&buf[..n]);
        Ok(n)
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    fn read_back(&self) -> io::Result<Box<dyn Disk>> {
        let mut d = self.bytes();
        if let Fault::FlipOnReadBack(at) = self.fault {
            d[at as usize] ^= 0x40;
        }
        if let Fault::SlowReadBack = self.fault {
            return Ok(Box::new(Slow(d)));
        }
        Ok(Box::new(d))
    }
}

/// A fixture image (4 MiB system partition), checked and ready to flash.
fn image(dir: &Path) -> Image {
    let out = homestick_testkit::build_fixture_image(dir, 4).unwrap();
    let keys = homestick_testkit::test_keyring().unwrap();
    Image::open(&out, keys, Expectations::none(), &NoProgress).unwrap()
}

fn trusted(bytes: &Vec<u8>) -> bool {
    let keys = homestick_testkit::test_keyring().unwrap();
    verify::verify(bytes, &keys, &NoProgress).is_ok()
}

/// The first MiB (protective MBR, primary GPT) and, if `tail`, the last MiB are zeros.
fn wiped(bytes: &[u8], tail: bool) -> bool {
    let mib = 1 << 20;
    bytes[..mib].iter().all(|&b| b == 0)
        && (!tail || bytes[bytes.len() - mib..].iter().all(|&b| b == 0))
}

#[test]
fn each_fault_gives_its_stick_the_right_result() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path());
    let size = img.min_size();
    let system = img.manifest.partitions[1].offset();
    let cases: Vec<(&str, u64, Fault, Option<&str>)> = vec![
        ("exact size", size, Fault::None, None),
        ("larger stick", size + (3 << 20) + 512, Fault::None, None),
        ("short writes", size + (1 << 20), Fault::Short, None),
        (
            "EIO at 5 MiB",
            size,
            Fault::ErrorFrom(5 << 20, nix::libc::EIO),
            Some("removed or failed at byte"),
        ),
        (
            "ENODEV in the GPT",
            size,
            Fault::ErrorFrom(4096, nix::libc::ENODEV),
            Some("removed or failed at byte"),
        ),
        (
            // What Linux answers once a pulled stick's size is 0 (seen in the QEMU USB test).
            "ENOSPC",
            size,
            Fault::ErrorFrom(6 << 20, nix::libc::ENOSPC),
            Some("removed or failed at byte"),
        ),
        (
            "ENOMEDIUM",
            size,
            Fault::ErrorFrom(7 << 20, nix::libc::ENOMEDIUM),
            Some("removed or failed at byte"),
        ),
        (
            "EPERM",
            size,
            Fault::ErrorFrom(3 << 20, nix::libc::EPERM),
            Some("writing at byte"),
        ),
        (
            "read-back mismatch",
            size,
            Fault::FlipOnReadBack(system + 12345),
            Some("partition 2 (system)"),
        ),
    ];
    let mut failed = Vec::new();
    for (what, stick_size, fault, want_err) in cases {
        let mem = Mem::new(stick_size, fault);
        let r = stick::flash(&img, &mem, &StickState::default());
        let bytes = mem.bytes();
        match (want_err, r) {
            (None, Ok(())) => {
                if !trusted(&bytes) {
                    failed.push(format!("{what}: reported good, does not verify"));
                }
                // The backup GPT sits at the stick's real end.
                let g = gpt::read_primary(&bytes).unwrap();
                if g.header.backup_lba != stick_size / SECTOR - 1 {
                    failed.push(format!("{what}: backup GPT at LBA {}", g.header.backup_lba));
                }
                if stick_size == size {
                    let want = std::fs::read(&img.path).unwrap();
                    if bytes[..img.data_end as usize] != want[..img.data_end as usize] {
                        failed.push(format!("{what}: not the image's bytes"));
                    }
                }
            }
            (Some(w), Err(e)) => {
                let msg = e.to_string();
                if !msg.contains(w) {
                    failed.push(format!(
                        "{what}: error {msg:?}, expected it to contain {w:?}"
                    ));
                }
                // Wiped where the stick still takes writes: a stick that fails everywhere
                // keeps what it had, and that never verifies (checked next).
                let (head_ok, tail_ok) = match fault {
                    Fault::ErrorFrom(at, _) => (at >= 1 << 20, false),
                    _ => (true, true),
                };
                if head_ok && !wiped(&bytes, tail_ok) {
                    failed.push(format!("{what}: failed stick not wiped at its ends"));
                }
                if trusted(&bytes) {
                    failed.push(format!("{what}: a failed stick still verifies"));
                }
                if matches!(fault, Fault::ErrorFrom(_, e) if e != nix::libc::EPERM)
                    && !matches!(e, StickError::Removed { .. })
                {
                    failed.push(format!("{what}: {e:?} is not 'removed or failed'"));
                }
            }
            (w, r) => failed.push(format!("{what}: {r:?}, expected {w:?}")),
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

fn device(name: &str) -> Device {
    Device {
        name: name.into(),
        path: format!("/dev/{name}").into(),
        dev: (0, 0),
        size: 0,
        logical_block_size: 512,
        removable: true,
        usb: true,
        read_only: false,
        vendor: "test".into(),
        model: "mem".into(),
        serial: Some(format!("SERIAL-{name}")),
        port: None,
        stacked: vec![],
    }
}

#[test]
fn a_stalled_or_failing_stick_does_not_disturb_the_others() {
    let t = tempfile::tempdir().unwrap();
    let img = Arc::new(image(t.path()));
    let size = img.min_size();
    let mut station = Station::new(Duration::from_secs(1));
    let sticks = [
        ("good1", Fault::None),
        ("stall", Fault::StallAt(6 << 20)),
        ("eio", Fault::ErrorFrom(5 << 20, nix::libc::EIO)),
        ("good2", Fault::Short),
        (
            "flip",
            Fault::FlipOnReadBack(img.manifest.partitions[2].offset() + 7),
        ),
    ];
    let (mems, outcomes) = run_all(&mut station, &img, size, &sticks);
    let result = |name: &str| {
        outcomes
            .iter()
            .find(|o| o.device.name == name)
            .map(|o| o.error.clone())
            .unwrap_or_else(|| Some("no outcome".into()))
    };
    assert_eq!(outcomes.len(), 5, "{outcomes:#?}");
    assert_eq!(result("good1"), None);
    assert_eq!(result("good2"), None);
    assert!(
        result("stall").is_some_and(|e| e.contains("stalled")),
        "{outcomes:#?}"
    );
    assert!(
        result("eio").is_some_and(|e| e.contains("removed or failed")),
        "{outcomes:#?}"
    );
    assert!(
        result("flip").is_some_and(|e| e.contains("partition 3 (profile)")),
        "{outcomes:#?}"
    );
    for ((name, _), mem) in sticks.iter().zip(&mems) {
        let good = outcomes.iter().any(|o| o.device.name == *name && o.good());
        assert_eq!(
            good,
            trusted(&mem.bytes()),
            "{name}: reported good = {good}"
        );
    }
    // The stalled job ends on its own and then wipes its stick.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        wiped(&mems[1].bytes(), false),
        "the stalled stick is wiped once its write returns"
    );
}

/// Start a stick of `size` bytes with each named fault on `station`, and wait for every result:
/// the sticks' memory and the outcomes.
fn run_all(
    station: &mut Station,
    img: &Arc<Image>,
    size: u64,
    sticks: &[(&str, Fault)],
) -> (Vec<Arc<Mem>>, Vec<Outcome>) {
    let mems: Vec<Arc<Mem>> = sticks
        .iter()
        .map(|(_, f)| Arc::new(Mem::new(size, *f)))
        .collect();
    for ((name, _), mem) in sticks.iter().zip(&mems) {
        station.start(
            device(name),
            Box::new(Shared(Arc::clone(mem))),
            Arc::clone(img),
        );
    }
    let mut outcomes = Vec::new();
    while station.busy() {
        outcomes.extend(station.poll(Duration::from_millis(100)));
    }
    (mems, outcomes)
}

#[derive(Debug)]
struct Shared(Arc<Mem>);
impl Target for Shared {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.0.write_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync()
    }
    fn read_back(&self) -> io::Result<Box<dyn Disk>> {
        self.0.read_back()
    }
}

#[test]
fn a_stick_stalled_in_its_read_back_is_wiped_and_one_dead_in_the_kernel_is_reported_unknown() {
    let t = tempfile::tempdir().unwrap();
    let img = Arc::new(image(t.path()));
    let size = img.min_size();
    let mut station = Station::with_grace(Duration::from_secs(1), Duration::from_secs(4));
    // Dead in the body: the stick never gets a partition table. Dead at its last MiB (the
    // backup GPT, written just before the first MiB): it may hold a complete image.
    let sticks = [
        ("slow-verify", Fault::SlowReadBack),
        ("dead-body", Fault::DeadAt(6 << 20)),
        ("dead-ends", Fault::DeadAt(size - (1 << 20))),
        ("good", Fault::None),
    ];
    let (mems, outcomes) = run_all(&mut station, &img, size, &sticks);
    let get = |name: &str| outcomes.iter().find(|o| o.device.name == name).unwrap();
    // Stalled while it was read back: the job stops at its next read, wipes the stick, and it
    // is failed, not a complete stick reported failed.
    let slow = get("slow-verify");
    println!("slow-verify: {:?}, unknown {}", slow.error, slow.unknown);
    assert!(!slow.good() && !slow.unknown, "{slow:?}");
    assert!(
        slow.error.as_deref().unwrap().contains("stalled"),
        "{slow:?}"
    );
    assert!(slow.error.as_deref().unwrap().contains("wiped"), "{slow:?}");
    assert!(
        !trusted(&mems[0].bytes()),
        "the stick verifies: it was not wiped"
    );
    assert!(wiped(&mems[0].bytes(), true));
    // Dead in the kernel in the body: not wiped, but it cannot start: failed, not unknown.
    let body = get("dead-body");
    println!("dead-body: {:?}, unknown {}", body.error, body.unknown);
    assert!(!body.good() && !body.unknown, "{body:?}");
    assert!(!trusted(&mems[1].bytes()));
    // Dead while its ends were written: nothing can wipe it, so its state is unknown.
    let dead = get("dead-ends");
    println!("dead: {:?}, unknown {}", dead.error, dead.unknown);
    assert!(!dead.good() && dead.unknown, "{dead:?}");
    assert!(
        dead.error.as_deref().unwrap().contains("set it aside"),
        "{dead:?}"
    );
    assert!(get("good").good());
}
