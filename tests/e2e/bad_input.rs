//! Table test: every kind of bad input gets one clear message naming the file or field, and
//! the right exit code; a failed build leaves no output file.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use homestick_testkit::build_args::Build;

/// A scratch world: a good profile, a good base, good keys; each case breaks one thing.
struct World {
    fx: Fixture,
}

impl World {
    fn new() -> World {
        let fx = Fixture::new();
        let prof = fx.path("profile");
        let r = sh(&format!(
            "cp -r {} {}",
            demo_profile().display(),
            prof.display()
        ));
        assert_eq!(r.code, 0, "{}", r.all());
        let pw = fx.path("pw");
        fs::write(&pw, "right\n").unwrap();
        let r = hs(&[
            "keys",
            "generate",
            "--out",
            &fx.path("enc").display().to_string(),
            "--passphrase-file",
            &pw.display().to_string(),
        ]);
        assert_eq!(r.code, 0, "{}", r.all());
        World { fx }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.fx.path(rel)
    }
    fn s(&self, rel: &str) -> String {
        self.p(rel).display().to_string()
    }
    fn write(&self, rel: &str, data: &[u8]) {
        let p = self.p(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
    fn build_args(&self) -> Vec<String> {
        let (p, b, o) = (self.s("profile"), self.s("base"), self.s("out.img"));
        Build::new(p.as_ref(), b.as_ref(), o.as_ref())
            .to_vec()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }
}

fn set(args: &mut [String], flag: &str, value: String) {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("no {flag}"));
    args[i + 1] = value;
}

type Setup = fn(&World, &mut Vec<String>);

#[test]
fn bad_inputs_get_one_clear_message_and_the_right_exit_code() {
    let cases: Vec<(&str, Setup, i32, &str)> = vec![
        // Profile.
        (
            "profile dir missing",
            |w, a| set(a, "--profile", w.s("nope")),
            2,
            "nope: -: profile directory",
        ),
        (
            "profile is a file",
            |w, a| set(a, "--profile", w.s("profile/customer.toml")),
            2,
            "not a directory",
        ),
        (
            "no customer.toml",
            |w, _| fs::remove_file(w.p("profile/customer.toml")).unwrap(),
            2,
            "customer.toml: -: cannot read",
        ),
        (
            "customer.toml syntax",
            |w, _| w.write("profile/customer.toml", b"[customer\n"),
            2,
            "customer.toml: line 1: invalid table header",
        ),
        (
            "customer.toml not UTF-8",
            |w, _| w.write("profile/customer.toml", b"\xff\xfe"),
            2,
            "customer.toml: -: not UTF-8",
        ),
        (
            "customer.id not a slug",
            |w, _| {
                w.write(
                    "profile/customer.toml",
                    b"[customer]\nid = \"Stadt A\"\nname = \"A\"\n",
                )
            },
            2,
            "customer.toml: customer.id: \"Stadt A\" is not a slug",
        ),
        (
            "unknown customer field",
            |w, _| {
                w.write(
                    "profile/customer.toml",
                    b"[customer]\nid = \"stadt-a\"\nname = \"A\"\nphone = \"1\"\n",
                )
            },
            2,
            "customer.toml: customer.phone: unknown field `phone`",
        ),
        (
            "customer.name missing",
            |w, _| w.write("profile/customer.toml", b"[customer]\nid = \"stadt-a\"\n"),
            2,
            "customer.toml: customer: missing field `name`",
        ),
        (
            "customer.hotline empty",
            |w, _| {
                w.write(
                    "profile/customer.toml",
                    b"[customer]\nid = \"stadt-a\"\nname = \"A\"\nhotline = \" \"\n",
                )
            },
            2,
            "customer.toml: customer.hotline: must be 1 to 200",
        ),
        (
            "referenced file is a symlink out",
            |w, _| {
                fs::remove_file(w.p("profile/logo.svg")).unwrap();
                std::os::unix::fs::symlink("/etc/hostname", w.p("profile/logo.svg")).unwrap()
            },
            2,
            "customer.toml: customer.logo: \"logo.svg\" leaves the profile directory",
        ),
        (
            "referenced file too large",
            |w, _| w.write("profile/logo.svg", &vec![b' '; (1 << 20) + 1]),
            2,
            "customer.toml: customer.logo: \"logo.svg\" is 1048577 bytes, over the limit",
        ),
        (
            "referenced file is a directory",
            |w, _| {
                fs::remove_file(w.p("profile/logo.svg")).unwrap();
                fs::create_dir(w.p("profile/logo.svg")).unwrap()
            },
            2,
            "customer.toml: customer.logo: \"logo.svg\" is not a regular file",
        ),
        (
            "CA file damaged",
            |w, _| {
                w.write(
                    "profile/certs/sip-ca.pem",
                    b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                )
            },
            2,
            "customer.toml: softphone.ca: \"certs/sip-ca.pem\" certificate 1 does not parse",
        ),
        // Base.
        (
            "base dir missing",
            |w, a| set(a, "--base", w.s("nobase")),
            2,
            "nobase: base directory",
        ),
        (
            "base.toml missing",
            |w, _| fs::remove_file(w.p("base/base.toml")).unwrap(),
            2,
            "base.toml: cannot read",
        ),
        (
            "base.toml unknown field",
            |w, _| {
                w.write(
                    "base/base.toml",
                    b"name = \"b\"\nversion = \"1\"\nkernel = 1\n",
                )
            },
            2,
            "base.toml: unknown field `kernel`",
        ),
        (
            "base.toml version",
            |w, _| w.write("base/base.toml", b"name = \"b\"\nversion = \"1 2\"\n"),
            2,
            "base.toml: version: \"1 2\" must be",
        ),
        (
            "base without esp/",
            |w, _| fs::remove_dir_all(w.p("base/esp")).unwrap(),
            2,
            "esp: missing",
        ),
        (
            "base without system.img",
            |w, _| fs::remove_file(w.p("base/system.img")).unwrap(),
            2,
            "system.img: cannot read",
        ),
        (
            "empty system.img",
            |w, _| w.write("base/system.img", b""),
            2,
            "system.img: empty",
        ),
        (
            "system.img a directory",
            |w, _| {
                fs::remove_file(w.p("base/system.img")).unwrap();
                fs::create_dir(w.p("base/system.img")).unwrap()
            },
            2,
            "system.img: not a regular file",
        ),
        (
            "esp/homestick reserved",
            |w, _| w.write("base/esp/homestick/manifest.json", b"{}"),
            2,
            "homestick/ is reserved",
        ),
        (
            "esp name clash by case",
            |w, _| w.write("base/esp/efi/boot/bootx64.efi", b"x"),
            2,
            "only in case",
        ),
        // Keys.
        (
            "key missing",
            |w, a| set(a, "--key", w.s("none.key")),
            2,
            "none.key: cannot read",
        ),
        (
            "key is the public key",
            |_, a| set(a, "--key", test_pub().display().to_string()),
            2,
            "homestick-test.pub: this is a public key",
        ),
        (
            "key is garbage",
            |w, a| {
                w.write("g.key", b"hello");
                set(a, "--key", w.s("g.key"))
            },
            2,
            "g.key: not a PEM private key",
        ),
        (
            "key is an RSA-ish PEM",
            |w, a| {
                w.write(
                    "r.key",
                    b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
                );
                set(a, "--key", w.s("r.key"))
            },
            2,
            "r.key: PEM label \"RSA PRIVATE KEY\"",
        ),
        (
            "encrypted key, no passphrase",
            |w, a| set(a, "--key", w.s("enc.key")),
            2,
            "enc.key: the key is encrypted: give --passphrase-file",
        ),
        (
            "encrypted key, wrong passphrase",
            |w, a| {
                w.write("wrong", b"wrong\n");
                set(a, "--key", w.s("enc.key"));
                a.extend(["--passphrase-file".into(), w.s("wrong")])
            },
            2,
            "enc.key: wrong passphrase",
        ),
        (
            "passphrase file empty",
            |w, a| {
                w.write("empty", b"\n");
                a.extend(["--passphrase-file".into(), w.s("empty")])
            },
            2,
            "empty: the passphrase (first line) is empty",
        ),
        (
            "key readable by group and others",
            |w, a| {
                let p = w.p("open.key");
                fs::copy(test_key(), &p).unwrap();
                fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                    .unwrap();
                set(a, "--key", w.s("open.key"))
            },
            2,
            "open.key: a private key that group or others may read (mode 0644): refusing to use it; run `chmod 600",
        ),
        (
            "passphrase fd not open",
            |w, a| {
                set(a, "--key", w.s("enc.key"));
                a.extend(["--passphrase-fd".into(), "9".into()])
            },
            2,
            "file descriptor 9: cannot read a passphrase from it",
        ),
        (
            "passphrase file and fd both",
            |w, a| {
                a.extend(["--passphrase-file".into(), w.s("pw"), "--passphrase-fd".into(), "0".into()])
            },
            2,
            "'--passphrase-file <FILE>' cannot be used with '--passphrase-fd <N>'",
        ),
        (
            "expires before the build time",
            |_, a| a.extend(["--expires".into(), "2020-01-01".into()]),
            2,
            "--expires: 2020-01-01T00:00:00Z is not after the build time",
        ),
        (
            "expires not a date",
            |_, a| a.extend(["--expires".into(), "2027-02-30".into()]),
            2,
            "\"2027-02-30\": no such UTC time",
        ),
        (
            "revocation list not signed",
            |w, a| {
                w.write("rl.json", b"{\"format\":\"homestick-revocations/1\"}\n");
                a.extend(["--revocations".into(), w.s("rl.json")])
            },
            2,
            "rl.json: not signed: ",
        ),
        (
            "revocation list signature of 10 bytes",
            |w, a| {
                w.write("rl2.json", b"{\"format\":\"homestick-revocations/1\"}\n");
                w.write("rl2.json.sig", b"0123456789");
                a.extend(["--revocations".into(), w.s("rl2.json")])
            },
            2,
            "rl2.json.sig: 10 bytes, an Ed25519 signature has 64",
        ),
        (
            "pkcs11 URI with the PIN in it",
            |_, a| set(a, "--key", "pkcs11:token=t;object=k?pin-value=1234".into()),
            2,
            "pin-value: a PIN in a URI is visible to every user",
        ),
        (
            "pkcs11 module missing",
            |w, a| {
                set(a, "--key", "pkcs11:token=t;object=k".into());
                w.write("pin", b"1234\n");
                a.extend(["--pkcs11-module".into(), "/nonexistent/p11.so".into(), "--passphrase-file".into(), w.s("pin")])
            },
            2,
            "pkcs11:token=t;object=k: module /nonexistent/p11.so does not exist",
        ),
        // Arguments.
        (
            "--size too small",
            |_, a| a.extend(["--size".into(), "1M".into()]),
            2,
            "--size: 1048576 bytes is too small",
        ),
        (
            "--size not sector multiple",
            |_, a| a.extend(["--size".into(), "100000001".into()]),
            2,
            "--size: 100000001 is not a multiple of 512",
        ),
        (
            "--size unit",
            |_, a| a.extend(["--size".into(), "3T".into()]),
            2,
            "unknown size unit",
        ),
        (
            "--version bad",
            |_, a| a.extend(["--version".into(), "1/2".into()]),
            2,
            "--version: \"1/2\"",
        ),
        (
            "--rollback-index not a number",
            |_, a| a.extend(["--rollback-index".into(), "many".into()]),
            2,
            "invalid value 'many' for '--rollback-index <N>'",
        ),
        (
            "output dir missing",
            |w, a| set(a, "--output", w.s("no/such/dir/out.img")),
            2,
            "--output: directory",
        ),
        (
            "output is a directory",
            |w, a| set(a, "--output", w.s("base")),
            2,
            "is a directory",
        ),
        (
            "missing --key",
            |_, a| {
                let i = a.iter().position(|x| x == "--key").unwrap();
                a.drain(i..i + 2);
            },
            2,
            "--key <FILE|URI>",
        ),
    ];
    assert!(cases.len() >= 25);
    table(
        &cases,
        |c| c.0.to_string(),
        |(_, setup, code, want)| {
            let w = World::new();
            let mut args = w.build_args();
            setup(&w, &mut args);
            let r = hs(&args);
            if r.code != *code || !r.stderr.contains(want) {
                return Err(format!(
                    "exit {} (wanted {code}), expected {want:?} in:\n{}",
                    r.code, r.stderr
                ));
            }
            let errors = r
                .stderr
                .lines()
                .filter(|l| l.starts_with("homestick: error:") || l.starts_with("error:"))
                .count();
            if errors != 1 {
                return Err(format!("one message, not {errors}:\n{}", r.stderr));
            }
            if w.p("out.img").exists() {
                return Err("an output file after a failed build".into());
            }
            let leftovers = fs::read_dir(w.fx.dir.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
                .count();
            if leftovers > 0 {
                return Err("temporary file left behind".into());
            }
            Ok(())
        },
    );
}

#[test]
fn bad_verify_and_keys_arguments() {
    let w = World::new();
    let img = w.fx.build("good.img");
    let i = img.display().to_string();
    fs::create_dir(w.p("emptyring")).unwrap();
    w.write(
        "weird.pub",
        b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
    );
    let cases: Vec<(Vec<String>, i32, String)> = vec![
        (
            vec![
                "verify".into(),
                i.clone(),
                "--keyring".into(),
                w.s("none.pub"),
            ],
            2,
            "none.pub: cannot read keyring".into(),
        ),
        (
            vec![
                "verify".into(),
                i.clone(),
                "--keyring".into(),
                test_key().display().to_string(),
            ],
            2,
            "this is a private key".into(),
        ),
        (
            vec![
                "verify".into(),
                i.clone(),
                "--keyring".into(),
                w.s("emptyring"),
            ],
            2,
            "emptyring: keyring directory holds no .pub files".into(),
        ),
        (
            vec![
                "verify".into(),
                i.clone(),
                "--keyring".into(),
                w.s("weird.pub"),
            ],
            2,
            "weird.pub: not an Ed25519 public key".into(),
        ),
        (
            vec!["verify".into(), i.clone()],
            2,
            "--keyring <PATH>".into(),
        ),
        (
            vec![
                "verify".into(),
                w.s("nothing.img"),
                "--keyring".into(),
                test_pub().display().to_string(),
            ],
            2,
            "nothing.img: cannot open".into(),
        ),
        (
            vec!["keys".into(), "generate".into(), "--out".into(), w.s("enc")],
            2,
            "enc.key: already exists".into(),
        ),
        (
            vec![
                "keys".into(),
                "generate".into(),
                "--out".into(),
                w.s("no/dir/k"),
            ],
            2,
            "--out: directory".into(),
        ),
        (
            vec!["frobnicate".into()],
            2,
            "unrecognized subcommand".into(),
        ),
        (
            vec!["inspect".into(), w.s("nothing.img")],
            2,
            "nothing.img: cannot open".into(),
        ),
    ];
    table(
        &cases,
        |c| format!("{:?}", c.0),
        |(args, code, want)| {
            let r = hs(args);
            if r.code != *code || !r.stderr.contains(want.as_str()) {
                return Err(format!(
                    "exit {} (wanted {code}), expected {want:?} in:\n{}",
                    r.code, r.stderr
                ));
            }
            Ok(())
        },
    );
    // --json reports unusable input as JSON too.
    let r = hs(&[
        "verify",
        &w.s("nothing.img"),
        "--keyring",
        &test_pub().display().to_string(),
        "--json",
    ]);
    assert_eq!(r.code, 2);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["trusted"], false);
    let _ = Path::new(&i);
}

#[test]
fn bad_source_date_epoch() {
    let w = World::new();
    let out = std::process::Command::new(bin())
        .args(w.build_args())
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SOURCE_DATE_EPOCH: \"yesterday\""));
}

