//! `profile.json`: what the profile partition says about itself. The builder writes it (the
//! customer's description, every connection and the softphone, the per-user slots and the
//! files), the session reads it on the stick, `inspect` and `profile check` summarise it.
//!
//! The bytes are fixed by format 1 as shipped: the top-level and connection fields in the
//! order below, the kind tables (`wireguard`, `openvpn`, `ipsec`, `softphone`) with their keys
//! sorted; a user's document (with `user`) has every key sorted.

use serde::{Deserialize, Serialize};

use crate::slot::SlotName;

/// The format id, the document's `format`.
pub const FORMAT: &str = "homestick-profile/1";

/// Most bytes of a profile.json anyone reads.
pub const MAX_BYTES: u64 = 4 << 20;

/// Why a profile.json cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileJsonError {
    /// Not JSON, or not this shape.
    #[error("profile.json: {0}")]
    Json(#[from] serde_json::Error),
    /// A format this program does not know.
    #[error("profile.json: format {0:?} (this program knows {FORMAT})")]
    Format(String),
}

/// The whole document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileDoc {
    /// [`FORMAT`].
    pub format: String,
    /// The customer, as customer.toml describes them.
    pub customer: Customer,
    /// The connections, in profile order.
    pub vpn: Vec<Vpn>,
    /// The softphone, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub softphone: Option<Softphone>,
    /// What may leave outside the tunnel; absent when nothing may (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// The per-user values a roster fills, sorted by name.
    #[serde(default)]
    pub slots: Vec<Slot>,
    /// Every file of the partition, sorted, this one included.
    #[serde(default)]
    pub files: Vec<String>,
    /// The employee of a per-user image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
}

/// The `[customer]` table of customer.toml, as profile.json repeats it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Slug: lowercase letters, digits and `-`, 2..=63 characters.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Support hotline (phone number as people dial it).
    #[serde(default)]
    pub hotline: Option<String>,
    /// Support e-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// Support hours, free text.
    #[serde(default)]
    pub hours: Option<String>,
    /// Languages for messages, e.g. `["de", "en"]`.
    #[serde(default)]
    pub languages: Option<Vec<String>>,
    /// Logo file (PNG or SVG) relative to the profile directory.
    #[serde(default)]
    pub logo: Option<String>,
}

/// The kind of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// WireGuard (wg-quick).
    Wireguard,
    /// OpenVPN.
    Openvpn,
    /// IKEv2/IPsec (strongSwan's swanctl).
    Ipsec,
}

impl Kind {
    /// As profile.json writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Wireguard => "wireguard",
            Kind::Openvpn => "openvpn",
            Kind::Ipsec => "ipsec",
        }
    }
}

/// One connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vpn {
    /// Name: also the tunnel interface's name.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// The connection started by default.
    #[serde(default)]
    pub default: bool,
    /// The server: `host:port` (WireGuard, OpenVPN's first remote) or the IKE host (IPsec).
    pub endpoint: String,
    /// Networks through the tunnel.
    #[serde(default)]
    pub routes: Vec<String>,
    /// DNS servers inside the tunnel.
    #[serde(default)]
    pub dns: Vec<String>,
    /// Search domains.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// The rendered configuration, relative to the partition.
    pub file: String,
    /// WireGuard's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard: Option<WireGuard>,
    /// OpenVPN's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openvpn: Option<OpenVpn>,
    /// IPsec's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipsec: Option<Ipsec>,
}

/// A WireGuard connection's settings (keys sorted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireGuard {
    /// Tunnel MTU.
    pub mtu: u32,
    /// Keepalive seconds.
    pub persistent_keepalive: u32,
    /// Each user has a preshared key.
    pub preshared_key: bool,
    /// The server's public key (base64).
    pub server_public_key: String,
}

/// OpenVPN's transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OvpnProto {
    /// UDP (the default).
    #[default]
    Udp,
    /// TCP.
    Tcp,
}

/// How an OpenVPN user authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OvpnAuth {
    /// A client certificate.
    #[serde(rename = "certificate")]
    Certificate,
    /// User name and password.
    #[serde(rename = "password")]
    Password,
    /// Both.
    #[serde(rename = "certificate+password")]
    CertificateAndPassword,
}

/// How the control channel is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OvpnTls {
    /// tls-crypt.
    TlsCrypt,
    /// tls-auth.
    TlsAuth,
}

/// An OpenVPN connection's settings (keys sorted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenVpn {
    /// How users authenticate.
    pub auth: OvpnAuth,
    /// The CA's certificates.
    #[serde(default)]
    pub ca: Vec<CertInfo>,
    /// Data-channel ciphers.
    #[serde(default)]
    pub ciphers: Vec<String>,
    /// Transport.
    #[serde(default)]
    pub proto: OvpnProto,
    /// `host:port`, in order.
    pub remotes: Vec<String>,
    /// The control channel's protection.
    pub tls: OvpnTls,
}

/// How an IPsec user authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IpsecAuth {
    /// EAP-MSCHAPv2 (user name and password).
    EapMschapv2,
    /// EAP-TLS (client certificate).
    EapTls,
    /// A client certificate.
    Certificate,
}

/// An IPsec connection's settings (keys sorted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipsec {
    /// How users authenticate.
    pub auth: IpsecAuth,
    /// The CA's certificates.
    #[serde(default)]
    pub ca: Vec<CertInfo>,
    /// ESP proposals.
    #[serde(default)]
    pub esp_proposals: Vec<String>,
    /// IKE proposals.
    #[serde(default)]
    pub ike_proposals: Vec<String>,
    /// The IKE server.
    pub server: String,
    /// Its identity.
    pub server_id: String,
}

