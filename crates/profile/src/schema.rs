//! customer.toml as written by technicians: every field, its type and default.
//!
//! Unknown fields are rejected everywhere: a typo must fail on the build machine, not on 600
//! sticks. The loader ([`crate::Profile::load`]) does it with `serde_ignored`, which hands it
//! each unknown field's path, so these types do not say `deny_unknown_fields`: deserialize
//! them only through the loader.

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
pub struct CustomerToml {
    /// `[customer]`
    pub customer: Customer,
    /// `[[vpn]]`, one or more.
    #[serde(default)]
    pub vpn: Vec<Vpn>,
    /// `[softphone]`
    pub softphone: Option<Softphone>,
    /// `[network]`
    #[serde(default)]
    pub network: Network,
}

/// The `[network]` table: what may leave the PC outside the tunnel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Destinations allowed directly, outside every tunnel (split tunnelling for a
    /// video-conference service, a captive portal). None by default: the kill switch lets
    /// nothing else out.
    #[serde(default)]
    pub direct: Vec<Direct>,
}

/// One `[[network.direct]]` destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Direct {
    /// What it is for: 1-32 of a-z, 0-9, '-' (shown in logs and the summary).
    pub name: String,
    /// An IPv4/IPv6 address, a network in CIDR notation, or a host name (resolved on the PC
    /// before the tunnel comes up).
    pub to: String,
    /// `tcp/443`, `udp/3478-3481`: protocol and port or port range, at least one.
    pub ports: Vec<String>,
}

/// The `[customer]` table.
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

/// One `[[vpn]]` connection: common fields plus exactly one of the kind tables.
#[derive(Debug, Clone, Deserialize)]
pub struct Vpn {
    /// Connection name: 1-15 of a-z, 0-9, '-' starting with a letter (it names interfaces).
    pub name: String,
    /// The connection started by default (exactly one when there are several).
    #[serde(default)]
    pub default: bool,
    /// Networks routed through this VPN (split tunnel); `0.0.0.0/0` for everything.
    pub routes: Vec<String>,
    /// DNS servers used while connected.
    #[serde(default)]
    pub dns: Vec<String>,
    /// DNS search domains.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// `[vpn.wireguard]`
    pub wireguard: Option<WireGuard>,
    /// `[vpn.openvpn]`
    pub openvpn: Option<OpenVpn>,
    /// `[vpn.ipsec]`
    pub ipsec: Option<Ipsec>,
}

fn default_mtu() -> u32 {
    1420
}
fn default_keepalive() -> u32 {
    25
}

/// WireGuard.
#[derive(Debug, Clone, Deserialize)]
pub struct WireGuard {
    /// Server `host:port`.
    pub endpoint: String,
    /// Server public key, base64 (32 bytes).
    pub server_public_key: String,
    /// Interface MTU, 1280..=1500 (default 1420).
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// Persistent keepalive seconds, 0 (off) or 10..=3600 (default 25).
    #[serde(default = "default_keepalive")]
    pub persistent_keepalive: u32,
    /// Whether each user gets a preshared key (a roster slot).
    #[serde(default)]
    pub preshared_key: bool,
    /// IPv4 network the roster's `generate` takes users' tunnel addresses from (e.g.
    /// "10.99.0.0/22"); its first host address is left to the server.
    #[serde(default)]
    pub address_pool: Option<String>,
}

/// OpenVPN transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OvpnProto {
    /// UDP (default).
    #[default]
    Udp,
    /// TCP.
    Tcp,
}

/// OpenVPN client authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OvpnAuth {
    /// Per-user client certificate and key.
    #[serde(rename = "certificate")]
    Certificate,
    /// Per-user user name and password.
    #[serde(rename = "password")]
    Password,
    /// Both.
    #[serde(rename = "certificate+password")]
    CertificateAndPassword,
}

fn default_ciphers() -> Vec<String> {
    vec!["AES-256-GCM".into(), "CHACHA20-POLY1305".into()]
}

/// OpenVPN.
#[derive(Debug, Clone, Deserialize)]
pub struct OpenVpn {
    /// Servers `host:port`, tried in order.
    pub remotes: Vec<String>,
    /// `udp` (default) or `tcp`.
    #[serde(default)]
    pub proto: OvpnProto,
    /// CA certificate(s), PEM file in the profile.
    pub ca: String,
    /// tls-crypt key file (preferred), or
    pub tls_crypt: Option<String>,
    /// tls-auth key file.
    pub tls_auth: Option<String>,
    /// Data ciphers in order of preference (default AES-256-GCM, CHACHA20-POLY1305).
    #[serde(default = "default_ciphers")]
    pub ciphers: Vec<String>,
    /// `certificate`, `password` or `certificate+password`.
    pub auth: OvpnAuth,
}

/// IPsec client authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IpsecAuth {
    /// EAP-MSCHAPv2: per-user identity and password.
    EapMschapv2,
    /// EAP-TLS: per-user certificate.
    EapTls,
    /// IKEv2 public-key authentication with a per-user certificate.
    Certificate,
}

fn default_ike() -> Vec<String> {
    vec!["aes256gcm16-prfsha384-ecp384".into()]
}
fn default_esp() -> Vec<String> {
    vec!["aes256gcm16-ecp384".into()]
}

/// IPsec/IKEv2 with strongSwan.
#[derive(Debug, Clone, Deserialize)]
pub struct Ipsec {
    /// Server host name or address.
    pub server: String,
    /// Identity the server's certificate must carry.
    pub server_id: String,
    /// CA certificate(s), PEM file in the profile.
    pub ca: String,
    /// IKE proposals (default aes256gcm16-prfsha384-ecp384).
    #[serde(default = "default_ike")]
    pub ike_proposals: Vec<String>,
    /// ESP proposals (default aes256gcm16-ecp384).
    #[serde(default = "default_esp")]
    pub esp_proposals: Vec<String>,
    /// `eap-mschapv2`, `eap-tls` or `certificate`.
    pub auth: IpsecAuth,
}

/// SIP transport.
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

/// SRTP policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Srtp {
    /// No media encryption.
    Off,
    /// Offer SRTP, accept plain RTP.
    Optional,
    /// SRTP or no call.
    Mandatory,
}

/// `[softphone]`: the SIP account all users of this customer share, minus per-user fields.
#[derive(Debug, Clone, Deserialize)]
pub struct Softphone {
    /// Registrar SIP URI, e.g. `sip:sip.stadt-a.de`.
    pub registrar: String,
    /// Outbound proxy SIP URI.
    pub outbound_proxy: Option<String>,
    /// `udp`, `tcp` or `tls`.
    pub transport: Transport,
    /// `off`, `optional` or `mandatory`.
    pub srtp: Srtp,
    /// Audio codecs in order of preference: opus, G722, PCMA, PCMU.
    pub codecs: Vec<String>,
    /// STUN server `host:port`.
    pub stun: Option<String>,
    /// TURN server `host:port` (per-user credentials become roster slots).
    pub turn: Option<String>,
    /// Voicemail number.
    pub voicemail: Option<String>,
    /// Numbers that must always be dialable, e.g. `["110", "112"]`.
    pub emergency_numbers: Vec<String>,
    /// CA certificate(s) for TLS, PEM file in the profile.
    pub ca: Option<String>,
}
