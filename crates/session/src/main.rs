//! `homestick-session`: the home-office session on the stick.
//!
//! - `homestick-session firewall`: before any network comes up (homestick-firewall.service,
//!   before network-pre.target), the kill switch's first stage: DHCP and DNS out, nothing else.
//! - `homestick-session run` (homestick-session.service): waits for the network, finds the VPN
//!   server, opens the kill switch for it alone, brings up the profile's default VPN, closes DNS
//!   outside the tunnel, starts baresip with the rendered configuration as the unprivileged user
//!   `homestick`, and says what happens in plain words on the console and in the journal:
//!   `homestick-session: vpn <name> up`, `homestick-session: sip registered <aor>`, or what
//!   failed, with the hotline.
//!
//! Only the verified profile (`/run/homestick/profile`, written by the boot verifier) drives it.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use homestick_formats::paths::PROFILE_MOUNT as PROFILE_DIR;
use homestick_formats::paths::{BARESIP_CTRL, KIOSK_ADDR};
use homestick_session::service::{Context, Input};
use homestick_session::{
    account_aor, endpoint_rules, ruleset, sip_event, Allowed, Kind, Profile, SipEvent, Stage,
    Uplink, Vpn, VPN_MARK,
};

/// The session's own runtime directory (the baresip control FIFO, the status page).
const RUN_DIR: &str = "/run/homestick-session";
/// The unprivileged user the softphone runs as.
const USER: &str = "homestick";

fn line(msg: &str) {
    let mut out = std::io::stdout().lock();
    // The console is the session's last channel: nowhere to report that it failed.
    let _ = writeln!(out, "homestick-session: {msg}");
    // As above.
    let _ = out.flush();
}

fn fail(p: &Profile, de: &str, en: &str) {
    line(&format!("{}; {}", p.say(de, en), p.hotline()));
    to_page(None, Some((de.to_string(), en.to_string())));
}

/// The phone service (the kiosk page's server), once the session has started it.
static PAGE: OnceLock<Sender<Input>> = OnceLock::new();

/// The page's state: a new step (which clears the last message), or a message.
fn to_page(state: Option<&str>, message: Option<(String, String)>) {
    static LAST: Mutex<String> = Mutex::new(String::new());
    let Some(page) = PAGE.get() else { return };
    let Ok(mut last) = LAST.lock() else { return };
    if let Some(s) = state {
        *last = s.to_string();
    }
    // The service ends only with the session.
    let _ = page.send(Input::Session {
        state: last.clone(),
        message,
    });
}

/// Start the kiosk page's server and the phone service for profile `p`.
fn start_page(p: &Profile) {
    let own_number = std::fs::read_to_string(Path::new(PROFILE_DIR).join("baresip/accounts"))
        .ok()
        .and_then(|a| account_aor(&a))
        .map(|aor| homestick_session::ctrl::Peer::from_uri(&aor, None).number)
        .filter(|n| homestick_session::phone::own_number(n).is_some());
    let ctx = Context {
        customer: p.customer.name.clone(),
        hotline: p.customer.hotline.clone(),
        // None chosen: the page speaks both.
        languages: p.customer.languages.clone().unwrap_or_default(),
        secure_boot_off: secure_boot_off(),
        own_number,
    };
    match homestick_session::service::spawn(ctx, BARESIP_CTRL.to_string()) {
        Ok(tx) => {
            // Set once: run() starts the page once.
            let _ = PAGE.set(tx);
        }
        Err(e) => line(&format!(
            "the kiosk's phone page cannot start ({KIOSK_ADDR}: {e}); the console keeps the session's lines"
        )),
    }
}

/// Whether the PC started with Secure Boot off (as the kernel's EFI stub recorded it; unknown
/// counts as on: no notice without a reason).
fn secure_boot_off() -> bool {
    use homestick_formats::paths::{secure_boot_enabled, BOOT_PARAMS};
    let mut buf = Vec::new();
    let read = std::fs::File::open(BOOT_PARAMS)
        .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, 8192), &mut buf));
    read.is_ok() && secure_boot_enabled(&buf) == Some(false)
}

