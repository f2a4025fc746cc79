//! Customer profiles: golden renders, real tools checking the rendered files, builds with
//! each example, and a table of bad profiles.
//!
//! Golden files live in tests/golden/<customer-id>/; `UPDATE_GOLDEN=1 cargo test` rewrites
//! them (review the diff before committing).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const EXAMPLES: &[&str] = &["stadt-musterhausen", "gemeinde-waldbach"];

fn render(profile: &Path, out: &Path) {
    let r = hs(&[
        "profile".as_ref(),
        "render".as_ref(),
        profile.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
}

fn walk(dir: &Path) -> Vec<String> {
    files_under(dir).into_keys().collect()
}

#[test]
fn examples_render_to_the_committed_golden_files() {
    for id in EXAMPLES {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("r");
        render(&root().join("profiles").join(id), &out);
        let golden = root().join("tests/golden").join(id);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let _ = fs::remove_dir_all(&golden);
            for f in walk(&out) {
                fs::create_dir_all(golden.join(&f).parent().unwrap()).unwrap();
                fs::copy(out.join(&f), golden.join(&f)).unwrap();
            }
        }
        assert_eq!(
            walk(&out),
            walk(&golden),
            "{id}: rendered file list differs from tests/golden/{id}"
        );
        for f in walk(&out) {
            let got = fs::read(out.join(&f)).unwrap();
            let want = fs::read(golden.join(&f)).unwrap();
            assert!(
                got == want,
                "{id}: {f} differs from its golden file (UPDATE_GOLDEN=1 to accept)"
            );
        }
    }
}

/// A test client certificate and key (made with openssl, signed by a throwaway CA).
fn client_cert(dir: &Path) -> (String, String) {
    let r = sh(&format!(
        "cd {d} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout cl.key -out cl.pem -days 30 -subj /CN=test-user 2>&1",
        d = dir.display()
    ));
    assert_eq!(r.code, 0, "{}", r.all());
    (
        fs::read_to_string(dir.join("cl.pem")).unwrap(),
        fs::read_to_string(dir.join("cl.key")).unwrap(),
    )
}

/// Fill `{{slot}}` placeholders as a roster would.
fn fill(text: &str, values: &[(&str, String)]) -> String {
    let mut t = text.to_string();
    for (k, v) in values {
        t = t.replace(&format!("{{{{{k}}}}}"), v.trim_end());
    }
    assert!(!t.contains("{{"), "unfilled slot left in:\n{t}");
    t
}

fn pem_blocks(text: &str) -> Vec<String> {
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|b| {
            format!(
                "-----BEGIN CERTIFICATE-----{}-----END CERTIFICATE-----\n",
                b.split("-----END CERTIFICATE-----").next().unwrap()
            )
        })
        .collect()
}

