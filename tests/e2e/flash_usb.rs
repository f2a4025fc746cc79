//! The flasher on a real kernel with real USB mass storage: a QEMU VM (the boot tests' Debian
//! kernel; an initramfs with busybox, the homestick binary and dmsetup) with an xHCI controller
//! and usb-storage sticks, each with its own serial. The host pulls one stick (device_del) while
//! it is written and plugs sticks in (drive_add, device_add) while `flash --watch` runs; the VM
//! prints the reports on its console; the host then checks every stick's backing file with
//! `homestick verify` and `sgdisk -v`.
//!
//! The kernel here is a real one with partition scanning and device-mapper, so this test also
//! shows the refusals the host's kernel cannot: a mounted partition and a device-mapper holder.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use homestick_base::cpio::{archive, Entry};

use crate::common::*;
use homestick_testkit::build_args::Build;
use homestick_testkit::env::demo_base;
use homestick_testkit::qemu::Qemu;

/// The VM's init: loads the USB storage modules, sets up the two sticks that must be refused,
/// runs a batch flash, then a --watch flash that ends when the host sends a line.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /mnt/esp /bin
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
hostname flash-station
for m in $(cat /modules); do insmod /$m 2>/dev/null; done

# The USB serial of block device $1 (a /sys/block entry), from its USB device's directory.
serial_of() {
  p=$(readlink -f $1/device)
  while [ -n "$p" ] && [ "$p" != /sys ]; do
    if [ -f $p/idVendor ]; then cat $p/serial 2>/dev/null; return; fi
    p=${p%/*}
  done
}
by_serial() {
  for b in /sys/block/sd*; do [ -e $b ] && [ "$(serial_of $b)" = "$1" ] && echo ${b##*/}; done
}
present() {
  for b in /sys/block/sd*; do [ -e $b ] && serial_of $b; done | sort | tr '\n' ' '
}
until_true() { i=0; until eval "$1"; do i=$((i+1)); [ $i -gt 120 ] && { echo "vm: timed out: $1"; return 1; }; sleep 1; done; }

for s in HS-1 HS-2 HS-3 HS-4 HS-MNT HS-DM; do until_true "[ -n \"\$(by_serial $s)\" ]"; done
m=$(by_serial HS-MNT)
until_true "[ -e /dev/${m}1 ]"
mount -t vfat -o ro /dev/${m}1 /mnt/esp && echo "vm: mounted ${m}1 at /mnt/esp"
d=$(by_serial HS-DM)
dmsetup create held --table "0 2048 linear /dev/$d 0" && echo "vm: device-mapper over $d"
echo "vm: sticks-begin"
homestick sticks --image /image.img
echo "vm: sticks-end"
echo "vm: flash1-begin"
# Through a pipe: the console is a terminal, and the host reads the plain progress lines.
(homestick flash /image.img --keyring /test.pub --all-removable --yes --report /r1.jsonl
 echo "vm: flash1-exit $?") 2>&1 | cat
echo "vm: report1-begin"; cat /r1.jsonl; echo "vm: report1-end"

echo "vm: waiting for the host"
read -r line
for s in HS-1 HS-3 HS-4; do until_true "[ -z \"\$(by_serial $s)\" ]"; done
(last=x; while true; do now=$(present); [ "$now" != "$last" ] && echo "vm: present $now."; last=$now; sleep 1; done) &
(homestick flash /image.img --keyring /test.pub --watch --yes --report /r2.jsonl
 echo "vm: flash2-exit $?") 2>&1 | cat &
read -r line
echo "vm: sending SIGINT"
killall -INT homestick
read -r line
echo "vm: sending SIGINT again"
killall -INT homestick
wait $!
echo "vm: report2-begin"; cat /r2.jsonl; echo "vm: report2-end"
poweroff -f
"#;

