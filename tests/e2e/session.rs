//! The real home-office system, end to end: a stick from the `headless` base (built by
//! `homestick base build`, with the test-only virtio-serial shell) for a 3-user roster boots in
//! QEMU with OVMF and Secure Boot enforced, inside a network namespace the test makes as "the
//! office": a tap device for the PC, dnsmasq as the home router (DHCP, DNS for the VPN
//! servers), the VPN server, and behind the tunnel a DNS server, kamailio (SIP with digest
//! auth) and an auto-answering baresip extension. Nothing leaves the namespace: it has no link
//! to the host.
//!
//! Both example customers, each through its own VPN: Stadt Musterhausen with WireGuard
//! (wireguard-go; the host may lack the kernel module) and SIP over TLS, Gemeinde Waldbach with
//! OpenVPN (certificate and password, tls-crypt) and SIP over TCP.
//!
//! The test reads: the console lines of the session, the VPN server's view of the user
//! (`wg show latest-handshakes`, OpenVPN's client list), kamailio's REGISTER log, the RTP of a
//! call at the office, a capture of the whole boot on the tap (the kill switch), and lock-down
//! checks through the test channel.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::boot::Qemu;
use crate::common::*;

/// The home router's address on the PC's network (TEST-NET-1).
const ROUTER: &str = "192.0.2.1";
/// The profile's allowed direct destination (Musterhausen's), and one it does not allow.
const DIRECT_OK: &str = "198.51.100.7";
const DIRECT_NO: &str = "198.51.100.8";
/// The payload of packets to the VPN server's port sent without the VPN daemon's mark.
const UNMARKED: &str = "homestick-kill-switch-unmarked";
/// The PC's MAC address in QEMU.
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tunnel {
    WireGuard,
    OpenVpn,
}

/// One example customer as its office is set up in the test.
struct Site {
    tunnel: Tunnel,
    /// The profile under profiles/.
    customer: &'static str,
    /// The default VPN's name (also the stick's tunnel interface).
    vpn: &'static str,
    /// The VPN servers' names (the home router answers them with its own address) and the
    /// UDP ports of the profile's servers.
    servers: &'static [&'static str],
    ports: &'static [u16],
    /// The SIP domain (the AOR's host) first, then other names of the PBX.
    sip_names: &'static [&'static str],
    /// The profile's SIP transport, as kamailio's `$pr` names it.
    sip_proto: &'static str,
    /// Inside the office, behind the tunnel: the PBX, the DNS server (the profile's), the
    /// extension 2000 (all in the PBX's /16).
    sip: &'static str,
    dns: &'static str,
    ext: &'static str,
    /// How extension 2000 encrypts media (baresip `mediaenc`), matching the profile's `srtp`.
    ext_menc: &'static str,
    /// The profile allows [`DIRECT_OK`] outside the tunnel.
    direct: bool,
    /// The console line when the tunnel's peer is gone (in the customer's language).
    down: &'static str,
}

const MUSTERHAUSEN: Site = Site {
    tunnel: Tunnel::WireGuard,
    customer: "stadt-musterhausen",
    vpn: "buero",
    servers: &["vpn.musterhausen.example"],
    ports: &[51820],
    sip_names: &["sip.musterhausen.example", "sbc.musterhausen.example"],
    sip_proto: "tls",
    sip: "10.20.0.5",
    dns: "10.20.0.53",
    ext: "10.20.0.6",
    ext_menc: "srtp-mand",
    direct: true,
    // The profile speaks German and English: "VPN buero getrennt … / vpn buero down: …".
    down: "vpn buero down: no answer through the tunnel",
};

const WALDBACH: Site = Site {
    tunnel: Tunnel::OpenVpn,
    customer: "gemeinde-waldbach",
    vpn: "rathaus",
    servers: &["vpn1.waldbach.example", "vpn2.waldbach.example"],
    ports: &[1194, 443],
    sip_names: &["pbx.waldbach.example"],
    sip_proto: "tcp",
    sip: "10.30.0.5",
    dns: "10.30.0.10",
    ext: "10.30.0.6",
    // srtp = "optional": SRTP offered in an RTP/AVP offer, taken when the answer has it.
    ext_menc: "srtp",
    direct: false,
    // German only.
    down: "VPN rathaus getrennt: keine Antwort durch den Tunnel",
};

/// OpenVPN's pool for the users' tunnel addresses at the office.
const OVPN_POOL: &str = "10.97.0.0";

fn headless_base() -> PathBuf {
    homestick_testkit::env::headless_base()
}

fn sh_ok(script: &str) -> String {
    let r = sh(script);
    assert_eq!(r.code, 0, "{script}\n{}", r.all());
    r.stdout
}

