//! Field validators: host:port, CIDR, IP, base64 keys, SIP URIs, PEM certificates.
//!
//! Each returns `Err(reason)` with a reason that reads well after "file: field: ".

/// Why a value is not valid; reads well after "file: field: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<String> for Invalid {
    fn from(s: String) -> Self {
        Invalid(s)
    }
}

impl From<&str> for Invalid {
    fn from(s: &str) -> Self {
        Invalid(s.to_string())
    }
}

use std::net::IpAddr;

use base64::Engine;
use x509_cert::der::{Decode, DecodePem, Encode};

/// A host name (RFC 1123) or an IP address (IPv6 in brackets when followed by a port).
pub fn host(s: &str) -> Result<(), Invalid> {
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    if bare.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && !s
            .split('.')
            .next_back()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?} is not a valid host name or IP address").into())
    }
}

/// `host:port` (IPv6 as `[addr]:port`). Returns (host, port).
pub fn host_port(s: &str) -> Result<(String, u16), Invalid> {
    let hp = homestick_formats::endpoint::HostPort::parse(s).map_err(|e| Invalid(e.to_string()))?;
    let h = hp.host_for_url();
    host(&h)?;
    Ok((h, hp.port))
}

/// An IP network in CIDR form with no host bits set, e.g. `10.20.0.0/16`.
pub fn cidr(s: &str) -> Result<(IpAddr, u8), Invalid> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not in CIDR form (address/prefix)"))?;
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("{s:?}: {a:?} is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = p
        .parse()
        .ok()
        .filter(|&n| n <= max)
        .ok_or_else(|| format!("{s:?}: prefix {p:?} is not in 0..={max}"))?;
    let host_bits_set = match addr {
        IpAddr::V4(v) => prefix < 32 && u32::from(v) & (u32::MAX >> prefix) != 0,
        IpAddr::V6(v) => prefix < 128 && u128::from(v) & (u128::MAX >> prefix) != 0,
    };
    if host_bits_set {
        return Err(format!("{s:?} has host bits set (did you mean the network address?)").into());
    }
    Ok((addr, prefix))
}

/// An IPv4 network for users' tunnel addresses: CIDR, no host bits, prefix 8..=30 (room for
/// the server's address and at least one user).
pub fn address_pool(s: &str) -> Result<(std::net::Ipv4Addr, u8), Invalid> {
    match cidr(s)? {
        (IpAddr::V4(a), p) if (8..=30).contains(&p) => Ok((a, p)),
        (IpAddr::V4(_), p) => Err(format!("{s:?}: prefix /{p} is not in /8../30").into()),
        (IpAddr::V6(_), _) => Err(format!("{s:?} is not an IPv4 network").into()),
    }
}

/// A plain IP address.
pub fn ip(s: &str) -> Result<IpAddr, Invalid> {
    s.parse()
        .map_err(|_| Invalid(format!("{s:?} is not an IP address")))
}

/// A DNS search domain.
pub fn domain(s: &str) -> Result<(), Invalid> {
    host(s).and_then(|_| {
        if s.parse::<IpAddr>().is_ok() {
            Err(format!("{s:?} is an address, not a domain").into())
        } else {
            Ok(())
        }
    })
}

/// A base64 key of exactly `len` bytes (WireGuard keys: 32).
pub fn base64_key(s: &str, len: usize, what: &str) -> Result<(), Invalid> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| format!("{s:?} is not base64"))?;
    if bytes.len() != len {
        return Err(format!("decodes to {} bytes, a {what} has {len}", bytes.len()).into());
    }
    Ok(())
}

/// A SIP URI `sip:[user@]host[:port][;params]` or `sips:...`. Returns (host, port). Every
/// part is checked, whether a port is given or not: the user part and each parameter's name
/// and value from RFC 3261's characters, and nothing that could end a quoted value or a line
/// in a file it is written to (quotes, `<`, `>`, backslashes, spaces, control characters).
pub fn sip_uri(s: &str) -> Result<(String, Option<u16>), Invalid> {
    let rest = s
        .strip_prefix("sip:")
        .or_else(|| s.strip_prefix("sips:"))
        .ok_or_else(|| format!("{s:?} is not a SIP URI (expected sip:host or sips:host)"))?;
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "\"<>\\".contains(*c))
    {
        return Err(format!("{s:?} holds {c:?}, which a SIP URI cannot").into());
    }
    let mut parts = rest.split(';');
    // split always yields a first part.
    let userhost = parts.next().unwrap_or_default();
    let (user, hostpart) = match userhost.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, userhost),
    };
    let uri_chars = |t: &str, extra: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()%".contains(c) || extra.contains(c))
    };
    if let Some(u) = user {
        if !uri_chars(u, "&=+$,?/") {
            return Err(format!("{s:?}: the user part {u:?} is not a SIP user").into());
        }
    }
    for param in parts {
        let (name, value) = param.split_once('=').unwrap_or((param, "t"));
        if !uri_chars(name, "[]/:&+$") || !uri_chars(value, "[]/:&+$") {
            return Err(format!("{s:?}: malformed URI parameter {param:?}").into());
        }
    }
    if hostpart.contains(':') && !hostpart.starts_with('[') || hostpart.contains("]:") {
        let (h, p) = host_port(hostpart).map_err(|e| format!("{s:?}: {e}"))?;
        return Ok((h, Some(p)));
    }
    host(hostpart).map_err(|e| format!("{s:?}: {e}"))?;
    Ok((hostpart.to_string(), None))
}