#[test]
fn inlined_and_shipped_certificates_parse_with_openssl() {
    let mut checked = 0;
    for id in EXAMPLES {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("r");
        render(&root().join("profiles").join(id), &out);
        for f in walk(&out) {
            let text = fs::read_to_string(out.join(&f)).unwrap_or_default();
            for (i, block) in pem_blocks(&text).into_iter().enumerate() {
                let p = d.path().join(format!("cert{i}.pem"));
                fs::write(&p, block).unwrap();
                let r = tool(
                    "openssl",
                    &[
                        "x509",
                        "-noout",
                        "-subject",
                        "-checkend",
                        "0",
                        "-in",
                        &p.display().to_string(),
                    ],
                );
                assert_eq!(r.code, 0, "{id}/{f}: openssl x509: {}", r.all());
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 3,
        "expected certificates in the examples, checked {checked}"
    );
}

#[test]
fn wireguard_config_is_accepted_by_wg_quick_and_wg() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r");
    render(&demo_profile(), &out);
    let conf = fs::read_to_string(out.join("wireguard/buero.conf")).unwrap();
    let key = tool("wg", &["genkey"]).stdout;
    let filled = fill(
        &conf,
        &[
            ("vpn.buero.private_key", key),
            ("vpn.buero.address", "10.99.0.17/32".into()),
        ],
    );
    let path = d.path().join("buero.conf");
    fs::write(&path, &filled).unwrap();
    let strip = tool("wg-quick", &["strip", &path.display().to_string()]);
    assert_eq!(strip.code, 0, "wg-quick strip: {}", strip.all());
    assert!(
        !strip.stdout.contains("Address") && strip.stdout.contains("Endpoint"),
        "{}",
        strip.stdout
    );
    let stripped = d.path().join("stripped.conf");
    fs::write(&stripped, &strip.stdout).unwrap();
    // `wg setconf` parses fully (keys, endpoint, allowed IPs) before it touches an interface;
    // resolve the example endpoint through a private /etc/hosts so no network is needed.
    let hosts = d.path().join("hosts");
    fs::write(
        &hosts,
        "127.0.0.1 localhost\n192.0.2.10 vpn.musterhausen.example\n",
    )
    .unwrap();
    let setconf = |file: &Path| {
        sh(&format!(
            "unshare -m sh -c 'mount --bind {h} /etc/hosts && wg setconf hs-parse0 {f}' || true",
            h = hosts.display(),
            f = file.display()
        ))
    };
    let r = setconf(&stripped);
    assert!(
        r.stderr.contains("Unable to modify interface"),
        "wg parsed the file and reached the interface step: {}",
        r.all()
    );
    assert!(!r.stderr.contains("parsing error"), "{}", r.all());
    // The oracle can fail: a damaged key is a parsing error.
    let broken = d.path().join("broken.conf");
    fs::write(
        &broken,
        strip.stdout.replace("PublicKey = ", "PublicKey = x"),
    )
    .unwrap();
    assert!(setconf(&broken)
        .stderr
        .contains("Configuration parsing error"));
}

#[test]
fn openvpn_config_parses_in_openvpn() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r");
    render(&root().join("profiles/gemeinde-waldbach"), &out);
    let conf = fs::read_to_string(out.join("openvpn/rathaus.ovpn")).unwrap();
    let (cert, key) = client_cert(d.path());
    let filled = fill(
        &conf,
        &[
            ("vpn.rathaus.client_certificate", cert),
            ("vpn.rathaus.client_key", key),
            ("vpn.rathaus.username", "anna.beispiel".into()),
            ("vpn.rathaus.password", "test-password".into()),
        ],
    );
    let path = d.path().join("rathaus.ovpn");
    fs::write(&path, &filled).unwrap();
    let run = |file: &Path| openvpn_option_check(file, d.path());
    assert_openvpn_accepts(&path, d.path());
    let broken = d.path().join("broken.ovpn");
    fs::write(
        &broken,
        filled.replace("data-ciphers AES-256-GCM", "data-ciphers NOPE-GCM"),
    )
    .unwrap();
    assert!(
        run(&broken).all().contains("unsupported cipher"),
        "the oracle can fail"
    );
}

/// OpenVPN accepts every option of `conf`: [`openvpn_option_check`] reaches its one planted
/// conflict and nothing else.
pub(crate) fn assert_openvpn_accepts(conf: &Path, scratch: &Path) {
    let r = openvpn_option_check(conf, scratch);
    assert!(
        r.all()
            .contains("Options error: specify only one of --tls-server, --tls-client, or --secret"),
        "{}",
        r.all()
    );
    assert_eq!(r.all().matches("Options error").count(), 1, "{}", r.all());
}

/// OpenVPN has no parse-only mode. `--test-crypto` with `--secret` parses and checks every
/// option of `conf`, then stops at the one conflict added here (--secret in a TLS client
/// config): "Options error: specify only one of --tls-server, --tls-client, or --secret" means
/// everything before it was accepted. `scratch` gets the static key.
pub(crate) fn openvpn_option_check(conf: &Path, scratch: &Path) -> Run {
    let st = scratch.join("static.key");
    if !st.exists() {
        let r = tool(
            "openvpn",
            &["--genkey", "secret", &st.display().to_string()],
        );
        assert_eq!(r.code, 0, "{}", r.all());
    }
    tool(
        "openvpn",
        &[
            "--config",
            &conf.display().to_string(),
            "--test-crypto",
            "--secret",
            &st.display().to_string(),
            "--verb",
            "1",
        ],
    )
}

