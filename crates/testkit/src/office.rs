//! The office the session tests boot a stick into: a network namespace with a tap device for
//! the PC, dnsmasq as the home router, the customer's VPN server (wireguard-go or OpenVPN),
//! and behind the tunnel a DNS server, kamailio and an auto-answering extension 2000; the
//! example customers as their offices are set up ([`MUSTERHAUSEN`], [`WALDBACH`]). Dropping an
//! [`Office`] stops every process in it and deletes the namespace: nothing outlives a test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::run::*;

/// The home router's address on the PC's network (TEST-NET-1).
pub const ROUTER: &str = "192.0.2.1";
/// The profile's allowed direct destination (Musterhausen's), and one it does not allow.
pub const DIRECT_OK: &str = "198.51.100.7";
/// A direct destination no profile allows.
pub const DIRECT_NO: &str = "198.51.100.8";
/// The payload of packets to the VPN server's port sent without the VPN daemon's mark.
pub const UNMARKED: &str = "homestick-kill-switch-unmarked";
/// The PC's MAC address in QEMU.
pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// The VPN kind of a site's office.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunnel {
    /// wireguard-go (the host may lack the kernel module).
    WireGuard,
    /// OpenVPN with certificate and password.
    OpenVpn,
}

/// One example customer as its office is set up in the test.
#[derive(Debug)]
pub struct Site {
    pub tunnel: Tunnel,
    /// The profile under profiles/.
    pub customer: &'static str,
    /// The default VPN's name (also the stick's tunnel interface).
    pub vpn: &'static str,
    /// The VPN servers' names (the home router answers them with its own address) and the
    /// UDP ports of the profile's servers.
    pub servers: &'static [&'static str],
    pub ports: &'static [u16],
    /// The SIP domain (the AOR's host) first, then other names of the PBX.
    pub sip_names: &'static [&'static str],
    /// The profile's SIP transport, as kamailio's `$pr` names it.
    pub sip_proto: &'static str,
    /// Inside the office, behind the tunnel: the PBX, the DNS server (the profile's), the
    /// extension 2000 (all in the PBX's /16).
    pub sip: &'static str,
    pub dns: &'static str,
    pub ext: &'static str,
    /// How extension 2000 encrypts media (baresip `mediaenc`), matching the profile's `srtp`.
    pub ext_menc: &'static str,
    /// The profile allows [`DIRECT_OK`] outside the tunnel.
    pub direct: bool,
    /// The console line when the tunnel's peer is gone (in the customer's language).
    pub down: &'static str,
}

