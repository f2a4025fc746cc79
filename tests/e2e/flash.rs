//! `homestick flash` on real block devices (loop devices): four sticks in one run, each
//! verified by `homestick verify` and `sgdisk -v` with the backup GPT at the device's end; and
//! every kind of disk the flasher must refuse, with nothing written to it.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

#[test]
fn four_sticks_in_one_run_verify_and_pass_sgdisk() {
    let fx = Fixture::new();
    let img = fx.build("img");
    let size = fs::metadata(&img).unwrap().len();
    let sizes = [
        size,
        size + (1 << 20),
        size + (64 << 20) + 512,
        size + (3 << 20) + 3584,
    ];
    let files: Vec<PathBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| junk_file(fx.dir.path(), &format!("stick{i}"), *s))
        .collect();
    let loops: Vec<Loop> = files.iter().map(|f| Loop::attach(f, &[])).collect();
    let report = fx.path("report.jsonl");
    let mut args: Vec<String> = vec![
        "flash".into(),
        img.display().to_string(),
        "--keyring".into(),
        test_pub().display().to_string(),
        "--allow-non-removable".into(),
        "--yes".into(),
        "--report".into(),
        report.display().to_string(),
    ];
    for l in &loops {
        args.push("--target".into());
        args.push(l.0.clone());
    }
    let r = hs(&args);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        r.stderr.matches("verified, may be unplugged").count(),
        4,
        "{}",
        r.all()
    );
    let image_id = inspect_json(&img)["image_id"].as_str().unwrap().to_string();
    let lines: Vec<serde_json::Value> = fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    table(
        &loops.iter().zip(sizes).collect::<Vec<_>>(),
        |(l, s)| format!("{} ({s} bytes)", l.0),
        |(l, s)| {
            let v = verify(l.path(), &test_pub());
            if v.code != 0 {
                return Err(format!("verify: {}", v.all()));
            }
            let g = tool("sgdisk", &["-v", &l.0]);
            if !g.stdout.contains("No problems found") {
                return Err(format!("sgdisk -v: {}", g.all()));
            }
            // The backup header sits in the device's last sector.
            let last = tool(
                "dd",
                &[
                    format!("if={}", l.0),
                    "bs=512".into(),
                    format!("skip={}", s / 512 - 1),
                    "count=1".into(),
                    "status=none".into(),
                ],
            );
            if !last.stdout.starts_with("EFI PART") {
                return Err("no backup GPT header in the last sector".into());
            }
            let rec = lines
                .iter()
                .find(|r| r["device"] == l.0.as_str())
                .ok_or("no report line")?;
            if rec["result"] != "ok" || rec["image_id"] != image_id.as_str() || rec["size"] != *s {
                return Err(format!("report line {rec}"));
            }
            // The device number written and read back: the loop device's own.
            let number = tool("stat", &["-c", "%Hr:%Lr", &l.0]);
            if rec["device_number"] != number.stdout.trim() {
                return Err(format!(
                    "report line {rec}: device number, stat says {}",
                    number.stdout.trim()
                ));
            }
            Ok(())
        },
    );
    // The stick of exactly the image's size holds exactly the image's bytes.
    let c = tool("cmp", &[img.as_path(), loops[0].path()]);
    assert_eq!(c.code, 0, "{}", c.all());
}

