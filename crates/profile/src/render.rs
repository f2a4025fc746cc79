//! Rendering: a checked profile becomes the files of the profile partition.
//!
//! | file | for |
//! |---|---|
//! | `wireguard/<name>.conf` | wg-quick |
//! | `openvpn/<name>.ovpn` | OpenVPN 2.6 client, certificates and keys inlined |
//! | `strongswan/swanctl.conf`, `strongswan/x509ca/<name>-ca.pem` | strongSwan (swanctl) |
//! | `baresip/config`, `baresip/accounts`, `baresip/contacts` | baresip softphone |
//! | `branding/logo.*` | the customer's logo |
//! | `profile.json` | the normalized profile (stable key order), with the slot list |
//!
//! Output is deterministic: the same profile renders to the same bytes.

use std::collections::BTreeMap;

use homestick_formats::profile::{self as doc, ProfileDoc};
use homestick_formats::slot::{SipField, SlotName, VpnField};

use crate::roster::Value;
use crate::schema::{
    Ipsec, IpsecAuth, OpenVpn, OvpnAuth, OvpnProto, Softphone, Srtp, Transport, WireGuard,
};
use homestick_formats::endpoint::HostPort;
use homestick_formats::paths::{BARESIP_CTRL, PROFILE_JSON, PROFILE_MOUNT};

use crate::{check, write, CheckedVpn, Customer, Profile, ProfileFile, Referenced, Slot, VpnKind};

/// Why a profile could not be rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// profile.json could not be serialized.
    #[error("{0}")]
    Json(#[from] doc::ProfileJsonError),
    /// A value its format's writer refused.
    #[error("{field}: {source}")]
    Unwritable {
        /// The slot or customer.toml field.
        field: String,
        /// The writer's reason.
        #[source]
        source: write::Unwritable,
    },
    /// A slot without a value in a personalised render.
    #[error("{0}: no value for this slot")]
    Missing(SlotName),
}

/// How a slot's value is written where it stands: each by its format's writer.
#[derive(Debug, Clone, Copy)]
enum W {
    /// A wg-quick `key = value`.
    Wg,
    /// A line of an OpenVPN inline block.
    OvpnLine,
    /// PEM inside an OpenVPN inline block (written anew from DER, no final newline).
    Pem,
    /// A double-quoted swanctl.conf string.
    Swan,
    /// A baresip account parameter's value.
    Baresip,
    /// A whole file of its own (PEM with its final newline).
    File,
}

/// The slots a render meets: recorded for the slot list, and written as `{{name}}` (the
/// template) or as the user's parsed value through the format's writer.
#[derive(Default)]
struct Slots<'a> {
    by_name: BTreeMap<SlotName, (String, Vec<String>)>,
    values: Option<&'a BTreeMap<SlotName, Value>>,
    error: Option<RenderError>,
}

impl Slots<'_> {
    /// The slot `name` as it stands in `file`, written by `w`; records that `file` holds it.
    fn put(&mut self, name: SlotName, description: &str, file: &str, w: W) -> String {
        let e = self
            .by_name
            .entry(name.clone())
            .or_insert_with(|| (description.to_string(), Vec::new()));
        if !e.1.iter().any(|f| f == file) {
            e.1.push(file.to_string());
        }
        let Some(values) = self.values else {
            let placeholder = format!("{{{{{name}}}}}");
            return match w {
                W::Swan => format!("\"{placeholder}\""),
                W::File => format!("{placeholder}\n"),
                _ => placeholder,
            };
        };
        let Some(v) = values.get(&name) else {
            self.error.get_or_insert(RenderError::Missing(name));
            return String::new();
        };
        let text = v.text();
        let written = match w {
            W::Wg => write::wg_value(&text).map(str::to_string),
            W::OvpnLine => write::ovpn_inline_line(&text).map(str::to_string),
            W::Pem => Ok(text.trim_end().to_string()),
            W::Swan => write::swanctl_quoted(&text),
            W::Baresip => write::baresip_param(&text).map(str::to_string),
            W::File => Ok(text.to_string()),
        };
        written.unwrap_or_else(|source| {
            self.error.get_or_insert(RenderError::Unwritable {
                field: name.to_string(),
                source,
            });
            String::new()
        })
    }

    /// A customer.toml value through its format's writer; a refusal is kept as the error.
    fn field(&mut self, field: &str, r: Result<String, write::Unwritable>) -> String {
        r.unwrap_or_else(|source| {
            self.error.get_or_insert(RenderError::Unwritable {
                field: field.to_string(),
                source,
            });
            String::new()
        })
    }

    fn into_list(self) -> Result<Vec<Slot>, RenderError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        Ok(self
            .by_name
            .into_iter()
            .map(|(name, (description, files))| Slot {
                name,
                description,
                files,
            })
            .collect())
    }
}