/// Facts about a checked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject, RFC 4514 form.
    pub subject: String,
    /// Not-after as Unix seconds.
    pub not_after: i64,
    /// Not-before as Unix seconds.
    pub not_before: i64,
    /// Serial number, lowercase hex (as a CRL or `openssl x509 -serial` names it).
    pub serial: String,
    /// The certificate's DER: what a rendered file holds, written anew as PEM.
    pub der: Vec<u8>,
    /// The subject public key: algorithm OID and the key's bits.
    pub public_key: (String, Vec<u8>),
    /// Whether its extended key usage allows code signing (a Secure Boot db certificate).
    pub code_signing: bool,
}

/// Every certificate in a PEM bundle parses; returns their facts (at least one).
pub fn pem_certificates(text: &str) -> Result<Vec<CertInfo>, Invalid> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let end_marker = "-----END CERTIFICATE-----";
        if !block.starts_with("-----BEGIN CERTIFICATE-----") {
            let label: String = block.chars().skip(11).take_while(|&c| c != '-').collect();
            return Err(
                format!("holds a {label:?} PEM block; expected only CERTIFICATE blocks").into(),
            );
        }
        let end = block
            .find(end_marker)
            .ok_or("a CERTIFICATE block has no END line")?
            + end_marker.len();
        let cert = x509_cert::Certificate::from_pem(&block.as_bytes()[..end])
            .map_err(|e| format!("certificate {} does not parse: {e}", out.len() + 1))?;
        let der = cert
            .to_der()
            .map_err(|e| format!("certificate {} does not encode: {e}", out.len() + 1))?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let code_signing = cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .filter(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
            .any(|e| {
                x509_cert::ext::pkix::ExtendedKeyUsage::from_der(e.extn_value.as_bytes())
                    .is_ok_and(|u| u.0.contains(&const_oid::db::rfc5280::ID_KP_CODE_SIGNING))
            });
        let v = &cert.tbs_certificate.validity;
        out.push(CertInfo {
            der,
            public_key: (
                spki.algorithm.oid.to_string(),
                spki.subject_public_key.raw_bytes().to_vec(),
            ),
            code_signing,
            subject: cert.tbs_certificate.subject.to_string(),
            not_after: v.not_after.to_unix_duration().as_secs() as i64,
            not_before: v.not_before.to_unix_duration().as_secs() as i64,
            serial: cert
                .tbs_certificate
                .serial_number
                .as_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        });
        rest = &block[end..];
    }
    if out.is_empty() {
        return Err("is not a PEM certificate (no BEGIN CERTIFICATE block)".into());
    }
    Ok(out)
}

/// An OpenVPN static key (tls-crypt / tls-auth): 256 bytes of hex between the V1 markers.
/// Returns the key's bytes; a rendered file holds them written anew.
pub fn openvpn_static_key(text: &str) -> Result<[u8; 256], Invalid> {
    let begin = "-----BEGIN OpenVPN Static key V1-----";
    let end = "-----END OpenVPN Static key V1-----";
    let body = text
        .split_once(begin)
        .and_then(|(_, r)| r.split_once(end))
        .map(|(b, _)| b)
        .ok_or("is not an OpenVPN static key (expected the 'OpenVPN Static key V1' block; make one with openvpn --genkey tls-crypt)")?;
    let hex: String = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    if hex.len() != 512 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("the key block holds {} hex digits, expected 512", hex.len()).into());
    }
    let mut key = [0u8; 256];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| "not hex")?;
    }
    Ok(key)
}

/// A user's private key for a VPN client certificate, parsed from its one PEM block.
#[derive(Clone)]
pub struct ClientKey {
    /// The PEM label it came with (`PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`).
    pub label: &'static str,
    /// The key's DER, written anew as PEM into the rendered file.
    pub der: zeroize::Zeroizing<Vec<u8>>,
    /// Its public key: algorithm OID and bits as a certificate holds them.
    pub public_key: (String, Vec<u8>),
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("label", &self.label)
            .finish()
    }
}