#[test]
fn refused_disks_are_named_with_their_reason_and_left_untouched() {
    let fx = Fixture::new();
    let img = fx.build("img");
    let size = fs::metadata(&img).unwrap().len();
    struct Case {
        name: &'static str,
        size: u64,
        losetup: &'static [&'static str],
        allow: bool,
        setup: fn(&Loop, &Path) -> Option<String>,
        want: &'static str,
    }
    let cases = [
        Case {
            name: "smaller than the image",
            size: size - (1 << 20),
            losetup: &[],
            allow: true,
            setup: |_, _| None,
            want: "too small",
        },
        Case {
            name: "read-only",
            size,
            losetup: &["-r"],
            allow: true,
            setup: |_, _| None,
            want: "read-only",
        },
        Case {
            name: "not removable, no flag",
            size,
            losetup: &[],
            allow: false,
            setup: |_, _| None,
            want: "neither removable nor on USB",
        },
        Case {
            name: "mounted",
            size,
            losetup: &[],
            allow: true,
            setup: |l, dir| {
                let m = dir.join("mnt");
                fs::create_dir_all(&m).unwrap();
                assert_eq!(tool("mkfs.ext4", &["-q", &l.0]).code, 0);
                assert_eq!(
                    tool("mount", &["-o", "ro", l.0.as_str(), m.to_str().unwrap()]).code,
                    0
                );
                Some(format!("umount {}", m.display()))
            },
            want: "is mounted at",
        },
        // A device-mapper holder (LVM, dm-crypt) and a mounted partition are refused as well:
        // the host's kernel may have no device-mapper driver and make no partitions of loop
        // devices, so those are shown on the VM's kernel in flash_usb.rs (and by the unit tests
        // in crates/flash/src/devices.rs).
    ];
    table(
        &cases,
        |c| c.name.to_string(),
        |c| {
            let dir = tempfile::tempdir().unwrap();
            let file = junk_file(dir.path(), "stick", c.size);
            let l = Loop::attach(&file, c.losetup);
            let undo = (c.setup)(&l, dir.path());
            let before = sha(&file);
            let mut args = vec![
                "flash".to_string(),
                img.display().to_string(),
                "--keyring".into(),
                test_pub().display().to_string(),
                "--yes".into(),
                "--target".into(),
                l.0.clone(),
            ];
            if c.allow {
                args.push("--allow-non-removable".into());
            }
            let r = hs(&args);
            if let Some(u) = undo {
                sh(&u);
            }
            let after = sha(&file);
            if r.code != 2 {
                return Err(format!("exit {} (wanted 2): {}", r.code, r.all()));
            }
            if !r.stderr.contains(c.want) || !r.stderr.contains(&l.0) {
                return Err(format!("no {:?} for {} in: {}", c.want, l.0, r.stderr));
            }
            if before != after {
                return Err("the disk was written".into());
            }
            Ok(())
        },
    );
}

