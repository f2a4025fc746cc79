//! The names of per-user values: `vpn.<connection>.<field>` and `sip.<field>`. The renderer
//! builds them (never as text), profile.json lists them, a roster has a column for each, and
//! revocation asks each what a server must drop when the stick is lost.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A per-user value of the softphone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SipField {
    /// The office number (`sip.extension`).
    Extension,
    /// The SIP authentication user (`sip.user`).
    User,
    /// The SIP password (`sip.password`).
    Password,
    /// The TURN user (`sip.turn_username`).
    TurnUsername,
    /// The TURN password (`sip.turn_password`).
    TurnPassword,
}

/// A per-user value of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VpnField {
    /// WireGuard private key.
    PrivateKey,
    /// WireGuard preshared key.
    PresharedKey,
    /// Tunnel address (CIDR).
    Address,
    /// Client certificate (PEM).
    ClientCertificate,
    /// Client private key (PEM).
    ClientKey,
    /// OpenVPN user name.
    Username,
    /// OpenVPN password.
    Password,
    /// EAP identity.
    EapIdentity,
    /// EAP password.
    EapPassword,
}

const SIP_FIELDS: [(SipField, &str); 5] = [
    (SipField::Extension, "extension"),
    (SipField::User, "user"),
    (SipField::Password, "password"),
    (SipField::TurnUsername, "turn_username"),
    (SipField::TurnPassword, "turn_password"),
];

const VPN_FIELDS: [(VpnField, &str); 9] = [
    (VpnField::PrivateKey, "private_key"),
    (VpnField::PresharedKey, "preshared_key"),
    (VpnField::Address, "address"),
    (VpnField::ClientCertificate, "client_certificate"),
    (VpnField::ClientKey, "client_key"),
    (VpnField::Username, "username"),
    (VpnField::Password, "password"),
    (VpnField::EapIdentity, "eap_identity"),
    (VpnField::EapPassword, "eap_password"),
];

/// A slot's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SlotName {
    /// `sip.<field>`.
    Sip(SipField),
    /// `vpn.<vpn>.<field>`.
    Vpn {
        /// The connection's name.
        vpn: String,
        /// The value.
        field: VpnField,
    },
}

/// What a slot's value is, and so how a roster's cell is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// A WireGuard key (base64 of 32 bytes).
    WireGuardKey,
    /// A tunnel address.
    Address,
    /// An office number.
    Extension,
    /// A SIP or TURN authentication user name.
    SipUser,
    /// A VPN user name or EAP identity (may hold `@`).
    Identity,
    /// A password.
    Password,
    /// A client certificate.
    Certificate,
    /// A client private key.
    PrivateKey,
}

/// What becomes of a slot's value when the stick is lost: a credential that a server must
/// drop (of this kind), or a secret that is dropped with the credential it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLoss {
    /// A server must drop it: the kind shown (`wireguard-peer`, `sip-user`, …).
    Drop(&'static str),
    /// A secret that only works with a credential that is dropped (a password, a private
    /// key, a preshared key).
    SecretOnly,
}

/// A name that is no slot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a slot name (sip.<field> or vpn.<connection>.<field>)")]
pub struct NotASlot(pub String);

impl SlotName {
    /// `vpn.<vpn>.<field>`.
    pub fn vpn(vpn: &str, field: VpnField) -> SlotName {
        SlotName::Vpn {
            vpn: vpn.to_string(),
            field,
        }
    }

    /// What its value is.
    pub fn kind(&self) -> SlotKind {
        match self {
            SlotName::Sip(SipField::Extension) => SlotKind::Extension,
            SlotName::Sip(SipField::User | SipField::TurnUsername) => SlotKind::SipUser,
            SlotName::Sip(SipField::Password | SipField::TurnPassword) => SlotKind::Password,
            SlotName::Vpn { field, .. } => match field {
                VpnField::PrivateKey | VpnField::PresharedKey => SlotKind::WireGuardKey,
                VpnField::Address => SlotKind::Address,
                VpnField::ClientCertificate => SlotKind::Certificate,
                VpnField::ClientKey => SlotKind::PrivateKey,
                VpnField::Username | VpnField::EapIdentity => SlotKind::Identity,
                VpnField::Password | VpnField::EapPassword => SlotKind::Password,
            },
        }
    }

    /// What a server must drop when the stick is lost.
    pub fn on_loss(&self) -> OnLoss {
        match self {
            SlotName::Sip(SipField::Extension) => OnLoss::Drop("sip-extension"),
            SlotName::Sip(SipField::User) => OnLoss::Drop("sip-user"),
            SlotName::Sip(SipField::TurnUsername) => OnLoss::Drop("turn-user"),
            SlotName::Vpn { field, .. } => match field {
                VpnField::PrivateKey => OnLoss::Drop("wireguard-peer"),
                VpnField::Address => OnLoss::Drop("tunnel-address"),
                VpnField::ClientCertificate => OnLoss::Drop("certificate-serial"),
                VpnField::Username => OnLoss::Drop("vpn-user"),
                VpnField::EapIdentity => OnLoss::Drop("eap-identity"),
                _ => OnLoss::SecretOnly,
            },
            SlotName::Sip(_) => OnLoss::SecretOnly,
        }
    }

    /// The server the credential is on: the connection's name, `pbx` for SIP, `turn` for
    /// TURN.
    pub fn server(&self) -> &str {
        match self {
            SlotName::Vpn { vpn, .. } => vpn,
            SlotName::Sip(SipField::TurnUsername | SipField::TurnPassword) => "turn",
            SlotName::Sip(_) => "pbx",
        }
    }

