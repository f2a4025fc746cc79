//! `bench build`: `homestick build` against `cp` + `sync` of the same size.

use std::fs;
use std::process::Command;

use anyhow::Result;

use crate::bench::{bench_base, best_of, drop_caches};
use crate::tasks::demo::build_demo_image;
use crate::tasks::{homestick_bin, quiet};
use crate::{root, run};

/// `homestick build` of a `size_mib` base against `cp` of a file of the output's size followed
/// by `sync`: the least any tool must do to put that many bytes on the disk. Cold: the page
/// cache is dropped before each run; warm: the base was just read.
pub(crate) fn bench_build(size_mib: u64, rounds: u32) -> Result<()> {
    let r = root();
    let dir = r.join("target/bench-build");
    let base = bench_base(&dir, size_mib)?;
    let bin = homestick_bin()?;
    let img = dir.join("bench.img");
    let copy_src = dir.join("copy-source.img");
    let copy_dst = dir.join("copy.img");
    // The output of the previous round, if any: build refuses an existing output.
    let _ = fs::remove_file(&img);
    build_demo_image::<&str>(&bin, &base, &img, &[])?;
    let size = fs::metadata(&img)?.len();
    // cp's source: a file of the same size with the base's system image at its start, so both
    // tools read as many real bytes.
    run(Command::new("cp")
        .arg(base.join("system.img"))
        .arg(&copy_src))?;
    fs::OpenOptions::new()
        .write(true)
        .open(&copy_src)?
        .set_len(size)?;
    let k = homestick_testkit::test_key();
    let p = r.join("profiles/stadt-musterhausen");
    let mut build = || -> Result<()> {
        // The output of the previous round, if any: build refuses an existing output.
        let _ = fs::remove_file(&img);
        quiet(
            Command::new(&bin)
                .arg("build")
                .args([
                    "--profile".as_ref(),
                    p.as_os_str(),
                    "--base".as_ref(),
                    base.as_os_str(),
                ])
                .args([
                    "--key".as_ref(),
                    k.as_os_str(),
                    "--output".as_ref(),
                    img.as_os_str(),
                ])
                .env("SOURCE_DATE_EPOCH", homestick_testkit::EPOCH_TEXT),
        )?;
        quiet(&mut Command::new("sync"))
    };
    let mut cp = || -> Result<()> {
        // The copy of the previous round, if any.
        let _ = fs::remove_file(&copy_dst);
        quiet(Command::new("cp").arg(&copy_src).arg(&copy_dst))?;
        quiet(&mut Command::new("sync"))
    };
    let mut results = Vec::new();
    for cold in [true, false] {
        let (mut hs, mut c) = (f64::MAX, f64::MAX);
        for _ in 0..rounds {
            if cold {
                drop_caches()?;
            }
            hs = hs.min(best_of(1, &mut build)?);
            if cold {
                drop_caches()?;
            }
            c = c.min(best_of(1, &mut cp)?);
        }
        results.push((if cold { "cold" } else { "warm" }, hs, c));
    }
    let mib = size as f64 / (1 << 20) as f64;
    println!("bench build: base system {size_mib} MiB, image {mib:.0} MiB, best of {rounds} rounds each, alternating");
    for (what, hs, c) in results {
        println!(
            "  {what}: homestick build {hs:6.2} s, cp + sync {c:6.2} s, ratio {:.2}x (target <= {})",
            hs / c,
            if what == "cold" { "1.5x" } else { "1.2x" }
        );
    }
    // The copy of the previous round, if any.
    let _ = fs::remove_file(&copy_dst);
    Ok(())
}
