//! The home-office session on the stick, as pure code: what the verified profile says
//! (`/run/homestick/profile/profile.json`, read with the formats crate's types), the nftables
//! kill switch made from it, and the messages the employee sees. `main.rs` runs the programs
//! (nft, wg-quick, openvpn, baresip).
//!
//! The phone on the kiosk page: [`ctrl`] (baresip's control protocol), [`phone`] (the phone's
//! state and the page's requests), [`api`] (the page's loopback server) and [`service`] (the
//! thread that joins them).

pub mod api;
pub mod ctrl;
pub mod phone;
pub mod service;
pub mod sound;

use std::net::IpAddr;

use homestick_formats::endpoint::{EndpointError, HostPort, PortRange};
use homestick_formats::profile::{OvpnProto, ProfileDoc, ProfileJsonError};

pub use homestick_formats::endpoint::Proto;
pub use homestick_formats::profile::{Customer, Kind};

/// What is wrong with a profile.json.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Not JSON, not the shape homestick writes, or another format.
    #[error("{0}")]
    Doc(#[from] ProfileJsonError),
    /// No VPN connection.
    #[error("profile.json: no VPN connection")]
    NoVpn,
    /// An endpoint that is not host:port.
    #[error("profile.json: vpn {vpn}: endpoint {source} (not host:port)")]
    Endpoint {
        /// Connection name.
        vpn: String,
        /// Why.
        #[source]
        source: EndpointError,
    },
    /// An OpenVPN connection without its `openvpn` table.
    #[error("profile.json: vpn {0}: no openvpn table")]
    NoOpenvpn(String),
    /// A name unusable as an interface name.
    #[error("profile.json: vpn name {0:?} is not an interface name")]
    Name(String),
    /// A direct destination's ports.
    #[error("profile.json: direct {name}: {source}")]
    Ports {
        /// The destination's name.
        name: String,
        /// Why.
        #[source]
        source: EndpointError,
    },
}

/// A server the tunnel talks to, before it is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Protocol.
    pub proto: Proto,
}

/// One VPN connection.
#[derive(Debug, Clone)]
pub struct Vpn {
    /// Name: also the tunnel interface's name.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// The default connection.
    pub default: bool,
    /// The servers (OpenVPN may list several; IPsec is IKE on UDP 500 and 4500).
    pub endpoints: Vec<Endpoint>,
    /// Networks through the tunnel.
    pub routes: Vec<String>,
    /// DNS servers inside the tunnel.
    pub dns: Vec<String>,
    /// Search domains.
    pub dns_search: Vec<String>,
    /// The rendered file, relative to the profile directory.
    pub file: String,
}

/// One destination allowed outside the tunnel, its ports parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Direct {
    /// Name.
    pub name: String,
    /// Address, network or host name.
    pub to: String,
    /// The ports.
    pub ports: Vec<PortRange>,
}

/// What the session needs of profile.json.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The customer.
    pub customer: Customer,
    /// Connections, in profile order (at least one).
    pub vpn: Vec<Vpn>,
    /// The softphone's registrar, when there is a softphone.
    pub registrar: Option<String>,
    /// Destinations allowed outside the tunnel.
    pub direct: Vec<Direct>,
}