/// A CA certificate, as far as a summary shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// RFC 3339 end of validity.
    pub not_after: String,
    /// Subject.
    pub subject: String,
}

/// The softphone's SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS.
    Tls,
}

/// SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Srtp {
    /// None.
    Off,
    /// When the other side offers it.
    Optional,
    /// Always.
    Mandatory,
}

/// The softphone (keys sorted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Softphone {
    /// The CA's certificates (TLS).
    #[serde(default)]
    pub ca: Vec<CertInfo>,
    /// Codecs, preferred first.
    #[serde(default)]
    pub codecs: Vec<String>,
    /// Always dialable.
    #[serde(default)]
    pub emergency_numbers: Vec<String>,
    /// baresip's files.
    #[serde(default)]
    pub files: Vec<String>,
    /// SIP outbound proxy.
    #[serde(default)]
    pub outbound_proxy: Option<String>,
    /// SIP registrar.
    pub registrar: String,
    /// SRTP.
    pub srtp: Srtp,
    /// STUN server.
    #[serde(default)]
    pub stun: Option<String>,
    /// SIP transport.
    pub transport: Transport,
    /// TURN server.
    #[serde(default)]
    pub turn: Option<String>,
    /// Voicemail number.
    #[serde(default)]
    pub voicemail: Option<String>,
}

/// The `[network]` table: what may leave the PC outside the tunnel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Destinations allowed directly, outside every tunnel. None by default: the kill switch
    /// lets nothing else out.
    #[serde(default)]
    pub direct: Vec<Direct>,
}

/// One destination allowed outside the tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Direct {
    /// What it is for: 1-32 of a-z, 0-9, '-' (shown in logs and the summary).
    pub name: String,
    /// An IPv4/IPv6 address, a network in CIDR notation, or a host name (resolved on the PC
    /// before the tunnel comes up).
    pub to: String,
    /// `tcp/443`, `udp/3478-3481` (see [`crate::endpoint::PortRange`]).
    pub ports: Vec<String>,
}

/// A per-user value that a roster must fill in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// Its name; appears as `{{name}}` in the template files.
    pub name: SlotName,
    /// What goes there.
    pub description: String,
    /// Rendered files that contain it.
    pub files: Vec<String>,
}

/// The employee of a per-user image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// User id (the roster's `user_id`).
    pub id: String,
    /// Display name.
    pub name: String,
}

impl ProfileDoc {
    /// Parse and check the format id.
    pub fn parse(bytes: &[u8]) -> Result<ProfileDoc, ProfileJsonError> {
        let doc: ProfileDoc = serde_json::from_slice(bytes)?;
        if doc.format != FORMAT {
            return Err(ProfileJsonError::Format(doc.format));
        }
        Ok(doc)
    }

    /// The document's bytes (pretty, with a final newline). A user's document has its keys
    /// sorted, as format 1 has always written it.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ProfileJsonError> {
        let mut json = if self.user.is_some() {
            serde_json::to_vec_pretty(&serde_json::to_value(self)?)?
        } else {
            serde_json::to_vec_pretty(self)?
        };
        json.push(b'\n');
        Ok(json)
    }

    /// The connection started by default (the marked one, else the first).
    pub fn default_vpn(&self) -> Option<&Vpn> {
        self.vpn.iter().find(|v| v.default).or(self.vpn.first())
    }

    /// A readable summary, a line each: customer, connections, direct destinations, the
    /// softphone, the user or the slots to fill, the files.
    pub fn summary(&self) -> Vec<String> {
        let list = |v: &[String]| v.join(", ");
        let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
        let c = &self.customer;
        let mut out = vec![format!(
            "customer   {} ({}), hotline {}, languages {}",
            c.id,
            c.name,
            or_dash(&c.hotline),
            c.languages.as_deref().map_or("-".into(), list)
        )];
        for v in &self.vpn {
            out.push(format!(
                "vpn        {} ({}{}) -> {}; routes {}; DNS {}; {}",
                v.name,
                v.kind.as_str(),
                if v.default { ", default" } else { "" },
                v.endpoint,
                list(&v.routes),
                if v.dns.is_empty() {
                    "-".into()
                } else {
                    list(&v.dns)
                },
                v.file,
            ));
        }
        for d in self.network.iter().flat_map(|n| &n.direct) {
            out.push(format!(
                "direct     {} -> {} ({}), outside the tunnel",
                d.name,
                d.to,
                list(&d.ports)
            ));
        }
        out.push(match &self.softphone {
            Some(sp) => format!(
                "softphone  {} via {}, SRTP {}, codecs {}; emergency {}; voicemail {}",
                sp.registrar,
                transport_name(sp.transport),
                srtp_name(sp.srtp),
                list(&sp.codecs),
                list(&sp.emergency_numbers),
                or_dash(&sp.voicemail),
            ),
            None => "softphone  none".into(),
        });
        let slots: Vec<String> = self.slots.iter().map(|s| s.name.to_string()).collect();
        out.push(match &self.user {
            Some(u) => format!(
                "user       {} ({}): filled from the roster ({})",
                u.id,
                u.name,
                slots.join(", ")
            ),
            None if slots.is_empty() => "per user   a roster must fill: nothing".into(),
            None => format!("per user   a roster must fill: {}", slots.join(", ")),
        });
        out.push(format!("files      {}", list(&self.files)));
        out
    }
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        Transport::Tls => "TLS",
    }
}

fn srtp_name(s: Srtp) -> &'static str {
    match s {
        Srtp::Off => "off",
        Srtp::Optional => "optional",
        Srtp::Mandatory => "mandatory",
    }
}
