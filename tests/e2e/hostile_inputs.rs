//! What a hostile roster or customer file can do to the rendered configuration (issue 22,
//! findings 1–3): name a file of the signing machine, close an OpenVPN inline block from inside
//! a PEM file, or add baresip account parameters. Each case through the real binary; openssl
//! and openvpn judge what reached the stick.

use std::fs;
use std::path::Path;

use crate::common::*;
use crate::profiles::assert_openvpn_accepts;
use crate::sets::{build_set, user_profile_files};

const HEADER: &str = "user_id,display_name,sip.extension,sip.password,sip.user,vpn.ikev2.eap_identity,vpn.ikev2.eap_password,vpn.rathaus.client_certificate,vpn.rathaus.client_key,vpn.rathaus.password,vpn.rathaus.username";

/// `NAME.key` (P-256, PKCS#8) and its self-signed certificate `NAME.crt` in `dir`.
fn client_pair(dir: &Path, name: &str) {
    let r = sh(&format!(
        "cd {d} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -keyout {name}.key -out {name}.crt -days 30 -subj /CN={name}.waldbach.example 2>&1",
        d = dir.display()
    ));
    assert_eq!(r.code, 0, "{}", r.all());
}

/// A Waldbach roster row for `user` with its certificate and key files.
fn row(user: &str, ext: u32, cert: &str, key: &str) -> String {
    format!(
        "{user},{user} Test,{ext},Pw-{user}-0123456789,{user},{user},Eap-{user}-0123456789,{cert},{key},Vpn-{user}-0123456789,{user}"
    )
}

fn roster_check(roster: &Path) -> Run {
    let p = root().join("profiles/gemeinde-waldbach");
    hs(&[
        "roster".as_ref(),
        "check".as_ref(),
        "--profile".as_ref(),
        p.as_os_str(),
        roster.as_os_str(),
    ])
}

#[test]
fn a_roster_cannot_name_a_signing_key_or_a_file_outside_its_directory() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path();
    let dir = outside.join("roster");
    fs::create_dir(&dir).unwrap();
    client_pair(&dir, "eva");
    client_pair(&dir, "jan");
    // What a hostile roster reaches for: the signing machine's keys.
    let signing = outside.join("provider.key");
    fs::copy(test_key(), &signing).unwrap();
    fs::copy(test_key(), dir.join("homestick.key")).unwrap();
    std::os::unix::fs::symlink(&signing, dir.join("link.key")).unwrap();
    fs::create_dir(dir.join("sub")).unwrap();
    std::os::unix::fs::symlink(outside, dir.join("sub/up")).unwrap();
    let r = hs(&[
        "keys".as_ref(),
        "secure-boot".as_ref(),
        "--out".as_ref(),
        dir.join("db").as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let enc = sh(&format!(
        "cd {} && openssl pkey -in eva.key -aes256 -passout pass:secret -out enc.key",
        dir.display()
    ));
    assert_eq!(enc.code, 0, "{}", enc.all());
    let two = format!(
        "{}{}",
        fs::read_to_string(dir.join("eva.key")).unwrap(),
        fs::read_to_string(dir.join("jan.key")).unwrap()
    );
    fs::write(dir.join("two.key"), two).unwrap();
    let abs = signing.display().to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "absolute path",
            row("eva", 301, "eva.crt", &abs),
            "an absolute path",
        ),
        (
            "parent directory",
            row("eva", 301, "eva.crt", "../provider.key"),
            "'..' leaves the roster's directory",
        ),
        (
            "symlink to the signing key",
            row("eva", 301, "eva.crt", "link.key"),
            "a symbolic link",
        ),
        (
            "through a linked directory",
            row("eva", 301, "eva.crt", "sub/up/provider.key"),
            "a symbolic link",
        ),
        (
            "homestick's Ed25519 key",
            row("eva", 301, "eva.crt", "homestick.key"),
            "Ed25519",
        ),
        (
            "Secure Boot db certificate and key",
            row("eva", 301, "db.crt", "db.key"),
            "code-signing certificate",
        ),
        (
            "encrypted key",
            row("eva", 301, "eva.crt", "enc.key"),
            "is encrypted",
        ),
        (
            "another user's key",
            row("eva", 301, "eva.crt", "jan.key"),
            "does not belong to the certificate",
        ),
        (
            "two keys in one file",
            row("eva", 301, "eva.crt", "two.key"),
            "exactly one PEM block",
        ),
    ];
    let roster = dir.join("roster.csv");
    let secret = fs::read_to_string(test_key()).unwrap();
    table(
        &cases,
        |c| c.0.to_string(),
        |(_, line, want)| {
            fs::write(&roster, format!("{HEADER}\n{line}\n")).unwrap();
            let r = roster_check(&roster);
            let leaked = r.all().contains(secret.lines().nth(1).unwrap_or("-"));
            match (r.code, r.stderr.contains(want), leaked) {
                (2, true, false) => Ok(()),
                _ => Err(format!("exit {}: {}", r.code, r.all())),
            }
        },
    );
    fs::write(
        &roster,
        format!("{HEADER}\n{}\n", row("eva", 301, "eva.crt", "eva.key")),
    )
    .unwrap();
    let r = roster_check(&roster);
    assert_eq!(r.code, 0, "the good row checks: {}", r.all());
    // Named relative to the current directory (its parent is the empty path), it checks too.
    let p = root().join("profiles/gemeinde-waldbach");
    let mut cmd = std::process::Command::new(bin());
    cmd.current_dir(&dir)
        .args(["roster", "check", "--profile"])
        .arg(&p)
        .arg("roster.csv");
    let out = cmd.output();
    let r = finish(&mut cmd, out);
    assert_eq!(r.code, 0, "a roster in the current directory: {}", r.all());
}