fn iface_name(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A connection's servers.
fn endpoints(v: &homestick_formats::profile::Vpn) -> Result<Vec<Endpoint>, ProfileError> {
    let at = |text: &str, proto| {
        HostPort::parse(text)
            .map(|hp| Endpoint {
                host: hp.host,
                port: hp.port,
                proto,
            })
            .map_err(|source| ProfileError::Endpoint {
                vpn: v.name.clone(),
                source,
            })
    };
    match v.kind {
        Kind::Wireguard => Ok(vec![at(&v.endpoint, Proto::Udp)?]),
        Kind::Openvpn => {
            let o = v
                .openvpn
                .as_ref()
                .ok_or_else(|| ProfileError::NoOpenvpn(v.name.clone()))?;
            let proto = match o.proto {
                OvpnProto::Tcp => Proto::Tcp,
                OvpnProto::Udp => Proto::Udp,
            };
            o.remotes.iter().map(|r| at(r, proto)).collect()
        }
        Kind::Ipsec => Ok([500, 4500]
            .into_iter()
            .map(|port| Endpoint {
                host: v.endpoint.clone(),
                port,
                proto: Proto::Udp,
            })
            .collect()),
    }
}

impl Profile {
    /// Parse profile.json.
    pub fn parse(text: &str) -> Result<Self, ProfileError> {
        let doc = ProfileDoc::parse(text.as_bytes())?;
        let mut vpn = Vec::new();
        for v in &doc.vpn {
            if !iface_name(&v.name) {
                return Err(ProfileError::Name(v.name.clone()));
            }
            vpn.push(Vpn {
                endpoints: endpoints(v)?,
                name: v.name.clone(),
                kind: v.kind,
                default: v.default,
                routes: v.routes.clone(),
                dns: v.dns.clone(),
                dns_search: v.dns_search.clone(),
                file: v.file.clone(),
            });
        }
        if vpn.is_empty() {
            return Err(ProfileError::NoVpn);
        }
        let mut direct = Vec::new();
        for d in doc.network.iter().flat_map(|n| &n.direct) {
            let ports = d
                .ports
                .iter()
                .map(|p| PortRange::parse(p))
                .collect::<Result<_, _>>()
                .map_err(|source| ProfileError::Ports {
                    name: d.name.clone(),
                    source,
                })?;
            direct.push(Direct {
                name: d.name.clone(),
                to: d.to.clone(),
                ports,
            });
        }
        Ok(Profile {
            registrar: doc.softphone.as_ref().map(|s| s.registrar.clone()),
            customer: doc.customer,
            vpn,
            direct,
        })
    }

    /// The connection started by default (the marked one, else the first).
    pub fn default_vpn(&self) -> &Vpn {
        self.vpn.iter().find(|v| v.default).unwrap_or(&self.vpn[0])
    }

    /// German, English or both, as the customer chose.
    pub fn say(&self, de: &str, en: &str) -> String {
        let langs = self.customer.languages.as_deref().unwrap_or(&[]);
        let has = |l: &str| langs.iter().any(|x| x == l);
        match (has("de"), has("en")) {
            (true, false) => de.to_string(),
            (false, true) => en.to_string(),
            _ => format!("{de} / {en}"),
        }
    }

    /// The hotline sentence for error lines.
    pub fn hotline(&self) -> String {
        match &self.customer.hotline {
            Some(h) => self.say(
                &format!("Hilfe: IT-Hotline {h}"),
                &format!("help: IT hotline {h}"),
            ),
            None => self.say("Bitte wenden Sie sich an Ihre IT", "please call your IT"),
        }
    }
}

/// Where the session stands: what the kill switch lets out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Before the tunnel is up: DHCP, DNS (to find the VPN server), the VPN server.
    Connecting,
    /// The tunnel is up: DHCP, the VPN server, the tunnel, the allowed direct destinations.
    Tunnel,
}

/// A resolved server or direct destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// What it is (goes into the rule's comment).
    pub what: String,
    /// Address or CIDR network.
    pub to: String,
    /// IPv6.
    pub v6: bool,
    /// `(proto, first, last)`.
    pub ports: Vec<(Proto, u16, u16)>,
}

/// The endpoints as rules, given the addresses they resolved to.
pub fn endpoint_rules(vpn: &Vpn, resolved: &[(Endpoint, Vec<IpAddr>)]) -> Vec<Allowed> {
    let mut out = Vec::new();
    for (e, addrs) in resolved {
        for a in addrs {
            out.push(Allowed {
                what: format!("vpn {} server {}", vpn.name, e.host),
                to: a.to_string(),
                v6: a.is_ipv6(),
                ports: vec![(e.proto, e.port, e.port)],
            });
        }
    }
    out
}

fn comment(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || " .:-_/".contains(*c))
        .take(120)
        .collect()
}

/// The mark the VPN daemons put on their packets (WireGuard's `FwMark`, which the profile's
/// WireGuard files set; OpenVPN's `--mark`, which the session passes): the kill switch lets
/// only marked packets reach the VPN server, so no other program of the stick can talk to it
/// outside the tunnel. 51820, the value wg-quick itself takes for a default route.
pub const VPN_MARK: u32 = 0xca6c;

/// The users whose packets the kill switch lets out besides the tunnel's: systemd-networkd
/// (DHCP), systemd-resolved (DNS before the tunnel) and the session's user (the kiosk and
/// the phone: direct destinations).
const NETWORK_USER: &str = "systemd-network";
const RESOLVER_USER: &str = "systemd-resolve";
const SESSION_USER: &str = "homestick";

/// What the kill switch knows of the network the stick is on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uplink {
    /// The interface of the default route; before the network, `None`: DHCP on any
    /// Ethernet-type link (the only ones networkd configures).
    pub name: Option<String>,
    /// The DNS servers the uplink's DHCP gave: before the tunnel, DNS goes to these only.
    pub resolvers: Vec<IpAddr>,
}

impl Uplink {
    /// The uplink of the default route in `/proc/net/route`'s `routes`, with the resolvers
    /// of its DHCP lease (`lease`: networkd's lease file for that interface, given its name).
    pub fn of(routes: &str, lease: impl Fn(&str) -> Option<String>) -> Option<Uplink> {
        let name = default_route_interface(routes)?;
        // No lease (static addressing): no resolvers from it.
        let resolvers = lease(&name)
            .map(|l| lease_resolvers(&l))
            .unwrap_or_default();
        Some(Uplink {
            name: Some(name),
            resolvers,
        })
    }

    fn out(&self) -> String {
        match &self.name {
            Some(n) => format!("oifname \"{n}\""),
            None => "meta oiftype ether".into(),
        }
    }