fn header(c: &Customer, what: &str, comment: &str) -> String {
    format!(
        "{comment} homestick profile for {} ({}): {what}.\n\
         {comment} Generated by homestick from customer.toml; do not edit.\n\
         {comment} Values in double braces are per-user slots, filled when sticks are personalised.\n",
        write::comment(&c.name),
        c.id
    )
}

fn netmask(prefix: u8) -> String {
    let m = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    std::net::Ipv4Addr::from(m).to_string()
}

/// The mark WireGuard puts on its packets on the stick: the session's kill switch lets only
/// marked packets reach the VPN server (the session's `VPN_MARK`; the office tests on QEMU
/// fail if the two differ). 51820, what wg-quick takes for a default route anyway.
pub const WIREGUARD_FWMARK: u32 = 0xca6c;

fn wireguard(c: &Customer, v: &CheckedVpn, w: &WireGuard, slots: &mut Slots) -> ProfileFile {
    let path = format!("wireguard/{}.conf", v.toml.name);
    let n = &v.toml.name;
    let mut s = header(c, &format!("WireGuard connection \"{n}\""), "#");
    s.push_str("\n[Interface]\n");
    homestick_formats::pushln!(
        s,
        "PrivateKey = {}",
        slots.put(
            SlotName::vpn(n, VpnField::PrivateKey),
            "the user's WireGuard private key (base64)",
            &path,
            W::Wg
        )
    );
    homestick_formats::pushln!(
        s,
        "Address = {}",
        slots.put(
            SlotName::vpn(n, VpnField::Address),
            "the user's tunnel address(es) in CIDR form, e.g. 10.99.0.17/32",
            &path,
            W::Wg
        )
    );
    let mut dns: Vec<String> = v.toml.dns.clone();
    dns.extend(v.toml.dns_search.iter().cloned());
    if !dns.is_empty() {
        homestick_formats::pushln!(s, "DNS = {}", dns.join(", "));
    }
    homestick_formats::pushln!(s, "MTU = {}", w.mtu);
    // The stick's kill switch lets only packets with this mark reach the VPN server
    // (homestick-session's VPN_MARK).
    homestick_formats::pushln!(s, "FwMark = {WIREGUARD_FWMARK:#x}");
    s.push_str("\n[Peer]\n");
    homestick_formats::pushln!(s, "PublicKey = {}", w.server_public_key);
    if w.preshared_key {
        homestick_formats::pushln!(
            s,
            "PresharedKey = {}",
            slots.put(
                SlotName::vpn(n, VpnField::PresharedKey),
                "the user's WireGuard preshared key (base64)",
                &path,
                W::Wg
            )
        );
    }
    homestick_formats::pushln!(s, "Endpoint = {}", w.endpoint);
    homestick_formats::pushln!(s, "AllowedIPs = {}", v.toml.routes.join(", "));
    if w.persistent_keepalive > 0 {
        homestick_formats::pushln!(s, "PersistentKeepalive = {}", w.persistent_keepalive);
    }
    ProfileFile {
        path,
        data: s.into_bytes(),
    }
}

/// A CA bundle as PEM, written anew from its certificates' DER.
fn ca_pem(r: &Referenced) -> String {
    r.certs
        .iter()
        .map(|c| write::pem("CERTIFICATE", &c.der))
        .collect()
}

