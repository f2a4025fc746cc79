//! `cargo xtask fuzz`: coverage-guided fuzzing of the parsers that read sticks.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::tasks::demo::build_demo_image;
use crate::tasks::{fixture_base, homestick_bin};
use crate::{root, run};

/// Fuzz each target for `seconds`. cargo-fuzz comes from the Rust crate registry; libFuzzer's compiler flags
/// are unstable, which RUSTC_BOOTSTRAP=1 allows on this stable toolchain.
pub(crate) fn fuzz(seconds: u32) -> Result<()> {
    let r = root();
    if Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked", "--quiet"]))?;
    }
    let dir = r.join("fuzz");
    // Seeds for the GPT reader: the primary GPT of a real image (parsers start from valid input).
    let seeds = r.join("target/fuzz-seeds/gpt");
    fs::create_dir_all(&seeds)?;
    let base = r.join("target/fuzz-seeds/base");
    if !base.join("system.img").exists() {
        fixture_base(&base, 1)?;
    }
    let img = r.join("target/fuzz-seeds/seed.img");
    let bin = homestick_bin()?;
    build_demo_image::<&str>(&bin, &base, &img, &[])?;
    let head = fs::read(&img)?;
    fs::write(seeds.join("primary-gpt"), &head[..34 * 512])?;
    // (target, extra seed corpora, libFuzzer flags). Every target runs with a timeout: an
    // input that takes longer is reported like a crash, because a hang at boot is a finding.
    let targets: [(&str, Vec<PathBuf>, Vec<&str>); 6] = [
        ("manifest", vec![], vec!["-timeout=10"]),
        (
            "gpt",
            vec![seeds.clone()],
            vec!["-max_len=40000", "-timeout=10"],
        ),
        ("fat", vec![], vec!["-timeout=10"]),
        ("verify", vec![], vec!["-timeout=20"]),
        ("boot", vec![], vec!["-timeout=20"]),
        // baresip's control stream and the kiosk page's requests (the session's phone).
        ("phone", vec![], vec!["-timeout=10", "-max_len=200000"]),
    ];
    for (t, extra_corpora, flags) in targets {
        let corpus = r.join("target/fuzz-corpus").join(t);
        fs::create_dir_all(&corpus)?;
        run(Command::new("cargo")
            .args(["fuzz", "run", "-O", t])
            .arg(&corpus)
            .args(&extra_corpora)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args(["-rss_limit_mb=4096", "-print_final_stats=1"])
            .args(flags)
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(&dir))?;
        eprintln!("xtask: fuzz target {t}: {seconds} s, no crash");
    }
    Ok(())
}
