//! A capture of the PC's link read back: a small pcap reader (Ethernet or raw IP) into IPv4
//! packets, the first DNS question's name, and the byte entropy the tests tell encrypted
//! payloads by.

use std::fs;
use std::path::Path;

use crate::office::MAC;

/// One IPv4 packet from a capture.
#[derive(Debug, Clone)]
pub struct Pkt {
    pub t: f64,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub payload: Vec<u8>,
    /// Non-IPv4 frame from the PC (ARP, anything else): its ethertype.
    pub other: Option<u16>,
    pub from_pc: bool,
}

pub fn ip(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// Read a pcap file (Ethernet or raw IP) into packets.
pub fn pcap(path: &Path) -> Vec<Pkt> {
    let b = fs::read(path).unwrap_or_default();
    if b.len() < 24 {
        return Vec::new();
    }
    let linktype = u32::from_le_bytes(b[20..24].try_into().unwrap());
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let sec = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as f64;
        let usec = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as f64;
        let len = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        let Some(frame) = b.get(at + 16..at + 16 + len) else {
            break;
        };
        at += 16 + len;
        let (from_pc, ipb) = if linktype == 1 {
            if frame.len() < 14 {
                continue;
            }
            let from_pc = frame[6..12] == MAC;
            let et = u16::from_be_bytes([frame[12], frame[13]]);
            if et != 0x0800 {
                out.push(Pkt {
                    t: sec + usec / 1e6,
                    src: [0; 4],
                    dst: [0; 4],
                    proto: 0,
                    sport: 0,
                    dport: 0,
                    payload: Vec::new(),
                    other: Some(et),
                    from_pc,
                });
                continue;
            }
            (from_pc, &frame[14..])
        } else {
            (false, frame)
        };
        if ipb.len() < 20 || ipb[0] >> 4 != 4 {
            continue;
        }
        let ihl = usize::from(ipb[0] & 15) * 4;
        let proto = ipb[9];
        let l4 = ipb.get(ihl..).unwrap_or(&[]);
        let (sport, dport, payload) = match proto {
            17 if l4.len() >= 8 => (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
                l4[8..].to_vec(),
            ),
            6 if l4.len() >= 20 => (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
                l4.get(usize::from(l4[12] >> 4) * 4..)
                    .unwrap_or(&[])
                    .to_vec(),
            ),
            _ => (0, 0, l4.to_vec()),
        };
        out.push(Pkt {
            t: sec + usec / 1e6,
            src: ipb[12..16].try_into().unwrap(),
            dst: ipb[16..20].try_into().unwrap(),
            proto,
            sport,
            dport,
            payload,
            other: None,
            from_pc,
        });
    }
    out
}

/// The first question's name of a DNS message.
pub fn dns_qname(m: &[u8]) -> Option<String> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let n = usize::from(*m.get(at)?);
        if n == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(m.get(at + 1..at + 1 + n)?).into_owned());
        at += 1 + n;
    }
    Some(labels.join("."))
}

pub fn describe(p: &Pkt) -> String {
    match p.other {
        Some(et) => format!("ethertype {et:#06x}"),
        None => format!(
            "{}:{} -> {}:{} proto {}",
            ip(p.src),
            p.sport,
            ip(p.dst),
            p.dport,
            p.proto
        ),
    }
}

pub fn entropy(bytes: &[u8]) -> f64 {
    let mut n = [0usize; 256];
    for b in bytes {
        n[usize::from(*b)] += 1;
    }
    let len = bytes.len() as f64;
    n.iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / len;
            -p * p.log2()
        })
        .sum()
}