/// Split tunnel as the customer describes it: ignore a pushed default route, add our own; and
/// the DNS servers and search domains.
fn openvpn_routes(s: &mut String, v: &CheckedVpn) {
    s.push_str("pull-filter ignore \"redirect-gateway\"\n");
    for r in &v.toml.routes {
        match check::cidr(r) {
            Ok((std::net::IpAddr::V4(_), 0)) => {
                s.push_str("redirect-gateway def1\n");
            }
            Ok((std::net::IpAddr::V4(a), p)) => {
                homestick_formats::pushln!(s, "route {a} {}", netmask(p));
            }
            Ok((std::net::IpAddr::V6(a), p)) => {
                homestick_formats::pushln!(s, "route-ipv6 {a}/{p}");
            }
            Err(_) => {}
        }
    }
    for d in &v.toml.dns {
        homestick_formats::pushln!(s, "dhcp-option DNS {d}");
    }
    for d in &v.toml.dns_search {
        homestick_formats::pushln!(s, "dhcp-option DOMAIN {d}");
    }
}

/// The user's certificate and key and/or user name and password, as slots.
fn openvpn_credentials(s: &mut String, n: &str, auth: OvpnAuth, path: &str, slots: &mut Slots) {
    if matches!(
        auth,
        OvpnAuth::Certificate | OvpnAuth::CertificateAndPassword
    ) {
        let cert = slots.put(
            SlotName::vpn(n, VpnField::ClientCertificate),
            "the user's client certificate (PEM)",
            path,
            W::Pem,
        );
        let key = slots.put(
            SlotName::vpn(n, VpnField::ClientKey),
            "the user's client private key (PEM)",
            path,
            W::Pem,
        );
        homestick_formats::push!(s, "<cert>\n{cert}\n</cert>\n<key>\n{key}\n</key>\n");
    }
    if matches!(auth, OvpnAuth::Password | OvpnAuth::CertificateAndPassword) {
        let user = slots.put(
            SlotName::vpn(n, VpnField::Username),
            "the user's VPN user name",
            path,
            W::OvpnLine,
        );
        let pass = slots.put(
            SlotName::vpn(n, VpnField::Password),
            "the user's VPN password",
            path,
            W::OvpnLine,
        );
        homestick_formats::push!(s, "<auth-user-pass>\n{user}\n{pass}\n</auth-user-pass>\n");
    }
}

fn openvpn(c: &Customer, v: &CheckedVpn, o: &OpenVpn, slots: &mut Slots) -> ProfileFile {
    let n = &v.toml.name;
    let path = format!("openvpn/{n}.ovpn");
    let mut s = header(c, &format!("OpenVPN connection \"{n}\""), "#");
    s.push_str("client\ndev tun\n");
    s.push_str(match o.proto {
        OvpnProto::Udp => "proto udp\n",
        OvpnProto::Tcp => "proto tcp-client\n",
    });
    // Checked when the profile was loaded.
    for r in o.remotes.iter().filter_map(|r| HostPort::parse(r).ok()) {
        homestick_formats::pushln!(s, "remote {} {}", r.host, r.port);
    }
    s.push_str("resolv-retry infinite\nnobind\npersist-key\npersist-tun\nremote-cert-tls server\ntls-version-min 1.2\n");
    homestick_formats::pushln!(s, "data-ciphers {}", o.ciphers.join(":"));
    s.push_str("auth-nocache\nverb 3\n");
    openvpn_routes(&mut s, v);
    if let Some(ca) = &v.ca {
        homestick_formats::push!(s, "<ca>\n{}</ca>\n", ca_pem(ca));
    }
    openvpn_credentials(&mut s, n, o.auth, &path, slots);
    if let Some(k) = &v.tls_key {
        let key = check::openvpn_static_key(&String::from_utf8_lossy(&k.data))
            .map(|k| write::openvpn_static_key(&k))
            .map_err(|e| write::Unwritable {
                format: "an OpenVPN inline block",
                reason: e.0,
            });
        let key = slots.field(&format!("vpn.{n}.openvpn.tls_key"), key);
        if o.tls_crypt.is_some() {
            homestick_formats::push!(s, "<tls-crypt>\n{key}</tls-crypt>\n");
        } else {
            homestick_formats::push!(s, "key-direction 1\n<tls-auth>\n{key}</tls-auth>\n");
        }
    }
    ProfileFile {
        path,
        data: s.into_bytes(),
    }
}