/// The block between `<tag>` and `</tag>` of an OpenVPN file.
fn inline_block(conf: &str, tag: &str) -> String {
    let open = format!("<{tag}>\n");
    let start = conf.find(&open).unwrap() + open.len();
    let end = conf[start..].find(&format!("</{tag}>")).unwrap() + start;
    conf[start..end].to_string()
}

#[test]
fn pem_files_reach_the_stick_only_as_pem_written_anew_and_openvpn_reads_no_injected_option() {
    let fx = Fixture::new();
    let d = fx.dir.path();
    client_pair(d, "eva");
    // The finding's attack: a key file that closes the inline block and adds options which
    // would run a command as root at every VPN start; a certificate file with text after its
    // END line too.
    let inject = "</key>\nscript-security 2\nup /bin/sh\n<key>\n";
    let key = fs::read_to_string(d.join("eva.key")).unwrap();
    fs::write(d.join("evil.key"), format!("{key}{inject}")).unwrap();
    let crt = fs::read_to_string(d.join("eva.crt")).unwrap();
    fs::write(
        d.join("evil.crt"),
        format!("{crt}</cert>\nscript-security 2\n<cert>\n"),
    )
    .unwrap();
    let roster = d.join("roster.csv");
    fs::write(
        &roster,
        format!("{HEADER}\n{}\n", row("eva", 301, "evil.crt", "evil.key")),
    )
    .unwrap();
    let profile = root().join("profiles/gemeinde-waldbach");
    let (set, _) = build_set(&fx, &profile, &roster, "evil-set");
    let files = user_profile_files(&set, "eva", d);
    let ovpn = String::from_utf8(files["openvpn/rathaus.ovpn"].clone()).unwrap();
    assert!(!ovpn.contains("script-security"), "{ovpn}");
    assert!(!ovpn.contains("up /bin/sh"), "{ovpn}");
    // openssl writes the same key and certificate canonically: exactly what the stick holds.
    let canon = |args: &str| {
        let r = sh(&format!("cd {} && openssl {args}", d.display()));
        assert_eq!(r.code, 0, "{}", r.all());
        r.stdout
    };
    assert_eq!(inline_block(&ovpn, "key"), canon("pkey -in eva.key"));
    assert_eq!(inline_block(&ovpn, "cert"), canon("x509 -in eva.crt"));
    // And OpenVPN accepts every option of the file: nothing else stands in it.
    let path = d.join("rathaus.ovpn");
    fs::write(&path, &ovpn).unwrap();
    assert_openvpn_accepts(&path, d);
}

#[test]
fn a_customers_ca_or_tls_key_file_cannot_add_options_either() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("profile");
    let r = sh(&format!(
        "cp -r {} {}",
        root().join("profiles/gemeinde-waldbach").display(),
        p.display()
    ));
    assert_eq!(r.code, 0, "{}", r.all());
    let ca = p.join("certs/vpn-ca.pem");
    let good_ca = fs::read_to_string(&ca).unwrap();
    fs::write(
        &ca,
        format!("{good_ca}</ca>\nscript-security 2\nup /bin/sh\n<ca>\n"),
    )
    .unwrap();
    let tk = p.join("keys/tls-crypt.key");
    let good_tk = fs::read_to_string(&tk).unwrap();
    fs::write(
        &tk,
        format!("{good_tk}</tls-crypt>\nplugin /tmp/x.so\n<tls-crypt>\n"),
    )
    .unwrap();
    let out = t.path().join("r");
    let r = hs(&[
        "profile".as_ref(),
        "render".as_ref(),
        p.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let ovpn = fs::read_to_string(out.join("openvpn/rathaus.ovpn")).unwrap();
    assert!(!ovpn.contains("script-security"), "{ovpn}");
    assert!(!ovpn.contains("plugin"), "{ovpn}");
    let x509 = sh(&format!("openssl x509 -in {}", ca.display()));
    assert_eq!(inline_block(&ovpn, "ca"), x509.stdout);
}
