//! The README's `homestick …` lines, run through the binary where they can run offline: in a
//! directory laid out as the README assumes (the example profiles, a base in out/headless and
//! /srv/bases/debian-12, a roster.csv, a passphrase in /run/secrets/pw, the keyring in
//! /etc/homestick/trusted/; the example profile has no address pool, so the roster gives the
//! tunnel addresses), each absolute path mapped into it. A line that needs a stick, a
//! token or the Debian archive is named with the tests that cover it; every other line must
//! exit 0. A new README line is classified by the same rules, so it runs too.

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// Why a README line is not run here, or `None` to run it.
fn skip_reason(w: &[String]) -> Option<&'static str> {
    let line = w.join(" ");
    let sub = |i: usize| w.get(i).map_or("", String::as_str);
    if line.contains("/dev/") || matches!(sub(1), "sticks" | "flash") {
        Some("needs sticks (flash, flash_usb and sets tests)")
    } else if line.contains("pkcs11:") {
        Some("needs a token (signing tests with SoftHSM2)")
    } else if sub(1) == "base" {
        Some("needs the Debian archive (cargo xtask real-base)")
    } else if sub(1) == "ledger" && matches!(sub(2), "check" | "revoke" | "show" | "user") {
        Some("needs a flashed stick (sets tests)")
    } else {
        None
    }
}

/// Lines that make what others read go first: keys, then the filled roster, then builds.
fn phase(w: &[String]) -> u8 {
    match (w.get(1).map(String::as_str), w.get(2).map(String::as_str)) {
        (Some("keys"), Some("generate")) => 0,
        (Some("roster"), Some("fill")) => 1,
        (Some("build"), _) => 2,
        _ => 3,
    }
}

/// The README's absolute paths, inside `t`.
fn mapped(word: &str, t: &Path) -> String {
    let at = |rel: &str| t.join(rel).display().to_string();
    for (from, to) in [
        ("/secure/keys/", at("secure/keys/")),
        ("/run/secrets/", at("secrets/")),
        ("/srv/bases/debian-12", at("out/headless")),
        ("/etc/homestick/trusted/", at("trusted/")),
    ] {
        if let Some(rest) = word.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    word.to_string()
}

/// The directory the README's lines assume.
fn readme_world(t: &Path) {
    use std::os::unix::fs::symlink;
    for d in ["secure/keys", "secrets", "out", "trusted"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    symlink(root().join("profiles"), t.join("profiles")).unwrap();
    homestick_testkit::write_fixture_base(&t.join("out/headless"), 8).unwrap();
    std::fs::write(t.join("secrets/pw"), "a passphrase of the provider\n").unwrap();
    let public = t.join("secure/keys/provider-2026.pub");
    for link in [
        "provider-2026.pub",
        "provider.pub",
        "trusted/provider-2026.pub",
    ] {
        symlink(&public, t.join(link)).unwrap();
    }
    std::fs::write(
        t.join("roster.csv"),
        format!(
            "{}\nanna.schmidt,Anna Schmidt,201,generate,anna.schmidt,10.99.0.2/32,generate\n\
             bernd.mueller,Bernd Müller,202,generate,bernd.mueller,10.99.0.3/32,generate\n",
            crate::roster::HEADER
        ),
    )
    .unwrap();
}

#[test]
fn every_readme_line_that_can_run_offline_runs() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    readme_world(t);
    let mut lines = homestick_testkit::shell::readme_command_lines();
    lines.sort_by_key(|w| phase(w));
    let (run, skipped): (Vec<_>, Vec<_>) = lines.iter().partition(|w| skip_reason(w).is_none());
    for w in &skipped {
        println!(
            "case {}: not run here: {}",
            w.join(" "),
            skip_reason(w).unwrap()
        );
    }
    table(
        &run,
        |w| w.join(" "),
        |w| {
            let args: Vec<String> = w[1..].iter().map(|a| mapped(a, t)).collect();
            let mut c = Command::new(bin());
            c.args(&args)
                .current_dir(t)
                .env("SOURCE_DATE_EPOCH", EPOCH)
                .env("HOMESTICK_LEDGER", t.join("ledger.sqlite"));
            let o = c.output();
            let r = finish(&mut c, o);
            match r.code {
                0 => Ok(()),
                code => Err(format!("exit {code}:\n{}", r.all())),
            }
        },
    );
    println!(
        "{} README lines run, {} not run here",
        run.len(),
        skipped.len()
    );
    assert!(run.len() >= 15, "only {} README lines ran", run.len());
}