/// The `local` section of connection `n`: how the user authenticates, with slots for the
/// user's secrets (EAP credentials go to the `secrets` section).
fn strongswan_local(
    s: &mut String,
    secrets: &mut String,
    files: &mut Vec<ProfileFile>,
    n: &str,
    auth: IpsecAuth,
    path: &str,
    slots: &mut Slots,
) {
    match auth {
        IpsecAuth::EapMschapv2 => {
            s.push_str("      auth = eap-mschapv2\n");
            let id = slots.put(
                SlotName::vpn(n, VpnField::EapIdentity),
                "the user's EAP identity (user name)",
                path,
                W::Swan,
            );
            homestick_formats::pushln!(s, "      eap_id = {id}");
            let pw = slots.put(
                SlotName::vpn(n, VpnField::EapPassword),
                "the user's EAP password",
                path,
                W::Swan,
            );
            homestick_formats::push!(
                secrets,
                "  eap-{n} {{\n    id = {id}\n    secret = {pw}\n  }}\n"
            );
        }
        IpsecAuth::EapTls | IpsecAuth::Certificate => {
            s.push_str(if auth == IpsecAuth::EapTls {
                "      auth = eap-tls\n"
            } else {
                "      auth = pubkey\n"
            });
            let f = format!("strongswan/x509/{n}-client.pem");
            let cert = slots.put(
                SlotName::vpn(n, VpnField::ClientCertificate),
                &format!("the user's client certificate (PEM), written to {f}"),
                &f,
                W::File,
            );
            let kf = format!("strongswan/private/{n}-client.pem");
            let key = slots.put(
                SlotName::vpn(n, VpnField::ClientKey),
                &format!("the user's client private key (PEM), written to {kf}"),
                &kf,
                W::File,
            );
            files.push(ProfileFile {
                path: f,
                data: cert.into_bytes(),
            });
            files.push(ProfileFile {
                path: kf,
                data: key.into_bytes(),
            });
            homestick_formats::pushln!(s, "      certs = {n}-client.pem");
        }
    }
}

fn strongswan(c: &Customer, vpns: &[(&CheckedVpn, &Ipsec)], slots: &mut Slots) -> Vec<ProfileFile> {
    let path = "strongswan/swanctl.conf".to_string();
    let mut files = Vec::new();
    let mut s = header(c, "strongSwan IKEv2 connections", "#");
    s.push_str("connections {\n");
    let mut secrets = String::new();
    for &(v, i) in vpns {
        let n = &v.toml.name;
        let ca_file = format!("{n}-ca.pem");
        if let Some(ca) = &v.ca {
            files.push(ProfileFile {
                path: format!("strongswan/x509ca/{ca_file}"),
                data: ca_pem(ca).into_bytes(),
            });
        }
        homestick_formats::pushln!(s, "  {n} {{");
        s.push_str("    version = 2\n");
        homestick_formats::pushln!(s, "    remote_addrs = {}", i.server);
        s.push_str("    vips = 0.0.0.0, ::\n");
        homestick_formats::pushln!(s, "    proposals = {}", i.ike_proposals.join(", "));
        s.push_str("    send_certreq = yes\n    dpd_delay = 30s\n");
        s.push_str("    local {\n");
        strongswan_local(&mut s, &mut secrets, &mut files, n, i.auth, &path, slots);
        s.push_str("    }\n    remote {\n      auth = pubkey\n");
        let id = slots.field(
            &format!("vpn.{n}.ipsec.server_id"),
            write::swanctl_quoted(&i.server_id),
        );
        homestick_formats::pushln!(s, "      id = {id}");
        homestick_formats::pushln!(s, "      cacerts = {ca_file}");
        s.push_str("    }\n    children {\n");
        homestick_formats::pushln!(s, "      {n} {{");
        homestick_formats::pushln!(s, "        remote_ts = {}", v.toml.routes.join(", "));
        homestick_formats::pushln!(s, "        esp_proposals = {}", i.esp_proposals.join(", "));
        s.push_str(
            "        dpd_action = restart\n        close_action = restart\n      }\n    }\n  }\n",
        );
    }
    s.push_str("}\n");
    if !secrets.is_empty() {
        homestick_formats::push!(s, "\nsecrets {{\n{secrets}}}\n");
    }
    files.push(ProfileFile {
        path,
        data: s.into_bytes(),
    });
    files
}

fn baresip_codec(c: &str) -> (&'static str, &'static str) {
    match c {
        "opus" => ("opus/48000/2", "opus.so"),
        "G722" => ("G722/16000/1", "g722.so"),
        "PCMU" => ("PCMU/8000/1", "g711.so"),
        _ => ("PCMA/8000/1", "g711.so"),
    }
}

