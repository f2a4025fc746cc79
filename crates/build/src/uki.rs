//! Unified Kernel Image assembly: the systemd EFI stub plus our sections, in pure Rust.
//!
//! The stub is a PE32+ image with spare room for section headers. We append `.osrel`,
//! `.cmdline`, `.initrd`, `.linux` and `.sbat` in that order, each starting at the next
//! aligned address after the previous one (no gaps beyond alignment), and fix the headers.
//! SBAT is merged as ukify does: our `.sbat` carries the stub's entries plus homestick's, and
//! the stub's own `.sbat` header is renamed so exactly one `.sbat` remains.

/// A problem with the stub.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UkiError {
    /// The stub is not a PE32+ image we can extend.
    #[error("EFI stub: {0}")]
    Stub(String),
}

fn bad(msg: impl Into<String>) -> UkiError {
    UkiError::Stub(msg.into())
}

fn rd16(b: &[u8], at: usize) -> Result<u16, UkiError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| bad("truncated header"))
}

fn rd32(b: &[u8], at: usize) -> Result<u32, UkiError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| bad("truncated header"))
}

fn wr32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn align(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Offsets of the PE headers in an image.
#[derive(Debug, Clone, Copy)]
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

/// Locate the headers of a PE32+ image.
pub fn layout(b: &[u8]) -> Result<PeLayout, UkiError> {
    if b.get(0..2) != Some(b"MZ") {
        return Err(bad("no MZ header"));
    }
    let pe = rd32(b, 0x3c)? as usize;
    if b.get(pe..pe + 4) != Some(b"PE\0\0") {
        return Err(bad("no PE signature"));
    }
    let coff = pe + 4;
    let nsections = rd16(b, coff + 2)? as usize;
    let opt_size = rd16(b, coff + 16)? as usize;
    let opt = coff + 20;
    if rd16(b, opt)? != 0x20b {
        return Err(bad("not a PE32+ image"));
    }
    Ok(PeLayout {
        coff,
        opt,
        sections: opt + opt_size,
        nsections,
    })
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
    let l = layout(stub)?;
    let sect_align = u64::from(rd32(stub, l.opt + 32)?);
    let file_align = u64::from(rd32(stub, l.opt + 36)?);
    let size_of_headers = rd32(stub, l.opt + 60)? as usize;
    if sect_align == 0
        || file_align == 0
        || !sect_align.is_power_of_two()
        || !file_align.is_power_of_two()
    {
        return Err(bad("bad alignment values"));
    }
    let new_sections = 5;
    if l.sections + 40 * (l.nsections + new_sections) > size_of_headers {
        return Err(bad("no room for 5 more section headers"));
    }
    let mut out = stub.to_vec();
    let mut va_end = 0u64;
    let mut raw_end = 0u64;
    let mut stub_sbat = Vec::new();
    for i in 0..l.nsections {
        let h = l.sections + 40 * i;
        let vsize = u64::from(rd32(stub, h + 8)?);
        let va = u64::from(rd32(stub, h + 12)?);
        let rsize = u64::from(rd32(stub, h + 16)?);
        let rptr = u64::from(rd32(stub, h + 20)?);
        va_end = va_end.max(va + vsize);
        raw_end = raw_end.max(rptr + rsize);
        if &stub[h..h + 8] == b".sbat\0\0\0" {
            let data = stub
                .get(rptr as usize..(rptr + vsize.min(rsize)) as usize)
                .ok_or_else(|| bad(".sbat out of range"))?;
            stub_sbat = data.iter().copied().take_while(|&c| c != 0).collect();
            out[h..h + 8].copy_from_slice(b".sbatstb");
        }
    }
    if raw_end > stub.len() as u64 {
        return Err(bad("sections pass the end of the file"));
    }
    // Anything after the sections (a stale signature) is dropped; the certificate table too.
    out.truncate(raw_end as usize);
    out[l.opt + 112 + 4 * 8..l.opt + 112 + 5 * 8].fill(0);
    let mut sbat = String::from_utf8_lossy(&stub_sbat).into_owned();
    if sbat.is_empty() {
        sbat.push_str(
            "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n",
        );
    }
    sbat.push_str(sbat_extra);
    let sbat = sbat.into_bytes();
    let contents: [(&[u8; 8], &[u8]); 5] = [
        (b".osrel\0\0", osrel),
        (b".cmdline", cmdline),
        (b".initrd\0", initrd),
        (b".linux\0\0", linux),
        (b".sbat\0\0\0", &sbat),
    ];
    let mut va = align(va_end, sect_align);
    let mut raw = align(raw_end, file_align);
    let mut init_data = u64::from(rd32(stub, l.opt + 8)?);
    for (i, (name, data)) in contents.iter().enumerate() {
        let h = l.sections + 40 * (l.nsections + i);
        let rsize = align(data.len() as u64, file_align);
        if va + data.len() as u64 > u64::from(u32::MAX) {
            return Err(bad("image larger than 4 GiB"));
        }
        out[h..h + 40].fill(0);
        out[h..h + 8].copy_from_slice(*name);
        wr32(&mut out, h + 8, data.len() as u32);
        wr32(&mut out, h + 12, va as u32);
        wr32(&mut out, h + 16, rsize as u32);
        wr32(&mut out, h + 20, raw as u32);
        // IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ
        wr32(&mut out, h + 36, 0x4000_0040);
        out.resize(raw as usize, 0);
        out.extend_from_slice(data);
        out.resize((raw + rsize) as usize, 0);
        init_data += rsize;
        va = align(va + data.len() as u64, sect_align);
        raw += rsize;
    }
    let nsec = (l.nsections + new_sections) as u16;
    out[l.coff + 2..l.coff + 4].copy_from_slice(&nsec.to_le_bytes());
    wr32(
        &mut out,
        l.opt + 8,
        init_data.min(u64::from(u32::MAX)) as u32,
    );
    wr32(&mut out, l.opt + 56, va as u32);
    wr32(&mut out, l.opt + 64, 0);
    Ok(out)
}

/// Names of the sections of a PE image, in header order (for tests and inspection).
pub fn section_names(b: &[u8]) -> Result<Vec<String>, UkiError> {
    let l = layout(b)?;
    (0..l.nsections)
        .map(|i| {
            let h = l.sections + 40 * i;
            let n = b
                .get(h..h + 8)
                .ok_or_else(|| bad("truncated section table"))?;
            Ok(String::from_utf8_lossy(n)
                .trim_end_matches('\0')
                .to_string())
        })
        .collect()
}