/// Write `RUN_DIR/name` whole or not at all.
fn write_atomic(name: &str, text: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(RUN_DIR)?;
    let tmp = Path::new(RUN_DIR).join(format!("{name}.partial"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, Path::new(RUN_DIR).join(name))
}

/// The session's state: `status` (one word, for programs) and `status.html` (the kiosk's
/// start page, refreshed every few seconds).
fn status(p: Option<&Profile>, state: &str) {
    // The status is for the screen and for programs: a failed write only leaves the last one.
    let _ = write_atomic("status", &format!("{state}\n"));
    to_page(Some(state), None);
    // As above: the page keeps its last state.
    let _ = write_atomic(
        "status.html",
        &homestick_session::status_page(p, state, secure_boot_off(), PAGE.get().is_some()),
    );
}

fn profile() -> Result<Profile, String> {
    use std::io::Read as _;
    let path = Path::new(PROFILE_DIR).join(homestick_formats::paths::PROFILE_JSON);
    let limit = homestick_formats::profile::MAX_BYTES;
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(limit + 1).read_to_string(&mut text))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > limit {
        return Err(format!("{}: over {limit} bytes", path.display()));
    }
    Profile::parse(&text).map_err(|e| e.to_string())
}

fn nft(rules: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(rules.as_bytes())
            .map_err(|e| format!("nft: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Load a kill-switch stage; on failure say so (the session then stops: without its rules
/// the VPN is not started, and the previous stage's rules stay in force).
fn load(p: &Profile, rules: &str) -> bool {
    match nft(rules) {
        Ok(()) => true,
        Err(e) => {
            fail(
                p,
                &format!("{e}: Firewall-Fehler, das VPN bleibt aus"),
                &format!("{e}: firewall error, the VPN stays off"),
            );
            status(Some(p), "error");
            false
        }
    }
}

fn firewall() -> ExitCode {
    // Before the network: no server is known yet, so only DHCP and DNS may leave.
    let rules = match profile() {
        Ok(p) => ruleset(
            Stage::Connecting,
            p.default_vpn(),
            &Uplink::default(),
            &[],
            &[],
        ),
        Err(e) => {
            line(&format!(
                "{e}: keine gültige Konfiguration, das Netzwerk bleibt aus / no valid configuration, the network stays off"
            ));
            return ExitCode::FAILURE;
        }
    };
    match nft(&rules) {
        Ok(()) => {
            line("firewall loaded: only DHCP may leave until the network is up");
            ExitCode::SUCCESS
        }
        Err(e) => {
            line(&format!("{e}: die Firewall konnte nicht geladen werden, das Netzwerk bleibt aus / the firewall could not be loaded, the network stays off"));
            ExitCode::FAILURE
        }
    }
}

/// The uplink (the default route's interface) with the DNS servers its DHCP lease gave; `None`
/// while there is no default route.
fn uplink() -> Option<Uplink> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    Uplink::of(&routes, |name| {
        let index = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex")).ok()?;
        std::fs::read_to_string(format!("/run/systemd/netif/leases/{}", index.trim())).ok()
    })
}

fn run_quiet(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            cmd.get_program().to_string_lossy(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn resolve(host: &str, port: u16) -> Vec<IpAddr> {
    // Not resolved: no addresses, which the caller reports as such.
    let mut v: Vec<IpAddr> = (host, port)
        .to_socket_addrs()
        .map(|a| a.map(|s| s.ip()).filter(IpAddr::is_ipv4).collect())
        .unwrap_or_default();
    v.sort();
    v.dedup();
    v
}

/// Events from the programs the session watches.
enum Event {
    Baresip(String),
    BaresipGone,
    Openvpn(String),
    OpenvpnGone,
}

fn pipe_lines<R: std::io::Read + Send + 'static>(
    r: R,
    tx: Sender<Event>,
    each: fn(String) -> Event,
    end: Event,
    echo: &'static str,
) {
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            if !echo.is_empty() {
                // Into the journal only (stderr), not onto the employee's console.
                eprintln!("{echo}: {l}");
            }
            if tx.send(each(l)).is_err() {
                return;
            }
        }
        // The receiver is gone only when the session ends: nobody left to tell.
        let _ = tx.send(end);
    });
}