/// An executable and the shared libraries `ldd` names for it, at their own paths.
fn with_libs(exe: &Path, at: &str, entries: &mut Vec<Entry>, dirs: &mut Vec<String>) {
    let data = fs::read(exe).unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    entries.push(Entry::File {
        path: at.into(),
        mode: 0o755,
        data,
    });
    let l = tool("ldd", &[exe]);
    for lib in l.stdout.lines().filter_map(|line| {
        let p = line.split("=>").last()?.split_whitespace().next()?;
        p.starts_with('/').then(|| p.to_string())
    }) {
        let rel = lib.trim_start_matches('/').to_string();
        if entries
            .iter()
            .any(|e| matches!(e, Entry::File { path, .. } if *path == rel))
        {
            continue;
        }
        if let Some(parent) = Path::new(&rel).parent() {
            let mut acc = PathBuf::new();
            for c in parent.components() {
                acc.push(c);
                let d = acc.display().to_string();
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        }
        entries.push(Entry::File {
            path: rel,
            mode: 0o755,
            data: fs::read(&lib).unwrap_or_else(|e| panic!("{lib}: {e}")),
        });
    }
}

/// The demo base's module initrd followed by an archive with init, busybox, homestick (its
/// debug symbols stripped, for size), dmsetup, their libraries, the image and the key.
fn initramfs(dir: &Path, img: &Path) -> PathBuf {
    let base = demo_base();
    let text = fs::read_to_string(base.join("base.toml")).unwrap();
    let modules: Vec<String> = homestick_formats::base::BaseToml::parse(&text)
        .unwrap()
        .boot
        .map(|b| b.modules)
        .unwrap_or_default();
    assert!(
        modules.iter().any(|m| m.contains("usb-storage")),
        "the demo base has no usb-storage module: {modules:?}"
    );
    let stripped = dir.join("homestick");
    let s = tool(
        "strip",
        &[
            bin().display().to_string(),
            "-o".into(),
            stripped.display().to_string(),
        ],
    );
    assert_eq!(s.code, 0, "strip (binutils): {}", s.all());
    let mut dirs = vec!["bin".to_string(), "dev".into(), "lib64".into()];
    let mut files = vec![
        Entry::CharDev {
            path: "dev/console".into(),
            mode: 0o600,
            major: 5,
            minor: 1,
        },
        Entry::File {
            path: "init".into(),
            mode: 0o755,
            data: INIT.as_bytes().to_vec(),
        },
        Entry::File {
            path: "bin/busybox".into(),
            mode: 0o755,
            data: fs::read(homestick_testkit::env::busybox()).unwrap(),
        },
        Entry::File {
            path: "modules".into(),
            mode: 0o644,
            data: modules.join("\n").into_bytes(),
        },
        Entry::File {
            path: "image.img".into(),
            mode: 0o644,
            data: fs::read(img).unwrap(),
        },
        Entry::File {
            path: "test.pub".into(),
            mode: 0o644,
            data: fs::read(test_pub()).unwrap(),
        },
    ];
    with_libs(&stripped, "bin/homestick", &mut files, &mut dirs);
    with_libs(
        Path::new("/sbin/dmsetup"),
        "bin/dmsetup",
        &mut files,
        &mut dirs,
    );
    let mut entries: Vec<Entry> = dirs
        .into_iter()
        .map(|path| Entry::Dir { path, mode: 0o755 })
        .collect();
    entries.extend(files);
    let mut out = fs::read(base.join("initrd")).unwrap();
    out.extend(archive(&entries, 0));
    let p = dir.join("initramfs");
    fs::write(&p, out).unwrap();
    p
}

/// The QEMU human monitor on a Unix socket.
pub(crate) struct Monitor(UnixStream);

impl Monitor {
    pub(crate) fn connect(path: &Path) -> Monitor {
        let started = Instant::now();
        let s = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if started.elapsed() > Duration::from_secs(30) => {
                    panic!("QEMU monitor {}: {e}", path.display())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut m = Monitor(s);
        m.until_prompt();
        m
    }

    fn until_prompt(&mut self) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"(qemu) ") {
            // A signal (the flasher's child processes ending) may interrupt the read: retry.
            let n = match self.0.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => r.expect("QEMU monitor answers"),
            };
            assert!(n > 0, "QEMU monitor closed");
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    /// Run a monitor command; fails the test if QEMU answers with an error.
    pub(crate) fn run(&mut self, cmd: &str) {
        self.0.write_all(format!("{cmd}\n").as_bytes()).unwrap();
        let answer = self.until_prompt();
        assert!(
            !answer.contains("rror") && !answer.contains("Could not"),
            "QEMU monitor `{cmd}`: {answer}"
        );
    }
}

/// The VM: its console (read from a cursor on), its serial input and its monitor.
struct Vm {
    q: Qemu,
    mon: Monitor,
    cursor: usize,
}

impl Vm {
    /// Wait until `needle` appears after the cursor; move the cursor past that line and return
    /// the console text from the old cursor to there.
    fn wait(&mut self, needle: &str, secs: u64) -> String {
        let started = Instant::now();
        loop {
            let text = self.q.console();
            if let Some(i) = text.get(self.cursor..).and_then(|t| t.find(needle)) {
                let at = self.cursor + i;
                let end = text[at..].find('\n').map_or(text.len(), |n| at + n + 1);
                let seen = text[self.cursor..end].to_string();
                self.cursor = end;
                return seen;
            }
            let exited = self.q.child.try_wait().unwrap();
            assert!(
                exited.is_none() && started.elapsed() < Duration::from_secs(secs),
                "waiting for {needle:?} ({}); console:\n{text}",
                if exited.is_some() {
                    "QEMU exited"
                } else {
                    "timed out"
                }
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait for a progress line that shows `serial` being written, past its first bytes;
    /// returns the console text up to it.
    fn writing(&mut self, serial: &str) -> String {
        let needle = format!("({serial}): write ");
        let mut all = String::new();
        for _ in 0..10 {
            let seen = self.wait(&needle, 120);
            all += &seen;
            let line = seen.lines().last().unwrap_or_default();
            let pct = line
                .split(&needle)
                .nth(1)
                .and_then(|r| r.split('%').next())
                .and_then(|p| p.trim().parse::<u32>().ok());
            if pct.is_some_and(|p| p > 0) {
                return all;
            }
        }
        panic!("{serial} made no progress:\n{}", self.q.console());
    }

    /// A line to the VM's console (its init reads it).
    fn send(&mut self, line: &str) {
        self.q.type_bytes(format!("{line}\n").as_bytes()).unwrap();
    }

    /// Plug in a stick: a drive over `file` and a usb-storage device with `serial`.
    fn plug(&mut self, id: &str, file: &Path, serial: &str, extra: &str) {
        self.mon.run(&format!(
            "drive_add 0 if=none,id=drive-{id},format=raw,file.locking=off,file={}{extra}",
            file.display()
        ));
        self.mon.run(&format!(
            "device_add usb-storage,bus=xhci.0,drive=drive-{id},id={id},serial={serial},removable=on"
        ));
    }
}

/// The JSON lines between two console markers, by serial.
fn report(section: &str) -> Vec<serde_json::Value> {
    section
        .lines()
        .map(|l| l.trim_matches(|c: char| c.is_control() || c.is_whitespace()))
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("report line {l}: {e}")))
        .collect()
}

fn record<'a>(r: &'a [serde_json::Value], serial: &str) -> &'a serde_json::Value {
    let found: Vec<_> = r.iter().filter(|v| v["serial"] == serial).collect();
    assert_eq!(found.len(), 1, "one report line for {serial}: {r:#?}");
    found[0]
}

