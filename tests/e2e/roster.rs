//! `homestick roster check` and `fill`: a 3-user roster with `generate` filled (mode 0600,
//! WireGuard keys that `wg pubkey` takes), checked clean; a bad roster refused by line and
//! column with exit 2, no output and no secret in the message.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::*;

/// The demo profile with an address pool for its WireGuard VPN.
pub fn profile_with_pool(dir: &Path) -> PathBuf {
    let p = dir.join("profile");
    let r = tool(
        "cp",
        &["-r", demo_profile().to_str().unwrap(), p.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let toml = p.join("customer.toml");
    let text = fs::read_to_string(&toml).unwrap().replace(
        "persistent_keepalive = 25",
        "persistent_keepalive = 25\naddress_pool = \"10.99.0.0/22\"",
    );
    fs::write(&toml, text).unwrap();
    p
}

/// `homestick roster fill --profile PROFILE ROSTER --out OUT`.
pub fn roster_fill(profile: &Path, roster: &Path, out: &Path) -> Run {
    hs(&[
        "roster".as_ref(),
        "fill".as_ref(),
        "--profile".as_ref(),
        profile.as_os_str(),
        roster.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ])
}

/// Write a filled roster with two users, anna and ben, to `path` (mode 0600).
pub fn two_users(path: &std::path::Path) {
    std::fs::write(
        path,
        format!(
            "{HEADER}\nanna,Anna Schmidt,201,Pw-anna-0123456789,anna,10.99.0.2/32,yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\
             ben,Ben Meier,202,Pw-ben-0123456789,ben,10.99.0.3/32,SIoHcjOi4XkSdQSBvEvdgvSLiYwZ4Rs8Y2hp/IFJHmE=\n"
        ),
    )
    .unwrap();
    homestick_testkit::private_mode(path);
}

pub const HEADER: &str = "user_id,display_name,sip.extension,sip.password,sip.user,vpn.buero.address,vpn.buero.private_key";

#[test]
fn fill_generates_secrets_into_a_private_file_and_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let profile = profile_with_pool(dir.path());
    let roster = dir.path().join("roster.csv");
    fs::write(
        &roster,
        format!(
            "{HEADER}\nanna,Anna Schmidt,201,generate,anna,generate,generate\n\
             ben,Ben Meier,202,generate,ben,generate,generate\n\
             cem,Cem Yılmaz,203,generate,cem,generate,generate\n"
        ),
    )
    .unwrap();
    let p = profile.to_str().unwrap();
    let r = hs(&["roster", "check", "--profile", p, roster.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("line 2, column sip.password: not filled yet"),
        "{}",
        r.stderr
    );
    let out = dir.path().join("filled.csv");
    let r = roster_fill(&profile, &roster, &out);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("9 value(s) generated for 3 user(s)"),
        "{}",
        r.stdout
    );
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let filled = fs::read_to_string(&out).unwrap();
    let mut keys = Vec::new();
    for line in filled.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 7, "{line}");
        keys.push(f[6].to_string());
        // The generated values never appear on the terminal.
        assert!(!r.all().contains(f[3]) && !r.all().contains(f[6]));
    }
    assert_eq!(keys.len(), 3);
    for k in &keys {
        let w = sh(&format!("printf '%s' '{k}' | wg pubkey"));
        assert_eq!(w.code, 0, "wg pubkey: {}", w.all());
        assert_eq!(w.stdout.trim().len(), 44, "{}", w.stdout);
    }
    let r = hs(&["roster", "check", "--profile", p, out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("OK, 3 user(s)"), "{}", r.stdout);
    // Never over an existing file.
    let r = roster_fill(&profile, &roster, &out);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("exists"), "{}", r.stderr);
    assert_eq!(fs::read_to_string(&out).unwrap(), filled);
}

#[test]
fn a_bad_roster_is_refused_by_line_and_column_without_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let profile = profile_with_pool(dir.path());
    let roster = dir.path().join("roster.csv");
    fs::write(
        &roster,
        format!(
            "{HEADER}\nanna,Anna,201,SECRET-pass-0001,anna,10.98.0.5/32,generate\n\
             ben,Ben,201,SECRET-pass-0002,ben,generate,SECRETnotakey\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("filled.csv");
    let r = roster_fill(&profile, &roster, &out);
    assert_eq!(r.code, 2, "{}", r.all());
    for want in [
        "line 2, column vpn.buero.address: outside the address pool 10.99.0.0/22",
        "line 3, column sip.extension: the same SIP extension as line 2",
        "line 3, column vpn.buero.private_key: not a WireGuard key",
    ] {
        assert!(r.stderr.contains(want), "no {want:?} in {}", r.stderr);
    }
    assert!(!r.all().contains("SECRET"), "{}", r.all());
    assert!(!out.exists(), "nothing written");
}