/// A process killed and reaped when dropped.
struct Bg(Child, &'static str);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The office: a network namespace and the servers in it; dropping it stops them all and
/// deletes the namespace.
struct Office {
    ns: String,
    /// The VPN server's tunnel interface (wireguard-go's control socket is machine-wide: one
    /// name per run).
    tun: String,
    dir: PathBuf,
    procs: Vec<Bg>,
}

impl Drop for Office {
    fn drop(&mut self) {
        self.procs.clear();
        // Whatever the servers forked (kamailio's workers outlive their killed parent) still
        // runs in the namespace: stop every process in it before deleting it.
        for _ in 0..50 {
            let pids = Command::new("ip")
                .args(["netns", "pids", &self.ns])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let pids: Vec<&str> = pids.split_whitespace().collect();
            if pids.is_empty() {
                break;
            }
            let _ = Command::new("kill").arg("-9").args(&pids).status();
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = fs::remove_file(format!("/var/run/wireguard/{}.sock", self.tun));
    }
}

impl Office {
    fn exec(&self, script: &str) -> String {
        sh_ok(&format!(
            "ip netns exec {} sh -c '{}'",
            self.ns,
            script.replace('\'', "'\\''")
        ))
    }

    fn spawn(&mut self, name: &'static str, args: &[&str]) {
        let log = fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        self.procs.push(Bg(child, name));
    }

    fn stop(&mut self, name: &str) {
        self.procs.retain(|p| p.1 != name);
    }

    fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }
}

/// A P-256 key `NAME.key` and its certificate `NAME.pem` from the test CA, for `cn` with the
/// subjectAltNames `dns` and the extended key usage `eku`.
fn issue(dir: &Path, name: &str, cn: &str, dns: &[&str], eku: &str) {
    let san: Vec<String> = dns.iter().map(|d| format!("DNS:{d}")).collect();
    let san = if san.is_empty() {
        String::new()
    } else {
        format!("subjectAltName={}\\n", san.join(","))
    };
    sh_ok(&format!(
        "cd {d} && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN={cn}' \
         -keyout {name}.key -out {name}.csr 2>/dev/null && chmod 600 {name}.key && \
         printf '{san}keyUsage=critical,digitalSignature,keyAgreement\\nextendedKeyUsage={eku}\\n' > {name}.ext && \
         openssl x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -extfile {name}.ext -out {name}.pem 2>/dev/null",
        d = dir.display()
    ));
}

/// The test CA and the SIP server's certificate (for the site's PBX names).
fn test_ca(dir: &Path, site: &Site) {
    sh_ok(&format!(
        "cd {d} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
         -subj '/O=homestick tests/CN=homestick office test CA (TEST ONLY)' -keyout ca.key -out ca.pem 2>/dev/null",
        d = dir.display()
    ));
    issue(dir, "sip", site.sip_names[0], site.sip_names, "serverAuth");
}

/// The example customer as the office knows it, no STUN (the office has none). Musterhausen:
/// the office's WireGuard server key, the test CA for SIP, an address pool, one allowed direct
/// destination. Waldbach: the test CA for OpenVPN and a new tls-crypt key.
fn office_profile(dir: &Path, site: &Site, server_pub: &str) -> PathBuf {
    let p = dir.join("profile");
    sh_ok(&format!(
        "cp -r {} {}",
        root().join("profiles").join(site.customer).display(),
        p.display()
    ));
    let toml = p.join("customer.toml");
    let text = fs::read_to_string(&toml).unwrap();
    let mut out = String::new();
    if site.tunnel == Tunnel::OpenVpn {
        for line in text.lines().filter(|l| !l.starts_with("stun")) {
            out.push_str(line);
            out.push('\n');
        }
        fs::write(&toml, out).unwrap();
        fs::copy(dir.join("ca.pem"), p.join("certs/vpn-ca.pem")).unwrap();
        sh_ok(&format!(
            "openvpn --genkey secret {k} && chmod 600 {k}",
            k = p.join("keys/tls-crypt.key").display()
        ));
        return p;
    }
    for line in text.lines() {
        if line.starts_with("server_public_key") {
            out.push_str(&format!("server_public_key = \"{server_pub}\"\n"));
        } else if line.starts_with("persistent_keepalive") {
            out.push_str(line);
            out.push_str("\naddress_pool = \"10.99.0.0/22\"\n");
        } else if line.starts_with("stun") {
            continue;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "\n[[network.direct]]\nname = \"video\"\nto = \"{DIRECT_OK}\"\nports = [\"tcp/443\"]\n"
    ));
    fs::write(&toml, out).unwrap();
    fs::copy(dir.join("ca.pem"), p.join("certs/sip-ca.pem")).unwrap();
    p
}

/// A 3-user roster, filled (secrets generated), and the servers' view of it. For OpenVPN
/// each user gets a client certificate (CN = user id) from the test CA.
fn roster(dir: &Path, site: &Site, profile: &Path) -> (PathBuf, PathBuf) {
    let users = [
        ("anna", "Anna Schmidt", 201),
        ("ben", "Ben Meier", 202),
        ("cem", "Cem Yilmaz", 203),
    ];
    let mut text = String::new();
    match site.tunnel {
        Tunnel::WireGuard => {
            text.push_str(crate::roster::HEADER);
            for (id, name, ext) in users {
                text.push_str(&format!(
                    "\n{id},{name},{ext},generate,{id},generate,generate"
                ));
            }
        }
        Tunnel::OpenVpn => {
            let v = site.vpn;
            text.push_str(&format!(
                "user_id,display_name,sip.extension,sip.password,sip.user,vpn.{v}.username,vpn.{v}.password,\
                 vpn.{v}.client_certificate,vpn.{v}.client_key,vpn.ikev2.eap_identity,vpn.ikev2.eap_password"
            ));
            for (id, name, ext) in users {
                issue(dir, id, id, &[], "clientAuth");
                text.push_str(&format!(
                    "\n{id},{name},{ext},generate,{id},{id}.vpn,generate,{id}.pem,{id}.key,{id},generate"
                ));
            }
        }
    }
    text.push('\n');
    let roster = dir.join("roster.csv");
    fs::write(&roster, text).unwrap();
    let filled = dir.join("filled.csv");
    let r = crate::roster::roster_fill(profile, &roster, &filled);
    assert_eq!(r.code, 0, "{}", r.all());
    let export = dir.join("server");
    let r = hs(&[
        "roster".as_ref(),
        "export".as_ref(),
        "--profile".as_ref(),
        profile.as_os_str(),
        filled.as_os_str(),
        "--out".as_ref(),
        export.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    (filled, export)
}

/// The filled roster's row of `user`, by column (no value of the test's rosters is quoted).
fn row(filled: &Path, user: &str) -> std::collections::BTreeMap<String, String> {
    let text = fs::read_to_string(filled).unwrap();
    let head = text.lines().next().unwrap();
    let l = text
        .lines()
        .find(|l| l.starts_with(&format!("{user},")))
        .unwrap();
    head.split(',')
        .zip(l.split(','))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `homestick build` of `profile` (and `extra`) on `base` to `output`, with the boot verifier
/// and the UKI signed for OVMF's snakeoil Secure Boot key.
pub(crate) fn secure_boot_build(
    dir: &Path,
    base: &Path,
    profile: &Path,
    output: &Path,
    extra: &[&str],
) {
    let r = homestick_testkit::build_args::Build::new(profile, base, output)
        .opt("--boot-verifier", homestick_testkit::env::boot_verifier())
        .snakeoil_secure_boot(dir)
        .args(extra)
        .run();
    assert_eq!(r.code, 0, "{}", r.all());
}

/// Build the set from the headless base, Secure Boot signed; returns `user`'s image.
fn build_stick(dir: &Path, profile: &Path, filled: &Path, user: &str) -> PathBuf {
    let set = dir.join("set");
    secure_boot_build(
        dir,
        &headless_base(),
        profile,
        &set,
        &["--roster", filled.to_str().unwrap()],
    );
    let s = homestick_image::set::StickSet::open_unchecked(&set).unwrap();
    let img = s.image(user).unwrap();
    let mut bytes = vec![0u8; homestick_image::disk::Disk::size(&img) as usize];
    homestick_image::disk::Disk::read_exact_at(&img, &mut bytes, 0).unwrap();
    let file = dir.join(format!("{user}.img"));
    fs::write(&file, bytes).unwrap();
    file
}

fn kamailio_cfg(dir: &Path, site: &Site, users: &str) -> PathBuf {
    let mut sets = String::new();
    for l in users.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        if f.len() >= 4 {
            sets.push_str(&format!("    $sht(users=>{}) = \"{}\";\n", f[1], f[3]));
        }
    }
    sets.push_str("    $sht(users=>ext2000) = \"office-2000\";\n");
    let tls = dir.join("tls.cfg");
    fs::write(
        &tls,
        format!(
            "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n\
             private_key = {d}/sip.key\ncertificate = {d}/sip.pem\n\n[client:default]\nverify_certificate = no\nrequire_certificate = no\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let cfg = dir.join("kamailio.cfg");
    fs::write(
        &cfg,
        format!(
            r#"#!KAMAILIO
debug=2
log_stderror=yes
children=2
tcp_children=2
enable_tls=yes
auto_aliases=no
{aliases}listen=tls:{sip}:5061
listen=tcp:{sip}:5060
listen=udp:{sip}:5060
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "auth.so"
loadmodule "htable.so"
loadmodule "tls.so"
modparam("tls", "config", "{tls}")
modparam("htable", "htable", "users=>size=4;")
modparam("usrloc", "db_mode", 0)
modparam("rr", "enable_full_lr", 1)

event_route[htable:mod-init] {{
{sets}}}

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("REGISTER")) {{
        if (!pv_www_authenticate("$td", "$sht(users=>$au)", "0")) {{
            www_challenge("$td", "0");
            exit;
        }}
        xlog("L_NOTICE", "homestick-office: REGISTER $tu auth_user=$au from $si:$sp proto=$pr digest=ok\n");
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    if (is_method("INVITE")) {{
        xlog("L_NOTICE", "homestick-office: INVITE $ru from $fu at $si proto=$pr\n");
        record_route();
    }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    t_relay();
}}
"#,
            tls = tls.display(),
            sip = site.sip,
            aliases = site
                .sip_names
                .iter()
                .map(|n| format!("alias=\"{n}\"\n"))
                .collect::<String>()
        ),
    )
    .unwrap();
    cfg
}

/// The auto-answering extension 2000: baresip that plays back what it hears (aubridge), SRTP,
/// PCMA only.
fn extension_2000(dir: &Path, site: &Site) -> PathBuf {
    let d = dir.join("ext2000");
    fs::create_dir_all(&d).unwrap();
    fs::write(
        d.join("config"),
        format!(
            "poll_method epoll\nsip_listen {}:5060\naudio_source aubridge,echo\naudio_player aubridge,echo\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aubridge.so\nmodule srtp.so\n\
             module_app account.so\nmodule_app menu.so\n",
            site.ext
        ),
    )
    .unwrap();
    fs::write(
        d.join("accounts"),
        format!(
            "<sip:2000@{domain};transport=tcp>;auth_user=ext2000;auth_pass=office-2000;\
             outbound=\"sip:{sip}:5060;transport=tcp\";mediaenc={menc};answermode=auto;audio_codecs=PCMA/8000/1;regint=600\n",
            domain = site.sip_names[0],
            sip = site.sip,
            menc = site.ext_menc
        ),
    )
    .unwrap();
    fs::write(d.join("contacts"), "").unwrap();
    d
}

/// A WireGuard key pair: (private, public).
fn wg_keys() -> (String, String) {
    let k = sh_ok("wg genkey").trim().to_string();
    let p = sh_ok(&format!("echo {k} | wg pubkey")).trim().to_string();
    (k, p)
}

/// Start the VPN server: wireguard-go with the roster's peers, or OpenVPN (certificates from
/// the test CA, the roster's users and passwords checked by a script, tls-crypt).
fn start_vpn_server(o: &mut Office, site: &Site, export: &Path, wg_private: &str) {
    let dir = o.dir.clone();
    match site.tunnel {
        Tunnel::WireGuard => {
            // The host may lack the kernel module; wireguard-go makes the interface.
            fs::write(dir.join("wg.key"), wg_private).unwrap();
            let wg = o.tun.clone();
            let _ = fs::remove_file(format!("/var/run/wireguard/{wg}.sock"));
            o.spawn("vpn", &["wireguard-go", "-f", &wg]);
            let deadline = Instant::now() + Duration::from_secs(10);
            while sh(&format!("ip netns exec {} ip link show {wg}", o.ns)).code != 0 {
                assert!(
                    Instant::now() < deadline,
                    "wireguard-go made no {wg}: {}",
                    o.log("vpn")
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            o.exec(&format!(
                "wg set {wg} private-key {k} listen-port 51820 && wg addconf {wg} {peers} && ip addr add 10.20.0.1/32 dev {wg} && \
                 ip link set {wg} up && ip route add 10.99.0.0/22 dev {wg}",
                k = dir.join("wg.key").display(),
                peers = export.join(format!("wireguard-{}-peers.conf", site.vpn)).display()
            ));
        }
        Tunnel::OpenVpn => {
            issue(
                &dir,
                "vpn-server",
                site.servers[0],
                site.servers,
                "serverAuth",
            );
            let users = export.join(format!("openvpn-{}-users.csv", site.vpn));
            // The certificate's CN must be the user whose name and password are given.
            let check = dir.join("openvpn-check");
            fs::write(
                &check,
                format!(
                    "#!/bin/sh\nu=$(sed -n 1p \"$1\"); p=$(sed -n 2p \"$1\")\n\
                     if awk -F, -v c=\"$common_name\" -v u=\"$u\" -v p=\"$p\" 'NR>1 && $1==c && $3==u && $4==p {{ok=1}} END {{exit !ok}}' {users}; then\n\
                     echo \"homestick-office: openvpn login $u accepted, certificate $common_name\"; exit 0; fi\n\
                     echo \"homestick-office: openvpn login $u refused, certificate $common_name\"; exit 1\n",
                    users = users.display()
                ),
            )
            .unwrap();
            sh_ok(&format!("chmod 755 {}", check.display()));
            let cfg = dir.join("openvpn-server.conf");
            fs::write(
                &cfg,
                format!(
                    "mode server\ntls-server\ndev {tun}\ndev-type tun\ndisable-dco\nproto udp\nlocal {ROUTER}\nport 1194\n\
                     topology subnet\nserver {OVPN_POOL} 255.255.255.0\nkeepalive 5 30\n\
                     ca {d}/ca.pem\ncert {d}/vpn-server.pem\nkey {d}/vpn-server.key\ndh none\n\
                     tls-crypt {tc}\ndata-ciphers AES-256-GCM:CHACHA20-POLY1305\ntls-version-min 1.2\n\
                     verify-client-cert require\nremote-cert-tls client\nscript-security 2\n\
                     auth-user-pass-verify {check} via-file\ntmp-dir {d}\n\
                     status {d}/openvpn-status 1\nstatus-version 2\nverb 3\n",
                    tun = o.tun,
                    d = dir.display(),
                    tc = dir.join("profile/keys/tls-crypt.key").display(),
                    check = check.display()
                ),
            )
            .unwrap();
            o.spawn("vpn", &["openvpn", "--config", cfg.to_str().unwrap()]);
            let deadline = Instant::now() + Duration::from_secs(20);
            while !o.log("vpn").contains("Initialization Sequence Completed") {
                assert!(
                    Instant::now() < deadline,
                    "the OpenVPN server did not start:\n{}",
                    o.log("vpn")
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn start_office(dir: &Path, site: &Site, export: &Path, wg_private: &str) -> Office {
    let ns = format!("hs-office-{}-{}", std::process::id(), site.vpn);
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    sh_ok(&format!("ip netns add {ns}"));
    let mut o = Office {
        tun: match site.tunnel {
            Tunnel::WireGuard => format!("hswg{}", std::process::id() % 100_000),
            Tunnel::OpenVpn => "hsovpn0".into(),
        },
        ns,
        dir: dir.to_path_buf(),
        procs: Vec::new(),
    };
    o.exec(&format!(
        "ip link set lo up && ip tuntap add dev hstap0 mode tap && ip addr add {ROUTER}/24 dev hstap0 && ip link set hstap0 up && \
         ip addr add {}/32 dev lo && ip addr add {}/32 dev lo && ip addr add {}/32 dev lo",
        site.sip, site.dns, site.ext
    ));
    // The PC reaches the router's DHCP, DNS and VPN ports; the office only through the
    // tunnel (and a destination the profile allows direct is simply not answered).
    let ports: Vec<String> = site.ports.iter().map(u16::to_string).collect();
    o.exec(&format!(
        "nft -f - <<EOF\ntable inet office {{\n chain input {{ type filter hook input priority 0; policy accept;\n  \
         iifname \"hstap0\" udp dport 67 accept\n  iifname \"hstap0\" ip daddr {ROUTER} udp dport {{53, {}}} accept\n  \
         iifname \"hstap0\" ip daddr {ROUTER} tcp dport 53 accept\n  iifname \"hstap0\" drop\n }}\n}}\nEOF",
        ports.join(", ")
    ));
    o.spawn(
        "capture-tap",
        &[
            "tcpdump",
            "-i",
            "hstap0",
            "-n",
            "-U",
            "-s",
            "0",
            "-w",
            dir.join("tap.pcap").to_str().unwrap(),
        ],
    );
    let mut router = vec![
        "dnsmasq".to_string(),
        "-k".into(),
        "--conf-file=/dev/null".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        "--interface=hstap0".into(),
        "--except-interface=lo".into(),
        "--bind-interfaces".into(),
        "--dhcp-range=192.0.2.100,192.0.2.150,1h".into(),
        "--log-queries".into(),
        "--log-dhcp".into(),
        "--log-facility=-".into(),
        "--pid-file".into(),
        "--dhcp-leasefile=/dev/null".into(),
    ];
    router.extend(
        site.servers
            .iter()
            .map(|s| format!("--address=/{s}/{ROUTER}")),
    );
    o.spawn(
        "router",
        &router.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut office_dns = vec![
        "dnsmasq".to_string(),
        "-k".into(),
        "--conf-file=/dev/null".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        format!("--listen-address={}", site.dns),
        "--bind-interfaces".into(),
        "--log-queries".into(),
        "--log-facility=-".into(),
        "--pid-file".into(),
    ];
    office_dns.extend(
        site.sip_names
            .iter()
            .map(|n| format!("--address=/{n}/{}", site.sip)),
    );
    o.spawn(
        "office-dns",
        &office_dns.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    start_vpn_server(&mut o, site, export, wg_private);
    let tun = o.tun.clone();
    o.spawn(
        "capture-tunnel",
        &[
            "tcpdump",
            "-i",
            &tun,
            "-n",
            "-U",
            "-s",
            "0",
            "-w",
            dir.join("tunnel.pcap").to_str().unwrap(),
        ],
    );
    let users = fs::read_to_string(export.join("pbx-users.csv")).unwrap();
    let cfg = kamailio_cfg(dir, site, &users);
    o.spawn(
        "kamailio",
        &[
            "kamailio",
            "-f",
            cfg.to_str().unwrap(),
            "-DD",
            "-E",
            "-m",
            "64",
            "-M",
            "8",
            "-Y",
            dir.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_secs(2));
    let ext = extension_2000(dir, site);
    o.spawn(
        "ext2000",
        &["env", "HOME=/tmp", "baresip", "-f", ext.to_str().unwrap()],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !o.log("kamailio").contains("REGISTER sip:2000@") {
        assert!(
            Instant::now() < deadline,
            "extension 2000 did not register:\n{}\n{}",
            o.log("ext2000"),
            o.log("kamailio")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    o
}

/// The test channel: a shell on the virtio-serial port homestick.test (test base only).
pub(crate) struct Channel {
    s: UnixStream,
    buf: Vec<u8>,
}

impl Channel {
    pub(crate) fn connect(path: &Path) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match UnixStream::connect(path) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                    return Channel { s, buf: Vec::new() };
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "{}: {e}", path.display());
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Run `cmd` in the booted system; its output (stdout and stderr) and exit status.
    pub(crate) fn run(&mut self, cmd: &str) -> (String, i32) {
        let tag = format!("__HS{}__", self.buf.len() ^ 0x5a5a);
        let line = format!("{cmd}\necho \"{tag}$?\"\n");
        self.s.write_all(line.as_bytes()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            if let Some(i) = text.find(&tag) {
                let rest = &text[i + tag.len()..];
                if let Some(nl) = rest.find('\n') {
                    let code = rest[..nl].trim().parse().unwrap_or(-1);
                    let out = text[..i].to_string();
                    self.buf = rest.as_bytes()[nl + 1..].to_vec();
                    return (out, code);
                }
            }
            assert!(
                Instant::now() < deadline,
                "test channel: no answer to {cmd:?}: {text}"
            );
            match self.s.read(&mut chunk) {
                Ok(0) => std::thread::sleep(Duration::from_millis(200)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut
                        || e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("test channel: {e}"),
            }
        }
    }
}

pub(crate) fn wait_console(q: &Qemu, want: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = q.console();
        if c.contains(want) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "no {want:?} on the console after {secs} s:\n{c}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One IPv4 packet from a capture.
#[derive(Debug, Clone)]
struct Pkt {
    t: f64,
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    sport: u16,
    dport: u16,
    payload: Vec<u8>,
    /// Non-IPv4 frame from the PC (ARP, anything else): its ethertype.
    other: Option<u16>,
    from_pc: bool,
}

fn ip(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// Read a pcap file (Ethernet or raw IP) into packets.
fn pcap(path: &Path) -> Vec<Pkt> {
    let b = fs::read(path).unwrap_or_default();
    if b.len() < 24 {
        return Vec::new();
    }
    let linktype = u32::from_le_bytes(b[20..24].try_into().unwrap());
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let sec = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as f64;
        let usec = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as f64;
        let len = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        let Some(frame) = b.get(at + 16..at + 16 + len) else {
            break;
        };
        at += 16 + len;
        let (from_pc, ipb) = if linktype == 1 {
            if frame.len() < 14 {
                continue;
            }
            let from_pc = frame[6..12] == MAC;
            let et = u16::from_be_bytes([frame[12], frame[13]]);
            if et != 0x0800 {
                out.push(Pkt {
                    t: sec + usec / 1e6,
                    src: [0; 4],
                    dst: [0; 4],
                    proto: 0,
                    sport: 0,
                    dport: 0,
                    payload: Vec::new(),
                    other: Some(et),
                    from_pc,
                });
                continue;
            }
            (from_pc, &frame[14..])
        } else {
            (false, frame)
        };
        if ipb.len() < 20 || ipb[0] >> 4 != 4 {
            continue;
        }
        let ihl = usize::from(ipb[0] & 15) * 4;
        let proto = ipb[9];
        let l4 = ipb.get(ihl..).unwrap_or(&[]);
        let (sport, dport, payload) = match proto {
            17 if l4.len() >= 8 => (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
                l4[8..].to_vec(),
            ),
            6 if l4.len() >= 20 => (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
                l4.get(usize::from(l4[12] >> 4) * 4..)
                    .unwrap_or(&[])
                    .to_vec(),
            ),
            _ => (0, 0, l4.to_vec()),
        };
        out.push(Pkt {
            t: sec + usec / 1e6,
            src: ipb[12..16].try_into().unwrap(),
            dst: ipb[16..20].try_into().unwrap(),
            proto,
            sport,
            dport,
            payload,
            other: None,
            from_pc,
        });
    }
    out
}

/// The first question's name of a DNS message.
fn dns_qname(m: &[u8]) -> Option<String> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let n = usize::from(*m.get(at)?);
        if n == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(m.get(at + 1..at + 1 + n)?).into_owned());
        at += 1 + n;
    }
    Some(labels.join("."))
}

fn describe(p: &Pkt) -> String {
    match p.other {
        Some(et) => format!("ethertype {et:#06x}"),
        None => format!(
            "{}:{} -> {}:{} proto {}",
            ip(p.src),
            p.sport,
            ip(p.dst),
            p.dport,
            p.proto
        ),
    }
}

/// What the kill switch lets the PC send: `Ok` or why not.
fn allowed(site: &Site, p: &Pkt, tunnel_up: bool) -> Result<(), String> {
    if p.other == Some(0x0806) {
        return Ok(()); // ARP: finding the router on the link
    }
    if p.other.is_some() {
        return Err(describe(p));
    }
    let to_router = ip(p.dst) == ROUTER;
    match (p.proto, p.sport, p.dport) {
        (17, 68, 67) => Ok(()),
        (17, _, port) if to_router && site.ports.contains(&port) => Ok(()),
        (17, _, 53) if to_router && !tunnel_up => match dns_qname(&p.payload) {
            Some(q) if site.servers.contains(&q.as_str()) => Ok(()),
            q => Err(format!("DNS for {q:?} before the tunnel: {}", describe(p))),
        },
        (6, _, 443) if tunnel_up && site.direct && ip(p.dst) == DIRECT_OK => Ok(()),
        _ => Err(describe(p)),
    }
}

fn entropy(bytes: &[u8]) -> f64 {
    let mut n = [0usize; 256];
    for b in bytes {
        n[usize::from(*b)] += 1;
    }
    let len = bytes.len() as f64;
    n.iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / len;
            -p * p.log2()
        })
        .sum()
}

#[test]
fn a_headless_stick_brings_up_wireguard_registers_over_tls_calls_with_srtp_and_is_locked_down() {
    office_session(&MUSTERHAUSEN);
}

#[test]
fn the_second_customer_connects_through_openvpn_with_certificate_and_password_and_calls_with_srtp()
{
    office_session(&WALDBACH);
}

/// Which user the VPN server let in, and the tunnel address it gave them: WireGuard's latest
/// handshake of the user's key, or OpenVPN's client list (certificate CN, user name, cipher).
fn vpn_server_saw(
    office: &Office,
    site: &Site,
    export: &Path,
    user: &BTreeMap<String, String>,
) -> String {
    let id = &user["user_id"];
    match site.tunnel {
        Tunnel::WireGuard => {
            let pubkey = sh_ok(&format!(
                "grep -A2 '# {id} ' {} | sed -n 's/^PublicKey = //p'",
                export
                    .join(format!("wireguard-{}-peers.conf", site.vpn))
                    .display()
            ));
            let hs = office.exec(&format!("wg show {} latest-handshakes", office.tun));
            let line = hs
                .lines()
                .find(|l| l.starts_with(pubkey.trim()))
                .unwrap_or_else(|| panic!("{id}'s key {pubkey} not in {hs}"));
            let t: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert!(t > 0, "{hs}");
            eprintln!("the office's WireGuard: {line}");
            let address = &user[&format!("vpn.{}.address", site.vpn)];
            address.split('/').next().unwrap().to_string()
        }
        Tunnel::OpenVpn => {
            // HEADER,CLIENT_LIST,Common Name,Real Address,Virtual Address,Virtual IPv6 Address,
            // Bytes Received,Bytes Sent,Connected Since,Connected Since (time_t),Username,
            // Client ID,Peer ID,Data Channel Cipher
            let status = fs::read_to_string(office.dir.join("openvpn-status")).unwrap_or_default();
            let line = status
                .lines()
                .find(|l| l.starts_with(&format!("CLIENT_LIST,{id},")))
                .unwrap_or_else(|| panic!("{id} not among OpenVPN's clients:\n{status}"));
            let f: Vec<&str> = line.split(',').collect();
            assert!(f[2].starts_with("192.0.2."), "{line}");
            assert_eq!(f[9], user[&format!("vpn.{}.username", site.vpn)], "{line}");
            assert!(
                ["AES-256-GCM", "CHACHA20-POLY1305"].contains(f.last().unwrap()),
                "{line}"
            );
            let login = format!(
                "homestick-office: openvpn login {} accepted, certificate {id}",
                f[9]
            );
            assert!(
                office.log("vpn").contains(&login),
                "{login} not in:\n{}",
                office.log("vpn")
            );
            eprintln!("the office's OpenVPN: {line}");
            f[3].to_string()
        }
    }
}

fn office_session(site: &Site) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    test_ca(dir, site);
    // The office's WireGuard key comes first: the profile names its public half.
    let (office_key, office_pub) = wg_keys();
    let profile = office_profile(dir, site, &office_pub);
    let (filled, export) = roster(dir, site, &profile);
    let img = build_stick(dir, &profile, &filled, "ben");
    let ben = row(&filled, "ben");
    let (ext, sip_user) = (&ben["sip.extension"], &ben["sip.user"]);
    let mut office = start_office(dir, site, &export, &office_key);
    // The PC's own disk, which the stick never mounts.
    let pc_disk = dir.join("pc-disk.img");
    sh_ok(&format!(
        "truncate -s 64M {p} && mkfs.vfat -n PCDISK {p} >/dev/null && echo precious > {d}/doc.txt && mcopy -i {p} {d}/doc.txt ::doc.txt",
        p = pc_disk.display(),
        d = dir.display()
    ));
    let pc_before = sha(&pc_disk);

    let vars = dir.join("vars.fd");
    fs::copy(homestick_testkit::OVMF_SNAKEOIL_VARS, &vars).unwrap();
    let sock = dir.join("test.sock");
    let q = homestick_testkit::qemu_secure_boot(&vars);
    let mut qemu = Command::new("ip");
    qemu.args(["netns", "exec", &office.ns])
        .arg(q.get_program());
    qemu.args(q.get_args());
    qemu.args(["-m", "1536", "-smp", "2"])
        .arg("-drive")
        .arg(format!(
            "if=virtio,format=raw,snapshot=on,file={}",
            img.display()
        ))
        .arg("-drive")
        .arg(format!("if=virtio,format=raw,file={}", pc_disk.display()))
        .args(["-netdev", "tap,id=n0,ifname=hstap0,script=no,downscript=no"])
        .args([
            "-device",
            "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,romfile=",
        ])
        // The PC's firmware stays off the network (no PXE, no IPv6 stack on the NIC): what the
        // capture sees from this MAC is the stick's system.
        .args(["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n"])
        .args(["-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n"])
        .args(["-device", "virtio-serial-pci"])
        .arg("-chardev")
        .arg(format!(
            "socket,id=tc,path={},server=on,wait=off",
            sock.display()
        ))
        .args(["-device", "virtserialport,chardev=tc,name=homestick.test"])
        .args([
            "-audiodev",
            "none,id=snd0",
            "-device",
            "intel-hda",
            "-device",
            "hda-duplex,audiodev=snd0",
        ]);
    let power_on = Instant::now();
    let vm = Qemu::spawn(&mut qemu);
    // The boot verifier's first line: nothing before it is the stick's (the initramfs has no
    // network driver); what the PC's firmware sends before it is reported, not judged.
    wait_console(&vm, "homestick: boot verifier", 600);
    let t_stick = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let c = wait_console(&vm, &format!("homestick-session: vpn {} up", site.vpn), 900);
    let t_vpn = power_on.elapsed().as_secs_f64();
    assert!(c.contains("homestick: image verified"), "{c}");
    let aor = format!("sip:{ext}@{}", site.sip_names[0]);
    let c = wait_console(
        &vm,
        &format!("homestick-session: sip registered {aor}"),
        300,
    );
    let t_sip = power_on.elapsed().as_secs_f64();
    eprintln!("console:\n{c}");
    let verdict_ms: f64 = c
        .lines()
        .find_map(|l| l.split("homestick: verdict after ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    // `cargo xtask bench session` reads this line (the console is polled every 0.5 s).
    println!(
        "session-timing: vpn_up_s={t_vpn:.1} sip_registered_s={t_sip:.1} verdict_ms={verdict_ms:.0} verification_share={:.1}% vpn={:?}",
        verdict_ms / 10.0 / t_sip,
        site.tunnel
    );

    // The office saw the user's handshake and the REGISTER with digest auth, through the tunnel.
    let tunnel_ip = vpn_server_saw(&office, site, &export, &ben);
    let kam = office.log("kamailio");
    let reg = format!("homestick-office: REGISTER {aor} auth_user={sip_user} from {tunnel_ip}:");
    let proto = format!("proto={} digest=ok", site.sip_proto);
    assert!(
        kam.lines().any(|l| l.contains(&reg) && l.contains(&proto)),
        "{reg} … {proto} not in:\n{kam}"
    );

    // A call from the stick to the auto-answering extension 2000: SRTP for several seconds.
    let mut ch = Channel::connect(&sock);
    let (out, code) = ch.run(&format!(
        "echo /dial sip:2000@{} > /run/homestick-session/baresip.ctl",
        site.sip_names[0]
    ));
    assert_eq!(code, 0, "{out}");
    let deadline = Instant::now() + Duration::from_secs(90);
    while !office
        .log("ext2000")
        .to_lowercase()
        .contains("call established")
    {
        assert!(
            Instant::now() < deadline,
            "no call: ext2000:\n{}\nkamailio:\n{}\nconsole:\n{}",
            office.log("ext2000"),
            office.log("kamailio"),
            vm.console()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(8));
    let office_net = site.sip.parse::<std::net::Ipv4Addr>().unwrap().octets();
    let rtp: Vec<Pkt> = pcap(&dir.join("tunnel.pcap"))
        .into_iter()
        .filter(|p| {
            // RTP (version 2, not RTCP's types 200-204) from the stick into the office; the
            // extension's SDP names whichever office address baresip took as its own.
            p.proto == 17
                && ip(p.src) == tunnel_ip
                && p.dst[..2] == office_net[..2]
                && ![53, 5060].contains(&p.dport)
                && p.payload.len() > 12
                && p.payload[0] >> 6 == 2
                && !(72..=76).contains(&(p.payload[1] & 0x7f))
        })
        .collect();
    let span = rtp.last().map(|l| l.t).unwrap_or(0.0) - rtp.first().map(|f| f.t).unwrap_or(0.0);
    if rtp.len() < 100 || span < 4.0 {
        let (journal, _) =
            ch.run("journalctl -b --no-pager -u homestick-session | grep -v Populated | tail -60");
        let udp: Vec<String> = pcap(&dir.join("tunnel.pcap"))
            .iter()
            .filter(|p| p.proto == 17)
            .take(30)
            .map(describe)
            .collect();
        panic!(
            "{} RTP packets over {span:.1} s\nthe stick's session:\n{journal}\nextension 2000:\n{}\nUDP in the tunnel: {udp:#?}",
            rtp.len(),
            office.log("ext2000")
        );
    }
    let payload: Vec<u8> = rtp.iter().flat_map(|p| p.payload[12..].to_vec()).collect();
    let e = entropy(&payload);
    // PCMA of the silent sound card is one byte value over and over; SRTP looks random, and
    // each packet carries the 10-byte authentication tag (12 + 160 + 10).
    assert!(e > 7.0, "payload entropy {e:.2} bits/byte: not encrypted");
    assert!(
        rtp.iter().all(|p| p.payload.len() == 182),
        "{:?}",
        rtp.iter()
            .map(|p| p.payload.len())
            .take(5)
            .collect::<Vec<_>>()
    );
    eprintln!(
        "RTP from the stick: {} packets over {span:.1} s, payload entropy {e:.2} bits/byte",
        rtp.len()
    );

    // Lock-down, checked inside the booted system through the test channel.
    let (mounts, _) = ch.run("cat /proc/mounts");
    const PSEUDO: &[&str] = &[
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "securityfs",
        "cgroup2",
        "pstore",
        "bpf",
        "debugfs",
        "tracefs",
        "mqueue",
        "hugetlbfs",
        "configfs",
        "fusectl",
        "tmpfs",
        "ramfs",
        "binfmt_misc",
        "autofs",
    ];
    for m in mounts.lines() {
        let f: Vec<&str> = m.split_whitespace().collect();
        let rw = f[3].split(',').any(|o| o == "rw");
        assert!(
            !rw || PSEUDO.contains(&f[2]),
            "writable mount that is not RAM: {m}"
        );
        assert!(
            !f[0].starts_with("/dev/vdb"),
            "the PC's disk is mounted: {m}"
        );
    }
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/"))
        .unwrap();
    assert!(root.contains(" squashfs ro"), "{root}");
    for (cmd, want) in [
        ("cat /proc/sys/kernel/sysrq", "0"),
        ("systemctl is-enabled ctrl-alt-del.target", "masked"),
        ("systemctl is-enabled getty@tty1.service", "masked"),
        ("systemctl is-enabled serial-getty@ttyS0.service", "masked"),
        ("systemctl is-enabled emergency.service", "masked"),
        ("systemctl is-enabled rescue.service", "masked"),
        ("systemctl is-enabled debug-shell.service", "masked"),
        ("findmnt -n -o FSTYPE /var", "tmpfs"),
        ("findmnt -n -o FSTYPE /home", "tmpfs"),
        ("findmnt -n -o FSTYPE /tmp", "tmpfs"),
        ("command -v sudo || echo none", "none"),
        (
            "cat /proc/[0-9]*/comm | grep -cE '^(agetty|getty|login|sulogin|bash)$' || true",
            "0",
        ),
        ("touch /usr/x 2>&1 || echo refused", "refused"),
    ] {
        let (out, _) = ch.run(cmd);
        let got = out.lines().last().unwrap_or("").trim().to_string();
        assert!(got.ends_with(want), "{cmd}: {out:?}, want {want:?}");
    }
    let (passwd, _) = ch.run("cat /etc/passwd");
    for l in passwd.lines() {
        let shell = l.rsplit(':').next().unwrap_or("");
        assert!(
            [
                "/usr/sbin/nologin",
                "/sbin/nologin",
                "/bin/false",
                "/usr/bin/false",
                "/bin/sync"
            ]
            .contains(&shell),
            "a user with a shell: {l}"
        );
    }
    let (shadow, _) = ch.run("cut -d: -f1,2 /etc/shadow");
    for l in shadow.lines() {
        let hash = l.split(':').nth(1).unwrap_or("");
        assert!(
            hash.starts_with('*') || hash.starts_with('!'),
            "a usable password: {l}"
        );
    }
    // The allow-list: the one direct destination (Musterhausen's) leaves the PC for the
    // session's user (the kiosk, the phone), another does not; Waldbach allows none.
    let as_session = "setpriv --reuid=homestick --regid=homestick --clear-groups";
    let (out, _) = ch.run(&format!(
        "{as_session} timeout 5 bash -c 'exec 3<>/dev/tcp/{DIRECT_OK}/443' 2>&1; {as_session} timeout 5 bash -c 'exec 3<>/dev/tcp/{DIRECT_NO}/443' 2>&1; timeout 5 bash -c 'exec 3<>/dev/tcp/{ROUTER}/80' 2>&1; true"
    ));
    eprintln!("direct attempts: {out}");
    // Only the VPN daemon's marked packets reach the VPN server: the same port from the
    // session's user or from root without the mark stays on the PC.
    let port = site.ports[0];
    let (out, _) = ch.run(&format!(
        "{as_session} bash -c 'echo {UNMARKED} > /dev/udp/{ROUTER}/{port}' 2>&1; bash -c 'echo {UNMARKED} > /dev/udp/{ROUTER}/{port}' 2>&1; true"
    ));
    eprintln!("unmarked packets to the VPN server: {out}");

    // The tunnel's peer goes away: the stick says so and sends nothing else.
    office.stop("vpn");
    let t_off = pcap(&dir.join("tap.pcap"))
        .last()
        .map(|p| p.t)
        .unwrap_or(0.0);
    wait_console(&vm, site.down, 180);
    std::thread::sleep(Duration::from_secs(15));
    drop(ch);
    drop(vm);
    office.stop("capture-tap");
    office.stop("capture-tunnel");

    // The kill switch, over the whole boot.
    let pkts = pcap(&dir.join("tap.pcap"));
    let firmware: Vec<String> = pkts
        .iter()
        .filter(|p| p.from_pc && p.t < t_stick)
        .map(describe)
        .collect();
    let from_pc: Vec<&Pkt> = pkts
        .iter()
        .filter(|p| p.from_pc && p.t >= t_stick)
        .collect();
    assert!(!from_pc.is_empty(), "nothing captured");
    // The handshake's answer: WireGuard's message type 2 from the office; for OpenVPN (whose
    // handshake tls-crypt hides) the server's first packet, which judges what follows at least
    // as strictly.
    let t_up = pkts
        .iter()
        .find(|p| {
            !p.from_pc
                && p.proto == 17
                && site.ports.contains(&p.sport)
                && (site.tunnel != Tunnel::WireGuard || p.payload.first() == Some(&2))
        })
        .map(|p| p.t)
        .expect("no answer of the VPN server in the capture");
    let mut bad = Vec::new();
    let mut direct_seen = false;
    for p in &from_pc {
        if let Err(why) = allowed(site, p, p.t >= t_up) {
            bad.push(format!("{:.3} s: {why}", p.t - from_pc[0].t));
        }
        direct_seen |= p.proto == 6 && ip(p.dst) == DIRECT_OK;
    }
    assert!(
        bad.is_empty(),
        "packets the kill switch should have stopped:\n{}",
        bad.join("\n")
    );
    assert_eq!(
        direct_seen, site.direct,
        "the direct destination {DIRECT_OK}:443 tried (allowed: {})",
        site.direct
    );
    assert!(
        !from_pc.iter().any(|p| ip(p.dst) == DIRECT_NO),
        "{DIRECT_NO} left the PC"
    );
    assert!(
        !from_pc.iter().any(|p| p
            .payload
            .windows(UNMARKED.len())
            .any(|w| w == UNMARKED.as_bytes())),
        "a packet without the VPN daemon's mark reached the VPN server"
    );
    let after_off: Vec<String> = from_pc
        .iter()
        .filter(|p| {
            p.t > t_off
                && p.other.is_none()
                && !(p.proto == 17
                    && (p.dport == 67 || (ip(p.dst) == ROUTER && site.ports.contains(&p.dport))))
        })
        .map(|p| describe(p))
        .collect();
    assert!(
        after_off.is_empty(),
        "sent with the peer off: {after_off:?}"
    );
    eprintln!(
        "kill switch: {} packets from the stick's system, the VPN server's answer {:.1} s after its first, all allowed; \
         before the boot verifier started, the PC's firmware sent {}: {firmware:?}",
        from_pc.len(),
        t_up - from_pc[0].t,
        firmware.len()
    );
    assert_eq!(sha(&pc_disk), pc_before, "the PC's disk changed");
    let dns_log = office.log("router");
    for l in dns_log.lines().filter(|l| l.contains("query[")) {
        assert!(
            site.servers.iter().any(|s| l.contains(&format!(" {s} "))),
            "router DNS query: {l}"
        );
    }
}