    fn inp(&self) -> String {
        match &self.name {
            Some(n) => format!("iifname \"{n}\""),
            None => "meta iiftype ether".into(),
        }
    }
}

/// The interface of the default route in `/proc/net/route`, if its name is one the kernel and
/// udev give (letters, digits, `-`, `_`, `.`; at most 15): anything else is not used as an uplink.
pub fn default_route_interface(routes: &str) -> Option<String> {
    routes.lines().skip(1).find_map(|l| {
        let mut f = l.split_whitespace();
        let name = f.next()?;
        let ok = !name.is_empty()
            && name.len() <= 15
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        (f.next() == Some("00000000") && ok).then(|| name.to_string())
    })
}

/// The DNS servers in a systemd-networkd DHCP lease file (`DNS=a b`); IPv4 only, as the
/// session uses.
pub fn lease_resolvers(lease: &str) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = lease
        .lines()
        .filter_map(|l| l.strip_prefix("DNS="))
        .flat_map(str::split_whitespace)
        .filter_map(|a| a.parse::<std::net::Ipv4Addr>().ok())
        .filter(|a| !a.is_unspecified() && !a.is_broadcast() && !a.is_multicast())
        .map(IpAddr::V4)
        .collect();
    // In the lease's order (the first is preferred), each once.
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|a| seen.insert(*a));
    v
}

/// Who may send to a VPN server: the daemon's marked packets (WireGuard, OpenVPN), or root's
/// (charon, strongSwan's IKE daemon, runs as root and sets no mark).
fn server_owner(kind: Kind) -> String {
    match kind {
        Kind::Ipsec => "meta skuid 0".into(),
        _ => format!("meta mark {VPN_MARK:#010x}"),
    }
}

fn allow_rule(s: &mut String, owner: &str, a: &Allowed) {
    let fam = if a.v6 { "ip6" } else { "ip" };
    for (proto, first, last) in &a.ports {
        let ports = if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        };
        homestick_formats::pushln!(
            s,
            "    {owner} {fam} daddr {} {} dport {ports} accept comment \"{}\"",
            a.to,
            proto.as_str(),
            comment(&a.what)
        );
    }
}

