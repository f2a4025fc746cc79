//! `bench verify`: `homestick verify` against `sha256sum`.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::bench::{bench_base, best_of};
use crate::root;
use crate::tasks::demo::build_demo_image;
use crate::tasks::{homestick_bin, quiet};

/// `homestick verify` of an image with a `size_mib` system partition against `sha256sum` of
/// the bytes it hashes, alternating, best of `rounds`.
pub(crate) fn bench_verify(size_mib: u64, rounds: u32) -> Result<()> {
    let r = root();
    let dir = r.join("target/bench-verify");
    let base = bench_base(&dir, size_mib)?;
    let bin = homestick_bin()?;
    let img = dir.join("bench.img");
    if !img.exists() {
        build_demo_image::<&str>(&bin, &base, &img, &[])?;
    }
    let size = fs::metadata(&img)?.len();
    let pubkey = r.join("keys/test/homestick-test.pub");
    // Warm the page cache so both tools read from memory, not from the (shared, noisy) disk.
    quiet(
        Command::new("cat")
            .arg(&img)
            .stdout(std::process::Stdio::null()),
    )?;
    let mut hs = f64::MAX;
    let mut sha = f64::MAX;
    for _ in 0..rounds {
        hs = hs.min(best_of(1, || {
            quiet(
                Command::new(&bin)
                    .arg("verify")
                    .arg(&img)
                    .arg("--keyring")
                    .arg(&pubkey),
            )
        })?);
        sha = sha.min(best_of(1, || quiet(Command::new("sha256sum").arg(&img)))?);
    }
    // verify hashes the signed ranges (partitions + ESP files), sha256sum the whole file:
    // compare bytes hashed per second, not files per second.
    let hashed = hashed_bytes(&img)?;
    let mib = size as f64 / (1 << 20) as f64;
    let hmib = hashed as f64 / (1 << 20) as f64;
    println!("bench verify: image {mib:.0} MiB ({hmib:.0} MiB of it signed by hash), best of {rounds} rounds, run alternately");
    println!(
        "  homestick verify  {hs:7.3} s  {:8.1} MiB/s hashed",
        hmib / hs
    );
    println!(
        "  sha256sum         {sha:7.3} s  {:8.1} MiB/s hashed",
        mib / sha
    );
    println!(
        "  ratio             {:.2}x sha256sum per byte hashed (target >= 2.5x); {:.2}x per image",
        (hmib / hs) / (mib / sha),
        sha / hs
    );
    Ok(())
}

/// Bytes `verify` hashes: the whole-hashed partitions plus the ESP files, from the image's
/// manifest (read the way `homestick inspect` reads it).
pub(crate) fn hashed_bytes(img: &Path) -> Result<u64> {
    let disk = homestick_image::disk::FileDisk::open(img)
        .with_context(|| format!("opening {}", img.display()))?;
    let st = homestick_image::verify::read_statement(&disk)?;
    let m = homestick_image::manifest::Manifest::parse(&st.manifest)?;
    let parts: u64 = m
        .partitions
        .iter()
        .filter(|p| p.sha256.is_some() || p.verity.is_some())
        .map(|p| p.len())
        .sum();
    let files: u64 = m
        .esp()
        .and_then(|p| p.files.as_ref())
        .map_or(0, |f| f.iter().map(|f| f.size).sum());
    Ok(parts + files)
}