fn baresip(c: &Customer, p: &Profile, slots: &mut Slots) -> Vec<ProfileFile> {
    let Some(sp) = &p.softphone else {
        return vec![];
    };
    // The profile was checked: the registrar is a SIP URI.
    let (reg_host, reg_port) = check::sip_uri(&sp.registrar).unwrap_or_default();
    let hostport = reg_port.map_or(reg_host.clone(), |port| format!("{reg_host}:{port}"));
    let file = |path: &str, text: String| ProfileFile {
        path: path.into(),
        data: text.into_bytes(),
    };
    let mut files = Vec::new();
    if let Some(ca) = &p.softphone_ca {
        files.push(file("baresip/ca.pem", ca_pem(ca)));
    }
    files.push(file(
        "baresip/config",
        baresip_config(c, sp, p.softphone_ca.is_some(), tunnel_interface(p)),
    ));
    let apath = "baresip/accounts";
    files.push(file(apath, baresip_account(c, sp, &hostport, apath, slots)));
    files.push(file("baresip/contacts", baresip_contacts(c, sp, &hostport)));
    files
}

/// The default connection's tunnel interface, named after the connection (wg-quick names it
/// after its file, the session starts OpenVPN with `--dev NAME`); IPsec has none of its own.
fn tunnel_interface(p: &Profile) -> Option<&str> {
    let v = p.vpn.iter().find(|v| v.default)?;
    match v.kind {
        VpnKind::WireGuard(_) | VpnKind::OpenVpn(_) => Some(&v.toml.name),
        VpnKind::Ipsec(_) => None,
    }
}

/// baresip's `config`: modules for the codecs, SRTP and NAT traversal the profile uses. With a
/// tunnel interface, baresip takes its address from it: the address in a call's SDP must be
/// the tunnel's, or the office sends the call's sound to the home network's address.
fn baresip_config(c: &Customer, sp: &Softphone, with_ca: bool, tunnel: Option<&str>) -> String {
    let mut cfg = header(c, "baresip configuration", "#");
    cfg.push_str("poll_method\t\tepoll\nsip_listen\t\t0.0.0.0:0\n");
    if let Some(name) = tunnel {
        homestick_formats::pushln!(cfg, "net_interface\t\t{name}");
    }
    if with_ca {
        homestick_formats::pushln!(cfg, "sip_cafile\t\t{PROFILE_MOUNT}/baresip/ca.pem");
    }
    cfg.push_str(
        "audio_player\t\talsa,default\naudio_source\t\talsa,default\naudio_alert\t\talsa,default\n",
    );
    cfg.push_str("module_path\t\t/usr/lib/baresip/modules\n");
    let mut modules: Vec<&str> = vec!["stdio.so", "alsa.so"];
    for codec in &sp.codecs {
        let m = baresip_codec(codec).1;
        if !modules.contains(&m) {
            modules.push(m);
        }
    }
    if sp.srtp != Srtp::Off {
        modules.push("srtp.so");
    }
    if sp.stun.is_some() {
        modules.push("stun.so");
    }
    if sp.turn.is_some() {
        modules.push("turn.so");
    }
    for m in modules {
        homestick_formats::pushln!(cfg, "module\t\t\t{m}");
    }
    cfg.push_str("module_app\t\taccount.so\nmodule_app\t\tcontact.so\nmodule_app\t\tmenu.so\n");
    // The kiosk's phone page drives baresip through ctrl_tcp; its default address is every
    // interface's: loopback only.
    cfg.push_str("module_app\t\tctrl_tcp.so\n");
    homestick_formats::pushln!(cfg, "ctrl_tcp_listen\t\t{BARESIP_CTRL}");
    cfg
}

