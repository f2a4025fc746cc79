//! Per-user sticks: a roster filled and exported to a real WireGuard peer (wireguard-go in a
//! network namespace); a signed stick set whose users' profiles differ only where the roster
//! does, and where a changed byte fails only its user; a 600-user set flashed to four loop
//! devices with the ledger; two stations racing for users in SQLite and in a PostgreSQL server
//! the test starts; a flash killed mid-way; and `ledger revoke`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use homestick_image::disk::Disk;
use homestick_image::set::StickSet;

use crate::common::*;
use crate::roster::{profile_with_pool, roster_fill, HEADER};
use homestick_testkit::build_args::Build;

/// A roster of `n` users with every secret and address to generate, filled; returns the
/// profile and the filled roster.
pub(crate) fn filled_roster(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let profile = profile_with_pool(dir);
    let mut text = format!("{HEADER}\n");
    for i in 0..n {
        text += &format!(
            "user{i:03},Person {i},{},generate,sip{i:03},generate,generate\n",
            4_711_000 + i
        );
    }
    let raw = dir.join("roster.csv");
    fs::write(&raw, text).unwrap();
    let filled = dir.join("filled.csv");
    let r = roster_fill(&profile, &raw, &filled);
    assert_eq!(r.code, 0, "{}", r.all());
    (profile, filled)
}

/// user id -> (slot -> value), from a filled roster.
fn roster_values(filled: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let text = fs::read_to_string(filled).unwrap();
    let mut lines = text.lines();
    let cols: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let m: BTreeMap<String, String> = cols
                .iter()
                .zip(&f)
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .collect();
            (m["user_id"].clone(), m)
        })
        .collect()
}

pub(crate) fn build_set(fx: &Fixture, profile: &Path, roster: &Path, name: &str) -> (PathBuf, Run) {
    let out = fx.path(name);
    let r = build_set_run(fx, profile, roster, &out);
    assert_eq!(r.code, 0, "{}", r.all());
    (out, r)
}

/// `homestick build --roster` into `out`, whatever it gives.
fn build_set_run(fx: &Fixture, profile: &Path, roster: &Path, out: &Path) -> Run {
    Build::new(profile, &fx.base(), out)
        .opt("--roster", roster)
        .run()
}

fn verify_all(set: &Path) -> Run {
    hs(&[
        "verify".as_ref(),
        set.as_os_str(),
        "--keyring".as_ref(),
        test_pub().as_os_str(),
        "--all".as_ref(),
    ])
}

fn wg_pubkey(private: &str) -> String {
    let mut c = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("wg (wireguard-tools)");
    use std::io::Write;
    c.stdin
        .take()
        .unwrap()
        .write_all(format!("{private}\n").as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// A network namespace, deleted (with its processes) on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("hs-{tag}-{}", std::process::id());
        let r = tool("ip", &["netns", "add", &name]);
        assert_eq!(r.code, 0, "{}", r.all());
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&format!(
            "ip netns pids {0} | xargs -r kill; sleep 0.2; ip netns del {0}",
            self.0
        ));
    }
}

