//! Unified Kernel Image assembly: the systemd EFI stub plus our sections, in pure Rust.
//!
//! The stub is a PE32+ image with spare room for section headers. We append `.osrel`,
//! `.cmdline`, `.initrd`, `.linux` and `.sbat` in that order, each starting at the next
//! aligned address after the previous one (no gaps beyond alignment), and fix the headers.
//! SBAT is merged as ukify does: our `.sbat` carries the stub's entries plus homestick's, and
//! the stub's own `.sbat` header is renamed so exactly one `.sbat` remains.

use homestick_image::bytes::put_le32;

use crate::pe::{self, malformed, u32_at, PeError, PeLayout};

/// A problem with the stub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UkiError {
    /// The stub is not a PE32+ image we can extend.
    #[error("EFI stub: {0}")]
    Stub(#[from] PeError),
}

/// The SBAT header line when the stub has no `.sbat` of its own.
const SBAT_HEADER: &str =
    "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n";
/// Sections we append.
const NEW_SECTIONS: usize = 5;

fn align(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// What the stub's headers say, and what is read from them.
struct Stub {
    layout: PeLayout,
    sect_align: u64,
    file_align: u64,
    /// End of the last section in memory and in the file.
    va_end: u64,
    raw_end: u64,
    /// Header offset and contents of the stub's own `.sbat`, if any.
    sbat: Option<(usize, Vec<u8>)>,
}

fn read_stub(stub: &[u8]) -> Result<Stub, PeError> {
    let l = pe::layout(stub)?;
    let sect_align = u64::from(u32_at(stub, l.opt + 32)?);
    let file_align = u64::from(u32_at(stub, l.opt + 36)?);
    let size_of_headers = u32_at(stub, l.opt + 60)? as usize;
    if !sect_align.is_power_of_two() || !file_align.is_power_of_two() {
        return Err(malformed("bad alignment values"));
    }
    if l.section(l.nsections + NEW_SECTIONS) > size_of_headers {
        return Err(malformed("no room for 5 more section headers"));
    }
    let (mut va_end, mut raw_end, mut sbat) = (0u64, 0u64, None);
    for i in 0..l.nsections {
        let h = l.section(i);
        let vsize = u64::from(u32_at(stub, h + 8)?);
        let va = u64::from(u32_at(stub, h + 12)?);
        let rsize = u64::from(u32_at(stub, h + 16)?);
        let rptr = u64::from(u32_at(stub, h + 20)?);
        va_end = va_end.max(va + vsize);
        raw_end = raw_end.max(rptr + rsize);
        if stub.get(h..h + 8) == Some(b".sbat\0\0\0") {
            let data = stub
                .get(rptr as usize..(rptr + vsize.min(rsize)) as usize)
                .ok_or(malformed(".sbat out of range"))?;
            sbat = Some((h, data.iter().copied().take_while(|&c| c != 0).collect()));
        }
    }
    if raw_end > stub.len() as u64 {
        return Err(malformed("sections pass the end of the file"));
    }
    Ok(Stub {
        layout: l,
        sect_align,
        file_align,
        va_end,
        raw_end,
        sbat,
    })
}

/// Check that `stub` is a PE32+ image this module can extend.
pub fn check_stub(stub: &[u8]) -> Result<(), UkiError> {
    read_stub(stub).map(|_| ()).map_err(UkiError::from)
}

/// Build a UKI from `stub` and the given contents.
pub fn assemble(
    stub: &[u8],
    osrel: &[u8],
    cmdline: &[u8],
    initrd: &[u8],
    linux: &[u8],
    sbat_extra: &str,
) -> Result<Vec<u8>, UkiError> {
    let s = read_stub(stub)?;
    let l = s.layout;
    let mut out = stub.to_vec();
    let mut sbat = String::new();
    if let Some((h, own)) = &s.sbat {
        out[*h..*h + 8].copy_from_slice(b".sbatstb");
        sbat.push_str(&String::from_utf8_lossy(own));
    }
    if sbat.is_empty() {
        sbat.push_str(SBAT_HEADER);
    }
    sbat.push_str(sbat_extra);
    // Anything after the sections (a stale signature) is dropped; the certificate table too.
    out.truncate(s.raw_end as usize);
    out[l.cert_dir()..l.cert_dir() + 8].fill(0);
    let contents: [(&[u8; 8], &[u8]); NEW_SECTIONS] = [
        (b".osrel\0\0", osrel),
        (b".cmdline", cmdline),
        (b".initrd\0", initrd),
        (b".linux\0\0", linux),
        (b".sbat\0\0\0", sbat.as_bytes()),
    ];
    let mut va = align(s.va_end, s.sect_align);
    let mut raw = align(s.raw_end, s.file_align);
    let mut init_data = u64::from(u32_at(stub, l.opt + 8)?);
    for (i, (name, data)) in contents.iter().enumerate() {
        let h = l.section(l.nsections + i);
        let rsize = align(data.len() as u64, s.file_align);
        if va + data.len() as u64 > u64::from(u32::MAX) {
            return Err(malformed("image larger than 4 GiB").into());
        }
        out[h..h + 40].fill(0);
        out[h..h + 8].copy_from_slice(*name);
        put_le32(&mut out, h + 8, data.len() as u32);
        put_le32(&mut out, h + 12, va as u32);
        put_le32(&mut out, h + 16, rsize as u32);
        put_le32(&mut out, h + 20, raw as u32);
        // IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ
        put_le32(&mut out, h + 36, 0x4000_0040);
        out.resize(raw as usize, 0);
        out.extend_from_slice(data);
        out.resize((raw + rsize) as usize, 0);
        init_data += rsize;
        va = align(va + data.len() as u64, s.sect_align);
        raw += rsize;
    }
    let nsec = (l.nsections + NEW_SECTIONS) as u16;
    out[l.coff + 2..l.coff + 4].copy_from_slice(&nsec.to_le_bytes());
    put_le32(
        &mut out,
        l.opt + 8,
        init_data.min(u64::from(u32::MAX)) as u32,
    );
    put_le32(&mut out, l.opt + 56, va as u32);
    put_le32(&mut out, l.checksum(), 0);
    Ok(out)
}

/// Names of the sections of a PE image, in header order (for tests and inspection).
pub fn section_names(b: &[u8]) -> Result<Vec<String>, UkiError> {
    let l = pe::layout(b)?;
    (0..l.nsections)
        .map(|i| {
            let h = l.section(i);
            let n = b
                .get(h..h + 8)
                .ok_or(malformed("truncated section table"))?;
            Ok(String::from_utf8_lossy(n)
                .trim_end_matches('\0')
                .to_string())
        })
        .collect()
}
