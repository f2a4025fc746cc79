//! `cargo xtask bench …`: each prints homestick's figure beside a standard tool's, run side
//! by side, and their ratio. Kept out of `cargo xtask test`.

pub(crate) mod build;
pub(crate) mod flash;
pub(crate) mod session;
pub(crate) mod verify;
pub(crate) mod verity;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::tasks::{fixture_base, quiet};

/// The best time of `rounds` runs of `f`, in seconds.
pub(crate) fn best_of(rounds: u32, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Drop the page cache (root only), so the next run reads from the disk.
pub(crate) fn drop_caches() -> Result<()> {
    quiet(&mut Command::new("sync"))?;
    fs::write("/proc/sys/vm/drop_caches", "3\n")
        .context("dropping the page cache needs root (/proc/sys/vm/drop_caches)")
}

/// A fixture base with a `size_mib` system image under `dir` (kept between runs).
pub(crate) fn bench_base(dir: &Path, size_mib: u64) -> Result<PathBuf> {
    let base = dir.join("base");
    if !base.join("system.img").exists()
        || fs::metadata(base.join("system.img"))?.len() != size_mib << 20
    {
        // A base of another size, if any; writing the new one fails if it stays.
        let _ = fs::remove_dir_all(&base);
        fixture_base(&base, size_mib)?;
    }
    Ok(base)
}