/// baresip's `accounts`: the user's SIP account, with its secrets as slots.
fn baresip_account(
    c: &Customer,
    sp: &Softphone,
    hostport: &str,
    apath: &str,
    slots: &mut Slots,
) -> String {
    let mut acc = header(c, "baresip account", "#");
    let ext = slots.put(
        SlotName::Sip(SipField::Extension),
        "the user's office number (extension), the SIP address's user part",
        apath,
        W::Baresip,
    );
    let user = slots.put(
        SlotName::Sip(SipField::User),
        "the user's SIP authentication user name",
        apath,
        W::Baresip,
    );
    let pass = slots.put(
        SlotName::Sip(SipField::Password),
        "the user's SIP password",
        apath,
        W::Baresip,
    );
    let transport = match sp.transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
    };
    homestick_formats::push!(
        acc,
        "<sip:{ext}@{hostport};transport={transport}>;auth_user={user};auth_pass={pass}"
    );
    if let Some(op) = &sp.outbound_proxy {
        let op = slots.field("softphone.outbound_proxy", write::baresip_quoted_param(op));
        homestick_formats::push!(acc, ";outbound={op}");
    }
    match sp.srtp {
        Srtp::Off => {}
        Srtp::Optional => acc.push_str(";mediaenc=srtp"),
        Srtp::Mandatory => acc.push_str(";mediaenc=srtp-mand"),
    }
    let codecs: Vec<&str> = sp.codecs.iter().map(|c| baresip_codec(c).0).collect();
    homestick_formats::push!(acc, ";audio_codecs={}", codecs.join(","));
    acc.push_str(";regint=600");
    if let Some(t) = &sp.turn {
        let tu = slots.put(
            SlotName::Sip(SipField::TurnUsername),
            "the user's TURN user name",
            apath,
            W::Baresip,
        );
        let tp = slots.put(
            SlotName::Sip(SipField::TurnPassword),
            "the user's TURN password",
            apath,
            W::Baresip,
        );
        let t = slots.field(
            "softphone.turn",
            write::baresip_quoted_param(&format!("turn:{t}")),
        );
        homestick_formats::push!(
            acc,
            ";medianat=turn;stunserver={t};stunuser={tu};stunpass={tp}"
        );
    } else if let Some(st) = &sp.stun {
        let st = slots.field(
            "softphone.stun",
            write::baresip_quoted_param(&format!("stun:{st}")),
        );
        homestick_formats::push!(acc, ";medianat=stun;stunserver={st}");
    }
    acc.push('\n');
    acc
}

/// baresip's `contacts`: the numbers that must always be dialable.
fn baresip_contacts(c: &Customer, sp: &Softphone, hostport: &str) -> String {
    let mut con = header(c, "baresip contacts (always dialable)", "#");
    for n in &sp.emergency_numbers {
        homestick_formats::pushln!(con, "\"Notruf / Emergency {n}\" <sip:{n}@{hostport}>");
    }
    if let Some(vm) = &sp.voicemail {
        homestick_formats::pushln!(con, "\"Mailbox\" <sip:{vm}@{hostport}>");
    }
    con
}

fn certs(r: &Option<Referenced>) -> Vec<doc::CertInfo> {
    r.iter()
        .flat_map(|r| r.certs.iter())
        .map(|c| doc::CertInfo {
            not_after: homestick_image::fat::rfc3339(c.not_after),
            subject: c.subject.clone(),
        })
        .collect()
}

/// Render connection `v` (its file goes to `files`, its secrets to `slots`) and describe it
/// for profile.json. IPsec connections share one swanctl.conf, rendered by [`strongswan`].
fn render_vpn(
    c: &Customer,
    v: &CheckedVpn,
    files: &mut Vec<ProfileFile>,
    slots: &mut Slots,
) -> doc::Vpn {
    let t = &v.toml;
    let (kind, file) = match &v.kind {
        VpnKind::WireGuard(_) => (doc::Kind::Wireguard, format!("wireguard/{}.conf", t.name)),
        VpnKind::OpenVpn(_) => (doc::Kind::Openvpn, format!("openvpn/{}.ovpn", t.name)),
        VpnKind::Ipsec(_) => (doc::Kind::Ipsec, "strongswan/swanctl.conf".to_string()),
    };
    let mut out = doc::Vpn {
        name: t.name.clone(),
        kind,
        default: v.default,
        endpoint: v.endpoint(),
        routes: t.routes.clone(),
        dns: t.dns.clone(),
        dns_search: t.dns_search.clone(),
        file,
        wireguard: None,
        openvpn: None,
        ipsec: None,
    };
    match &v.kind {
        VpnKind::WireGuard(w) => {
            files.push(wireguard(c, v, w, slots));
            out.wireguard = Some(doc::WireGuard {
                mtu: w.mtu,
                persistent_keepalive: w.persistent_keepalive,
                preshared_key: w.preshared_key,
                server_public_key: w.server_public_key.clone(),
            });
        }
        VpnKind::OpenVpn(o) => {
            files.push(openvpn(c, v, o, slots));
            out.openvpn = Some(doc::OpenVpn {
                auth: o.auth,
                ca: certs(&v.ca),
                ciphers: o.ciphers.clone(),
                proto: o.proto,
                remotes: o.remotes.clone(),
                tls: match o.tls_crypt {
                    Some(_) => doc::OvpnTls::TlsCrypt,
                    None => doc::OvpnTls::TlsAuth,
                },
            });
        }
        VpnKind::Ipsec(i) => {
            out.ipsec = Some(doc::Ipsec {
                auth: i.auth,
                ca: certs(&v.ca),
                esp_proposals: i.esp_proposals.clone(),
                ike_proposals: i.ike_proposals.clone(),
                server: i.server.clone(),
                server_id: i.server_id.clone(),
            });
        }
    }
    out
}