/// Runs charon for swanctl and stops it when dropped.
struct Charon(std::process::Child);

impl Drop for Charon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn strongswan_config_loads_into_charon() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r");
    render(&root().join("profiles/gemeinde-waldbach"), &out);
    let conf = fs::read_to_string(out.join("strongswan/swanctl.conf")).unwrap();
    let filled = fill(
        &conf,
        &[
            (
                "vpn.ikev2.eap_identity",
                "anna.beispiel@waldbach.example".into(),
            ),
            ("vpn.ikev2.eap_password", "test-password".into()),
        ],
    );
    let sw = out.join("strongswan");
    fs::write(sw.join("swanctl.conf"), &filled).unwrap();
    let vici = Path::new("/var/run/charon.vici");
    let _ = fs::remove_file(vici);
    let charon = Charon(
        Command::new("/usr/lib/ipsec/charon")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("strongSwan charon (package strongswan-charon) must be installed"),
    );
    let started = Instant::now();
    while !vici.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "charon did not open its vici socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let file = sw.join("swanctl.conf").display().to_string();
    let r = tool("swanctl", &["--load-creds", "--file", &file]);
    assert_eq!(r.code, 0, "swanctl --load-creds: {}", r.all());
    assert!(
        r.stdout.contains("loaded certificate from") && r.stdout.contains("ikev2-ca.pem"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("loaded eap secret 'eap-ikev2'"),
        "{}",
        r.stdout
    );
    let r = tool("swanctl", &["--load-conns", "--file", &file]);
    assert_eq!(r.code, 0, "swanctl --load-conns: {}", r.all());
    assert!(
        r.stdout.contains("successfully loaded 1 connections"),
        "{}",
        r.stdout
    );
    let broken = sw.join("broken.conf");
    fs::write(
        &broken,
        filled.replace("aes256gcm16-prfsha384-ecp384", "aes999-nope"),
    )
    .unwrap();
    let r = tool(
        "swanctl",
        &["--load-conns", "--file", &broken.display().to_string()],
    );
    assert_ne!(r.code, 0, "the oracle can fail: {}", r.all());
    drop(charon);
}

#[test]
fn baresip_loads_the_rendered_account() {
    for id in EXAMPLES {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("r");
        render(&root().join("profiles").join(id), &out);
        let bs = out.join("baresip");
        let acc = fs::read_to_string(bs.join("accounts")).unwrap();
        let filled = fill(
            &acc,
            &[
                ("sip.extension", "4711".into()),
                ("sip.user", "u4711".into()),
                ("sip.password", "test-password".into()),
            ],
        );
        fs::write(bs.join("accounts"), &filled).unwrap();
        // The rendered config points at the partition's mount point; run from here instead.
        let cfg = fs::read_to_string(bs.join("config"))
            .unwrap()
            .replace("/run/homestick/profile/baresip", &bs.display().to_string());
        // baresip binds to the tunnel's interface: give it one, in a network namespace of its
        // own, with the address the tunnel would have.
        let tunnel = cfg
            .lines()
            .find_map(|l| l.strip_prefix("net_interface"))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{id}: no net_interface in baresip's config"))
            .to_string();
        fs::write(bs.join("config"), cfg).unwrap();
        let r = sh(&format!(
            "unshare -n sh -c 'ip link set lo up && ip link add {tunnel} type veth peer name peer0 && ip link set peer0 up && \
             ip addr add 10.99.0.2/24 dev {tunnel} && ip link set {tunnel} up && ip route add default dev {tunnel} && \
             timeout -k 2 6 baresip -f {} -t 2 < /dev/null 2>&1' || true",
            bs.display()
        ));
        let o = r.all();
        assert!(o.contains("Populated 1 account"), "{id}: {o}");
        // The address a call's SDP gives the office is the tunnel's, not the home network's.
        assert!(
            o.contains(&format!("Local network address:  IPv4={tunnel}|10.99.0.2")),
            "{id}: {o}"
        );
        assert!(
            !o.lines().any(|l| l.contains("account:")),
            "{id}: baresip complained about the account:\n{o}"
        );
        let want_enc = if id == &"stadt-musterhausen" {
            "Using media encryption 'srtp-mand'"
        } else {
            "Using media encryption 'srtp'"
        };
        assert!(o.contains(want_enc), "{id}: {o}");
    }
}