/// The nftables ruleset (for `nft -f -`): replaces table `inet homestick` in one transaction.
/// Output is dropped unless a rule allows it; nothing is forwarded; input only answers to what
/// went out, DHCP's replies on the uplink and (with the tunnel up) what comes through the
/// tunnel. Each rule names who may send: DHCP from networkd on the uplink; before the tunnel,
/// DNS from the resolver to the uplink's DHCP resolvers; the VPN servers from the VPN daemon;
/// direct destinations (tunnel up) from the session's user.
pub fn ruleset(
    stage: Stage,
    vpn: &Vpn,
    uplink: &Uplink,
    servers: &[Allowed],
    direct: &[Allowed],
) -> String {
    let mut s = String::new();
    s.push_str("table inet homestick\ndelete table inet homestick\ntable inet homestick {\n");
    s.push_str("  chain input {\n    type filter hook input priority filter; policy drop;\n");
    s.push_str("    iif \"lo\" accept\n    ct state established,related accept\n");
    homestick_formats::pushln!(
        s,
        "    {} udp sport 67 udp dport 68 accept comment \"DHCP replies\"",
        uplink.inp()
    );
    homestick_formats::pushln!(
        s,
        "    iifname \"{}\" accept comment \"through the tunnel\"",
        vpn.name
    );
    s.push_str("  }\n");
    s.push_str(
        "  chain forward {\n    type filter hook forward priority filter; policy drop;\n  }\n",
    );
    s.push_str("  chain output {\n    type filter hook output priority filter; policy drop;\n");
    s.push_str("    oif \"lo\" accept\n");
    homestick_formats::pushln!(
        s,
        "    {} meta skuid \"{NETWORK_USER}\" udp sport 68 udp dport 67 accept comment \"DHCP\"",
        uplink.out()
    );
    if stage == Stage::Connecting {
        for r in &uplink.resolvers {
            let fam = if r.is_ipv6() { "ip6" } else { "ip" };
            for proto in ["udp", "tcp"] {
                homestick_formats::pushln!(
                    s,
                    "    {} meta skuid \"{RESOLVER_USER}\" {fam} daddr {r} {proto} dport 53 accept comment \"DNS to find the VPN server\"",
                    uplink.out()
                );
            }
        }
    }
    let owner = server_owner(vpn.kind);
    for a in servers {
        allow_rule(&mut s, &owner, a);
    }
    if vpn.kind == Kind::Ipsec {
        for a in servers {
            let fam = if a.v6 { "ip6" } else { "ip" };
            homestick_formats::pushln!(
                s,
                "    {fam} daddr {} meta l4proto esp accept comment \"{}\"",
                a.to,
                comment(&a.what)
            );
        }
    }
    if stage == Stage::Tunnel {
        let owner = format!("meta skuid \"{SESSION_USER}\"");
        for a in direct {
            allow_rule(&mut s, &owner, a);
        }
    }
    match vpn.kind {
        Kind::Ipsec => {
            s.push_str("    rt ipsec exists accept comment \"through the tunnel (IPsec policy)\"\n")
        }
        _ => {
            homestick_formats::pushln!(
                s,
                "    oifname \"{}\" accept comment \"through the tunnel\"",
                vpn.name
            );
        }
    }
    s.push_str("  }\n}\n");
    s
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The kiosk browser's exception for the phone page (a WebExtension match pattern).
pub const KIOSK_PATTERN: &str = "http://127.0.0.1/*";

/// Where the kiosk's browser reads its policy: the base links
/// `/etc/firefox/policies/policies.json` here.
pub const FIREFOX_POLICIES: &str = "firefox-policies.json";

/// The kiosk browser's policy (firefox-esr enterprise policies) for `p`: every URL blocked but
/// the session's status page and the customer's intranet (the search domains of its VPNs, over
/// HTTP and HTTPS); no settings, add-ons, developer tools, private windows, accounts, password
/// store or telemetry; the status page as the locked home page. Without a profile only the
/// status page.
pub fn firefox_policies(p: Option<&Profile>) -> String {
    let mut exceptions = vec!["file:///run/homestick-session/*".to_string()];
    // The phone page, when there is a phone. A match pattern names no port: this allows the
    // PC's own loopback address, where only the phone page speaks HTTP (baresip's control
    // port there takes netstrings and drops an HTTP request).
    if p.is_some_and(|p| p.registrar.is_some()) {
        exceptions.push(KIOSK_PATTERN.to_string());
    }
    let mut domains: Vec<&str> = p
        .map(|p| {
            // No profile: no search domains.
            p.vpn
                .iter()
                .flat_map(|v| v.dns_search.iter().map(String::as_str))
                .collect()
        })
        .unwrap_or_default();
    domains.sort_unstable();
    domains.dedup();
    for d in domains {
        for scheme in ["https", "http"] {
            exceptions.push(format!("{scheme}://{d}/*"));
            exceptions.push(format!("{scheme}://*.{d}/*"));
        }
    }
    let locked = |v: serde_json::Value| serde_json::json!({ "Value": v, "Status": "locked" });
    let policy = serde_json::json!({ "policies": {
        "WebsiteFilter": { "Block": ["<all_urls>"], "Exceptions": exceptions },
        "BlockAboutConfig": true,
        "BlockAboutProfiles": true,
        "BlockAboutAddons": true,
        "BlockAboutSupport": true,
        "DisableDeveloperTools": true,
        "DisableSafeMode": true,
        "DisableProfileRefresh": true,
        "DisableFeedbackCommands": true,
        "DisableForgetButton": true,
        "PrintingEnabled": false,
        "DisablePrivateBrowsing": true,
        "DisableTelemetry": true,
        "DisableFirefoxStudies": true,
        "DisablePocket": true,
        "DisableAppUpdate": true,
        "DisableFirefoxAccounts": true,
        "DisableSetDesktopBackground": true,
        "DisableProfileImport": true,
        "DontCheckDefaultBrowser": true,
        "NoDefaultBookmarks": true,
        "OfferToSaveLogins": false,
        "PasswordManagerEnabled": false,
        "CaptivePortal": false,
        "NetworkPrediction": false,
        "DNSOverHTTPS": { "Enabled": false, "Locked": true },
        "Homepage": { "URL": "file:///run/homestick-session/status.html", "Locked": true, "StartPage": "homepage" },
        "OverrideFirstRunPage": "",
        "OverridePostUpdatePage": "",
        "DownloadDirectory": "/tmp",
        "PromptForDownloadLocation": false,
        "UserMessaging": { "ExtensionRecommendations": false, "FeatureRecommendations": false, "MoreFromMozilla": false, "SkipOnboarding": true, "Locked": true },
        "ExtensionSettings": { "*": { "installation_mode": "blocked" } },
        "Preferences": {
            "browser.shell.checkDefaultBrowser": locked(false.into()),
            "toolkit.telemetry.enabled": locked(false.into()),
            "network.connectivity-service.enabled": locked(false.into()),
            "browser.safebrowsing.downloads.remote.enabled": locked(false.into())
        }
    }});
    // A json! value of strings and booleans: serializing cannot fail.
    serde_json::to_string_pretty(&policy).unwrap_or_default() + "\n"
}

/// The kiosk compositor's (wlroots) settings for the screen's DRM driver: on the virtual
/// adapters of virtual machines (no 3D, no atomic modesetting that passes wlroots' output test,
/// no cursor plane) the software renderer, legacy modesetting and a drawn cursor; on real
/// graphics wlroots chooses itself.
pub fn kiosk_env(driver: &str) -> &'static str {
    match driver {
        // A DRM card on a virtio PCI device is virtio-gpu (its card's device is the PCI function,
        // bound to virtio-pci).
        "virtio-pci" | "virtio_gpu" | "virtio-gpu" | "bochs" | "bochs-drm" | "qxl" | "cirrus"
        | "vmwgfx" | "simpledrm" | "hyperv_drm" | "vboxvideo" => {
            "WLR_RENDERER=pixman\nWLR_DRM_NO_ATOMIC=1\nWLR_NO_HARDWARE_CURSORS=1\n"
        }
        _ => "",
    }
}

