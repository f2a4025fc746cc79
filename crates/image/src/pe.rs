//! PE32+ headers: where the COFF header, the optional header, the section table and the
//! certificate-table directory entry are, and a section's bytes by name. Shared by UKI
//! assembly and Authenticode signing (homestick-signing) and by `verify`, which names a
//! stick's boot programs (shim's SBAT and vendor certificate).

use crate::bytes::{le16, le32};

/// A PE image that homestick cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeError {
    /// Not a PE32+ image, or one whose headers are inconsistent.
    #[error("{0}")]
    Malformed(&'static str),
}

pub fn malformed(what: &'static str) -> PeError {
    PeError::Malformed(what)
}

/// The little-endian `u32` at `at`, or "truncated header".
pub fn u32_at(b: &[u8], at: usize) -> Result<u32, PeError> {
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

/// The bytes of the first section called `name` (at most its virtual size: the rest of the
/// raw data is file alignment), or `None` when there is none.
pub fn section<'a>(b: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, PeError> {
    let l = layout(b)?;
    for i in 0..l.nsections {
        let h = l.section(i);
        let raw = b
            .get(h..h + 8)
            .ok_or(malformed("truncated section table"))?;
        if section_name(b, &l, raw) != Some(name.as_bytes()) {
            continue;
        }
        let vsize = u32_at(b, h + 8)? as usize;
        let rsize = u32_at(b, h + 16)? as usize;
        let ptr = u32_at(b, h + 20)? as usize;
        let len = if vsize == 0 { rsize } else { vsize.min(rsize) };
        return b
            .get(ptr..ptr.saturating_add(len))
            .map(Some)
            .ok_or(malformed("a section lies outside the file"));
    }
    Ok(None)
}

/// A section header's name: up to 8 bytes in place, or `/N`: at offset N of the COFF string
/// table (after the symbol table), as linkers write names longer than 8 bytes
/// (`.vendor_cert`). `None` when a `/N` name points outside the file.
fn section_name<'a>(b: &'a [u8], l: &PeLayout, raw: &'a [u8]) -> Option<&'a [u8]> {
    let inline = raw.split(|&c| c == 0).next().unwrap_or(raw);
    let Some(digits) = inline.strip_prefix(b"/") else {
        return Some(inline);
    };
    let offset: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let symbols = le32(b, l.coff + 8)? as usize;
    let count = le32(b, l.coff + 12)? as usize;
    let table = symbols.checked_add(count.checked_mul(18)?)?;
    let start = table.checked_add(offset)?;
    let rest = b.get(start..b.len().min(start.saturating_add(256)))?;
    rest.split(|&c| c == 0).next()
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

    /// `tiny_pe` with its first section named `.sbat`, holding `data` at 0x180.
    fn with_section(data: &[u8], vsize: u32) -> Vec<u8> {
        let mut b = tiny_pe();
        let h = 0x58 + 240;
        b[h..h + 5].copy_from_slice(b".sbat");
        b[h + 8..h + 12].copy_from_slice(&vsize.to_le_bytes());
        b[h + 16..h + 20].copy_from_slice(&0x40u32.to_le_bytes());
        b[h + 20..h + 24].copy_from_slice(&0x1c0u32.to_le_bytes());
        b[0x1c0..0x1c0 + data.len()].copy_from_slice(data);
        b
    }

    #[test]
    fn a_long_section_name_is_read_from_the_string_table() {
        let mut b = with_section(b"certs", 5);
        let h = 0x58 + 240;
        b[h..h + 8].copy_from_slice(b"/4\0\0\0\0\0\0");
        // One symbol at 0x100 (18 bytes), then the string table: its size, ".vendor_cert\0".
        b[0x44 + 8..0x44 + 12].copy_from_slice(&0x100u32.to_le_bytes());
        b[0x44 + 12..0x44 + 16].copy_from_slice(&1u32.to_le_bytes());
        b[0x112 + 4..0x112 + 17].copy_from_slice(b".vendor_cert\0");
        assert_eq!(section(&b, ".vendor_cert"), Ok(Some(&b"certs"[..])));
        assert_eq!(section(&b, "/4"), Ok(None));
        // A name past the end of the file is no name.
        b[h..h + 8].copy_from_slice(b"/9999999");
        assert_eq!(section(&b, ".vendor_cert"), Ok(None));
    }

    #[test]
    fn a_section_is_found_by_name_and_cut_to_its_virtual_size() {
        let b = with_section(b"sbat,1\n", 7);
        assert_eq!(section(&b, ".sbat"), Ok(Some(&b"sbat,1\n"[..])));
        assert_eq!(section(&b, ".sba"), Ok(None));
        assert_eq!(section(&b, ".vendor_cert"), Ok(None));
        let mut far = with_section(b"x", 1);
        far.truncate(0x1c0);
        assert_eq!(
            section(&far, ".sbat"),
            Err(PeError::Malformed("a section lies outside the file"))
        );
    }
}