const RSA_OID: &str = "1.2.840.113549.1.1.1";
const EC_OID: &str = "1.2.840.10045.2.1";

/// The one PEM block of `text` (text around it, as `openssl x509 -text` writes, is allowed and
/// dropped): its label and DER.
fn one_pem_block(text: &str) -> Result<(String, zeroize::Zeroizing<Vec<u8>>), Invalid> {
    if text.matches("-----BEGIN ").count() != 1 {
        return Err("must hold exactly one PEM block".into());
    }
    // Counted once just above: found.
    let start = text.find("-----BEGIN ").unwrap_or_default();
    let block = &text[start..];
    let label: String = block[11..].chars().take_while(|&c| c != '-').collect();
    let end_marker = format!("-----END {label}-----");
    let end = block
        .find(&end_marker)
        .ok_or_else(|| format!("the {label} block has no END line"))?
        + end_marker.len();
    let (l, der) = pem_rfc7468::decode_vec(&block.as_bytes()[..end])
        .map_err(|e| format!("the {label} block is not valid PEM: {e}"))?;
    Ok((l.to_string(), zeroize::Zeroizing::new(der)))
}

/// A private key for a client certificate: RSA or EC (P-256, P-384), unencrypted, in PKCS#8 or
/// the older PKCS#1/SEC1 form. An Ed25519 key is refused (homestick's signing keys are Ed25519;
/// VPN clients use RSA or EC), as is an encrypted one (the stick has nobody to type its
/// passphrase).
pub fn client_key(text: &str) -> Result<ClientKey, Invalid> {
    use p256::pkcs8::DecodePrivateKey;
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPublicKey};
    let (label, der) = one_pem_block(text)?;
    let rsa_public = |k: rsa::RsaPrivateKey| -> Result<(String, Vec<u8>), Invalid> {
        let p = rsa::RsaPublicKey::from(&k)
            .to_pkcs1_der()
            .map_err(|e| format!("the RSA key does not encode: {e}"))?;
        Ok((RSA_OID.to_string(), p.as_bytes().to_vec()))
    };
    let ec = |p: Option<p256::SecretKey>, q: Option<p384::SecretKey>| -> Option<Vec<u8>> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        p.map(|k| k.public_key().to_encoded_point(false).as_bytes().to_vec())
            .or_else(|| q.map(|k| k.public_key().to_encoded_point(false).as_bytes().to_vec()))
    };
    let (label, public_key) = match label.as_str() {
        "ENCRYPTED PRIVATE KEY" => {
            return Err("is encrypted; the stick has nobody to type its passphrase: give the key unencrypted (openssl pkey -in K -out K.plain)".into())
        }
        "RSA PRIVATE KEY" => {
            let k = rsa::RsaPrivateKey::from_pkcs1_der(&der)
                .map_err(|e| format!("the RSA PRIVATE KEY does not parse: {e}"))?;
            ("RSA PRIVATE KEY", rsa_public(k)?)
        }
        "EC PRIVATE KEY" => {
            let bits = ec(
                p256::SecretKey::from_sec1_der(&der).ok(),
                p384::SecretKey::from_sec1_der(&der).ok(),
            )
            .ok_or("the EC PRIVATE KEY is not a P-256 or P-384 key")?;
            ("EC PRIVATE KEY", (EC_OID.to_string(), bits))
        }
        "PRIVATE KEY" => {
            let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice())
                .map_err(|e| format!("the PRIVATE KEY does not parse: {e}"))?;
            let public = match info.algorithm.oid.to_string().as_str() {
                RSA_OID => rsa_public(
                    rsa::RsaPrivateKey::from_pkcs8_der(&der)
                        .map_err(|e| format!("the RSA key does not parse: {e}"))?,
                )?,
                EC_OID => (
                    EC_OID.to_string(),
                    ec(
                        p256::SecretKey::from_pkcs8_der(&der).ok(),
                        p384::SecretKey::from_pkcs8_der(&der).ok(),
                    )
                    .ok_or("the EC key is not a P-256 or P-384 key")?,
                ),
                "1.3.101.112" => return Err("is an Ed25519 key, as homestick's signing keys are; a VPN client key is RSA or EC".into()),
                other => return Err(format!("is a key of algorithm {other}, not RSA or EC").into()),
            };
            ("PRIVATE KEY", public)
        }
        other => return Err(format!("holds a {other:?} block, not a private key").into()),
    };
    Ok(ClientKey {
        label,
        der,
        public_key,
    })
}

/// A user's own client certificate: exactly one, not one for code signing (a Secure Boot db
/// certificate is no VPN client's).
pub fn client_certificate(text: &str) -> Result<CertInfo, Invalid> {
    one_pem_block(text)?;
    let mut certs = pem_certificates(text)?;
    let c = certs.pop().ok_or("holds no certificate")?;
    if c.code_signing {
        return Err(
            "is a code-signing certificate (a Secure Boot key's), not a VPN client certificate"
                .into(),
        );
    }
    Ok(c)
}