/// What the person at home reads when the PC started without Secure Boot, (German, English).
pub const SECURE_BOOT_OFF: (&str, &str) = (
    "Secure Boot ist aus: dieser PC schützt den Start nicht. Bitte rufen Sie die IT-Hotline an.",
    "Secure Boot is off: this PC does not protect the start. Please call the IT hotline.",
);

/// The kiosk's start page for a session state (German and English, the customer's hotline);
/// with `secure_boot_off` a notice that the PC started without Secure Boot.
///
/// With `phone` the page opens the kiosk's phone page ([`homestick_formats::paths::kiosk_url`])
/// after a second: the session serves it.
pub fn status_page(p: Option<&Profile>, state: &str, secure_boot_off: bool, phone: bool) -> String {
    let (de, en, ok) = match state {
        "network" => (
            "Netzwerk wird gesucht …",
            "Looking for the network …",
            false,
        ),
        "vpn" => (
            "Verbindung zum Büro wird aufgebaut …",
            "Connecting to the office …",
            false,
        ),
        "vpn-up" => (
            "Mit dem Büro verbunden. Telefon meldet sich an …",
            "Connected to the office. The phone is signing in …",
            true,
        ),
        "sip-registered" => (
            "Mit dem Büro verbunden. Telefon bereit.",
            "Connected to the office. Phone ready.",
            true,
        ),
        "vpn-down" => (
            "Keine Verbindung zum Büro. Bitte Netzwerk prüfen.",
            "No connection to the office. Please check the network.",
            false,
        ),
        _ => (
            "Störung. Bitte rufen Sie die IT-Hotline an.",
            "Something is wrong. Please call the IT hotline.",
            false,
        ),
    };
    // No profile (it could not be read): no name on the page.
    let name = p.map(|p| html(&p.customer.name)).unwrap_or_default();
    // No hotline in the profile: no line for it.
    let hotline = p
        .and_then(|p| p.customer.hotline.as_deref())
        .map(|h| format!("<p class=\"h\">IT-Hotline: {}</p>", html(h)))
        .unwrap_or_default();
    // Secure Boot on (or unknown): no notice.
    let notice = match secure_boot_off {
        true => format!(
            "<div class=\"w\"><p>{}</p><p lang=\"en\">{}</p></div>",
            html(SECURE_BOOT_OFF.0),
            html(SECURE_BOOT_OFF.1)
        ),
        false => String::new(),
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"de\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"{refresh}\">\
<title>homestick</title><style>body{{font-family:sans-serif;background:#f4f4f4;margin:8vh 8vw}}\
h1{{font-size:2.2em}}.s{{font-size:1.6em;padding:1em;border-radius:.4em;background:{bg}}}.h{{font-size:1.3em}}\
.w{{font-size:1.2em;padding:.6em 1em;margin-top:1em;border:3px solid #a00;border-radius:.4em;background:#fff}}</style></head>\
<body><h1>{name}</h1><div class=\"s\"><p>{de}</p><p lang=\"en\">{en}</p></div>{notice}{hotline}</body></html>\n",
        bg = if ok { "#cfeccf" } else { "#f6e0b5" },
        refresh = match phone {
            true => format!("1; url={}", homestick_formats::paths::kiosk_url()),
            false => "3".to_string(),
        },
        de = html(de),
        en = html(en),
    )
}

/// The `<sip:...>` address of a baresip accounts file's first account.
pub fn account_aor(accounts: &str) -> Option<String> {
    accounts
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("<sip:") || l.starts_with("<sips:"))
        .and_then(|l| l.get(1..l.find('>')?))
        .map(|a| a.split(';').next().unwrap_or(a).to_string())
}

/// What a line of baresip's output means for the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipEvent {
    /// The registrar accepted the registration.
    Registered,
    /// The registrar refused: the status code and text.
    Refused(u16, String),
    /// Registration failed without a SIP answer (network, TLS, DNS).
    Failed(String),
    /// A call was established.
    CallEstablished(String),
    /// A call ended.
    CallClosed(String),
}

