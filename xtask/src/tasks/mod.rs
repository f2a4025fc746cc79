//! The developer tasks `cargo xtask` runs: bases, the boot and session programs, the demo,
//! the tests, fuzzing, the .deb and the code measures.

pub(crate) mod bases;
pub(crate) mod demo;
pub(crate) mod demo_base;
pub(crate) mod dist;
pub(crate) mod fuzz;
pub(crate) mod measure;
pub(crate) mod test;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{root, run};

/// Write the fixture base (testkit's) with a `system_mib` MiB system image to `out`.
pub(crate) fn fixture_base(out: &Path, system_mib: u64) -> Result<()> {
    homestick_testkit::write_fixture_base(out, system_mib)
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "xtask: fixture base in {} (system.img {system_mib} MiB)",
        out.display()
    );
    Ok(())
}

/// A static, stripped release build of one of the programs that run on the stick.
pub(crate) fn static_program(package: &str) -> Result<PathBuf> {
    let r = root();
    run(Command::new("cargo")
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            package,
            "--target",
            "x86_64-unknown-linux-gnu",
            "--target-dir",
        ])
        .arg(r.join("target/boot"))
        .env(
            "RUSTFLAGS",
            "-C target-feature=+crt-static -C strip=symbols -C debuginfo=0",
        )
        .current_dir(&r))?;
    Ok(r.join("target/boot/x86_64-unknown-linux-gnu/release")
        .join(package))
}

/// Build homestick-boot as a static, stripped binary for the initramfs.
pub(crate) fn boot_verifier() -> Result<PathBuf> {
    static_program("homestick-boot")
}

/// The session program bases get (`homestick base build --session`).
pub(crate) fn session_program() -> Result<PathBuf> {
    static_program("homestick-session")
}

/// The homestick binary, built in release mode.
pub(crate) fn homestick_bin() -> Result<PathBuf> {
    run(Command::new("cargo")
        .args(["build", "--release", "--quiet", "-p", "homestick"])
        .current_dir(root()))?;
    Ok(root().join("target/release/homestick"))
}

/// Run `c` with its output captured; fail with its stderr.
pub(crate) fn quiet(c: &mut Command) -> Result<()> {
    let o = c.output().with_context(|| format!("starting {c:?}"))?;
    if !o.status.success() {
        bail!("{c:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(())
}
