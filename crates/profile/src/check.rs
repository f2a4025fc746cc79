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
use x509_cert::der::DecodePem;

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
    let (h, p) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once("]:") {
            Some((h, p)) => (format!("[{h}]"), p),
            None => return Err(format!("{s:?} has no port (expected [IPv6]:port)").into()),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err(format!("{s:?}: write IPv6 addresses as [addr]:port").into())
            }
            Some((h, p)) => (h.to_string(), p),
            None => return Err(format!("{s:?} has no port (expected host:port)").into()),
        }
    };
    host(&h)?;
    let port: u16 = p
        .parse()
        .ok()
        .filter(|&n| n != 0)
        .ok_or_else(|| format!("{s:?}: port {p:?} is not a number in 1..=65535"))?;
    Ok((h, port))
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

/// A SIP URI `sip:[user@]host[:port][;params]` or `sips:...`. Returns (host, port).
pub fn sip_uri(s: &str) -> Result<(String, Option<u16>), Invalid> {
    let rest = s
        .strip_prefix("sip:")
        .or_else(|| s.strip_prefix("sips:"))
        .ok_or_else(|| format!("{s:?} is not a SIP URI (expected sip:host or sips:host)"))?;
    let hostpart = rest.split(';').next().unwrap_or_default();
    let hostpart = hostpart.rsplit_once('@').map_or(hostpart, |(_, h)| h);
    if hostpart.contains(':') && !hostpart.starts_with('[') || hostpart.contains("]:") {
        let (h, p) = host_port(hostpart).map_err(|e| format!("{s:?}: {e}"))?;
        return Ok((h, Some(p)));
    }
    host(hostpart).map_err(|e| format!("{s:?}: {e}"))?;
    for param in rest.split(';').skip(1) {
        if param.is_empty() || param.contains(char::is_whitespace) {
            return Err(format!("{s:?}: malformed URI parameter {param:?}").into());
        }
    }
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
        let v = &cert.tbs_certificate.validity;
        out.push(CertInfo {
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
pub fn openvpn_static_key(text: &str) -> Result<(), Invalid> {
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
    Ok(())
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
        assert!(proposal("aes256gcm16-prfsha384-ecp384").is_ok());
        assert!(proposal("AES256").is_err());
    }
}