    /// The connection of a `vpn.` slot.
    pub fn vpn_name(&self) -> Option<&str> {
        match self {
            SlotName::Vpn { vpn, .. } => Some(vpn),
            SlotName::Sip(_) => None,
        }
    }
}

impl fmt::Display for SlotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotName::Sip(field) => {
                let name = SIP_FIELDS.iter().find(|(x, _)| x == field).map(|(_, n)| n);
                write!(f, "sip.{}", name.unwrap_or(&"?"))
            }
            SlotName::Vpn { vpn, field } => {
                let name = VPN_FIELDS.iter().find(|(x, _)| x == field).map(|(_, n)| n);
                write!(f, "vpn.{vpn}.{}", name.unwrap_or(&"?"))
            }
        }
    }
}

impl FromStr for SlotName {
    type Err = NotASlot;

    fn from_str(s: &str) -> Result<SlotName, NotASlot> {
        let not = || NotASlot(s.to_string());
        if let Some(f) = s.strip_prefix("sip.") {
            let (field, _) = SIP_FIELDS.iter().find(|(_, n)| *n == f).ok_or_else(not)?;
            return Ok(SlotName::Sip(*field));
        }
        let (vpn, f) = s
            .strip_prefix("vpn.")
            .and_then(|r| r.rsplit_once('.'))
            .ok_or_else(not)?;
        let ok_vpn = !vpn.is_empty()
            && vpn
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        let (field, _) = VPN_FIELDS
            .iter()
            .find(|(_, n)| *n == f && ok_vpn)
            .ok_or_else(not)?;
        Ok(SlotName::vpn(vpn, *field))
    }
}

// Ordered as their names are: profile.json and a roster list slots sorted by name.
impl Ord for SlotName {
    fn cmp(&self, other: &SlotName) -> Ordering {
        self.to_string().cmp(&other.to_string())
    }
}

impl PartialOrd for SlotName {
    fn partial_cmp(&self, other: &SlotName) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for SlotName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SlotName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SlotName, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_as_itself() {
        let mut all: Vec<SlotName> = SIP_FIELDS.iter().map(|(f, _)| SlotName::Sip(*f)).collect();
        all.extend(VPN_FIELDS.iter().map(|(f, _)| SlotName::vpn("buero-2", *f)));
        for n in all {
            assert_eq!(n.to_string().parse::<SlotName>(), Ok(n.clone()), "{n}");
        }
    }

    #[test]
    fn what_is_no_slot_is_refused() {
        for bad in [
            "",
            "sip.",
            "sip.nope",
            "vpn.buero",
            "vpn..address",
            "vpn.buero.nope",
            "vpn.Buero.address",
            "vpn.a b.address",
            "user_id",
            "vpn.buero.openvpn.tls_key",
        ] {
            assert_eq!(bad.parse::<SlotName>(), Err(NotASlot(bad.into())), "{bad}");
        }
    }

    #[test]
    fn kinds_losses_and_servers() {
        let cases: &[(&str, SlotKind, OnLoss, &str)] = &[
            (
                "sip.extension",
                SlotKind::Extension,
                OnLoss::Drop("sip-extension"),
                "pbx",
            ),
            (
                "sip.user",
                SlotKind::SipUser,
                OnLoss::Drop("sip-user"),
                "pbx",
            ),
            (
                "sip.password",
                SlotKind::Password,
                OnLoss::SecretOnly,
                "pbx",
            ),
            (
                "sip.turn_username",
                SlotKind::SipUser,
                OnLoss::Drop("turn-user"),
                "turn",
            ),
            (
                "sip.turn_password",
                SlotKind::Password,
                OnLoss::SecretOnly,
                "turn",
            ),
            (
                "vpn.b.private_key",
                SlotKind::WireGuardKey,
                OnLoss::Drop("wireguard-peer"),
                "b",
            ),
            (
                "vpn.b.preshared_key",
                SlotKind::WireGuardKey,
                OnLoss::SecretOnly,
                "b",
            ),
            (
                "vpn.b.address",
                SlotKind::Address,
                OnLoss::Drop("tunnel-address"),
                "b",
            ),
            (
                "vpn.b.client_certificate",
                SlotKind::Certificate,
                OnLoss::Drop("certificate-serial"),
                "b",
            ),
            (
                "vpn.b.client_key",
                SlotKind::PrivateKey,
                OnLoss::SecretOnly,
                "b",
            ),
            (
                "vpn.b.username",
                SlotKind::Identity,
                OnLoss::Drop("vpn-user"),
                "b",
            ),
            (
                "vpn.b.password",
                SlotKind::Password,
                OnLoss::SecretOnly,
                "b",
            ),
            (
                "vpn.b.eap_identity",
                SlotKind::Identity,
                OnLoss::Drop("eap-identity"),
                "b",
            ),
            (
                "vpn.b.eap_password",
                SlotKind::Password,
                OnLoss::SecretOnly,
                "b",
            ),
        ];
        for (name, kind, loss, server) in cases {
            let n: SlotName = name.parse().expect("slot");
            assert_eq!(
                (n.kind(), n.on_loss(), n.server()),
                (*kind, *loss, *server),
                "{name}"
            );
        }
    }

    #[test]
    fn sorted_as_their_names() {
        let mut v: Vec<SlotName> = [
            "vpn.a.address",
            "sip.user",
            "sip.extension",
            "vpn.a.password",
        ]
        .iter()
        .map(|s| s.parse().expect("slot"))
        .collect();
        v.sort();
        let names: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "sip.extension",
                "sip.user",
                "vpn.a.address",
                "vpn.a.password"
            ]
        );
    }
}