#[test]
fn build_puts_the_rendered_files_on_the_profile_partition_and_inspect_shows_them() {
    let fx = Fixture::new();
    for id in EXAMPLES {
        let img = fx.build_with(&format!("{id}.img"), &root().join("profiles").join(id), &[]);
        let m = inspect_json(&img);
        let p = m["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "profile")
            .unwrap()
            .clone();
        let first = p["first_lba"].as_u64().unwrap();
        let count = p["last_lba"].as_u64().unwrap() - first + 1;
        let part = fx.path("profile.fat");
        let r = sh(&format!(
            "dd if={} of={} bs=512 skip={first} count={count} status=none",
            img.display(),
            part.display()
        ));
        assert_eq!(r.code, 0);
        let listing = tool(
            "mdir",
            &["-/", "-b", "-i", &part.display().to_string(), "::"],
        )
        .stdout;
        let d = tempfile::tempdir().unwrap();
        render(&root().join("profiles").join(id), &d.path().join("r"));
        for f in walk(&d.path().join("r")) {
            assert!(
                listing.contains(&format!("::/{f}")),
                "{id}: {f} missing on the partition:\n{listing}"
            );
            let got = tool(
                "mtype",
                &["-i", &part.display().to_string(), &format!("::/{f}")],
            );
            let want = fs::read_to_string(d.path().join("r").join(&f)).unwrap_or_default();
            if !want.is_empty() {
                assert_eq!(got.stdout, want, "{id}: {f} differs on the partition");
            }
        }
        let r = hs(&["inspect".as_ref(), img.as_os_str()]);
        assert!(r.stdout.contains("profile (not verified)"), "{}", r.stdout);
        assert!(r.stdout.contains("a roster must fill"), "{}", r.stdout);
        assert_eq!(verify(&img, &test_pub()).code, 0);
    }
    let r = hs(&[
        "inspect".as_ref(),
        fx.path("gemeinde-waldbach.img").as_os_str(),
    ]);
    for want in [
        "rathaus (openvpn, default) -> vpn1.waldbach.example:1194",
        "ikev2 (ipsec)",
        "sip:pbx.waldbach.example via TCP",
    ] {
        assert!(
            r.stdout.contains(want),
            "inspect lacks {want:?}:\n{}",
            r.stdout
        );
    }
}

fn demo_toml() -> String {
    fs::read_to_string(demo_profile().join("customer.toml")).unwrap()
}

fn waldbach_toml() -> String {
    fs::read_to_string(root().join("profiles/gemeinde-waldbach/customer.toml")).unwrap()
}

/// A copy of an example profile (with its referenced files) whose customer.toml is `toml`.
fn profile_with(base: &str, toml: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("p");
    let r = sh(&format!(
        "cp -r {} {}",
        root().join("profiles").join(base).display(),
        dir.display()
    ));
    assert_eq!(r.code, 0);
    fs::write(dir.join("customer.toml"), toml).unwrap();
    (d, dir)
}

#[test]
fn bad_profiles_name_file_field_and_reason() {
    let wg_key = "VJ6YO4bmpT3PfnDeZz4dwhNkJzenoU/C3AJcWRIr/Dc=";
    let m = demo_toml();
    let w = waldbach_toml();
    // (what, base example, customer.toml, field, message)
    let cases: Vec<(&str, &str, String, &str, &str)> = vec![
        ("syntax error", "stadt-musterhausen", m.replace("[softphone]", "[softphone"), "line 26", "invalid table header; expected `.`, `]`"),
        ("unknown top-level table", "stadt-musterhausen", format!("{m}\n[printer]\nname = \"x\"\n"), "printer", "unknown field `printer`"),
        ("unknown customer field", "stadt-musterhausen", m.replace("hours = ", "fax = \"1\"\nhours = "), "customer.fax", "unknown field `fax`"),
        ("customer id not a slug", "stadt-musterhausen", m.replace("id = \"stadt-musterhausen\"", "id = \"Stadt Musterhausen\""), "customer.id", "\"Stadt Musterhausen\" is not a slug"),
        ("customer name missing", "stadt-musterhausen", m.replace("name = \"Stadt Musterhausen\"\n", ""), "customer", "missing field `name`"),
        ("hotline not a number", "stadt-musterhausen", m.replace("+49 5555 1234-100", "call us"), "customer.hotline", "\"call us\" is not a phone number"),
        ("email invalid", "stadt-musterhausen", m.replace("it-hotline@musterhausen.example", "it-hotline"), "customer.email", "\"it-hotline\" is not an e-mail address"),
        ("language unsupported", "stadt-musterhausen", m.replace("[\"de\", \"en\"]", "[\"de\", \"fr\"]"), "customer.languages[1]", "\"fr\" is not supported (de, en)"),
        ("logo missing", "stadt-musterhausen", m.replace("logo.svg", "logo.png"), "customer.logo", "\"logo.png\": file not found"),
        ("logo not an image", "stadt-musterhausen", m.replace("logo.svg", "certs/sip-ca.pem"), "customer.logo", "is neither a PNG nor an SVG image"),
        ("no vpn", "stadt-musterhausen", m.split("[[vpn]]").next().unwrap().to_string() + &m[m.find("[softphone]").unwrap()..], "vpn", "at least one [[vpn]] connection is needed"),
        ("unknown vpn field", "stadt-musterhausen", m.replace("dns = [", "gateway = \"x\"\ndns = ["), "vpn[0].gateway", "unknown field `gateway`"),
        ("vpn name invalid", "stadt-musterhausen", m.replace("name = \"buero\"", "name = \"Büro\""), "vpn[0].name", "1-15 of a-z"),
        ("no kind table", "stadt-musterhausen", m.replace("[vpn.wireguard]", "[vpn.nothing]"), "vpn[0].nothing", "unknown field `nothing`"),
        ("endpoint without port", "stadt-musterhausen", m.replace("vpn.musterhausen.example:51820", "vpn.musterhausen.example"), "vpn[0].wireguard.endpoint", "\"vpn.musterhausen.example\" has no port (expected host:port)"),
        ("endpoint port out of range", "stadt-musterhausen", m.replace(":51820", ":70000"), "vpn[0].wireguard.endpoint", "port \"70000\" is not a number in 1..=65535"),
        ("endpoint bad host", "stadt-musterhausen", m.replace("vpn.musterhausen.example:51820", "vpn_1.example:51820"), "vpn[0].wireguard.endpoint", "\"vpn_1.example\" is not a valid host name"),
        ("server key not base64", "stadt-musterhausen", m.replace(wg_key, "not-a-key!"), "vpn[0].wireguard.server_public_key", "\"not-a-key!\" is not base64"),
        ("server key wrong length", "stadt-musterhausen", m.replace(wg_key, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="), "vpn[0].wireguard.server_public_key", "decodes to 31 bytes, a WireGuard key has 32"),
        ("mtu out of range", "stadt-musterhausen", m.replace("mtu = 1420", "mtu = 9000"), "vpn[0].wireguard.mtu", "9000 is not in 1280..=1500"),
        ("mtu wrong type", "stadt-musterhausen", m.replace("mtu = 1420", "mtu = \"big\""), "vpn[0].wireguard.mtu", "invalid type: string \"big\", expected u32"),
        ("keepalive out of range", "stadt-musterhausen", m.replace("persistent_keepalive = 25", "persistent_keepalive = 5"), "vpn[0].wireguard.persistent_keepalive", "5 is not 0 (off) or in 10..=3600"),
        ("route not CIDR", "stadt-musterhausen", m.replace("\"192.168.50.0/24\"", "\"192.168.50.0/33\""), "vpn[0].routes[1]", "prefix \"33\" is not in 0..=32"),
        ("route host bits", "stadt-musterhausen", m.replace("\"10.20.0.0/16\"", "\"10.20.1.0/16\""), "vpn[0].routes[0]", "\"10.20.1.0/16\" has host bits set"),
        ("no routes", "stadt-musterhausen", m.replace("routes = [\"10.20.0.0/16\", \"192.168.50.0/24\"]", "routes = []"), "vpn[0].routes", "at least one route"),
        ("dns not an address", "stadt-musterhausen", m.replace("dns = [\"10.20.0.53\"]", "dns = [\"ns1\"]"), "vpn[0].dns[0]", "\"ns1\" is not an IP address"),
        ("duplicate connection names", "gemeinde-waldbach", w.replace("name = \"ikev2\"", "name = \"rathaus\""), "vpn[1].name", "\"rathaus\" is already the name of vpn[0]"),
        ("two defaults", "gemeinde-waldbach", w.replace("name = \"ikev2\"", "name = \"ikev2\"\ndefault = true"), "vpn[1].default", "only one connection can be the default; vpn[0] already is"),
        ("no default among several", "gemeinde-waldbach", w.replace("default = true\n", ""), "vpn", "several connections: mark one with default = true"),
        ("two kinds in one connection", "gemeinde-waldbach", w.replace("[vpn.ipsec]", "[vpn.wireguard]\nendpoint = \"a.example:1\"\nserver_public_key = \"VJ6YO4bmpT3PfnDeZz4dwhNkJzenoU/C3AJcWRIr/Dc=\"\n\n[vpn.ipsec]"), "vpn[1]", "give exactly one of [vpn.wireguard], [vpn.openvpn], [vpn.ipsec] (found 2)"),
        ("openvpn remote without port", "gemeinde-waldbach", w.replace("vpn2.waldbach.example:443", "vpn2.waldbach.example"), "vpn[0].openvpn.remotes[1]", "\"vpn2.waldbach.example\" has no port"),
        ("openvpn proto unknown", "gemeinde-waldbach", w.replace("proto = \"udp\"", "proto = \"sctp\""), "vpn[0].openvpn.proto", "unknown variant `sctp` (expected `udp` or `tcp`)"),
        ("openvpn cipher not allowed", "gemeinde-waldbach", w.replace("\"CHACHA20-POLY1305\"]", "\"BF-CBC\"]"), "vpn[0].openvpn.ciphers[1]", "\"BF-CBC\" is not an allowed data cipher"),
        ("openvpn CA missing", "gemeinde-waldbach", w.replace("certs/vpn-ca.pem", "certs/none.pem"), "vpn[0].openvpn.ca", "\"certs/none.pem\": file not found"),
        ("openvpn CA is a key", "gemeinde-waldbach", w.replace("ca = \"certs/vpn-ca.pem\"", "ca = \"keys/tls-crypt.key\""), "vpn[0].openvpn.ca", "holds a \"OpenVPN Static key V1\" PEM block; expected only CERTIFICATE blocks"),
        ("openvpn CA not PEM", "gemeinde-waldbach", w.replace("ca = \"certs/vpn-ca.pem\"", "ca = \"customer.toml\""), "vpn[0].openvpn.ca", "\"customer.toml\" is not a PEM certificate (no BEGIN CERTIFICATE block)"),
        ("openvpn CA leaves the directory", "gemeinde-waldbach", w.replace("certs/vpn-ca.pem", "../../../etc/hostname"), "vpn[0].openvpn.ca", "leaves the profile directory"),
        ("openvpn CA absolute", "gemeinde-waldbach", w.replace("certs/vpn-ca.pem", "/etc/ssl/certs/ca-certificates.crt"), "vpn[0].openvpn.ca", "give a path relative to the profile directory"),
        ("tls-crypt and tls-auth", "gemeinde-waldbach", w.replace("tls_crypt = ", "tls_auth = \"keys/tls-crypt.key\"\ntls_crypt = "), "vpn[0].openvpn", "give one of tls_crypt or tls_auth, not both"),
        ("tls-crypt key not a key", "gemeinde-waldbach", w.replace("keys/tls-crypt.key", "certs/vpn-ca.pem"), "vpn[0].openvpn.tls_crypt", "is not an OpenVPN static key"),
        ("openvpn auth unknown", "gemeinde-waldbach", w.replace("auth = \"certificate+password\"", "auth = \"token\""), "vpn[0].openvpn.auth", "unknown variant `token`"),
        ("ipsec server invalid", "gemeinde-waldbach", w.replace("server = \"ipsec.waldbach.example\"", "server = \"ipsec waldbach\""), "vpn[1].ipsec.server", "\"ipsec waldbach\" is not a valid host name"),
        ("ipsec proposal invalid", "gemeinde-waldbach", w.replace("aes256-sha256-modp3072", "AES 256"), "vpn[1].ipsec.ike_proposals[1]", "\"AES 256\" is not a strongSwan proposal"),
        ("ipsec auth unknown", "gemeinde-waldbach", w.replace("auth = \"eap-mschapv2\"", "auth = \"psk\""), "vpn[1].ipsec.auth", "unknown variant `psk`"),
        ("registrar not a SIP URI", "stadt-musterhausen", m.replace("registrar = \"sip:sip.musterhausen.example\"", "registrar = \"sip.musterhausen.example\""), "softphone.registrar", "\"sip.musterhausen.example\" is not a SIP URI (expected sip:host or sips:host)"),
        ("outbound proxy with an account parameter", "stadt-musterhausen", m.replace("sbc.musterhausen.example:5061;transport=tls", "sbc.musterhausen.example:5061;answermode=auto"), "softphone.outbound_proxy", "cannot be written into a baresip account parameter: the URI parameter \"answermode=auto\""),
        ("outbound proxy closing its quotes", "stadt-musterhausen", m.replace("sbc.musterhausen.example:5061;transport=tls", "sbc.musterhausen.example:5061\\\";answermode=auto;x=\\\""), "softphone.outbound_proxy", "which a SIP URI cannot"),
        ("outbound proxy bad port", "stadt-musterhausen", m.replace("sbc.musterhausen.example:5061", "sbc.musterhausen.example:x"), "softphone.outbound_proxy", "port \"x\" is not a number"),
        ("transport unknown", "stadt-musterhausen", m.replace("transport = \"tls\"", "transport = \"ws\""), "softphone.transport", "unknown variant `ws` (expected one of `udp`, `tcp`, `tls`)"),
        ("srtp unknown", "stadt-musterhausen", m.replace("srtp = \"mandatory\"", "srtp = \"yes\""), "softphone.srtp", "unknown variant `yes`"),
        ("codec unknown", "stadt-musterhausen", m.replace("\"G722\"", "\"mp3\""), "softphone.codecs[1]", "\"mp3\" is not supported (opus, G722, PCMA, PCMU)"),
        ("codec twice", "stadt-musterhausen", m.replace("\"G722\"", "\"opus\""), "softphone.codecs[1]", "\"opus\" is listed twice"),
        ("no emergency numbers", "stadt-musterhausen", m.replace("emergency_numbers = [\"110\", \"112\"]", "emergency_numbers = []"), "softphone.emergency_numbers", "at least one number that must always be dialable"),
        ("emergency number not digits", "stadt-musterhausen", m.replace("\"112\"]", "\"11a\"]"), "softphone.emergency_numbers[1]", "\"11a\" is not a short emergency number"),
        ("stun without port", "stadt-musterhausen", m.replace("stun.musterhausen.example:3478", "stun.musterhausen.example"), "softphone.stun", "has no port"),
        ("voicemail not dialable", "stadt-musterhausen", m.replace("voicemail = \"*86\"", "voicemail = \"mailbox\""), "softphone.voicemail", "\"mailbox\" is not a dialable number"),
        ("softphone field missing", "stadt-musterhausen", m.replace("srtp = \"mandatory\"\n", ""), "softphone", "missing field `srtp`"),
        ("direct destination inside a tunnel route", "stadt-musterhausen", format!("{m}\n[[network.direct]]\nname = \"video\"\nto = \"192.168.50.0/25\"\nports = [\"tcp/443\"]\n"), "network.direct[0].to", "overlaps vpn[0].routes[1] 192.168.50.0/24: it would go through the tunnel"),
        ("direct destination without ports", "stadt-musterhausen", format!("{m}\n[[network.direct]]\nname = \"video\"\nto = \"198.51.100.0/24\"\nports = []\n"), "network.direct[0].ports", "give 1 to 16 ports"),
        ("secret in customer.toml", "stadt-musterhausen", m.replace("[vpn.wireguard]", "[vpn.wireguard]\nprivate_key = \"VJ6YO4bmpT3PfnDeZz4dwhNkJzenoU/C3AJcWRIr/Dc=\""), "vpn[0].wireguard.private_key", "unknown field `private_key`"),
    ];
    assert!(cases.len() >= 30);
    for (what, base, toml, field, msg) in cases {
        let (_d, dir) = profile_with(base, &toml);
        let r = hs(&["profile".as_ref(), "check".as_ref(), dir.as_os_str()]);
        assert_eq!(r.code, 2, "{what}: expected exit 2\n{}", r.all());
        let want = format!("{}: {field}: ", dir.join("customer.toml").display());
        let line = r
            .stderr
            .lines()
            .find(|l| l.starts_with("homestick: error:"))
            .unwrap_or_default();
        assert!(
            line.contains(&want),
            "{what}: expected file and field {want:?} in:\n{}",
            r.stderr
        );
        assert!(line.contains(msg), "{what}: expected {msg:?} in:\n{line}");
    }
}

#[test]
fn direct_destinations_reach_profile_json_and_the_summary() {
    let m = demo_toml();
    let toml = format!(
        "{m}\n[[network.direct]]\nname = \"video\"\nto = \"198.51.100.0/24\"\nports = [\"udp/3478-3481\", \"tcp/443\"]\n\n\
         [[network.direct]]\nname = \"portal\"\nto = \"portal.example.net\"\nports = [\"tcp/80\"]\n"
    );
    let (d, dir) = profile_with("stadt-musterhausen", &toml);
    let r = hs(&["profile".as_ref(), "check".as_ref(), dir.as_os_str()]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains(
            "direct     video -> 198.51.100.0/24 (udp/3478-3481, tcp/443), outside the tunnel"
        ) && r
            .stdout
            .contains("direct     portal -> portal.example.net (tcp/80)"),
        "{}",
        r.stdout
    );
    let out = d.path().join("rendered");
    let r = hs(&[
        "profile".as_ref(),
        "render".as_ref(),
        dir.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let doc: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("profile.json")).unwrap()).unwrap();
    assert_eq!(doc["network"]["direct"][0]["to"], "198.51.100.0/24");
    assert_eq!(doc["network"]["direct"][1]["ports"][0], "tcp/80");
    // Without [[network.direct]], profile.json has no network key: nothing goes around the tunnel.
    let plain = hs(&[
        "profile".as_ref(),
        "render".as_ref(),
        root().join("profiles/stadt-musterhausen").as_os_str(),
        "--out".as_ref(),
        d.path().join("plain").as_os_str(),
    ]);
    assert_eq!(plain.code, 0, "{}", plain.all());
    let doc: serde_json::Value =
        serde_json::from_slice(&fs::read(d.path().join("plain/profile.json")).unwrap()).unwrap();
    assert!(doc.get("network").is_none(), "{doc}");
}

#[test]
fn certificate_expiry_is_checked_at_build_time() {
    // The example CAs are valid until 2046: near 2046 a warning, after it an error.
    let run = |epoch: &str| {
        let out = Command::new(bin())
            .args(["profile", "check"])
            .arg(root().join("profiles/gemeinde-waldbach"))
            .env("SOURCE_DATE_EPOCH", epoch)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run("2425000000"); // 2046-11-04
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("expires in") && err.contains("days"), "{err}");
    let (code, err) = run("2500000000"); // 2049
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("vpn[0].openvpn.ca: \"certs/vpn-ca.pem\": certificate")
            && err.contains("expired on 2046-"),
        "{err}"
    );
}

#[test]
fn render_refuses_a_non_empty_output_directory() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("keep.txt"), "x").unwrap();
    let r = hs(&[
        "profile".as_ref(),
        "render".as_ref(),
        demo_profile().as_os_str(),
        "--out".as_ref(),
        d.path().as_os_str(),
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("is not empty"), "{}", r.stderr);
}
