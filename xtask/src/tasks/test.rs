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
    // Real sound through QEMU's sound cards: its PulseAudio driver (audio-pa) and a server the
    // test starts with a tone source and recording sinks.
    "qemu-system-gui",
    "pulseaudio",
    "pulseaudio-utils",
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
    // The first-start guide in a real browser: printed to PDF, the pages rendered and read.
    "chromium",
    // The kiosk's phone page driven in the same browser (W3C WebDriver).
    "chromium-driver",
    "poppler-utils",
    "tesseract-ocr",
    "tesseract-ocr-eng",
    "fonts-dejavu-core",
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

/// Wall-clock time of each phase of `cargo xtask test`, printed as it ends and once more at
/// the end, so a slower CI run says where its time went.
#[derive(Default)]
struct Phases(Vec<(&'static str, std::time::Duration)>);

impl Phases {
    fn run<T>(&mut self, name: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let start = std::time::Instant::now();
        let out = f();
        let took = start.elapsed();
        eprintln!("xtask: phase {name}: {:.0} s", took.as_secs_f64());
        self.0.push((name, took));
        out
    }

    fn summary(&self) {
        let total: f64 = self.0.iter().map(|(_, d)| d.as_secs_f64()).sum();
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(n, d)| format!("{n} {:.0} s", d.as_secs_f64()))
            .collect();
        println!(
            "xtask: test phases: {} (total {total:.0} s)",
            parts.join(", ")
        );
    }
}

/// The bases, images and binaries the end-to-end tests take from the environment.
struct Parts(Vec<(&'static str, std::path::PathBuf)>);

/// `cargo xtask test`: the test packages (unless `no_install`), fmt, clippy, every test,
/// a short fuzz run.
pub(crate) fn test(no_install: bool) -> Result<()> {
    let mut phases = Phases::default();
    if !no_install {
        phases.run("packages", install_test_packages)?;
    }
    let r = root();
    phases.run("fmt", || {
        run(Command::new("cargo")
            .args(["fmt", "--all", "--check"])
            .current_dir(&r))
    })?;
    phases.run("clippy", || {
        run(Command::new("cargo")
            .args(["clippy", "--workspace", "--all-targets", "--"])
            .args(["-D", "warnings"])
            .current_dir(&r))
    })?;
    // Every parser that reads a stick gets a short coverage-guided run (longer: cargo xtask fuzz).
    phases.run("fuzz", || super::fuzz::fuzz(20))?;
    let mut parts = phases.run("parts", || parts(&r))?;
    // One build of every test and of the binary under test, with the workspace's features:
    // the end-to-end tests run that binary instead of building their own.
    let bin = phases.run("build tests", || build_tests(&r))?;
    parts.0.push((env::BIN, bin));
    let result = phases.run("cargo test", || cargo_test(&r, &parts));
    phases.summary();
    result
}

/// The demo base, the boot verifier, the .deb with a station root to install it into, and the
/// headless and desktop example bases (cached across runs).
fn parts(r: &std::path::Path) -> Result<Parts> {
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
    Ok(Parts(vec![
        (env::DEMO_BASE, demo_base),
        (env::BOOT_VERIFIER, verifier),
        (env::DEB, deb),
        (env::STATION_ROOT, station),
        (env::HEADLESS_BASE, headless),
        (env::DESKTOP_BASE, desktop),
        (env::BUSYBOX, crate::tasks::demo_base::busybox()?),
        (env::SESSION_BIN, crate::tasks::session_program()?),
    ]))
}

/// `cargo test --workspace --no-run`: every test target and the `homestick` binary, built once;
/// the binary's path as cargo reports it.
fn build_tests(r: &std::path::Path) -> Result<std::path::PathBuf> {
    use std::io::BufRead;
    let mut child = Command::new("cargo")
        .args(["test", "--workspace", "--no-run"])
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(r)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting cargo test --no-run")?;
    let mut bin = None;
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out).lines() {
            let msg: serde_json::Value = match serde_json::from_str(&line?) {
                Ok(v) => v,
                Err(_) => continue,
            };
            let is_bin = msg["reason"] == "compiler-artifact"
                && msg["target"]["name"] == "homestick"
                && msg["target"]["kind"][0] == "bin"
                && msg["profile"]["test"] == false;
            if let (true, Some(exe)) = (is_bin, msg["executable"].as_str()) {
                bin = Some(std::path::PathBuf::from(exe));
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo test --no-run failed ({status})");
    }
    bin.context("cargo test --no-run named no homestick executable")
}

/// `cargo test --workspace` with the parts in its environment; one closing line that counts
/// every test (cargo's own last line is often a target with none).
fn cargo_test(r: &std::path::Path, parts: &Parts) -> Result<()> {
    use std::io::BufRead;
    eprintln!("xtask: running cargo test --workspace");
    let mut cmd = Command::new("cargo");
    cmd.args(["test", "--workspace"]).current_dir(r);
    for (name, path) in &parts.0 {
        cmd.env(name, path);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                passed += count(rest, "passed");
                failed += count(rest, "failed");
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

/// The number before `word` in a `test result:` line's `;`-separated parts.
fn count(rest: &str, word: &str) -> u64 {
    rest.split(';')
        .find(|p| p.trim().ends_with(word))
        .and_then(|p| {
            p.split_whitespace()
                .rev()
                .nth(1)
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn a_test_result_line_gives_its_counts() {
        let line = "ok. 99 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s";
        assert_eq!(count(line, "passed"), 99);
        assert_eq!(count(line, "failed"), 1);
        assert_eq!(count(line, "ignored"), 0);
    }
}
