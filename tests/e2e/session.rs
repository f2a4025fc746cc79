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
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use homestick_testkit::capture::*;
use homestick_testkit::office::*;
use homestick_testkit::qemu::{wait_console, Channel, Qemu};

fn headless_base() -> PathBuf {
    homestick_testkit::env::headless_base()
}

/// The example customer as the office knows it, no STUN (the office has none). Musterhausen:
/// the office's WireGuard server key, the test CA for SIP, an address pool, one allowed direct
/// destination. Waldbach: the test CA for OpenVPN and a new tls-crypt key.
pub(crate) fn office_profile(dir: &Path, site: &Site, server_pub: &str) -> PathBuf {
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
pub(crate) fn roster(dir: &Path, site: &Site, profile: &Path) -> (PathBuf, PathBuf) {
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
pub(crate) fn row(filled: &Path, user: &str) -> std::collections::BTreeMap<String, String> {
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

/// Build the set from `base`, Secure Boot signed; returns `user`'s image.
pub(crate) fn build_stick(
    dir: &Path,
    base: &Path,
    profile: &Path,
    filled: &Path,
    user: &str,
) -> PathBuf {
    let set = dir.join("set");
    secure_boot_build(
        dir,
        base,
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
    let img = build_stick(dir, &headless_base(), &profile, &filled, "ben");
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
