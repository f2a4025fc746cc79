//! Hostile and broken targets: exit 2 (or 1 where the signed part is intact), never a panic.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use homestick_image::disk::Disk;
use homestick_image::keys::load_keyring;
use homestick_image::verify::{verify as verify_lib, NoProgress, VerifyError};

use crate::common::*;
use homestick_testkit::build_args::Build;

#[test]
fn garbage_and_truncated_targets_exit_2() {
    let fx = Fixture::new();
    let img = fx.build("demo.img");
    let bytes = fs::read(&img).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty file", vec![], "too small"),
        ("one sector", bytes[..512].to_vec(), "too small"),
        (
            "random 2 MiB",
            homestick_testkit::pseudo_random(7, 2 << 20),
            "not a homestick image",
        ),
        ("zeros 4 MiB", vec![0u8; 4 << 20], "not a homestick image"),
        ("GPT only", bytes[..(1 << 20)].to_vec(), "too small"),
        ("ESP cut in half", bytes[..(33 << 20)].to_vec(), "truncated"),
        (
            "cut in the system partition",
            bytes[..(70 << 20)].to_vec(),
            "truncated",
        ),
        (
            "last sector missing",
            bytes[..bytes.len() - 512].to_vec(),
            "truncated",
        ),
        (
            "a text file",
            b"hello, I am not a disk image\n".to_vec(),
            "too small",
        ),
    ];
    for (what, data, want) in cases {
        let p = fx.path("target.img");
        fs::write(&p, &data).unwrap();
        let r = verify(&p, &test_pub());
        assert_eq!(r.code, 2, "{what}: {}", r.all());
        assert!(
            r.stderr.contains(want),
            "{what}: expected {want:?} in {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("target.img"),
            "{what}: message names the target: {}",
            r.stderr
        );
        // inspect reads only the manifest: it still works where the manifest survived.
        let r = hs(&["inspect".as_ref(), p.as_os_str()]);
        let manifest_readable = want == "truncated";
        assert_eq!(
            r.code,
            if manifest_readable { 0 } else { 2 },
            "inspect {what}: {}",
            r.all()
        );
    }
    let r = verify(fx.dir.path(), &test_pub());
    assert_eq!(r.code, 2, "a directory: {}", r.all());
    let r = verify(&fx.path("missing.img"), &test_pub());
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("missing.img: cannot open"),
        "{}",
        r.stderr
    );
}

#[test]
fn random_mutations_of_metadata_never_panic() {
    // In-process (faster than a process per case): thousands of random byte changes in the
    // GPT and ESP metadata, plus random truncations. Each must end in a verdict, not a panic.
    let fx = Fixture::new();
    let img = fx.build("demo.img");
    let good = fs::read(&img).unwrap();
    let keys = load_keyring(&test_pub()).unwrap();
    let regions: [(usize, usize); 4] = [
        (0, 34 * 512),
        (1 << 20, (1 << 20) + 64 * 1024),
        ((1 << 20) + 64 * 1024, 3 << 20),
        (0, 4 << 20),
    ];
    let mut rng = 0x1234_5678_9abc_def1u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut verdicts = [0usize; 3];
    let started = Instant::now();
    let mut runs = 0;
    let mut b = good.clone();
    while runs < 5000 && started.elapsed() < Duration::from_secs(40) {
        runs += 1;
        // Mutate in place and restore afterwards: cloning the image per run would dominate.
        let (lo, hi) = regions[(next() % 4) as usize];
        let mut undo = Vec::new();
        for _ in 0..=(next() % 8) {
            let at = lo + (next() as usize % (hi - lo));
            undo.push((at, b[at]));
            b[at] = next() as u8;
        }
        let len = if next() % 16 == 0 {
            (next() as usize) % b.len()
        } else {
            b.len()
        };
        let target: &[u8] = &b[..len];
        assert_eq!(target.size(), len as u64);
        match verify_lib(target, &keys, &NoProgress) {
            Ok(_) => verdicts[0] += 1,
            Err(VerifyError::Untrusted { .. }) => verdicts[1] += 1,
            Err(_) => verdicts[2] += 1,
        }
        for (at, v) in undo.into_iter().rev() {
            b[at] = v;
        }
    }
    assert!(b == good);
    eprintln!("{runs} mutated images: {verdicts:?} (trusted, not trusted, unusable)");
    assert!(runs >= 200, "too few runs in the time budget: {runs}");
    assert!(
        verdicts[1] > 0 && verdicts[2] > 0,
        "the sweep must reach both failure kinds: {verdicts:?}"
    );
}

#[test]
fn enormous_manifest_is_refused_without_reading_it_all() {
    let fx = Fixture::new();
    let img = fx.build_with("big.img", &demo_profile(), &["--size", "100M"]);
    let big = fx.path("manifest.json");
    fs::write(&big, vec![b' '; 3 << 20]).unwrap();
    let r = tool(
        "mcopy",
        &[
            "-o",
            "-i",
            &format!("{}@@1M", img.display()),
            &big.display().to_string(),
            "::/homestick/manifest.json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let r = verify(&img, &test_pub());
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("larger than"), "{}", r.stderr);
}

/// Start a build of a large base and return once its temporary file exists.
fn build_until_partial(d: &std::path::Path) -> (std::process::Child, std::path::PathBuf) {
    homestick_testkit::write_fixture_base(&d.join("base"), 384).unwrap();
    let child = Command::new(bin())
        .args(Build::new(&demo_profile(), &d.join("base"), &d.join("out.img")).to_vec())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut child = child;
    loop {
        let found = fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().ends_with(".partial"));
        if let Some(f) = found {
            assert!(f.file_name().to_string_lossy().starts_with(".out.img."));
            return (child, f.path());
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no temporary file appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "build ended before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn killed_build_leaves_nothing_under_the_output_name() {
    let d = tempfile::tempdir().unwrap();
    let (mut child, _partial) = build_until_partial(d.path());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !d.path().join("out.img").exists(),
        "a killed build must not leave its output"
    );
}

#[test]
fn interrupted_build_cleans_up_its_temporary_file() {
    let d = tempfile::tempdir().unwrap();
    let (child, partial) = build_until_partial(d.path());
    let r = tool("kill", &["-INT", &child.id().to_string()]);
    assert_eq!(r.code, 0, "{}", r.all());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!partial.exists(), "the temporary file must be removed");
    assert!(!d.path().join("out.img").exists());
}
