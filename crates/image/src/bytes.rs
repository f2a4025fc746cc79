//! Little-endian integers at offsets of byte slices: the one place homestick reads them.
//!
//! Every reader returns `None` when the field passes the end of the slice, so callers that
//! parse untrusted bytes (PE images, FAT boot sectors, ELF headers) turn that into their own
//! error instead of panicking.

/// The `n`-byte (1..=8) little-endian unsigned integer at `at`.
pub fn le(b: &[u8], at: usize, n: usize) -> Option<u64> {
    let end = at.checked_add(n)?;
    let s = b.get(at..end)?;
    (n <= 8).then(|| {
        s.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
    })
}

/// The little-endian `u16` at `at`.
pub fn le16(b: &[u8], at: usize) -> Option<u16> {
    le(b, at, 2).map(|v| v as u16)
}

/// The little-endian `u32` at `at`.
pub fn le32(b: &[u8], at: usize) -> Option<u32> {
    le(b, at, 4).map(|v| v as u32)
}

/// The little-endian `u64` at `at`.
pub fn le64(b: &[u8], at: usize) -> Option<u64> {
    le(b, at, 8)
}

/// Write `v` as a little-endian `u32` at `at` (the caller owns the buffer and its size).
pub fn put_le32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_bounds() {
        let b = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09];
        assert_eq!(le16(&b, 0), Some(0x0201));
        assert_eq!(le32(&b, 1), Some(0x0504_0302));
        assert_eq!(le64(&b, 1), Some(0x0908_0706_0504_0302));
        assert_eq!(le(&b, 8, 1), Some(9));
        assert_eq!(le32(&b, 6), None);
        assert_eq!(le16(&b, usize::MAX), None);
        assert_eq!(le(&b, 0, 9), None);
        let mut w = [0u8; 6];
        put_le32(&mut w, 1, 0xA1B2_C3D4);
        assert_eq!(w, [0, 0xD4, 0xC3, 0xB2, 0xA1, 0]);
    }
}
