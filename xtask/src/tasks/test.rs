//! `cargo xtask test`: the Debian packages the tests need, then fmt, clippy and every test.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::tasks::bases::real_base;
use crate::tasks::boot_verifier;
use crate::{root, run};
use homestick_testkit::env;

/// Debian packages the tests call as oracles or need as parts.
pub(crate) const TEST_PACKAGES: &[&str] = &[
    "gdisk",
    "dosfstools",
    "mtools",
    "openssl",
    "cryptsetup-bin",
    "coreutils",
    "util-linux",
    "wireguard-tools",
    "wireguard-go",
    "postgresql",
    "iproute2",
    "openvpn",
    "strongswan-swanctl",
    "strongswan-charon",
    "libstrongswan-standard-plugins",
    "baresip-core",
    "cpio",
    "qemu-system-x86",
    "ovmf",
    "sbsigntool",
    "binutils",
    "squashfs-tools",
    "dmsetup",
    "softhsm2",
    "opensc",
    "mmdebstrap",
    "dnsmasq-base",
    "tcpdump",
    "kamailio",
    "kamailio-tls-modules",
    "nftables",
];

pub(crate) fn install_test_packages() -> Result<()> {
    let missing: Vec<&str> = TEST_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg")
                .args(["-s", p])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        eprintln!("xtask: test packages present");
        return Ok(());
    }
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// `cargo xtask test`: the test packages (unless `no_install`), fmt, clippy, every test,
/// a short fuzz run.
pub(crate) fn test(no_install: bool) -> Result<()> {
    if !no_install {
        install_test_packages()?;
    }
    let r = root();
    run(Command::new("cargo")
        .args(["fmt", "--all", "--check"])
        .current_dir(&r))?;
    run(Command::new("cargo")
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .current_dir(&r))?;
    // Stream cargo's output and add up its per-target summaries, so the run closes on one
    // line that counts every test (cargo's own last line is often a target with none).
    use std::io::BufRead;
    eprintln!("xtask: running cargo test --workspace");
    // Every parser that reads a stick gets a short coverage-guided run (longer: cargo xtask fuzz).
    super::fuzz::fuzz(20)?;
    // The QEMU boot tests need the demo base and the static boot verifier.
    let demo_base = r.join("target/demo-base");
    crate::tasks::demo_base::base(&demo_base)?;
    let verifier = boot_verifier()?;
    // The .deb's install test: the package and a minimal Debian root to install it into.
    let deb = crate::tasks::dist::dist()?;
    let station = crate::tasks::dist::station_root()?;
    // The headless example base with the test-only channel, built once per run.
    let headless = real_base("headless", &r.join("target/headless-test"), true)?;
    // The desktop example base (the kiosk's screenshot test), with the channel to explain a
    // failure.
    let desktop = real_base("desktop", &r.join("target/desktop-test"), true)?;
    let mut child = Command::new("cargo")
        .args(["test", "--workspace"])
        .env(env::DEMO_BASE, &demo_base)
        .env(env::BOOT_VERIFIER, &verifier)
        .env(env::DEB, &deb)
        .env(env::STATION_ROOT, &station)
        .env(env::HEADLESS_BASE, &headless)
        .env(env::DESKTOP_BASE, &desktop)
        .env(env::BUSYBOX, crate::tasks::demo_base::busybox()?)
        .current_dir(&r)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |word: &str| -> u64 {
                    rest.split(';')
                        .find(|p| p.trim().ends_with(word))
                        .and_then(|p| {
                            p.split_whitespace()
                                .rev()
                                .nth(1)
                                .and_then(|n| n.parse().ok())
                        })
                        .unwrap_or(0)
                };
                passed += count("passed");
                failed += count("failed");
            }
        }
    }
    let status = child.wait()?;
    println!("{passed} passed, {failed} failed");
    if !status.success() || failed > 0 {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}