/// A reader that closes the pipe early (`| head -1`) ends the output quietly: no panic, and the
/// command keeps its exit code (a verdict stays a verdict); `println!` panicked with 101 here.
#[test]
fn a_closed_pipe_ends_the_output_without_a_panic_and_the_exit_code_stays() {
    let fx = Fixture::new();
    let img = fx.build("demo.img");
    // Another provider's key: the image is not trusted with it.
    let other = fx.path("other");
    let r = hs(&[
        "keys".as_ref(),
        "generate".as_ref(),
        "--out".as_ref(),
        other.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let keyring = test_pub();
    let cases: Vec<(&str, Vec<std::ffi::OsString>, i32)> = vec![
        ("inspect", vec!["inspect".into(), img.clone().into()], 0),
        (
            "verify, trusted",
            vec![
                "verify".into(),
                img.clone().into(),
                "--keyring".into(),
                keyring.clone().into(),
            ],
            0,
        ),
        (
            "verify, not trusted",
            vec![
                "verify".into(),
                img.clone().into(),
                "--keyring".into(),
                fx.path("other.pub").into(),
            ],
            1,
        ),
        (
            "profile check",
            vec!["profile".into(), "check".into(), demo_profile().into()],
            0,
        ),
    ];
    table(
        &cases,
        |c| c.0.to_string(),
        |(_, args, want)| {
            use std::io::Read;
            let mut child = std::process::Command::new(bin())
                .args(args)
                .env("SOURCE_DATE_EPOCH", EPOCH)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // Read nothing and close the pipe: every write after this one fails with EPIPE.
            drop(child.stdout.take());
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            let code = child.wait().unwrap().code();
            if err.contains("panicked") || code != Some(*want) {
                return Err(format!("exit {code:?} (wanted {want}), stderr:\n{err}"));
            }
            Ok(())
        },
    );
}
