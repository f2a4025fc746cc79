//! PE32+ headers: where the COFF header, the optional header, the section table and the
//! certificate-table directory entry are. Shared by UKI assembly and Authenticode signing.

use homestick_image::bytes::{le16, le32};

/// A PE image that homestick cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeError {
    /// Not a PE32+ image, or one whose headers are inconsistent.
    #[error("{0}")]
    Malformed(&'static str),
}

pub(crate) fn malformed(what: &'static str) -> PeError {
    PeError::Malformed(what)
}

/// The little-endian `u32` at `at`, or "truncated header".
pub(crate) fn u32_at(b: &[u8], at: usize) -> Result<u32, PeError> {
    le32(b, at).ok_or(malformed("truncated header"))
}

/// Offsets of the PE headers in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeLayout {
    /// Offset of the COFF header (after "PE\0\0").
    pub coff: usize,
    /// Offset of the optional header.
    pub opt: usize,
    /// Offset of the first section header.
    pub sections: usize,
    /// Number of sections.
    pub nsections: usize,
}

impl PeLayout {
    /// Offset of the optional header's CheckSum field.
    pub fn checksum(&self) -> usize {
        self.opt + 64
    }

    /// Offset of the certificate-table data-directory entry (address, size).
    pub fn cert_dir(&self) -> usize {
        self.opt + 112 + 4 * 8
    }

    /// Offset of section header `i`.
    pub fn section(&self, i: usize) -> usize {
        self.sections + 40 * i
    }
}

/// Locate the headers of a PE32+ image.
pub fn layout(b: &[u8]) -> Result<PeLayout, PeError> {
    if b.get(0..2) != Some(b"MZ") {
        return Err(malformed("no MZ header"));
    }
    let pe = u32_at(b, 0x3c)? as usize;
    if b.get(pe..pe.saturating_add(4)) != Some(b"PE\0\0") {
        return Err(malformed("no PE signature"));
    }
    let coff = pe + 4;
    let field16 = |at| {
        le16(b, at)
            .map(usize::from)
            .ok_or(malformed("truncated header"))
    };
    let nsections = field16(coff + 2)?;
    let opt_size = field16(coff + 16)?;
    let opt = coff + 20;
    if field16(opt)? != 0x20b {
        return Err(malformed("not a PE32+ image"));
    }
    Ok(PeLayout {
        coff,
        opt,
        sections: opt + opt_size,
        nsections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32+ header: MZ, e_lfanew = 0x40, "PE\0\0", COFF with 2 sections and a
    /// 240-byte optional header with magic 0x20b.
    pub(crate) fn tiny_pe() -> Vec<u8> {
        let mut b = vec![0u8; 0x200];
        b[0..2].copy_from_slice(b"MZ");
        b[0x3c] = 0x40;
        b[0x40..0x44].copy_from_slice(b"PE\0\0");
        b[0x44 + 2] = 2;
        b[0x44 + 16] = 240;
        b[0x58..0x5a].copy_from_slice(&0x20bu16.to_le_bytes());
        b
    }

    #[test]
    fn finds_the_headers() {
        let l = layout(&tiny_pe()).unwrap();
        assert_eq!(l.coff, 0x44);
        assert_eq!(l.opt, 0x58);
        assert_eq!(l.sections, 0x58 + 240);
        assert_eq!(l.nsections, 2);
        assert_eq!(l.cert_dir(), 0x58 + 144);
        assert_eq!(l.section(1), 0x58 + 240 + 40);
    }

    #[test]
    fn refuses_what_is_not_pe32_plus() {
        type Edit = fn(&mut Vec<u8>);
        let cases: [(&str, Edit, &str); 5] = [
            ("no MZ", |b| b[0] = b'X', "no MZ header"),
            ("no PE", |b| b[0x40] = b'X', "no PE signature"),
            ("PE32", |b| b[0x59] = 0x01, "not a PE32+ image"),
            ("e_lfanew far away", |b| b[0x3f] = 0x7f, "no PE signature"),
            ("truncated", |b| b.truncate(0x50), "truncated header"),
        ];
        for (name, edit, want) in cases {
            let mut b = tiny_pe();
            edit(&mut b);
            assert_eq!(layout(&b), Err(PeError::Malformed(want)), "{name}");
        }
    }
}