fn user_ids(name: &str) -> Option<(u32, u32)> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == name)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
}

fn start_baresip(tx: &Sender<Event>) -> Result<Child, String> {
    use std::os::unix::process::CommandExt;
    std::fs::create_dir_all(RUN_DIR).map_err(|e| format!("{RUN_DIR}: {e}"))?;
    let fifo = Path::new(RUN_DIR).join("baresip.ctl");
    if !fifo.exists() {
        run_quiet(Command::new("mkfifo").args(["-m", "0600"]).arg(&fifo))?;
    }
    // Opened for reading and writing, so baresip never sees the end of its input; the session
    // (and, in the desktop base, the status window) writes commands such as "/dial 2000".
    let ctl = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .map_err(|e| format!("{}: {e}", fifo.display()))?;
    let (uid, gid) = user_ids(USER).ok_or_else(|| format!("no user {USER:?}"))?;
    let home = PathBuf::from("/home").join(USER);
    let mut cmd = Command::new("baresip");
    cmd.arg("-f")
        .arg(Path::new(PROFILE_DIR).join("baresip"))
        .stdin(ctl)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .env("HOME", &home)
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .uid(uid)
        // The sound devices belong to group audio; std drops supplementary groups.
        .gid(group_id("audio").unwrap_or(gid));
    let mut child = cmd.spawn().map_err(|e| format!("baresip: {e}"))?;
    if let Some(o) = child.stdout.take() {
        pipe_lines(o, tx.clone(), Event::Baresip, Event::BaresipGone, "baresip");
    }
    if let Some(e) = child.stderr.take() {
        let tx = tx.clone();
        pipe_lines(
            e,
            tx,
            Event::Baresip,
            Event::Baresip(String::new()),
            "baresip",
        );
    }
    Ok(child)
}

fn group_id(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok())?
        })
}

