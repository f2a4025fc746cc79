//! `host:port` endpoints and `tcp/443` port ranges: parsed the same way where customer.toml is
//! checked and where the session reads profile.json.

use std::fmt;

/// Why an endpoint or port range is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// No `:port`.
    #[error("{0:?} has no port (expected host:port)")]
    NoPort(String),
    /// `[addr` without `]:port`.
    #[error("{0:?} has no port (expected [IPv6]:port)")]
    NoV6Port(String),
    /// An IPv6 address without brackets.
    #[error("{0:?}: write IPv6 addresses as [addr]:port")]
    V6Brackets(String),
    /// No host before the port.
    #[error("{0:?} has no host")]
    NoHost(String),
    /// The port is not 1..=65535.
    #[error("{text:?}: port {port:?} is not a number in 1..=65535")]
    Port {
        /// The whole text.
        text: String,
        /// The port part.
        port: String,
    },
    /// Not `PROTO/PORT`.
    #[error("{0:?} is not PROTO/PORT (tcp/443, udp/3478-3481)")]
    NotPortRange(String),
    /// Neither tcp nor udp.
    #[error("{text:?}: protocol {proto:?} is not tcp or udp")]
    Proto {
        /// The whole text.
        text: String,
        /// The protocol part.
        proto: String,
    },
    /// A port of a range that is not 1..=65535.
    #[error("{text:?}: {port:?} is not a port (1-65535)")]
    RangePort {
        /// The whole text.
        text: String,
        /// The port.
        port: String,
    },
    /// first > last.
    #[error("{0:?}: the range runs backwards")]
    Backwards(String),
}

/// A host and port: `host:port`, `192.0.2.1:1194` or `[2001:db8::1]:443`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// The host as written, without the brackets of an IPv6 address.
    pub host: String,
    /// 1..=65535.
    pub port: u16,
    /// The host was an IPv6 address in brackets.
    pub bracketed: bool,
}

impl HostPort {
    /// Parse `host:port` or `[v6]:port`; the host itself is the caller's to check.
    pub fn parse(s: &str) -> Result<HostPort, EndpointError> {
        let (host, port, bracketed) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest
                .split_once("]:")
                .ok_or_else(|| EndpointError::NoV6Port(s.into()))?;
            (h, p, true)
        } else {
            match s.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => return Err(EndpointError::V6Brackets(s.into())),
                Some((h, p)) => (h, p, false),
                None => return Err(EndpointError::NoPort(s.into())),
            }
        };
        if host.is_empty() {
            return Err(EndpointError::NoHost(s.into()));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&n| n != 0)
            .ok_or_else(|| EndpointError::Port {
                text: s.into(),
                port: port.into(),
            })?;
        Ok(HostPort {
            host: host.into(),
            port,
            bracketed,
        })
    }

    /// The host as it stands before `:port` (an IPv6 address in brackets).
    pub fn host_for_url(&self) -> String {
        if self.bracketed {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

/// Transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Proto {
    /// `udp` or `tcp`, as nftables and the profile write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `tcp/443` or `udp/3478-3481`: a protocol and a port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// The protocol.
    pub proto: Proto,
    /// First port.
    pub first: u16,
    /// Last port (the first for one port).
    pub last: u16,
}

impl PortRange {
    /// Parse `proto/port` or `proto/first-last`.
    pub fn parse(s: &str) -> Result<PortRange, EndpointError> {
        let (proto, range) = s
            .split_once('/')
            .ok_or_else(|| EndpointError::NotPortRange(s.into()))?;
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => {
                return Err(EndpointError::Proto {
                    text: s.into(),
                    proto: proto.into(),
                })
            }
        };
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|&n| n > 0 && p.bytes().all(|c| c.is_ascii_digit()))
                .ok_or_else(|| EndpointError::RangePort {
                    text: s.into(),
                    port: p.into(),
                })
        };
        let (first, last) = (port(a)?, port(b)?);
        if first > last {
            return Err(EndpointError::Backwards(s.into()));
        }
        Ok(PortRange { proto, first, last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_of_each_form_and_each_refusal() {
        let ok = [
            ("vpn.stadt-a.de:51820", "vpn.stadt-a.de", 51820, false),
            ("192.0.2.1:1194", "192.0.2.1", 1194, false),
            ("[2001:db8::1]:443", "2001:db8::1", 443, true),
        ];
        for (s, host, port, bracketed) in ok {
            let hp = HostPort::parse(s).unwrap();
            assert_eq!(
                (hp.host.as_str(), hp.port, hp.bracketed),
                (host, port, bracketed),
                "{s}"
            );
        }
        assert_eq!(HostPort::parse("[::1]:5").unwrap().host_for_url(), "[::1]");
        type Is = fn(&EndpointError) -> bool;
        let bad: [(&str, Is); 7] = [
            ("nohost", |e| matches!(e, EndpointError::NoPort(_))),
            ("[::1]", |e| matches!(e, EndpointError::NoV6Port(_))),
            ("::1:53", |e| matches!(e, EndpointError::V6Brackets(_))),
            (":53", |e| matches!(e, EndpointError::NoHost(_))),
            ("h:0", |e| matches!(e, EndpointError::Port { .. })),
            ("h:65536", |e| matches!(e, EndpointError::Port { .. })),
            ("h:x", |e| matches!(e, EndpointError::Port { .. })),
        ];
        for (s, want) in bad {
            let e = HostPort::parse(s).expect_err(s);
            assert!(want(&e), "{s}: {e:?}");
        }
    }

    #[test]
    fn port_ranges_and_each_refusal() {
        let r = PortRange::parse("udp/3478-3481").unwrap();
        assert_eq!((r.proto, r.first, r.last), (Proto::Udp, 3478, 3481));
        let r = PortRange::parse("tcp/443").unwrap();
        assert_eq!((r.proto, r.first, r.last), (Proto::Tcp, 443, 443));
        for (s, want) in [
            ("443", "is not PROTO/PORT"),
            ("icmp/1", "is not tcp or udp"),
            ("tcp/0", "is not a port"),
            ("tcp/65536", "is not a port"),
            ("tcp/+1", "is not a port"),
            ("udp/20-10", "runs backwards"),
        ] {
            let e = PortRange::parse(s).expect_err(s).to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
