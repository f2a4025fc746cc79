//! Every warning a build gives about its inputs is given by one image and by a stick set
//! alike: both come from the one image plan (a set build once dropped all but the profile's).

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use crate::sets::filled_roster;
use homestick_testkit::build_args::Build;
use homestick_testkit::env::{boot_verifier as verifier, demo_base};

/// The demo customer's SIP CA opens its validity window at 2026-11-23T20:00:15Z.
const BEFORE_THE_SIP_CA: i64 = 1_795_400_000;

/// A boot keyring with the test key (`keyring.toml` line `window`, e.g. a `not_after`) and a
/// revocation key, and a list of `entries` signed by that key.
fn ring_and_list(dir: &Path, window: &str, entries: &[&str]) -> (PathBuf, PathBuf) {
    let ring = dir.join("ring");
    fs::create_dir_all(&ring).unwrap();
    let revoker = dir.join("revoker");
    if !revoker.with_extension("key").exists() {
        let r = hs(&["keys", "generate", "--out", &revoker.display().to_string()]);
        assert_eq!(r.code, 0, "{}", r.all());
    }
    fs::copy(test_pub(), ring.join("test.pub")).unwrap();
    fs::copy(revoker.with_extension("pub"), ring.join("revoker.pub")).unwrap();
    fs::write(
        ring.join("keyring.toml"),
        format!(
            "[[key]]\nfile = \"test.pub\"\nroles = [\"images\"]\n{window}\n\n\
             [[key]]\nfile = \"revoker.pub\"\nroles = [\"revocations\"]\n"
        ),
    )
    .unwrap();
    let list = dir.join("revocations.json");
    let _ = fs::remove_file(&list);
    let l = list.display().to_string();
    let mut add = vec!["revocations", "add", &l];
    add.extend(entries);
    if entries.is_empty() {
        add.extend(["--image-id", "0b1f6a8e-7d6e-4c1b-9a55-2f9e3c1d7b10"]);
    }
    let r = hs(&add);
    assert_eq!(r.code, 0, "{}", r.all());
    let k = revoker.with_extension("key").display().to_string();
    let r = hs(&["revocations", "sign", &l, "--key", &k]);
    assert_eq!(r.code, 0, "{}", r.all());
    (ring, list)
}

/// One case: its build time, the extra arguments, the warning, and whether one image (no
/// roster, so no users) gives it too.
struct Case {
    name: &'static str,
    epoch: i64,
    window: &'static str,
    entries: Vec<String>,
    warning: &'static str,
    single_too: bool,
}

#[test]
fn every_input_warning_is_given_by_one_image_and_by_a_set_alike() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (profile, roster) = filled_roster(d, 2);
    let key_id = homestick_image::keys::load_public_key(&test_pub())
        .unwrap()
        .id;
    let epoch = homestick_testkit::EPOCH;
    let cases = [
        Case {
            name: "the profile's own (a CA not yet valid)",
            epoch: BEFORE_THE_SIP_CA,
            window: "",
            entries: vec![],
            warning: "customer.toml: softphone.ca: \"certs/sip-ca.pem\": certificate",
            single_too: true,
        },
        Case {
            name: "the signing key outside its boot-keyring window",
            epoch,
            window: "not_after = \"2026-11-01\"",
            entries: vec![],
            warning: "after the key was retired at 2026-11-01T00:00:00Z",
            single_too: true,
        },
        Case {
            name: "the revocation list revokes the signing key",
            epoch,
            window: "",
            entries: vec!["--key-id".into(), key_id],
            warning: "revokes the signing key",
            single_too: true,
        },
        Case {
            name: "the revocation list revokes a user of the roster",
            epoch,
            window: "",
            entries: vec!["--user".into(), "stadt-musterhausen/user001".into()],
            warning: "revokes user(s) user001 of this roster",
            single_too: false,
        },
    ];
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let cd = d.join(format!("case{i}"));
        fs::create_dir(&cd).unwrap();
        let entries: Vec<&str> = c.entries.iter().map(String::as_str).collect();
        let (ring, list) = ring_and_list(&cd, c.window, &entries);
        let args = |output: &Path| {
            Build::new(&profile, &demo_base(), output)
                .opt("--boot-verifier", verifier())
                .opt("--boot-keyring", &ring)
                .opt("--revocations", &list)
        };
        let single = hs_at(c.epoch, &args(&cd.join("one.img")).to_vec());
        let set_args = args(&cd.join("set")).opt("--roster", &roster).to_vec();
        let set = hs_at(c.epoch, &set_args);
        for (path, r, want) in [("one image", &single, c.single_too), ("set", &set, true)] {
            let ok = r.code == 0 && r.all().contains(c.warning) == want;
            println!(
                "case {:<50} {path:<9} {}",
                c.name,
                if ok { "ok" } else { "FAILED" }
            );
            if !ok {
                failures.push(format!(
                    "{} ({path}): exit {}, warning {:?} expected {want}:\n{}",
                    c.name,
                    r.code,
                    c.warning,
                    r.all()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