pub const MUSTERHAUSEN: Site = Site {
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

pub const WALDBACH: Site = Site {
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
pub const OVPN_POOL: &str = "10.97.0.0";

/// Run `script` with bash; fails the test unless it exits 0. Its standard output.
pub fn sh_ok(script: &str) -> String {
    let r = sh(script);
    assert_eq!(r.code, 0, "{script}\n{}", r.all());
    r.stdout
}

/// A process killed and reaped when dropped.
#[derive(Debug)]
pub struct Bg(pub Child, pub &'static str);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The office: a network namespace and the servers in it; dropping it stops them all and
/// deletes the namespace.
#[derive(Debug)]
pub struct Office {
    pub ns: String,
    /// The VPN server's tunnel interface (wireguard-go's control socket is machine-wide: one
    /// name per run).
    pub tun: String,
    pub dir: PathBuf,
    pub procs: Vec<Bg>,
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
    pub fn exec(&self, script: &str) -> String {
        sh_ok(&format!(
            "ip netns exec {} sh -c '{}'",
            self.ns,
            script.replace('\'', "'\\''")
        ))
    }

    pub fn spawn(&mut self, name: &'static str, args: &[&str]) {
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

    pub fn stop(&mut self, name: &str) {
        self.procs.retain(|p| p.1 != name);
    }

    /// Extension 2000's recordings of what it decoded, oldest first (baresip's sndfile names
    /// them by the call's start).
    fn ext_recordings(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.dir.join("ext2000/sound"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            // No call yet: no directory entries, no recordings.
            .unwrap_or_default();
        files.retain(|f| f.to_string_lossy().ends_with("-dec.wav"));
        files.sort();
        files
    }

    /// What extension 2000 heard in its calls so far, oldest first: each call's rate and
    /// samples (baresip's sndfile recording of what it decoded).
    pub fn ext_heard(&self) -> Vec<(u32, Vec<i16>)> {
        self.ext_recordings()
            .iter()
            .filter_map(|f| crate::audio::wav(&fs::read(f).ok()?))
            .collect()
    }

    /// What extension 2000 has heard so far in its newest call (the call may go on); only
    /// that recording is read.
    pub fn ext_hearing(&self) -> Option<(u32, Vec<i16>)> {
        let newest = self.ext_recordings().pop()?;
        crate::audio::wav(&fs::read(newest).ok()?)
    }

    /// A command for extension 2000's baresip ("/dial 1001", "/hangup").
    pub fn ext_command(&self, cmd: &str) {
        use std::io::Write;
        let ctl = self.dir.join("ext2000/ctl");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&ctl)
            .unwrap_or_else(|e| panic!("{}: {e}", ctl.display()));
        writeln!(f, "{cmd}").unwrap();
    }

    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }
}

/// A P-256 key `NAME.key` and its certificate `NAME.pem` from the test CA, for `cn` with the
/// subjectAltNames `dns` and the extended key usage `eku`.
pub fn issue(dir: &Path, name: &str, cn: &str, dns: &[&str], eku: &str) {
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
pub fn test_ca(dir: &Path, site: &Site) {
    sh_ok(&format!(
        "cd {d} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
         -subj '/O=homestick tests/CN=homestick office test CA (TEST ONLY)' -keyout ca.key -out ca.pem 2>/dev/null",
        d = dir.display()
    ));
    issue(dir, "sip", site.sip_names[0], site.sip_names, "serverAuth");
}

/// kamailio's configuration for the site's PBX: digest auth of the users in `users` (the
/// roster export's pbx-users.csv) and extension 2000, the site's SIP transport.
pub fn kamailio_cfg(dir: &Path, site: &Site, users: &str) -> PathBuf {
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
    let aliases: String = site
        .sip_names
        .iter()
        .map(|n| format!("alias=\"{n}\"\n"))
        .collect();
    let head = format!(
        "#!KAMAILIO\ndebug=2\nlog_stderror=yes\nchildren=2\ntcp_children=2\nenable_tls=yes\n\
         auto_aliases=no\n{aliases}listen=tls:{sip}:5061\nlisten=tcp:{sip}:5060\nlisten=udp:{sip}:5060\n",
        sip = site.sip,
    );
    let users = format!(
        "modparam(\"tls\", \"config\", \"{}\")\nevent_route[htable:mod-init] {{\n{sets}}}\n",
        tls.display()
    );
    fs::write(
        &cfg,
        format!("{head}{KAMAILIO_MODULES}{users}{KAMAILIO_ROUTES}"),
    )
    .unwrap();
    cfg
}

const KAMAILIO_MODULES: &str = r#"mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
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
loadmodule "nathelper.so"
loadmodule "tls.so"
modparam("htable", "htable", "users=>size=4;")
modparam("usrloc", "db_mode", 0)
modparam("rr", "enable_full_lr", 1)
modparam("nathelper", "received_avp", "$avp(RECEIVED)")
modparam("registrar", "received_avp", "$avp(RECEIVED)")
"#;

/// The PBX's routing as offices run it for phones behind NAT or a VPN over TCP or TLS: a phone
/// is reached over the connection it registered on (the registration keeps where it came from;
/// a dialog's Contact gets the connection as an alias), never by a new connection to the port
/// its Contact names: a phone is no TLS server.
const KAMAILIO_ROUTES: &str = r#"
route[ALIAS] {
    if (($pr == "tls" || $pr == "tcp") && is_present_hf("Contact") && !($ct =~ "alias=")) {
        add_contact_alias();
    }
}

onreply_route[REPLY] {
    if (($pr == "tls" || $pr == "tcp") && is_present_hf("Contact") && !($ct =~ "alias=")) {
        add_contact_alias();
    }
}

request_route {
    if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
    if (!is_method("REGISTER")) { route(ALIAS); }
    t_on_reply("REPLY");
    if (has_totag()) {
        if (loose_route()) { handle_ruri_alias(); t_relay(); exit; }
        if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
        sl_send_reply("404", "Not here");
        exit;
    }
    if (is_method("REGISTER")) {
        if (!pv_www_authenticate("$td", "$sht(users=>$au)", "0")) {
            www_challenge("$td", "0");
            exit;
        }
        xlog("L_NOTICE", "homestick-office: REGISTER $tu auth_user=$au from $si:$sp proto=$pr digest=ok\n");
        if ($pr == "tls" || $pr == "tcp") { fix_nated_register(); }
        if (!save("location")) { sl_reply_error(); }
        exit;
    }
    if (is_method("INVITE")) {
        xlog("L_NOTICE", "homestick-office: INVITE $ru from $fu at $si proto=$pr\n");
        record_route();
    }
    if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
    handle_ruri_alias();
    t_relay();
}
"#;

/// The tone of extension 2000: what it plays into every call, in Hz.
pub const OFFICE_TONE_HZ: u32 = 1000;

/// The auto-answering extension 2000: baresip that plays a tone of [`OFFICE_TONE_HZ`] into
/// each call (ausine) and records what it hears (sndfile: `ext2000/sound/*-dec.wav`), SRTP,
/// PCMA only.
pub fn extension_2000(dir: &Path, site: &Site) -> PathBuf {
    let d = dir.join("ext2000");
    fs::create_dir_all(d.join("sound")).unwrap();
    fs::write(
        d.join("config"),
        format!(
            "poll_method epoll\nsip_listen {ext}:5060\naudio_source ausine,{OFFICE_TONE_HZ}\nausrc_srate 48000\nausrc_channels 2\n\
             audio_player aubridge,office\nsnd_path {sound}\n\
             module_path /usr/lib/baresip/modules\nmodule stdio.so\nmodule g711.so\nmodule ausine.so\n\
             module aubridge.so\nmodule sndfile.so\nmodule srtp.so\nmodule_app account.so\nmodule_app menu.so\n",
            ext = site.ext,
            sound = d.join("sound").display()
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
pub fn wg_keys() -> (String, String) {
    let k = sh_ok("wg genkey").trim().to_string();
    let p = sh_ok(&format!("echo {k} | wg pubkey")).trim().to_string();
    (k, p)
}

/// Start the VPN server: wireguard-go with the roster's peers, or OpenVPN (certificates from
/// the test CA, the roster's users and passwords checked by a script, tls-crypt).
pub fn start_vpn_server(o: &mut Office, site: &Site, export: &Path, wg_private: &str) {
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

/// Make the site's office in a new namespace (logs and files in `dir`, the servers' users from
/// the roster export `export`, the VPN server's WireGuard key `wg_private`) and start its
/// servers; dropping the returned [`Office`] takes it all down.
pub fn start_office(dir: &Path, site: &Site, export: &Path, wg_private: &str) -> Office {
    // One name per office: tests of one process run at once, several for the same site.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ns = format!("hs-office-{}-{n}-{}", std::process::id(), site.vpn);
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    sh_ok(&format!("ip netns add {ns}"));
    let mut o = Office {
        tun: match site.tunnel {
            Tunnel::WireGuard => format!("hswg{}{n}", std::process::id() % 10_000),
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
    start_pbx(&mut o, site, &users);
    o
}

/// Create an empty network namespace `ns` (loopback up) as an office whose processes live in
/// `dir`; dropping it stops them and deletes the namespace.
pub fn empty_office(ns: &str, dir: &Path) -> Office {
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
    sh_ok(&format!("ip netns add {ns}"));
    let o = Office {
        ns: ns.to_string(),
        tun: String::new(),
        dir: dir.to_path_buf(),
        procs: Vec::new(),
    };
    o.exec("ip link set lo up");
    o
}

/// The PBX in the office: kamailio with the users of `users` (pbx-users.csv) and extension
/// 2000, once 2000 is registered.
pub fn start_pbx(o: &mut Office, site: &Site, users: &str) {
    let dir = o.dir.clone();
    let dir = dir.as_path();
    let cfg = kamailio_cfg(dir, site, users);
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
    // Its standard input is a FIFO it holds open itself (read and write: never an end), for
    // commands such as "/dial 1001" ([`Office::ext_command`]).
    let ctl = ext.join("ctl");
    sh_ok(&format!("mkfifo -m 0600 {}", ctl.display()));
    o.spawn(
        "ext2000",
        &[
            "sh",
            "-c",
            &format!(
                "HOME=/tmp exec baresip -f {} <> {}",
                ext.display(),
                ctl.display()
            ),
        ],
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
}