/// The softphone as profile.json describes it.
fn softphone_doc(p: &Profile) -> Option<doc::Softphone> {
    let s = p.softphone.as_ref()?;
    Some(doc::Softphone {
        ca: certs(&p.softphone_ca),
        codecs: s.codecs.clone(),
        emergency_numbers: s.emergency_numbers.clone(),
        files: ["baresip/accounts", "baresip/config", "baresip/contacts"]
            .map(String::from)
            .to_vec(),
        outbound_proxy: s.outbound_proxy.clone(),
        registrar: s.registrar.clone(),
        srtp: s.srtp,
        stun: s.stun.clone(),
        transport: s.transport,
        turn: s.turn.clone(),
        voicemail: s.voicemail.clone(),
    })
}

/// Render a checked profile: the partition's files (sorted, profile.json included) with a
/// `{{slot}}` for each per-user value, and profile.json's document.
pub fn render(p: &Profile) -> Result<(Vec<ProfileFile>, ProfileDoc), RenderError> {
    render_with(p, None)
}

/// Render a checked profile for `user`: every slot written from the user's parsed value by
/// the writer of the format it stands in (see [`crate::roster::personalize`]), and the user
/// in profile.json.
pub fn render_for(
    p: &Profile,
    values: &BTreeMap<SlotName, Value>,
    user: doc::User,
) -> Result<Vec<ProfileFile>, RenderError> {
    render_with(p, Some((values, user))).map(|(files, _)| files)
}

fn render_with(
    p: &Profile,
    user: Option<(&BTreeMap<SlotName, Value>, doc::User)>,
) -> Result<(Vec<ProfileFile>, ProfileDoc), RenderError> {
    let c = &p.customer;
    let (values, user) = user.unzip();
    let mut slots = Slots {
        values,
        ..Slots::default()
    };
    let mut files = Vec::new();
    let mut vpn = Vec::new();
    let ipsec: Vec<(&CheckedVpn, &Ipsec)> = p
        .vpn
        .iter()
        .filter_map(|v| match &v.kind {
            VpnKind::Ipsec(i) => Some((v, i)),
            _ => None,
        })
        .collect();
    for v in &p.vpn {
        vpn.push(render_vpn(c, v, &mut files, &mut slots));
    }
    if !ipsec.is_empty() {
        files.extend(strongswan(c, &ipsec, &mut slots));
    }
    files.extend(baresip(c, p, &mut slots));
    if let Some(logo) = &p.logo {
        let ext = if logo.data.starts_with(b"\x89PNG") {
            "png"
        } else {
            "svg"
        };
        files.push(ProfileFile {
            path: format!("branding/logo.{ext}"),
            data: logo.data.clone(),
        });
    }
    let mut file_names: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    file_names.push(PROFILE_JSON.into());
    file_names.sort_unstable();
    let doc = ProfileDoc {
        format: doc::FORMAT.into(),
        customer: c.clone(),
        vpn,
        softphone: softphone_doc(p),
        network: (!p.direct.is_empty()).then(|| doc::Network {
            direct: p.direct.clone(),
        }),
        slots: slots.into_list()?,
        files: file_names,
        user,
    };
    files.push(ProfileFile {
        path: PROFILE_JSON.into(),
        data: doc.to_bytes()?,
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, doc))
}