/// Read one line of baresip's output (its `ua` and `call` lines).
pub fn sip_event(line: &str) -> Option<SipEvent> {
    let l = line.trim();
    if let Some(i) = l.find("} ") {
        // "sip:1001@host: {0/TLS/v4} 200 OK (kamailio) [1 binding]"
        let rest = &l[i + 2..];
        let code: u16 = rest.get(..3)?.parse().ok()?;
        let text = rest.get(4..).unwrap_or("").trim().to_string();
        return Some(if (200..300).contains(&code) {
            SipEvent::Registered
        } else {
            SipEvent::Refused(code, text)
        });
    }
    if l.contains("failed to register") || l.contains("reg: ") && l.contains("failed") {
        return Some(SipEvent::Failed(l.to_string()));
    }
    if l.contains("Call established") || l.contains("call established") {
        return Some(SipEvent::CallEstablished(l.to_string()));
    }
    if l.contains("session closed") || l.contains("Call with") && l.contains("terminated") {
        return Some(SipEvent::CallClosed(l.to_string()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_page_says_when_secure_boot_is_off() {
        let on = status_page(None, "network", false, false);
        let off = status_page(None, "network", true, false);
        assert!(!on.contains("Secure Boot"));
        assert!(off.contains("Secure Boot ist aus") && off.contains("Secure Boot is off"));
        assert!(off.contains("Netzwerk wird gesucht"));
        assert!(on.contains("content=\"3\""));
    }

    #[test]
    fn with_a_phone_the_status_page_opens_the_phone_page() {
        let page = status_page(None, "vpn", false, true);
        assert!(
            page.contains("content=\"1; url=http://127.0.0.1:8321/\""),
            "{page}"
        );
    }

    #[test]
    fn the_kiosk_browser_allows_the_status_page_and_the_customers_intranet_only() {
        // Two connections of one customer may share a search domain: listed once.
        let mut p = profile();
        let phone = p.registrar.take();
        p.vpn.push(p.vpn[0].clone());
        let v: serde_json::Value = serde_json::from_str(&firefox_policies(Some(&p))).unwrap();
        let f = &v["policies"]["WebsiteFilter"];
        assert_eq!(f["Block"], serde_json::json!(["<all_urls>"]));
        assert_eq!(
            f["Exceptions"],
            serde_json::json!([
                "file:///run/homestick-session/*",
                "https://x.local/*",
                "https://*.x.local/*",
                "http://x.local/*",
                "http://*.x.local/*"
            ])
        );
        assert_eq!(v["policies"]["BlockAboutConfig"], true);
        let none: serde_json::Value = serde_json::from_str(&firefox_policies(None)).unwrap();
        assert_eq!(
            none["policies"]["WebsiteFilter"]["Exceptions"],
            serde_json::json!(["file:///run/homestick-session/*"])
        );
        // With a phone, its page too.
        p.registrar = phone.or(Some("sip:pbx.x.local".into()));
        let v: serde_json::Value = serde_json::from_str(&firefox_policies(Some(&p))).unwrap();
        assert_eq!(
            v["policies"]["WebsiteFilter"]["Exceptions"][1],
            "http://127.0.0.1/*"
        );
    }

    #[test]
    fn the_kiosk_draws_in_software_on_virtual_adapters_only() {
        for d in ["virtio-pci", "virtio_gpu", "bochs-drm", "qxl", "simpledrm"] {
            assert!(kiosk_env(d).contains("WLR_RENDERER=pixman"), "{d}");
            assert!(kiosk_env(d).contains("WLR_DRM_NO_ATOMIC=1"), "{d}");
        }
        for d in ["i915", "amdgpu", "nouveau", ""] {
            assert_eq!(kiosk_env(d), "", "{d}");
        }
    }

    /// A WireGuard customer's profile.json, as the builder writes it.
    fn doc() -> serde_json::Value {
        serde_json::json!({"format": "homestick-profile/1",
            "customer": {"id": "stadt-x", "name": "Stadt X", "hotline": "+49 1",
                "languages": ["de", "en"]},
            "vpn": [{"name": "buero", "kind": "wireguard", "default": true,
              "endpoint": "vpn.x.example:51820", "routes": ["10.20.0.0/16"],
              "dns": ["10.20.0.53"], "dns_search": ["x.local"], "file": "wireguard/buero.conf",
              "wireguard": {"mtu": 1420, "persistent_keepalive": 25, "preshared_key": false,
                "server_public_key": "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="}}],
            "softphone": {"registrar": "sip:sip.x.example", "srtp": "mandatory",
                "transport": "tls"},
            "slots": [], "files": ["profile.json", "wireguard/buero.conf"]})
    }

    fn profile() -> Profile {
        Profile::parse(&doc().to_string()).expect("parses")
    }

    fn golden(id: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/golden")
            .join(id)
            .join("profile.json");
        std::fs::read_to_string(p).expect("golden profile.json")
    }

    #[test]
    fn endpoints_of_each_kind() {
        let p = profile();
        assert_eq!(
            p.default_vpn().endpoints,
            vec![Endpoint {
                host: "vpn.x.example".into(),
                port: 51820,
                proto: Proto::Udp
            }]
        );
        let mut ovpn: serde_json::Value =
            serde_json::from_str(&golden("gemeinde-waldbach")).expect("json");
        ovpn["vpn"][0]["openvpn"]["remotes"][1] = "[2001:db8::1]:443".into();
        ovpn["vpn"][0]["openvpn"]["proto"] = "tcp".into();
        let p = Profile::parse(&ovpn.to_string()).expect("parses");
        let e = &p.default_vpn().endpoints;
        assert_eq!(e.len(), 2);
        assert_eq!((e[1].host.as_str(), e[1].port), ("2001:db8::1", 443));
        assert!(e.iter().all(|e| e.proto == Proto::Tcp));
        let ike = &p.vpn[1].endpoints;
        assert_eq!(ike.iter().map(|e| e.port).collect::<Vec<_>>(), [500, 4500]);
        assert_eq!(p.say("Hallo", "Hello"), "Hallo");
        assert_eq!(p.hotline(), "Hilfe: IT-Hotline +49 5556 789-0");
        let m = Profile::parse(&golden("stadt-musterhausen")).expect("parses");
        assert_eq!(m.default_vpn().name, "buero");
        assert!(m.registrar.is_some());
    }

    #[test]
    fn bad_profiles_are_named() {
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut d = doc();
            f(&mut d);
            d.to_string()
        };
        let cases = [
            ("not json".to_string(), "profile.json: "),
            (
                with(&|d| d["format"] = "homestick-profile/9".into()),
                "format",
            ),
            (with(&|d| d["vpn"] = serde_json::json!([])), "no VPN"),
            (
                with(&|d| d["vpn"][0]["endpoint"] = "nohost".into()),
                "no port",
            ),
            (
                with(&|d| d["vpn"][0]["endpoint"] = "h:0".into()),
                "port \"0\"",
            ),
            (
                with(&|d| d["vpn"][0]["name"] = "A B".into()),
                "interface name",
            ),
            (
                with(&|d| d["vpn"][0]["kind"] = "openvpn".into()),
                "no openvpn table",
            ),
            (
                with(&|d| d["customer"] = serde_json::json!({"name": "x"})),
                "missing field `id`",
            ),
            (
                with(&|d| {
                    d["network"] = serde_json::json!({"direct": [
                        {"name": "meet", "to": "192.0.2.1", "ports": ["tcp/9-8"]}]})
                }),
                "direct meet: \"tcp/9-8\": the range runs backwards",
            ),
        ];
        for (text, want) in cases {
            let e = Profile::parse(&text).expect_err(&text).to_string();
            println!("case {want}: {e}");
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn direct_destinations_keep_their_port_ranges() {
        let mut d = doc();
        d["network"] = serde_json::json!({"direct": [
            {"name": "meet", "to": "192.0.2.0/24", "ports": ["tcp/443", "udp/3478-3481"]}]});
        let p = Profile::parse(&d.to_string()).expect("parses");
        let r: Vec<_> = p.direct[0]
            .ports
            .iter()
            .map(|r| (r.proto, r.first, r.last))
            .collect();
        assert_eq!(r, [(Proto::Tcp, 443, 443), (Proto::Udp, 3478, 3481)]);
    }

    #[test]
    fn the_kill_switch_opens_dns_only_while_connecting() {
        let p = profile();
        let v = p.default_vpn();
        let servers = endpoint_rules(
            v,
            &[(
                v.endpoints[0].clone(),
                vec!["192.0.2.1".parse().expect("ip")],
            )],
        );
        let direct = vec![Allowed {
            what: "direct video".into(),
            to: "198.51.100.0/24".into(),
            v6: false,
            ports: vec![(Proto::Tcp, 443, 443), (Proto::Udp, 3478, 3481)],
        }];
        let up = Uplink {
            name: Some("enp0s3".into()),
            resolvers: vec!["10.0.2.3".parse().expect("ip")],
        };
        let c = ruleset(Stage::Connecting, v, &up, &servers, &direct);
        assert!(c.contains("    oifname \"enp0s3\" meta skuid \"systemd-resolve\" ip daddr 10.0.2.3 udp dport 53 accept"), "{c}");
        assert!(c.contains("    oifname \"enp0s3\" meta skuid \"systemd-resolve\" ip daddr 10.0.2.3 tcp dport 53 accept"), "{c}");
        assert_eq!(c.matches("dport 53").count(), 2, "{c}");
        assert!(
            c.contains("    meta mark 0x0000ca6c ip daddr 192.0.2.1 udp dport 51820 accept"),
            "{c}"
        );
        assert!(!c.contains("198.51.100.0/24"), "{c}");
        assert!(c.contains("policy drop"));
        let t = ruleset(Stage::Tunnel, v, &up, &servers, &direct);
        assert!(!t.contains("dport 53"), "{t}");
        assert!(
            t.contains(
                "    meta skuid \"homestick\" ip daddr 198.51.100.0/24 tcp dport 443 accept"
            ),
            "{t}"
        );
        assert!(t.contains(
            "    meta skuid \"homestick\" ip daddr 198.51.100.0/24 udp dport 3478-3481 accept"
        ));
        assert!(t.contains("oifname \"buero\" accept"));
        assert!(t.contains(
            "chain forward {\n    type filter hook forward priority filter; policy drop;"
        ));
    }

    #[test]
    fn before_the_network_only_networkd_may_send_dhcp_and_nothing_else_leaves() {
        let p = profile();
        let r = ruleset(
            Stage::Connecting,
            p.default_vpn(),
            &Uplink::default(),
            &[],
            &[],
        );
        let out = &r[r.find("chain output").expect("output")..];
        let rules: Vec<&str> = out
            .lines()
            .skip(2)
            .map(str::trim)
            .filter(|l| !l.starts_with('}'))
            .collect();
        assert_eq!(
            rules,
            [
                "oif \"lo\" accept",
                "meta oiftype ether meta skuid \"systemd-network\" udp sport 68 udp dport 67 accept comment \"DHCP\"",
                "oifname \"buero\" accept comment \"through the tunnel\"",
            ],
            "{r}"
        );
        assert!(
            r.contains("    meta iiftype ether udp sport 67 udp dport 68 accept"),
            "{r}"
        );
    }

    #[test]
    fn every_server_and_direct_rule_names_who_may_send() {
        for (kind, owner) in [
            (Kind::Wireguard, "meta mark 0x0000ca6c"),
            (Kind::Openvpn, "meta mark 0x0000ca6c"),
            (Kind::Ipsec, "meta skuid 0"),
        ] {
            let mut v = profile().default_vpn().clone();
            v.kind = kind;
            let servers = endpoint_rules(
                &v,
                &[(
                    v.endpoints[0].clone(),
                    vec!["192.0.2.1".parse().expect("ip")],
                )],
            );
            let direct = vec![Allowed {
                what: "d".into(),
                to: "198.51.100.7".into(),
                v6: false,
                ports: vec![(Proto::Tcp, 443, 443)],
            }];
            let up = Uplink {
                name: Some("eth0".into()),
                resolvers: vec!["10.0.2.3".parse().expect("ip")],
            };
            for stage in [Stage::Connecting, Stage::Tunnel] {
                let r = ruleset(stage, &v, &up, &servers, &direct);
                for l in r
                    .lines()
                    .filter(|l| l.contains(" accept") && l.contains("daddr"))
                {
                    let named = l.contains(owner)
                        || l.contains("meta skuid \"")
                        || l.contains("meta l4proto esp");
                    assert!(named, "{kind:?} {stage:?}: {l}");
                }
                assert!(
                    r.contains(&format!("    {owner} ip daddr 192.0.2.1 ")),
                    "{kind:?}: {r}"
                );
            }
        }
    }

    #[test]
    fn the_uplink_is_the_default_routes_interface_with_its_dhcp_resolvers() {
        let routes = "Iface\tDestination\tGateway\tFlags\n\
                      enp0s3\t0002000A\t00000000\t0001\n\
                      enp0s3\t00000000\t0202000A\t0003\n";
        let lease = "# This is private data. Do not parse.\nADDRESS=10.0.2.15\nDNS=10.0.2.3 10.0.2.3 0.0.0.0 224.0.0.1 bogus\nDNS=9.9.9.9\n";
        let up =
            Uplink::of(routes, |n| (n == "enp0s3").then(|| lease.to_string())).expect("uplink");
        assert_eq!(up.name.as_deref(), Some("enp0s3"));
        assert_eq!(
            up.resolvers,
            [
                "10.0.2.3".parse::<IpAddr>().expect("ip"),
                "9.9.9.9".parse().expect("ip")
            ]
        );
        assert_eq!(Uplink::of("Iface\tDestination\n", |_| None), None);
        for bad in ["en\"x", "a b", "", "verylonginterfacename0"] {
            let r = format!("Iface\tDestination\n{bad}\t00000000\t0\n");
            assert_eq!(default_route_interface(&r), None, "{bad:?}");
        }
        assert!(Uplink::of(routes, |_| None)
            .expect("uplink")
            .resolvers
            .is_empty());
    }

    #[test]
    fn ports_and_accounts_and_sip_lines() {
        assert_eq!(
            account_aor("# c\n<sip:1001@sip.x.example;transport=tls>;auth_user=a\n").as_deref(),
            Some("sip:1001@sip.x.example")
        );
        assert_eq!(account_aor("# nothing\n"), None);
        assert_eq!(
            sip_event("sip:1001@sip.x.example: {0/TLS/v4} 200 OK (kamailio) [1 binding]"),
            Some(SipEvent::Registered)
        );
        assert_eq!(
            sip_event("sip:1001@sip.x.example: {0/TLS/v4} 403 Forbidden"),
            Some(SipEvent::Refused(403, "Forbidden".into()))
        );
        assert_eq!(sip_event("baresip is ready."), None);
    }
}