#[test]
fn an_untrusted_image_is_not_written() {
    let fx = Fixture::new();
    let img = fx.build("img");
    let bad = flipped(
        &img,
        (partition_lbas(&img, "system").0 * 512 + 100) as usize,
        fx.dir.path(),
        "bad",
    );
    let file = junk_file(fx.dir.path(), "stick", fs::metadata(&img).unwrap().len());
    let l = Loop::attach(&file, &[]);
    let before = sha(&file);
    let r = hs(&[
        "flash",
        bad.to_str().unwrap(),
        "--keyring",
        test_pub().to_str().unwrap(),
        "--yes",
        "--allow-non-removable",
        "--target",
        &l.0,
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("NOT TRUSTED") && r.stdout.contains("nothing was written"),
        "{}",
        r.all()
    );
    assert_eq!(before, sha(&file));
}

/// `homestick flash ARGS` with a terminal (util-linux `script` gives it a pty) and `answer`
/// typed at the prompt.
fn on_a_terminal(args: &[String], answer: &str) -> Run {
    let cmd = std::iter::once(bin().display().to_string())
        .chain(std::iter::once("flash".to_string()))
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    sh(&format!(
        "printf '{answer}\\n' | script -qec '{cmd}' /dev/null | tr -d '\\r'; exit ${{PIPESTATUS[1]}}"
    ))
}

#[test]
fn asks_before_writing_on_a_terminal_and_refuses_to_ask_without_one() {
    let fx = Fixture::new();
    let img = fx.build("img");
    let file = junk_file(fx.dir.path(), "stick", fs::metadata(&img).unwrap().len());
    let l = Loop::attach(&file, &[]);
    let before = sha(&file);
    let base = |extra: &[&str]| -> Vec<String> {
        let mut a = vec![
            img.display().to_string(),
            "--keyring".into(),
            test_pub().display().to_string(),
            "--allow-non-removable".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let target = base(&["--target", &l.0]);
    struct Case {
        name: &'static str,
        args: Vec<String>,
        /// What is typed at the prompt on a terminal; `None`: no terminal.
        typed: Option<&'static str>,
        code: i32,
        want: &'static [&'static str],
        written: bool,
    }
    let cases = [
        Case {
            name: "no terminal, no --yes",
            args: target.clone(),
            typed: None,
            code: 2,
            want: &["not asking for confirmation without a terminal"],
            written: false,
        },
        Case {
            name: "answered no",
            args: target.clone(),
            typed: Some("no"),
            code: 2,
            want: &[
                "to 1 stick(s); everything on them is lost",
                "nothing written: not confirmed",
            ],
            written: false,
        },
        Case {
            name: "--watch, answered n",
            args: base(&["--watch"]),
            typed: Some("n"),
            code: 2,
            want: &[
                "every removable or USB stick plugged in until Ctrl-C",
                "not confirmed",
            ],
            written: false,
        },
        Case {
            name: "answered yes",
            args: target.clone(),
            typed: Some("yes"),
            code: 0,
            want: &["verified, may be unplugged"],
            written: true,
        },
    ];
    table(
        &cases,
        |c| c.name.to_string(),
        |c| {
            let r = match c.typed {
                Some(t) => on_a_terminal(&c.args, t),
                None => hs(&[&["flash".to_string()][..], &c.args].concat()),
            };
            if r.code != c.code {
                return Err(format!("exit {} (wanted {}): {}", r.code, c.code, r.all()));
            }
            if let Some(w) = c.want.iter().find(|w| !r.all().contains(**w)) {
                return Err(format!("no {w:?} in: {}", r.all()));
            }
            let after = sha(&file);
            if (after != before) != c.written {
                return Err(format!(
                    "written: {}, wanted {}",
                    after != before,
                    c.written
                ));
            }
            Ok(())
        },
    );
    assert_eq!(verify(l.path(), &test_pub()).code, 0);
}

/// Device number (major, minor) of a block device node.
fn devnum(p: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    homestick_sys::split_dev(fs::metadata(p).unwrap().rdev())
}

#[test]
fn the_flasher_writes_and_reads_back_only_the_device_it_checked_even_through_a_changing_link() {
    use homestick_flash::stick::{BlockTarget, Target};
    let t = tempfile::tempdir().unwrap();
    let a = Loop::attach(&junk_file(t.path(), "a", 8 << 20), &[]);
    let b = Loop::attach(&junk_file(t.path(), "b", 8 << 20), &[]);
    let (da, db) = (devnum(a.path()), devnum(b.path()));
    // A by-path style link to stick a, checked as a.
    let link = t.path().join("by-path-stick");
    std::os::unix::fs::symlink(a.path(), &link).unwrap();
    // Between the check and the open the link comes to name b: the open refuses.
    std::os::unix::fs::symlink(b.path(), t.path().join("tmp-link")).unwrap();
    fs::rename(t.path().join("tmp-link"), &link).unwrap();
    let e = BlockTarget::open(&link, da, 8 << 20)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("not the {}:{} that was checked", da.0, da.1)),
        "{e}"
    );
    // Opened as b (what it now is), then the link moves back to a before the read-back: the
    // read-back refuses to read a.
    let target = BlockTarget::open(&link, db, 8 << 20).unwrap();
    std::os::unix::fs::symlink(a.path(), t.path().join("tmp-link")).unwrap();
    fs::rename(t.path().join("tmp-link"), &link).unwrap();
    let e = target.read_back().map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("the read-back would read another device"), "{e}");
    // A size that changed since the check (another medium in the same reader) is refused too.
    let e = BlockTarget::open(a.path(), da, 4 << 20)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not the 4194304 that were checked"), "{e}");
}