/// Whether `key` is the private key of `cert`.
pub fn key_matches(cert: &CertInfo, key: &ClientKey) -> bool {
    if cert.public_key.0 != key.public_key.0 {
        return false;
    }
    if cert.public_key.0 == EC_OID {
        // A certificate may hold the point compressed: compare the points, not the bytes.
        let p = |b: &[u8]| {
            p256::PublicKey::from_sec1_bytes(b)
                .map(|k| {
                    p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&k, false)
                        .as_bytes()
                        .to_vec()
                })
                .or_else(|_| {
                    p384::PublicKey::from_sec1_bytes(b).map(|k| {
                        p384::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&k, false)
                            .as_bytes()
                            .to_vec()
                    })
                })
                .ok()
        };
        return p(&cert.public_key.1).is_some() && p(&cert.public_key.1) == p(&key.public_key.1);
    }
    cert.public_key.1 == key.public_key.1
}

/// An IKE or ESP proposal in strongSwan syntax: algorithm tokens joined by '-'.
pub fn proposal(s: &str) -> Result<(), Invalid> {
    let ok = !s.is_empty()
        && s.len() <= 200
        && s.split('-').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if !ok {
        return Err(format!(
            "{s:?} is not a strongSwan proposal (e.g. aes256gcm16-prfsha384-ecp384)"
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports() {
        assert!(host_port("vpn.stadt-a.de:51820").is_ok());
        assert!(host_port("[2001:db8::1]:443").is_ok());
        assert!(host_port("192.0.2.1:1194").is_ok());
        for bad in [
            "vpn.stadt-a.de",
            "vpn.stadt-a.de:0",
            "vpn.stadt-a.de:99999",
            "vpn_x.de:1",
            "-a.de:1",
            "2001:db8::1:443",
            ":1",
        ] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
        assert_eq!(
            host_port("vpn.stadt-a.de").unwrap_err(),
            "\"vpn.stadt-a.de\" has no port (expected host:port)".into()
        );
    }

    #[test]
    fn cidrs() {
        assert!(cidr("10.20.0.0/16").is_ok());
        assert!(cidr("0.0.0.0/0").is_ok());
        assert!(cidr("2001:db8::/32").is_ok());
        assert!(cidr("10.20.0.1/16").unwrap_err().0.contains("host bits"));
        assert!(cidr("10.0.0.0/33").is_err());
        assert!(cidr("10.0.0.0").is_err());
    }

    #[test]
    fn keys_and_uris() {
        assert!(base64_key(
            "R3uNFg1u+ma99XAh69Zo3m8C8gXNSjXF3jCaKSl6VTo=",
            32,
            "WireGuard key"
        )
        .is_ok());
        assert!(
            base64_key("R3uNFg1u+ma99XAh69Zo3m8C8gXNSjXF3jCaKSl6VQ==", 32, "k")
                .unwrap_err()
                .0
                .contains("31 bytes")
        );
        assert!(sip_uri("sip:sip.stadt-a.de").is_ok());
        assert!(sip_uri("sips:sbc.stadt-a.de:5061;transport=tls").is_ok());
        assert!(sip_uri("sip.stadt-a.de").is_err());
        assert!(sip_uri("sip:bad_host").is_err());
    }

    #[test]
    fn sip_uris_with_a_port_still_have_their_parameters_checked_each_case() {
        let cases = [
            ("sip:sbc.example:5061\";answermode=auto;x=\"", "holds '\"'"),
            ("sip:sbc.example:5061;a b", "holds ' '"),
            ("sip:sbc.example:5061;", "malformed URI parameter \"\""),
            ("sip:sbc.example:5061;x=", "malformed URI parameter \"x=\""),
            ("sip:sbc.example:5061;x=<y>", "holds '<'"),
            ("sip:sbc.example:5061\u{2028}", "holds '\\u{2028}'"),
            ("sip:a\\b@sbc.example:5061", "holds '\\\\'"),
            ("sip:a@b@sbc.example", "is not a SIP user"),
        ];
        for (uri, want) in cases {
            let got = sip_uri(uri).map(|_| ()).unwrap_err().0;
            println!("case {uri:?}: {got}");
            assert!(got.contains(want), "{uri:?}: {got}");
        }
        assert_eq!(
            sip_uri("sips:sbc.example:5061;transport=tls"),
            Ok(("sbc.example".into(), Some(5061)))
        );
        assert!(proposal("aes256gcm16-prfsha384-ecp384").is_ok());
        assert!(proposal("AES256").is_err());
    }
}