/// Bring the tunnel up; returns the OpenVPN child when there is one.
fn start_vpn(v: &Vpn, tx: &Sender<Event>) -> Result<Option<Child>, String> {
    let file = Path::new(PROFILE_DIR).join(&v.file);
    match v.kind {
        Kind::Wireguard => {
            // A tunnel left from an earlier attempt, if any; `up` below fails with the reason if
            // it stays.
            let _ = run_quiet(Command::new("wg-quick").arg("down").arg(&file));
            run_quiet(Command::new("wg-quick").arg("up").arg(&file)).map(|_| None)
        }
        Kind::Openvpn => {
            let mut child = Command::new("openvpn")
                .arg("--config")
                .arg(&file)
                .args(["--dev", &v.name, "--dev-type", "tun", "--verb", "3"])
                // The kill switch lets only marked packets reach the server.
                .args(["--mark", &VPN_MARK.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("openvpn: {e}"))?;
            if let Some(o) = child.stdout.take() {
                pipe_lines(o, tx.clone(), Event::Openvpn, Event::OpenvpnGone, "openvpn");
            }
            Ok(Some(child))
        }
        Kind::Ipsec => {
            run_quiet(
                Command::new("swanctl")
                    .arg("--load-all")
                    .arg("--file")
                    .arg(&file),
            )?;
            run_quiet(Command::new("swanctl").args(["--initiate", "--child", &v.name]))
                .map(|_| None)
        }
    }
}

/// OpenVPN stopped (its output ended): say so and start it again after a pause.
fn restart_openvpn(p: &Profile, v: &Vpn, tx: &Sender<Event>) {
    fail(
        p,
        &format!("VPN {} wurde beendet, neuer Versuch", v.name),
        &format!("vpn {} stopped, trying again", v.name),
    );
    std::thread::sleep(Duration::from_secs(5));
    // The new openvpn's output is piped to the session like the first one's; its handle is
    // not needed (it ends with the session).
    if let Err(e) = start_vpn(v, tx) {
        fail(
            p,
            &format!("VPN {} startet nicht: {e}", v.name),
            &format!("vpn {} does not start: {e}", v.name),
        );
    }
}

fn set_tunnel_dns(v: &Vpn) {
    if v.dns.is_empty() || v.kind == Kind::Ipsec {
        return;
    }
    let name = v.name.clone();
    let mut dns = vec!["dns".to_string(), name.clone()];
    dns.extend(v.dns.iter().cloned());
    let mut domain = vec!["domain".to_string(), name.clone(), "~.".to_string()];
    domain.extend(v.dns_search.iter().cloned());
    let route = vec!["default-route".to_string(), name, "true".to_string()];
    for args in [dns, domain, route] {
        // Names then fail to resolve (the kill switch lets no DNS out past the tunnel): said
        // in the journal, where the hotline looks, and the tunnel stays up for addresses.
        if let Err(e) = run_quiet(Command::new("resolvectl").args(&args)) {
            eprintln!("homestick-session: tunnel DNS for {}: {e}", v.name);
        }
    }
}

fn wg_handshake(name: &str) -> Option<u64> {
    let out = run_quiet(Command::new("wg").args(["show", name, "latest-handshakes"])).ok()?;
    out.lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .max()
        .filter(|&t| t > 0)
}

/// Something answers through the tunnel: the first DNS server inside it.
fn tunnel_alive(v: &Vpn) -> bool {
    let Some(target) = v.dns.first() else {
        return match v.kind {
            Kind::Wireguard => wg_handshake(&v.name).is_some_and(|t| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                now.saturating_sub(t) < 180
            }),
            _ => true,
        };
    };
    let mut ping = Command::new("ping");
    ping.args(["-n", "-q", "-c", "1", "-W", "3"]);
    if v.kind != Kind::Ipsec {
        ping.args(["-I", &v.name]);
    }
    ping.arg(target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Keep baresip's last non-empty line for the message when it stops; never matches.
fn remember(last: &mut String, line: &str) -> bool {
    if !line.trim().is_empty() {
        *last = line.trim().chars().take(160).collect();
    }
    false
}

fn direct_rules(p: &Profile) -> Vec<Allowed> {
    let mut out = Vec::new();
    for d in &p.direct {
        let ports: Vec<_> = d.ports.iter().map(|r| (r.proto, r.first, r.last)).collect();
        let addrs: Vec<String> = if d.to.parse::<IpAddr>().is_ok() || d.to.contains('/') {
            vec![d.to.clone()]
        } else {
            resolve(&d.to, 443).iter().map(IpAddr::to_string).collect()
        };
        if addrs.is_empty() {
            line(&format!(
                "direct {}: {} not found, not allowed",
                d.name, d.to
            ));
        }
        for to in addrs {
            out.push(Allowed {
                what: format!("direct {}", d.name),
                v6: to.contains(':'),
                to,
                ports: ports.clone(),
            });
        }
    }
    out
}

/// The session: the network, the VPN server's addresses, the tunnel, the softphone, each a
/// step the kiosk's status follows; then the watch over the phone and the tunnel.
fn run() -> ExitCode {
    let p = match profile() {
        Ok(p) => p,
        Err(e) => {
            line(&format!("{e}: keine gültige Konfiguration auf dem Stick / no valid configuration on the stick"));
            status(None, "error");
            return ExitCode::FAILURE;
        }
    };
    let v = p.default_vpn().clone();
    if p.registrar.is_some() {
        start_page(&p);
    }
    if secure_boot_off() {
        let (de, en) = homestick_session::SECURE_BOOT_OFF;
        fail(&p, de, en);
    }
    status(Some(&p), "network");
    wait_for_network(&p);
    let Some((net, servers)) = resolve_servers(&p, &v) else {
        return ExitCode::FAILURE;
    };
    status(Some(&p), "vpn");
    let (tx, rx) = channel::<Event>();
    bring_up_tunnel(&p, &v, &tx, &rx);
    set_tunnel_dns(&v);
    let direct = direct_rules(&p);
    if !load(&p, &ruleset(Stage::Tunnel, &v, &net, &servers, &direct)) {
        return ExitCode::FAILURE;
    }
    line(&format!("vpn {} up", v.name));
    status(Some(&p), "vpn-up");
    let mut watch = Watch::start(&p, &v, tx);
    loop {
        match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(Event::Baresip(l)) => watch.baresip_line(&l),
            Ok(Event::BaresipGone) => watch.baresip_gone(),
            Ok(Event::OpenvpnGone) => restart_openvpn(&p, &v, &watch.tx),
            Ok(Event::Openvpn(_)) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return ExitCode::FAILURE,
        }
        watch.check_tunnel();
    }
}

/// Step 1: wait for an uplink (a default route), saying so after 20 seconds.
fn wait_for_network(p: &Profile) {
    let started = Instant::now();
    let mut said = false;
    while uplink().is_none() {
        if !said && started.elapsed() > Duration::from_secs(20) {
            fail(
                p,
                "Keine Netzwerkverbindung: bitte Netzwerkkabel und Router prüfen",
                "no network: please check the network cable and the router",
            );
            said = true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Step 2: the VPN server's addresses. DNS is open for this, to the uplink's DHCP resolvers
/// and from the resolver only, until the tunnel is up; then only the servers' addresses.
/// `None`: the kill switch could not be loaded.
fn resolve_servers(p: &Profile, v: &Vpn) -> Option<(Uplink, Vec<Allowed>)> {
    let mut tries = 0u32;
    let mut net = Uplink::default();
    let resolved = loop {
        // No uplink at this moment (it went away again): the rules for none, until it is back.
        let now = uplink().unwrap_or_default();
        if now != net {
            if !load(p, &ruleset(Stage::Connecting, v, &now, &[], &[])) {
                return None;
            }
            net = now;
        }
        let r: Vec<_> = v
            .endpoints
            .iter()
            .map(|e| (e.clone(), resolve(&e.host, e.port)))
            .filter(|(_, a)| !a.is_empty())
            .collect();
        if !r.is_empty() {
            break r;
        }
        tries += 1;
        if tries == 3 {
            let hosts: Vec<&str> = v.endpoints.iter().map(|e| e.host.as_str()).collect();
            fail(
                p,
                &format!(
                    "Der VPN-Server {} wurde nicht gefunden (DNS)",
                    hosts.join(", ")
                ),
                &format!("the VPN server {} cannot be found (DNS)", hosts.join(", ")),
            );
        }
        std::thread::sleep(Duration::from_secs(3));
    };
    let servers = endpoint_rules(v, &resolved);
    load(p, &ruleset(Stage::Connecting, v, &net, &servers, &[])).then_some((net, servers))
}

/// Step 3: start the tunnel and wait until it is up (a WireGuard handshake, OpenVPN's
/// "Initialization Sequence Completed", an IPsec SA), saying why not after 30 seconds.
fn bring_up_tunnel(p: &Profile, v: &Vpn, tx: &Sender<Event>, rx: &Receiver<Event>) {
    // An OpenVPN child is watched through its output (Event::OpenvpnGone).
    while let Err(e) = start_vpn(v, tx) {
        fail(
            p,
            &format!("VPN {} startet nicht ({e})", v.name),
            &format!("vpn {} does not start ({e})", v.name),
        );
        std::thread::sleep(Duration::from_secs(10));
    }
    let server_names: Vec<String> = v
        .endpoints
        .iter()
        .map(|e| format!("{}:{}", e.host, e.port))
        .collect();
    let attempt = Instant::now();
    let mut complained = false;
    while !tunnel_is_up(p, v, tx, rx) {
        if !complained && attempt.elapsed() > Duration::from_secs(30) {
            fail(
                p,
                &format!("Keine Antwort vom VPN-Server {}", server_names.join(", ")),
                &format!("no answer from the VPN server {}", server_names.join(", ")),
            );
            complained = true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Whether the tunnel came up; OpenVPN's lines are read for it (and a refused login said).
fn tunnel_is_up(p: &Profile, v: &Vpn, tx: &Sender<Event>, rx: &Receiver<Event>) -> bool {
    match v.kind {
        Kind::Wireguard => wg_handshake(&v.name).is_some(),
        Kind::Ipsec => tunnel_alive(v),
        Kind::Openvpn => {
            let mut up = false;
            while let Ok(ev) = rx.try_recv() {
                match ev {
                    Event::Openvpn(l) if l.contains("Initialization Sequence Completed") => {
                        up = true
                    }
                    Event::Openvpn(l) if l.contains("AUTH_FAILED") => fail(
                        p,
                        "VPN-Anmeldung abgelehnt (Benutzername oder Passwort)",
                        "the VPN refused the login (user name or password)",
                    ),
                    Event::OpenvpnGone => restart_openvpn(p, v, tx),
                    _ => {}
                }
            }
            up
        }
    }
}

/// Step 4 and after: the softphone, and the watch over it and the tunnel.
struct Watch<'a> {
    p: &'a Profile,
    v: &'a Vpn,
    tx: Sender<Event>,
    /// The phone's own address, for the console line.
    aor: Option<String>,
    baresip: Option<Child>,
    registered: bool,
    /// baresip restarts in a row (the back-off grows with them).
    restarts: u32,
    /// baresip's last line, for the message when it stops.
    last_sip: String,
    vpn_down: bool,
    /// Tunnel checks without an answer in a row.
    misses: u32,
    last_check: Instant,
}

impl<'a> Watch<'a> {
    /// Start the softphone (when the profile has one).
    fn start(p: &'a Profile, v: &'a Vpn, tx: Sender<Event>) -> Watch<'a> {
        // No account file or no address in it: the console line says "(account)".
        let aor = std::fs::read_to_string(Path::new(PROFILE_DIR).join("baresip/accounts"))
            .ok()
            .and_then(|a| account_aor(&a));
        let baresip = match p.registrar {
            Some(_) => start_baresip(&tx)
                .map_err(|e| {
                    fail(
                        p,
                        &format!("Das Telefon startet nicht ({e})"),
                        &format!("the phone does not start ({e})"),
                    )
                })
                .ok(),
            None => None,
        };
        Watch {
            p,
            v,
            tx,
            aor,
            baresip,
            registered: false,
            restarts: 0,
            last_sip: String::new(),
            vpn_down: false,
            misses: 0,
            last_check: Instant::now(),
        }
    }

    /// A line of baresip's: registration, refusal, failure, calls.
    fn baresip_line(&mut self, l: &str) {
        let p = self.p;
        match sip_event(l) {
            _ if remember(&mut self.last_sip, l) => {}
            Some(SipEvent::Registered) if !self.registered => {
                self.registered = true;
                self.restarts = 0;
                line(&format!(
                    "sip registered {}",
                    self.aor.as_deref().unwrap_or("(account)")
                ));
                status(Some(p), "sip-registered");
            }
            Some(SipEvent::Refused(code, text)) => {
                self.registered = false;
                fail(
                    p,
                    &format!("Telefon-Anmeldung abgelehnt: {code} {text}"),
                    &format!("phone registration refused: {code} {text}"),
                );
            }
            Some(SipEvent::Failed(why)) if self.registered || !self.vpn_down => {
                self.registered = false;
                fail(
                    p,
                    &format!("Telefon nicht angemeldet ({why})"),
                    &format!("phone not registered ({why})"),
                );
            }
            Some(SipEvent::CallEstablished(_)) => line("call established"),
            Some(SipEvent::CallClosed(_)) => line("call ended"),
            _ => {}
        }
    }

    /// baresip stopped: say so (once per run of failures) and start it again after a
    /// growing pause.
    fn baresip_gone(&mut self) {
        self.registered = false;
        // How it ended, when the child can still be waited for (else nothing to add).
        let how = self
            .baresip
            .take()
            .and_then(|mut c| c.wait().ok())
            .map(|st| st.to_string())
            .unwrap_or_default();
        self.restarts += 1;
        // Said once per run of failures; the journal has baresip's own lines.
        if self.restarts == 1 {
            let last = &self.last_sip;
            fail(
                self.p,
                &format!("Das Telefon wurde beendet ({how}: {last}), es startet neu"),
                &format!("the phone stopped ({how}: {last}), restarting it"),
            );
        }
        std::thread::sleep(Duration::from_secs(3u64 << self.restarts.min(4)));
        self.baresip = start_baresip(&self.tx).ok();
    }

    /// Every 10 seconds: is there an answer through the tunnel? Three misses in a row: down.
    fn check_tunnel(&mut self) {
        if self.last_check.elapsed() < Duration::from_secs(10) {
            return;
        }
        self.last_check = Instant::now();
        let (p, v) = (self.p, self.v);
        if tunnel_alive(v) {
            self.misses = 0;
            if self.vpn_down {
                self.vpn_down = false;
                line(&format!("vpn {} up", v.name));
                let state = if self.registered {
                    "sip-registered"
                } else {
                    "vpn-up"
                };
                status(Some(p), state);
            }
            return;
        }
        self.misses += 1;
        if self.misses >= 3 && !self.vpn_down {
            self.vpn_down = true;
            self.registered = false;
            fail(
                p,
                &format!(
                    "VPN {} getrennt: keine Antwort durch den Tunnel; Telefon und Firmenanwendungen gehen nicht, es wird nichts am Tunnel vorbei gesendet",
                    v.name
                ),
                &format!(
                    "vpn {} down: no answer through the tunnel; calls and office applications do not work, nothing is sent around the tunnel",
                    v.name
                ),
            );
            status(Some(p), "vpn-down");
        }
    }
}

fn kiosk_env() -> ExitCode {
    // No DRM driver (no graphics): the kiosk's fallback below decides.
    let driver = std::fs::read_link("/sys/class/drm/card0/device/driver")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    // Without it wlroots chooses itself, as on real graphics.
    let _ = write_atomic("kiosk.env", homestick_session::kiosk_env(&driver));
    // The browser's policy: without it the browser would start unrestricted, so the kiosk does
    // not start (this step fails) unless it is written.
    let policy = homestick_session::firefox_policies(profile().ok().as_ref());
    if let Err(e) = write_atomic(homestick_session::FIREFOX_POLICIES, &policy) {
        line(&format!(
            "the browser's policy could not be written ({e}); the kiosk does not start"
        ));
        return ExitCode::FAILURE;
    }
    line(&format!(
        "kiosk for the screen's driver {}",
        if driver.is_empty() {
            "(none yet)"
        } else {
            &driver
        }
    ));
    ExitCode::SUCCESS
}

/// `page`: the phone page alone, as after the tunnel is up: for a look at the page, and for
/// tests with the office's PBX reachable without a tunnel.
fn page_only() -> ExitCode {
    let p = match profile() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("homestick-session: {e}");
            return ExitCode::from(2);
        }
    };
    if p.registrar.is_none() {
        eprintln!("homestick-session: the profile has no softphone: no phone page");
        return ExitCode::from(2);
    }
    start_page(&p);
    if PAGE.get().is_none() {
        return ExitCode::FAILURE;
    }
    to_page(Some("vpn-up"), None);
    line(&format!(
        "phone page on {}",
        homestick_formats::paths::kiosk_url()
    ));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("firewall") => firewall(),
        Some("page") => page_only(),
        Some("kiosk-env") => kiosk_env(),
        Some("run") => run(),
        Some("ruleset") => match profile() {
            // For audits on a running stick: the ruleset the first stage loads.
            Ok(p) => {
                print!(
                    "{}",
                    ruleset(
                        Stage::Connecting,
                        p.default_vpn(),
                        &Uplink::default(),
                        &[],
                        &[]
                    )
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("homestick-session: {e}");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!("usage: homestick-session firewall|kiosk-env|run|page|ruleset\n\nfirewall  load the kill switch's first stage (before the network)\nkiosk-env write the kiosk compositor's settings for this PC's screen\nrun       bring up the VPN and the softphone from {PROFILE_DIR}, and the kiosk's phone page\npage      serve the phone page alone (baresip started by someone else)\nruleset   print the first stage's nftables rules");
            ExitCode::from(2)
        }
    }
}