/// The files of the profile partition of `user`'s image in `set`, read with mtools from the
/// composed image (written to a file).
pub(crate) fn user_profile_files(set: &Path, user: &str, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let s = StickSet::open_unchecked(set).unwrap();
    let img = s.image(user).unwrap();
    let m = homestick_image::manifest::Manifest::parse(
        &homestick_image::verify::read_statement(&img)
            .unwrap()
            .manifest,
    )
    .unwrap();
    let p = m.partitions.iter().find(|p| p.name == "profile").unwrap();
    let mut part = vec![0u8; p.len() as usize];
    img.read_exact_at(&mut part, p.offset()).unwrap();
    let fat = dir.join(format!("{user}.profile.fat"));
    fs::write(&fat, &part).unwrap();
    let out = dir.join(format!("{user}.files"));
    fs::create_dir_all(&out).unwrap();
    let r = tool(
        "mcopy",
        &[
            "-s",
            "-n",
            "-i",
            fat.to_str().unwrap(),
            "::/",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    files_under(&out)
}

#[test]
fn three_users_exports_load_into_wireguard_and_only_a_changed_user_fails() {
    let fx = Fixture::new();
    let (profile, filled) = filled_roster(fx.dir.path(), 3);
    let values = roster_values(&filled);
    let p = profile.to_str().unwrap();
    let r = hs(&["roster", "check", "--profile", p, filled.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.all());

    // Exports: a real WireGuard peer (wireguard-go, userspace) takes the [Peer] sections.
    let srv = fx.path("server");
    let r = hs(&[
        "roster",
        "export",
        "--profile",
        p,
        filled.to_str().unwrap(),
        "--out",
        srv.to_str().unwrap(),
        "--ha1",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let peers = fs::read_to_string(srv.join("wireguard-buero-peers.conf")).unwrap();
    let pbx = fs::read_to_string(srv.join("pbx-users.csv")).unwrap();
    for v in values.values() {
        for secret in [&v["vpn.buero.private_key"], &v["sip.password"]] {
            assert!(!peers.contains(secret.as_str()) && !pbx.contains(secret.as_str()));
        }
    }
    let ns = Netns::new("wg");
    let conf = fx.path("wg.conf");
    fs::write(
        &conf,
        format!(
            "[Interface]\nPrivateKey = {}\nListenPort = 51820\n{peers}",
            "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
        ),
    )
    .unwrap();
    let r = sh(&format!(
        "ip netns exec {ns} wireguard-go -f wg-hs > {log} 2>&1 & \
         for i in $(seq 50); do ip netns exec {ns} wg show wg-hs >/dev/null 2>&1 && break; sleep 0.1; done; \
         ip netns exec {ns} wg setconf wg-hs {conf} && ip netns exec {ns} wg show wg-hs allowed-ips",
        ns = ns.0,
        log = fx.path("wireguard-go.log").display(),
        conf = conf.display()
    ));
    assert_eq!(r.code, 0, "{}", r.all());
    let loaded: BTreeMap<String, String> = r
        .stdout
        .lines()
        .map(|l| {
            let (k, ip) = l.split_once('\t').unwrap();
            (k.to_string(), ip.to_string())
        })
        .collect();
    assert_eq!(loaded.len(), 3, "{}", r.stdout);
    for (u, v) in &values {
        let public = wg_pubkey(&v["vpn.buero.private_key"]);
        assert_eq!(
            loaded.get(&public),
            Some(&v["vpn.buero.address"]),
            "{u}: wg pubkey of the stick's key is a peer with its address"
        );
        // The PBX line: HA1 = MD5(user:realm:password), realm the registrar's host.
        let r = sh(&format!(
            "printf '%s' '{}:sip.musterhausen.example:{}' | md5sum | cut -d' ' -f1",
            v["sip.user"], v["sip.password"]
        ));
        assert!(
            pbx.contains(&format!(
                "{},{},{},{}",
                v["sip.extension"],
                v["sip.user"],
                v["display_name"],
                r.stdout.trim()
            )),
            "{pbx}"
        );
    }
    drop(ns);

    // A roster with a value still to generate: no set, exit 2, line and column named.
    let raw = fx.path("roster.csv");
    let bad_out = fx.path("bad-set");
    let r = build_set_run(&fx, &profile, &raw, &bad_out);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("line 2, column sip.password: not filled yet"),
        "{}",
        r.stderr
    );
    assert!(!bad_out.exists());
    assert!(
        fs::read_dir(fx.dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".partial")),
        "no partial output"
    );

    // The set: every user verifies; each profile holds no placeholder and is the profile's
    // own rendering with the user's values in the slots.
    let (set, built) = build_set(&fx, &profile, &filled, "set");
    let r = verify_all(&set);
    assert_eq!(r.code, 0, "{}", r.all());
    // No secret in what the build and the check print, nor in the set's index.
    let index = fs::read_to_string(set.join("set.json")).unwrap();
    for v in values.values() {
        for secret in [&v["vpn.buero.private_key"], &v["sip.password"]] {
            for (what, text) in [
                ("build", built.all()),
                ("verify", r.all()),
                ("set.json", index.clone()),
            ] {
                assert!(
                    !text.contains(secret.as_str()),
                    "a secret in {what}'s output"
                );
            }
        }
    }
    use std::os::unix::fs::PermissionsExt;
    for e in fs::read_dir(set.join("users")).unwrap() {
        let mode = e.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a user's part holds their secrets");
    }
    assert!(r.stdout.contains("all 3 user(s)"), "{}", r.stdout);
    let rendered = fx.path("rendered");
    let r = hs(&["profile", "render", p, "--out", rendered.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.all());
    let template = files_under(&rendered);
    let mut per_user = BTreeMap::new();
    for (u, v) in &values {
        let files = user_profile_files(&set, u, fx.dir.path());
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            template.keys().collect::<Vec<_>>(),
            "{u}: the same files"
        );
        for (name, data) in &files {
            let text = String::from_utf8_lossy(data).to_string();
            assert!(!text.contains("{{"), "{u}: {name} has a placeholder");
            if name == "profile.json" {
                let mut doc: serde_json::Value = serde_json::from_slice(data).unwrap();
                assert_eq!(doc["user"]["id"], u.as_str());
                doc.as_object_mut().unwrap().remove("user");
                let t: serde_json::Value = serde_json::from_slice(&template[name]).unwrap();
                assert_eq!(doc, t, "{u}: profile.json differs only by its user");
                continue;
            }
            if data == &template[name] {
                continue;
            }
            // Each value back into its slot gives the profile's own file.
            let mut back = text.clone();
            for (slot, val) in v {
                if slot != "user_id" && slot != "display_name" {
                    back = back.replace(val.as_str(), &format!("{{{{{slot}}}}}"));
                }
            }
            assert_eq!(
                back,
                String::from_utf8_lossy(&template[name]),
                "{u}: {name} differs from the profile only in the user's values"
            );
        }
        per_user.insert(u.clone(), files);
    }
    assert_ne!(per_user["user000"], per_user["user001"]);

    // One byte of user001's part changed: only user001 fails.
    let part = set.join("users/user001.part");
    let mut b = fs::read(&part).unwrap();
    let at = b.len() - 100;
    b[at] ^= 1;
    fs::write(&part, b).unwrap();
    let r = verify_all(&set);
    assert_eq!(r.code, 1, "{}", r.all());
    let bad: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.contains("NOT TRUSTED  "))
        .collect();
    assert_eq!(bad.len(), 1, "{}", r.stdout);
    assert!(bad[0].ends_with("user001"), "{}", r.stdout);
    assert_eq!(
        r.stdout.matches("trusted      user").count(),
        2,
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("1 of 3 user(s) failed"), "{}", r.stdout);

    // set.json changed after signing: the whole set is not trusted.
    let index = set.join("set.json");
    let text = fs::read_to_string(&index)
        .unwrap()
        .replace("Person 0", "Person X");
    fs::write(&index, text).unwrap();
    let r = verify_all(&set);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout
            .contains("set.json.sig: the signature does not verify with any trusted key"),
        "{}",
        r.stdout
    );
}

fn flash_args(set: &Path, ledger: &str, loops: &[Loop], report: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "flash".into(),
        set.display().to_string(),
        "--keyring".into(),
        test_pub().display().to_string(),
        "--allow-non-removable".into(),
        "--yes".into(),
        "--ledger".into(),
        ledger.into(),
        "--report".into(),
        report.display().to_string(),
    ];
    for l in loops {
        args.push("--target".into());
        args.push(l.0.clone());
    }
    args
}