/// Throttled writes (bytes per second) for the sticks that must still be writing when the host
/// acts: the one pulled out and the one in progress when the watch run is stopped.
const SLOW: &str = ",throttling.bps-write=1048576";

#[test]
fn usb_sticks_in_a_vm_one_pulled_mid_write_and_watch_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    homestick_testkit::write_fixture_base(&d.join("base"), 1).unwrap();
    let img = d.join("image.img");
    let b = Build::new(&demo_profile(), &d.join("base"), &img).run();
    assert_eq!(b.code, 0, "{}", b.all());
    let size = fs::metadata(&img).unwrap().len();
    let stick_size = size + (16 << 20);
    let stick = |name: &str| junk_file(d, name, stick_size);
    let sticks: Vec<PathBuf> = (1..=7).map(|i| stick(&format!("stick{i}"))).collect();
    // Two sticks hold a good image already: one gets a mounted partition, one a dm holder.
    let held: Vec<PathBuf> = ["mnt", "dm"]
        .iter()
        .map(|n| {
            let p = stick(&format!("stick-{n}"));
            let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
            use std::os::unix::fs::FileExt;
            f.write_all_at(&fs::read(&img).unwrap(), 0).unwrap();
            p
        })
        .collect();
    let held_sha: Vec<String> = held.iter().map(|p| sha(p)).collect();

    let initrd = initramfs(d, &img);
    let mon = d.join("monitor.sock");
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        "q35,accel=tcg",
        "-m",
        "1024",
        "-display",
        "none",
        "-no-reboot",
        "-nic",
        "none",
        "-serial",
        "stdio",
        "-device",
        "qemu-xhci,id=xhci",
    ])
    .arg("-monitor")
    .arg(format!("unix:{},server=on,wait=off", mon.display()))
    .arg("-kernel")
    .arg(demo_base().join("kernel"))
    .arg("-initrd")
    .arg(&initrd)
    .args(["-append", "console=ttyS0,115200 loglevel=4 panic=-1"]);
    let devs = [
        (sticks[0].as_path(), "HS-1", ""),
        (sticks[1].as_path(), "HS-2", SLOW),
        (sticks[2].as_path(), "HS-3", ""),
        (sticks[3].as_path(), "HS-4", ""),
        (held[0].as_path(), "HS-MNT", ""),
        (held[1].as_path(), "HS-DM", ""),
    ];
    for (i, (file, serial, extra)) in devs.iter().enumerate() {
        // Half of them do not say they are removable: on USB is enough.
        let removable = if i % 2 == 0 { "on" } else { "off" };
        cmd.arg("-drive").arg(format!(
            "if=none,id=d{i},format=raw,file={}{extra}",
            file.display()
        ));
        cmd.arg("-device").arg(format!(
            "usb-storage,bus=xhci.0,drive=d{i},id=u{i},serial={serial},removable={removable}"
        ));
    }
    let q = Qemu::spawn(&mut cmd);
    let mon = Monitor::connect(&mon);
    let mut vm = Vm { q, mon, cursor: 0 };

    // The batch: four sticks written at once; HS-2 (slow) is pulled while it is written.
    let setup = vm.wait("vm: sticks-end", 240);
    for want in [
        "vm: mounted",
        "vm: device-mapper over",
        "HS-1",
        "HS-2",
        "HS-3",
        "HS-4",
        "is mounted at /mnt/esp",
        "in use by dm-0",
    ] {
        assert!(setup.contains(want), "no {want:?} in:\n{setup}");
    }
    let mut batch = vm.writing("HS-2");
    vm.mon.run("device_del u1");
    batch += &vm.wait("vm: flash1-exit", 300);
    assert!(batch.contains("vm: flash1-exit 1"), "{batch}");
    for want in ["is mounted at /mnt/esp", "in use by dm-0"] {
        assert!(
            batch.contains(want),
            "the batch did not skip {want:?}:\n{batch}"
        );
    }
    assert_eq!(
        batch.matches("verified, may be unplugged").count(),
        3,
        "{batch}"
    );
    let r1 = report(&vm.wait("vm: report1-end", 60));
    assert_eq!(r1.len(), 4, "{r1:#?}");
    for s in ["HS-1", "HS-3", "HS-4"] {
        let r = record(&r1, s);
        assert!(
            r["result"] == "ok" && r["bytes_written"].as_u64() >= Some(size),
            "{r}"
        );
        assert!(
            r["port"].as_str().is_some_and(|p| !p.is_empty()) && r["station"] == "flash-station",
            "{r}"
        );
    }
    let pulled = record(&r1, "HS-2");
    let at = pulled["bytes_written"].as_u64().unwrap();
    assert!(
        pulled["result"] == "failed"
            && pulled["error"]
                .as_str()
                .is_some_and(|e| e.contains("removed or failed at byte"))
            && at > 0
            && at < size,
        "the pulled stick: {pulled}"
    );

    // Station mode: unplug the batch, then plug sticks in while `flash --watch` runs.
    for u in ["u0", "u2", "u3"] {
        vm.mon.run(&format!("device_del {u}"));
    }
    vm.send("go");
    vm.wait("waiting for sticks", 120);
    vm.plug("hot5", &sticks[4], "HS-5", "");
    vm.wait("new stick", 120);
    let first = vm.wait("verified, may be unplugged", 240);
    assert!(first.contains("HS-5"), "{first}");
    vm.mon.run("device_del hot5");
    vm.wait("vm: present HS-DM HS-MNT .", 60);
    // The same serial again: not written twice in one run.
    vm.plug("hot5-again", &sticks[4], "HS-5", "");
    let again = vm.wait("already written and verified in this run", 60);
    assert!(again.contains("HS-5"), "{again}");
    // Two slow ones. Ctrl-C while both are written: both go on; the first is then let run at
    // full speed and verifies; Ctrl-C again stops the second, which fails and is wiped.
    vm.plug("hot6", &sticks[5], "HS-6", SLOW);
    let new = vm.wait("new stick", 120);
    assert!(new.contains("HS-6"), "{new}");
    vm.plug("hot7", &sticks[6], "HS-7", SLOW);
    let new = vm.wait("new stick", 120);
    assert!(new.contains("HS-7"), "{new}");
    vm.writing("HS-7");
    vm.send("stop");
    let stopping = vm.wait("no new sticks; finishing the 2 in progress", 60);
    assert!(!stopping.contains("may be unplugged"), "{stopping}");
    vm.mon.run("block_set_io_throttle drive-hot6 0 0 0 0 0 0");
    let six = vm.wait("verified, may be unplugged", 120);
    assert!(six.contains("HS-6") && !six.contains("FAILED"), "{six}");
    vm.send("stop");
    vm.wait("stopping the 1 stick(s) still being written", 60);
    let end = vm.wait("vm: flash2-exit", 120);
    assert!(
        end.contains("HS-7") && end.contains("FAILED: stopped before it was written"),
        "{end}"
    );
    assert!(end.contains("vm: flash2-exit 1"), "{end}");
    let r2 = report(&vm.wait("vm: report2-end", 60));
    assert_eq!(r2.len(), 3, "{r2:#?}");
    for s in ["HS-5", "HS-6"] {
        assert_eq!(record(&r2, s)["result"], "ok");
    }
    assert_eq!(record(&r2, "HS-7")["result"], "failed");
    let started = Instant::now();
    while vm.q.child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the VM did not power off"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // On the host: every stick reported good verifies from its backing file; the pulled one
    // does not, and never got its first MiB; the refused ones are unchanged.
    let good = [
        (0, "HS-1"),
        (2, "HS-3"),
        (3, "HS-4"),
        (4, "HS-5"),
        (5, "HS-6"),
    ];
    table(
        &good,
        |(_, s)| s.to_string(),
        |(i, _)| {
            let v = verify(&sticks[*i], &test_pub());
            if v.code != 0 {
                return Err(format!("verify: {}", v.all()));
            }
            let g = tool("sgdisk", &["-v", sticks[*i].to_str().unwrap()]);
            if !g.stdout.contains("No problems found") {
                return Err(format!("sgdisk -v: {}", g.all()));
            }
            Ok(())
        },
    );
    let v = verify(&sticks[1], &test_pub());
    assert_ne!(v.code, 0, "the pulled stick verifies: {}", v.all());
    let head = &fs::read(&sticks[1]).unwrap()[..1 << 20];
    assert!(
        head == &homestick_testkit::pseudo_random(stick_size, 2 << 20)[..1 << 20],
        "the pulled stick's first MiB changed: it must never look like a written stick"
    );
    // The stick stopped by the second Ctrl-C: wiped at both ends, does not verify.
    let seven = fs::read(&sticks[6]).unwrap();
    let mib = 1 << 20;
    assert!(
        seven[..mib].iter().all(|&b| b == 0) && seven[seven.len() - mib..].iter().all(|&b| b == 0),
        "the stopped stick's ends are not wiped"
    );
    assert_ne!(verify(&sticks[6], &test_pub()).code, 0);
    for (p, before) in held.iter().zip(&held_sha) {
        assert_eq!(&sha(p), before, "{} was written", p.display());
    }
}
