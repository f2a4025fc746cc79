//! `bench session`: power-on to "sip registered" in QEMU against the office of the end-to-end test.

use std::process::Command;

use anyhow::{Context, Result};

use crate::root;
use crate::tasks::bases::real_base;
use crate::tasks::boot_verifier;
use crate::tasks::test::install_test_packages;

/// `bench session`: the end-to-end office test, `rounds` times; its `session-timing:` lines.
pub(crate) fn bench_session(rounds: u32) -> Result<()> {
    install_test_packages()?;
    let r = root();
    let headless = real_base("headless", &r.join("target/headless-test"), true)?;
    let verifier = boot_verifier()?;
    let mut rows = Vec::new();
    for round in 1..=rounds {
        let out = Command::new("cargo")
            .args(["test", "-p", "homestick-e2e", "--test", "e2e", "--", "--exact"])
            .arg("session::a_headless_stick_brings_up_wireguard_registers_over_tls_calls_with_srtp_and_is_locked_down")
            .arg("--nocapture")
            .env(homestick_testkit::env::HEADLESS_BASE, &headless)
            .env(homestick_testkit::env::BOOT_VERIFIER, &verifier)
            .current_dir(&r)
            .output()
            .context("starting cargo test")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("session-timing: "))
            .with_context(|| {
                format!(
                    "round {round}: no timing line; the test said:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })?
            .to_string();
        println!("round {round}: {line}");
        rows.push(line);
    }
    let field = |l: &str, k: &str| -> f64 {
        l.split_whitespace()
            .find_map(|f| f.strip_prefix(k))
            .and_then(|v| v.trim_end_matches('%').parse().ok())
            .unwrap_or(f64::NAN)
    };
    let best = rows
        .iter()
        .min_by(|a, b| field(a, "sip_registered_s=").total_cmp(&field(b, "sip_registered_s=")))
        .context("no rounds")?;
    println!(
        "bench session (QEMU TCG, Secure Boot, headless base): power-on to vpn up {:.1} s, to sip registered {:.1} s; boot verifier verdict {:.0} ms = {:.1} % of it (best of {rounds})",
        field(best, "vpn_up_s="),
        field(best, "sip_registered_s="),
        field(best, "verdict_ms="),
        field(best, "verification_share=")
    );
    Ok(())
}