fn ledger_rows(ledger: &str) -> Vec<serde_json::Value> {
    ledger_rows_with(ledger, &[])
}

/// [`ledger_rows`] with more arguments (a PostgreSQL ledger's `--ledger-ca`).
fn ledger_rows_with(ledger: &str, extra: &[String]) -> Vec<serde_json::Value> {
    let mut a: Vec<String> = vec!["ledger".into(), "--ledger".into(), ledger.into()];
    a.extend(extra.iter().cloned());
    a.extend(["list".into(), "--json".into()]);
    let r = hs(&a);
    assert_eq!(r.code, 0, "{}", r.all());
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_600_user_set_gives_four_loop_devices_four_users_and_revoke_names_their_keys() {
    let fx = Fixture::new();
    let (profile, filled) = filled_roster(fx.dir.path(), 600);
    let values = roster_values(&filled);
    let started = Instant::now();
    let (set, r) = build_set(&fx, &profile, &filled, "set600");
    let secs = started.elapsed().as_secs_f64();
    let s = StickSet::open_unchecked(&set).unwrap();
    let parts: u64 = s.index.users.iter().map(|u| u.part_bytes).sum();
    let shared = fs::metadata(set.join("shared.img")).unwrap().len();
    eprintln!(
        "600-user set: built in {secs:.1} s; image {} MiB; users' parts {:.1} MiB ({:.1} KiB per user); {}",
        shared >> 20,
        parts as f64 / 1048576.0,
        parts as f64 / 600.0 / 1024.0,
        r.stdout.lines().nth(1).unwrap_or("")
    );
    assert_eq!(s.index.users.len(), 600);
    assert!(
        s.index.users.iter().all(|u| u.part_bytes <= 1 << 20),
        "at most 1 MiB per user"
    );
    let ids: BTreeSet<_> = s.index.users.iter().map(|u| u.image_id).collect();
    assert_eq!(ids.len(), 600, "an image id per user");

    let files: Vec<PathBuf> = (0..4)
        .map(|i| junk_file(fx.dir.path(), &format!("stick{i}"), shared + (1 << 20)))
        .collect();
    let loops: Vec<Loop> = files.iter().map(|f| Loop::attach(f, &[])).collect();
    let ledger = fx.path("ledger.sqlite").display().to_string();
    let report = fx.path("report.jsonl");
    let r = hs(&flash_args(&set, &ledger, &loops, &report));
    assert_eq!(r.code, 0, "{}", r.all());
    let mut users = BTreeSet::new();
    for l in &loops {
        let v = verify(Path::new(&l.0), &test_pub());
        assert_eq!(v.code, 0, "{}: {}", l.0, v.all());
        let j = inspect_json(Path::new(&l.0));
        users.insert(j["user"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(users.len(), 4, "four different users: {users:?}");
    assert_eq!(
        users,
        ["user000", "user001", "user002", "user003"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "the first four without a stick, in roster order"
    );
    let rows = ledger_rows(&ledger);
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let numbers: BTreeSet<String> = loops
        .iter()
        .map(|l| {
            tool("stat", &["-c", "%Hr:%Lr", &l.0])
                .stdout
                .trim()
                .to_string()
        })
        .collect();
    for row in &rows {
        assert_eq!(row["result"], "good", "{row}");
        assert!(users.contains(row["user_id"].as_str().unwrap()));
        // The device number each stick was written and read back through.
        assert!(
            numbers.contains(row["device_number"].as_str().unwrap()),
            "{row}: not one of {numbers:?}"
        );
    }
    for u in &users {
        assert!(
            r.stderr
                .lines()
                .any(|l| l.contains("writing the stick of Person") && l.contains(&format!("({u})"))),
            "the stick's line names its user: {}",
            r.stderr
        );
    }

    let r = hs(&["ledger", "--ledger", &ledger, "export", "--csv"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.stdout.lines().count(), 5, "{}", r.stdout);
    assert!(r
        .stdout
        .starts_with("id,started,finished,station,device,serial,customer,set_id,user_id"));
    let r = hs(&["ledger", "--ledger", &ledger, "user", "user001"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("user        user001 (Person 1)"),
        "{}",
        r.stdout
    );
    let r = hs(&["inspect", set.to_str().unwrap()]);
    assert!(r.stdout.contains("users        600"), "{}", r.stdout);

    // A lost stick: revoke prints its WireGuard public key and SIP user, lists its image id.
    let list = fx.path("revoked.json");
    let r = hs(&[
        "ledger",
        "--ledger",
        &ledger,
        "revoke",
        "--user",
        "user002",
        "--revocation-list",
        list.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let v = &values["user002"];
    let public = wg_pubkey(&v["vpn.buero.private_key"]);
    assert!(r.stdout.contains(&public), "{}", r.stdout);
    assert!(!r.stdout.contains(&v["vpn.buero.private_key"]));
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains("SIP user") && l.ends_with(&v["sip.user"])),
        "{}",
        r.stdout
    );
    let image_id = s.index.user("user002").unwrap().image_id.to_string();
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(&list).unwrap()).unwrap();
    assert_eq!(doc["image_ids"], serde_json::json!([image_id]));
    let rows = ledger_rows(&ledger);
    let revoked: Vec<_> = rows.iter().filter(|r| r["result"] == "revoked").collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["user_id"], "user002");
}

/// A PostgreSQL cluster in a temporary directory, run as the `postgres` user, stopped on drop.
struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Postgres {
    fn start() -> Postgres {
        let bin = fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL (Debian package postgresql)")
            .map(|e| e.unwrap().path().join("bin"))
            .find(|b| b.join("initdb").exists())
            .expect("initdb");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // A free port of this machine (tests run side by side, each with its own server).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The server speaks TLS with a certificate for 127.0.0.1 from a CA of the test's own.
        let r = sh(&format!(
            "cd {d} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
             -subj '/CN=homestick ledger test CA' -keyout ca.key -out ca.pem 2>/dev/null && \
             openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
             -keyout server.key -out server.csr 2>/dev/null && \
             printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && \
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
             -extfile san.ext -out server.pem 2>/dev/null && \
             chown postgres server.key server.pem && chmod 600 server.key",
            d = dir.path().display()
        ));
        assert_eq!(r.code, 0, "{}", r.all());
        let r = sh(&format!(
            "chown postgres {d} && runuser -u postgres -- {b}/initdb -D {data} -A trust -U postgres >/dev/null && \
             runuser -u postgres -- {b}/pg_ctl -D {data} -l {d}/log -w -o '-p {port} -k {d} -c listen_addresses=127.0.0.1 \
             -c ssl=on -c ssl_cert_file={d}/server.pem -c ssl_key_file={d}/server.key' start",
            d = dir.path().display(),
            b = bin.display(),
            data = data.display()
        ));
        assert_eq!(r.code, 0, "{}", r.all());
        Postgres { dir, bin, port }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `--ledger-ca` with the server's CA.
    fn ca_args(&self) -> Vec<String> {
        vec![
            "--ledger-ca".into(),
            self.dir.path().join("ca.pem").display().to_string(),
        ]
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = sh(&format!(
            "runuser -u postgres -- {}/pg_ctl -D {}/data -m immediate stop",
            self.bin.display(),
            self.dir.path().display()
        ));
    }
}

#[test]
fn two_stations_racing_never_hand_a_user_out_twice_in_sqlite_and_postgresql() {
    let fx = Fixture::new();
    let (profile, filled) = filled_roster(fx.dir.path(), 4);
    let (set, _) = build_set(&fx, &profile, &filled, "set4");
    let size = fs::metadata(set.join("shared.img")).unwrap().len();
    let pg = Postgres::start();
    let sqlite = fx.path("shared-ledger.sqlite").display().to_string();
    let cases = [
        ("sqlite", sqlite, vec![]),
        ("postgresql over TLS", pg.url(), pg.ca_args()),
    ];
    table(
        &cases,
        |(name, ..)| name.to_string(),
        |(name, ledger, extra)| {
            // Two stations, three sticks each, four users: four good sticks, two not written.
            let loops: Vec<Vec<Loop>> = (0..2)
                .map(|s| {
                    (0..3)
                        .map(|i| {
                            Loop::attach(
                                &junk_file(
                                    fx.dir.path(),
                                    &format!("{name}-st{s}-{i}"),
                                    size + (1 << 20),
                                ),
                                &[],
                            )
                        })
                        .collect()
                })
                .collect();
            let children: Vec<_> = loops
                .iter()
                .enumerate()
                .map(|(s, l)| {
                    let report = fx.path(&format!("{name}-report{s}.jsonl"));
                    Command::new(bin())
                        .args(flash_args(&set, ledger, l, &report))
                        .args(extra)
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            let outs: Vec<_> = children
                .into_iter()
                .map(|c| c.wait_with_output().unwrap())
                .collect();
            let all: String = outs
                .iter()
                .map(|o| String::from_utf8_lossy(&o.stderr).to_string())
                .collect();
            let rows = ledger_rows_with(ledger, extra);
            let good: Vec<&str> = rows
                .iter()
                .filter(|r| r["result"] == "good")
                .map(|r| r["user_id"].as_str().unwrap())
                .collect();
            let distinct: BTreeSet<&str> = good.iter().copied().collect();
            if rows.len() != 4 || good.len() != 4 || distinct.len() != 4 {
                return Err(format!("rows {rows:#?}\n{all}"));
            }
            if all.matches("every user of the set has a stick").count() < 2 {
                return Err(format!("two sticks not written: {all}"));
            }
            // Every stick the stations call verified holds the user the ledger says.
            let mut on_sticks = BTreeSet::new();
            for l in loops.iter().flatten() {
                if verify(Path::new(&l.0), &test_pub()).code == 0 {
                    on_sticks.insert(
                        inspect_json(Path::new(&l.0))["user"]["id"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                    );
                }
            }
            let ledger_users: BTreeSet<String> = distinct.iter().map(|s| s.to_string()).collect();
            if on_sticks != ledger_users {
                return Err(format!("sticks {on_sticks:?} vs ledger {ledger_users:?}"));
            }
            Ok(())
        },
    );
}

#[test]
fn a_flash_killed_mid_way_leaves_a_row_to_check_never_a_good_one_and_the_user_waits_for_the_check()
{
    let fx = Fixture::new();
    let (profile, filled) = filled_roster(fx.dir.path(), 2);
    let (set, _) = build_set(&fx, &profile, &filled, "set2");
    let size = fs::metadata(set.join("shared.img")).unwrap().len();
    let stick = Loop::attach(&junk_file(fx.dir.path(), "stick", size + (1 << 20)), &[]);
    let ledger = fx.path("ledger.sqlite").display().to_string();
    let report = fx.path("report.jsonl");
    let mut child = Command::new(bin())
        .args(flash_args(
            &set,
            &ledger,
            std::slice::from_ref(&stick),
            &report,
        ))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if line.contains("writing the stick of") {
            break;
        }
    }
    assert!(line.contains("writing the stick of"), "{line}");
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();
    let rows = ledger_rows(&ledger);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    // Nobody knows how far it got: the row needs a check, and its user is not handed out.
    assert_eq!(rows[0]["result"], "needs-check", "{rows:#?}");
    assert!(
        rows[0]["error"]
            .as_str()
            .unwrap()
            .contains("ended while writing"),
        "{rows:#?}"
    );
    assert_ne!(verify(Path::new(&stick.0), &test_pub()).code, 0);
    let user = rows[0]["user_id"].as_str().unwrap().to_string();
    let mut args = flash_args(&set, &ledger, std::slice::from_ref(&stick), &report);
    args.extend(["--user".into(), user.clone()]);
    let r = hs(&args);
    assert_eq!(r.code, 2, "the user waits for the check: {}", r.all());
    // The technician checks the stick: it does not hold the user's image, so the row fails
    // and the user is free again: --user gives that user's stick; then that user is taken.
    let row = rows[0]["id"].to_string();
    let r = hs(&[
        "ledger",
        "--ledger",
        &ledger,
        "check",
        &row,
        &stick.0,
        "--keyring",
        test_pub().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("failed (checked: "), "{}", r.stdout);
    assert_eq!(ledger_rows(&ledger)[0]["result"], "failed");
    let r = hs(&args);
    assert_eq!(r.code, 0, "{}", r.all());
    let r2 = hs(&args);
    assert_eq!(r2.code, 2, "{}", r2.all());
    assert!(
        r2.stderr
            .contains(&format!("--user {user}: already has a stick")),
        "{}",
        r2.stderr
    );
    assert_eq!(
        inspect_json(Path::new(&stick.0))["user"]["id"],
        rows[0]["user_id"]
    );
}

#[test]
fn certificates_come_from_pem_files_beside_the_roster_and_their_serials_are_revoked() {
    let fx = Fixture::new();
    let d = fx.dir.path();
    // Two users' client certificates and keys, made by openssl.
    for u in ["eva", "jan"] {
        let r = sh(&format!(
            "cd {d} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
             -keyout {u}.key -out {u}.crt -days 30 -subj /CN={u}.waldbach.example 2>/dev/null && \
             openssl x509 -in {u}.crt -noout -serial",
            d = d.display()
        ));
        assert_eq!(r.code, 0, "{}", r.all());
    }
    let serial = |u: &str| {
        sh(&format!(
            "openssl x509 -in {}/{u}.crt -noout -serial | cut -d= -f2 | tr A-F a-f",
            d.display()
        ))
        .stdout
        .trim()
        .trim_start_matches('0')
        .to_string()
    };
    let header = "user_id,display_name,sip.extension,sip.password,sip.user,vpn.ikev2.eap_identity,vpn.ikev2.eap_password,vpn.rathaus.client_certificate,vpn.rathaus.client_key,vpn.rathaus.password,vpn.rathaus.username";
    let roster = d.join("roster.csv");
    let profile = root().join("profiles/gemeinde-waldbach");
    let write =
        |rows: &[&str]| fs::write(&roster, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    let eva = "eva,Eva Roth,301,Pw-eva-0123456789,eva,eva,Eap-eva-0123456789,eva.crt,eva.key,Vpn-eva-0123456789,eva";
    let jan = "jan,Jan Berg,302,Pw-jan-0123456789,jan,jan,Eap-jan-0123456789,jan.crt,jan.key,Vpn-jan-0123456789,jan";

    // Bad: a missing file, a key where the certificate goes, one certificate for two users.
    let p = profile.to_str().unwrap();
    let cases = [
        (
            jan.replace("jan.crt", "nobody.crt"),
            "line 3, column vpn.rathaus.client_certificate: cannot read the file it names",
        ),
        (
            jan.replace("jan.crt", "jan.key"),
            "line 3, column vpn.rathaus.client_certificate: the PEM file",
        ),
        (
            jan.replace("jan.crt", "eva.crt"),
            "line 3, column vpn.rathaus.client_certificate: the same certificate serial as line 2",
        ),
        (
            jan.replace(",Vpn-jan-0123456789,jan", ",Vpn-jan-0123456789,eva"),
            "line 3, column vpn.rathaus.username: the same VPN user name as line 2",
        ),
        (
            jan.replace(",jan,Eap-jan", ",eva,Eap-jan"),
            "line 3, column vpn.ikev2.eap_identity: the same VPN user name as line 2",
        ),
    ];
    table(
        &cases,
        |(_, want)| want.to_string(),
        |(row, want)| {
            write(&[eva, row]);
            let r = hs(&["roster", "check", "--profile", p, roster.to_str().unwrap()]);
            let key = fs::read_to_string(d.join("eva.key")).unwrap();
            match (
                r.code,
                r.stderr.contains(want),
                r.all().contains(key.trim()),
            ) {
                (2, true, false) => Ok(()),
                _ => Err(r.all()),
            }
        },
    );

    write(&[eva, jan]);
    let (set, _) = build_set(&fx, &profile, &roster, "waldbach-set");
    let r = verify_all(&set);
    assert_eq!(r.code, 0, "{}", r.all());
    let files = user_profile_files(&set, "jan", d);
    let ovpn = String::from_utf8(files["openvpn/rathaus.ovpn"].clone()).unwrap();
    let crt = fs::read_to_string(d.join("jan.crt")).unwrap();
    assert!(ovpn.contains(crt.trim()), "{ovpn}");
    let s = StickSet::open_unchecked(&set).unwrap();
    let creds = &s.index.user("jan").unwrap().credentials;
    let got = creds
        .iter()
        .find(|c| c.kind == "certificate-serial")
        .map(|c| c.value.trim_start_matches('0').to_string());
    assert_eq!(got, Some(serial("jan")), "{creds:?}");
}

#[test]
fn revoking_a_stick_of_a_customer_wide_image_or_a_shared_serial_asks_before_it_takes_others() {
    let fx = Fixture::new();
    let img = fx.build("wide.img");
    let size = fs::metadata(&img).unwrap().len();
    // Two sticks of one customer-wide image; loop devices report no serial, as cheap sticks
    // often share one.
    let loops: Vec<Loop> = (0..2)
        .map(|i| {
            Loop::attach(
                &junk_file(fx.dir.path(), &format!("wide-{i}"), size + (1 << 20)),
                &[],
            )
        })
        .collect();
    let ledger = fx.path("ledger.sqlite").display().to_string();
    let report = fx.path("report.jsonl");
    let r = hs(&flash_args(&img, &ledger, &loops, &report));
    assert_eq!(r.code, 0, "{}", r.all());
    let rows = ledger_rows(&ledger);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let list = fx.path("revoked.json");
    let revoke = |extra: &[&str]| {
        let mut a = vec![
            "ledger",
            "--ledger",
            &ledger,
            "revoke",
            "--revocation-list",
            list.to_str().unwrap(),
        ];
        a.extend(extra);
        hs(&a)
    };
    // The serial (none) matches both: which one was lost?
    let r = revoke(&["--serial", ""]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("matches 2 sticks"), "{}", r.stderr);
    assert!(r.stderr.contains("give --id"), "{}", r.stderr);
    // One stick of a customer-wide image: its image id is both sticks'.
    let first = rows[0]["id"].to_string();
    let r = revoke(&["--id", &first]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("revokes all 2 stick(s)") && r.stderr.contains("--all-sticks-of-image"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("rotate them"), "{}", r.stderr);
    assert!(!list.exists(), "nothing written before the answer");
    assert!(ledger_rows(&ledger).iter().all(|r| r["result"] == "good"));
    let r = revoke(&["--id", &first, "--all-sticks-of-image"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(ledger_rows(&ledger)
        .iter()
        .all(|r| r["result"] == "revoked"));
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(&list).unwrap()).unwrap();
    assert_eq!(doc["image_ids"], serde_json::json!([rows[0]["image_id"]]));
}

#[test]
fn a_postgresql_ledger_is_reached_over_verified_tls_or_only_in_clear_by_name() {
    let pg = Postgres::start();
    let url = pg.url();
    let list = |extra: &[&str]| {
        let mut a = vec!["ledger", "--ledger", &url];
        a.extend(extra);
        a.push("list");
        hs(&a)
    };
    let ca = pg.ca_args();
    // The server's own CA: TLS, verified.
    let r = list(&[&ca[0], &ca[1]]);
    assert_eq!(r.code, 0, "{}", r.all());
    // Without it, the system's CAs do not know the server's: refused, named.
    let r = list(&[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("certificate"), "{}", r.stderr);
    // Another CA: refused too.
    let other = tempfile::tempdir().unwrap();
    let o = other.path().join("other-ca.pem");
    let g = sh(&format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=other \
         -keyout {k} -out {o} 2>/dev/null",
        k = other.path().join("k").display(),
        o = o.display()
    ));
    assert_eq!(g.code, 0, "{}", g.all());
    let r = list(&["--ledger-ca", o.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("certificate"), "{}", r.stderr);
    // sslmode=disable in the URL is refused unless plain TCP is asked for by name; a password
    // in the URL never shows in a message.
    let plain = format!("{url}?sslmode=disable&password=hunter2");
    let r = hs(&["ledger", "--ledger", &plain, "list"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("--ledger-insecure-plaintext"),
        "{}",
        r.stderr
    );
    assert!(!r.all().contains("hunter2"), "{}", r.all());
    let r = hs(&[
        "ledger",
        "--ledger",
        &plain,
        "--ledger-insecure-plaintext",
        "list",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn verify_all_checks_shared_img_against_set_json() {
    let fx = Fixture::new();
    let (profile, filled) = filled_roster(fx.dir.path(), 2);
    let (set, _) = build_set(&fx, &profile, &filled, "set-shared");
    assert_eq!(verify_all(&set).code, 0);
    // One byte near the end of shared.img, before its backup GPT.
    let shared = set.join("shared.img");
    let mut b = fs::read(&shared).unwrap();
    let at = b.len() - (2 << 20);
    b[at] ^= 0x01;
    fs::write(&shared, b).unwrap();
    let r = verify_all(&set);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("shared image") && r.stdout.contains("is not set.json's shared_sha256"),
        "{}",
        r.stdout
    );
}
