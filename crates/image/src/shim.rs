//! What a boot program says about itself: its SBAT entries (`.sbat`), and for shim the
//! certificates built into it (`.vendor_cert`). The builder checks a provider's own shim
//! against its Secure Boot certificate; `verify` and `inspect` name the programs of a stick.
//! Everything read from the file is bounded by the file.

use crate::bytes::le32;
use crate::pe::{self, PeError};

/// One line of a `.sbat` section: component, generation, vendor, package, version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbatEntry {
    /// Component name (`shim`, `shim.debian`, `systemd-stub`, `homestick`).
    pub component: String,
    /// Security generation.
    pub generation: String,
    /// Vendor's name.
    pub vendor: String,
    /// Package name.
    pub package: String,
    /// Package version.
    pub version: String,
}

/// The entries of a `.sbat` section's CSV (the `sbat` header line included; lines with fewer
/// than five fields and NUL padding skipped).
pub fn sbat_entries(section: &[u8]) -> Vec<SbatEntry> {
    let text = String::from_utf8_lossy(section);
    text.trim_end_matches('\0')
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            (f.len() >= 5).then(|| SbatEntry {
                component: f[0].into(),
                generation: f[1].into(),
                vendor: f[2].into(),
                package: f[3].into(),
                version: f[4].into(),
            })
        })
        .collect()
}

/// The certificates shim trusts besides db and the MOK list (its `.vendor_cert` section):
/// DER X.509 certificates, from a single certificate or an EFI signature list. `None`: the
/// program has no `.vendor_cert`, so it is not shim.
pub fn vendor_certs(program: &[u8]) -> Result<Option<Vec<Vec<u8>>>, PeError> {
    let Some(sec) = pe::section(program, ".vendor_cert")? else {
        return Ok(None);
    };
    let field = |at| le32(sec, at).map(|v| v as usize);
    let (Some(size), Some(offset)) = (field(0), field(8)) else {
        return Err(pe::malformed("truncated .vendor_cert table"));
    };
    let authorized = sec
        .get(offset..offset.saturating_add(size))
        .ok_or(pe::malformed(".vendor_cert points outside its section"))?;
    if authorized.is_empty() {
        return Ok(Some(Vec::new()));
    }
    if authorized[0] == 0x30 {
        return Ok(Some(vec![authorized.to_vec()]));
    }
    signature_list_certs(authorized).map(Some)
}

/// EFI_CERT_X509_GUID, as it is stored (little-endian fields).
const CERT_X509: [u8; 16] = [
    0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a, 0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72,
];

/// The X.509 entries of a sequence of EFI_SIGNATURE_LISTs.
fn signature_list_certs(mut b: &[u8]) -> Result<Vec<Vec<u8>>, PeError> {
    let bad = || pe::malformed("a bad signature list in .vendor_cert");
    let mut out = Vec::new();
    while !b.is_empty() {
        let (Some(list), Some(header), Some(each)) = (le32(b, 16), le32(b, 20), le32(b, 24)) else {
            return Err(bad());
        };
        let (list, header, each) = (list as usize, header as usize, each as usize);
        let body = b.get(28 + header..list).ok_or_else(bad)?;
        if each <= 16 || body.len() % each != 0 {
            return Err(bad());
        }
        if b[..16] == CERT_X509 {
            out.extend(body.chunks(each).map(|e| e[16..].to_vec()));
        }
        b = &b[list..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbat_lines_are_read_field_by_field() {
        let s = b"sbat,1,SBAT Version,sbat,1,https://x\nshim.debian,1,Debian,shim,16.1,https://y\nshort,1\n\0\0";
        let e = sbat_entries(s);
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].component, "shim.debian");
        assert_eq!(e[1].version, "16.1");
        assert_eq!(e[1].vendor, "Debian");
    }

    fn esl(entries: &[&[u8]], guid: [u8; 16]) -> Vec<u8> {
        let each = 16 + entries[0].len();
        let mut b = guid.to_vec();
        b.extend(((28 + each * entries.len()) as u32).to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend((each as u32).to_le_bytes());
        for e in entries {
            b.extend([7u8; 16]);
            b.extend(*e);
        }
        b
    }

    #[test]
    fn signature_lists_give_their_x509_entries_only() {
        let mut b = esl(&[b"0\x82cert-a", b"0\x82cert-b"], CERT_X509);
        b.extend(esl(&[&[1u8; 32]], [9u8; 16]));
        let certs = signature_list_certs(&b).unwrap();
        assert_eq!(certs, [b"0\x82cert-a".to_vec(), b"0\x82cert-b".to_vec()]);
        for cut in [1, 20, 30, b.len() - 1] {
            assert!(signature_list_certs(&b[..cut]).is_err(), "cut at {cut}");
        }
    }
}
