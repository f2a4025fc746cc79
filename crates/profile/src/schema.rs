//! customer.toml as written by technicians: every field, its type and default.
//!
//! Unknown fields are rejected everywhere: a typo must fail on the build machine, not on 600
//! sticks. The loader ([`crate::Profile::load`]) does it with `serde_ignored`, which hands it
//! each unknown field's path, so these types do not say `deny_unknown_fields`: deserialize
//! them only through the loader.

use serde::Deserialize;

pub use homestick_formats::profile::{
    Customer, Direct, IpsecAuth, Network, OvpnAuth, OvpnProto, Srtp, Transport,
};

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
