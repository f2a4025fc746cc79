//! GUID Partition Table: a strict reader for untrusted media and a writer for the builder.
//!
//! The reader is our own, small and bounds-checked, because it reads attacker-controlled sticks;
//! it reads only the primary header and entry array (the backup's position is not signed: a
//! flasher moves it to the end of the real stick). The writer uses the `gpt` crate.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};

use uuid::Uuid;

use crate::disk::{Disk, SECTOR};

/// EFI system partition.
pub const TYPE_ESP: Uuid = Uuid::from_u128(0xC12A7328_F81F_11D2_BA4B_00A0C93EC93B);
/// Root partition (x86-64), Discoverable Partitions Specification.
pub const TYPE_ROOT_X86_64: Uuid = Uuid::from_u128(0x4F68BCE3_E8CD_4DB1_96E7_FBCAF984B709);
/// Root verity partition (x86-64).
pub const TYPE_ROOT_X86_64_VERITY: Uuid = Uuid::from_u128(0x2C7357ED_EBD2_46D9_AEC1_23D437EC2BF5);
/// homestick's own profile partition type: not "basic data", so Windows leaves it alone.
pub const TYPE_HOMESTICK_PROFILE: Uuid = Uuid::from_u128(0xC3F343DE_6C67_409E_881F_5BBB2EC353ED);

/// GPT attribute bit 60: read-only (Discoverable Partitions Specification).
pub const ATTR_READ_ONLY: u64 = 1 << 60;

/// Size of one partition entry; the only size homestick writes or accepts.
pub const ENTRY_SIZE: u32 = 128;
/// Number of entries homestick writes (16 KiB, the UEFI minimum).
pub const NUM_ENTRIES: u32 = 128;
/// Sectors taken by the entry array.
pub const ENTRY_ARRAY_SECTORS: u64 = (ENTRY_SIZE as u64 * NUM_ENTRIES as u64) / SECTOR;
/// Upper bound of entries the reader accepts from an untrusted header.
const MAX_ENTRIES: u32 = 1024;

/// A problem reading a GPT.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GptError {
    /// The target is too small to hold a GPT.
    #[error("too small to hold a GPT ({0} bytes)")]
    TooSmall(u64),
    /// No "EFI PART" signature at LBA 1.
    #[error("no GPT header at LBA 1 (missing \"EFI PART\" signature)")]
    NoSignature,
    /// The header is not one homestick can read.
    #[error("GPT header: {0}")]
    BadHeader(String),
    /// Reading failed.
    #[error("reading the GPT: {0}")]
    Io(#[from] std::io::Error),
}

/// The primary GPT header's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Revision, 0x00010000 for 1.0.
    pub revision: u32,
    /// Header size in bytes.
    pub header_size: u32,
    /// Whether the header's CRC32 matches.
    pub header_crc_ok: bool,
    /// LBA of this header.
    pub current_lba: u64,
    /// LBA of the backup header (not checked against anything signed).
    pub backup_lba: u64,
    /// First usable LBA.
    pub first_usable_lba: u64,
    /// Last usable LBA.
    pub last_usable_lba: u64,
    /// Disk GUID.
    pub disk_guid: Uuid,
    /// Start of the entry array.
    pub entries_lba: u64,
    /// Number of entries in the array.
    pub num_entries: u32,
    /// Size of one entry.
    pub entry_size: u32,
    /// CRC32 of the entry array, as stored.
    pub entries_crc: u32,
}

/// One partition entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based index in the entry array (the partition number).
    pub number: u32,
    /// Partition type GUID.
    pub type_guid: Uuid,
    /// Unique partition GUID.
    pub guid: Uuid,
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// Attribute bits.
    pub attributes: u64,
    /// Name, decoded from UTF-16LE up to the first NUL (lossy).
    pub name: String,
    /// The raw 128 bytes.
    pub raw: Vec<u8>,
}

/// A primary GPT as read from the medium, with everything needed to judge it.
#[derive(Debug, Clone)]
pub struct Gpt {
    /// The header.
    pub header: Header,
    /// All entries of the array, used or not, in order.
    pub entries: Vec<Entry>,
    /// Whether the entry array's CRC32 matches the header.
    pub entries_crc_ok: bool,
}

impl Gpt {
    /// Entries whose bytes are not all zero.
    pub fn used(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| e.raw.iter().any(|&b| b != 0))
    }
}

// The header (512 bytes) and each entry (128 bytes) are read whole first: every field
// offset below is inside them.
fn u32le(b: &[u8], at: usize) -> u32 {
    crate::bytes::le32(b, at).unwrap_or(0)
}

fn u64le(b: &[u8], at: usize) -> u64 {
    crate::bytes::le64(b, at).unwrap_or(0)
}

fn guid_at(b: &[u8], at: usize) -> Uuid {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Uuid::from_bytes_le(a)
}

/// Decode an entry's 72-byte UTF-16LE name field.
fn decode_name(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// An entry's whole 72-byte name field as text: every UTF-16 unit, NULs included (unpaired
/// surrogates as U+FFFD), without the trailing NULs. With `{:?}` every unit that is not
/// printable shows escaped.
pub fn name_field(raw: &[u8]) -> String {
    // A partition entry shorter than its name field has no name.
    let units: Vec<u16> = raw
        .get(56..128)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
        .trim_end_matches('\0')
        .to_string()
}

/// Encode a partition entry exactly as the builder writes it.
pub fn encode_entry(
    type_guid: Uuid,
    guid: Uuid,
    first_lba: u64,
    last_lba: u64,
    attributes: u64,
    name: &str,
) -> [u8; 128] {
    let mut e = [0u8; 128];
    e[0..16].copy_from_slice(&type_guid.to_bytes_le());
    e[16..32].copy_from_slice(&guid.to_bytes_le());
    e[32..40].copy_from_slice(&first_lba.to_le_bytes());
    e[40..48].copy_from_slice(&last_lba.to_le_bytes());
    e[48..56].copy_from_slice(&attributes.to_le_bytes());
    for (i, u) in name.encode_utf16().take(36).enumerate() {
        e[56 + 2 * i..58 + 2 * i].copy_from_slice(&u.to_le_bytes());
    }
    e
}

/// Read the primary GPT of `disk`. Never trusts a size or offset from the medium without a bound.
pub fn read_primary<D: Disk + ?Sized>(disk: &D) -> Result<Gpt, GptError> {
    let size = disk.size();
    if size < 3 * SECTOR {
        return Err(GptError::TooSmall(size));
    }
    let mut hb = [0u8; SECTOR as usize];
    disk.read_exact_at(&mut hb, SECTOR)?;
    if &hb[0..8] != b"EFI PART" {
        return Err(GptError::NoSignature);
    }
    let header_size = u32le(&hb, 12);
    if !(92..=SECTOR as u32).contains(&header_size) {
        return Err(GptError::BadHeader(format!(
            "header size {header_size} is not in 92..=512"
        )));
    }
    let stored_crc = u32le(&hb, 16);
    let mut crc_buf = hb[..header_size as usize].to_vec();
    crc_buf[16..20].fill(0);
    let header = Header {
        revision: u32le(&hb, 8),
        header_size,
        header_crc_ok: crc32fast::hash(&crc_buf) == stored_crc,
        current_lba: u64le(&hb, 24),
        backup_lba: u64le(&hb, 32),
        first_usable_lba: u64le(&hb, 40),
        last_usable_lba: u64le(&hb, 48),
        disk_guid: guid_at(&hb, 56),
        entries_lba: u64le(&hb, 72),
        num_entries: u32le(&hb, 80),
        entry_size: u32le(&hb, 84),
        entries_crc: u32le(&hb, 88),
    };
    if header.entry_size != ENTRY_SIZE {
        return Err(GptError::BadHeader(format!(
            "partition entry size {} (homestick uses {ENTRY_SIZE})",
            header.entry_size
        )));
    }
    if header.num_entries == 0 || header.num_entries > MAX_ENTRIES {
        return Err(GptError::BadHeader(format!(
            "{} partition entries (expected 1..={MAX_ENTRIES})",
            header.num_entries
        )));
    }
    let array_len = header.num_entries as u64 * ENTRY_SIZE as u64;
    let array_off = header
        .entries_lba
        .checked_mul(SECTOR)
        .filter(|o| o.checked_add(array_len).is_some_and(|end| end <= size))
        .ok_or_else(|| {
            GptError::BadHeader(format!(
                "partition entry array at LBA {} passes the end of the target",
                header.entries_lba
            ))
        })?;
    let mut array = vec![0u8; array_len as usize];
    disk.read_exact_at(&mut array, array_off)?;
    let entries_crc_ok = crc32fast::hash(&array) == header.entries_crc;
    let entries = array
        .chunks_exact(ENTRY_SIZE as usize)
        .enumerate()
        .map(|(i, raw)| Entry {
            number: i as u32 + 1,
            type_guid: guid_at(raw, 0),
            guid: guid_at(raw, 16),
            first_lba: u64le(raw, 32),
            last_lba: u64le(raw, 40),
            attributes: u64le(raw, 48),
            name: decode_name(&raw[56..128]),
            raw: raw.to_vec(),
        })
        .collect();
    Ok(Gpt {
        header,
        entries,
        entries_crc_ok,
    })
}

/// One partition for [`write`].
#[derive(Debug, Clone)]
pub struct NewPartition {
    /// Type GUID.
    pub type_guid: Uuid,
    /// Unique GUID.
    pub guid: Uuid,
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// Attribute bits.
    pub attributes: u64,
    /// Name (at most 36 UTF-16 units).
    pub name: String,
}

/// Offset of the protective partition's size field in LBA 0.
pub const PMBR_SIZE_FIELD: std::ops::Range<usize> = 458..462;
/// Offset of the protective partition's CHS end address in LBA 0.
pub const PMBR_CHS_END: std::ops::Range<usize> = 451..454;

/// The 0xEE entry's size field for a disk of `total_sectors`: the disk's size less LBA 0, or
/// 0xFFFFFFFF when that does not fit (UEFI 2.10, 5.2.3).
pub fn pmbr_size_field(total_sectors: u64) -> u32 {
    u32::try_from(total_sectors.saturating_sub(1)).unwrap_or(u32::MAX)
}

/// The protective MBR homestick writes at LBA 0, byte for byte: no boot code, no disk
/// signature, one partition entry (status 0, CHS start 0/0/2, type 0xEE, CHS end FF FF FF,
/// first LBA 1, `size_field` sectors), three empty entries, and the 55 AA signature.
///
/// Nothing else is allowed there: firmware and the kernel read LBA 0 before the GPT, and any
/// other content (a DOS partition table, a hybrid MBR, another system's label) would give them a
/// partition view that nobody signed.
pub fn protective_mbr(size_field: u32) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[446..458].copy_from_slice(&[0x00, 0x00, 0x02, 0x00, 0xEE, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0]);
    b[PMBR_SIZE_FIELD].copy_from_slice(&size_field.to_le_bytes());
    b[510] = 0x55;
    b[511] = 0xAA;
    b
}

/// Check that `lba0` is the protective MBR of [`protective_mbr`], allowing only the two fields
/// that describe the disk's size to differ (a partitioning tool such as `sgdisk -e` rewrites
/// them, with a CHS address computed from its idea of the geometry, when it moves the backup
/// GPT to a larger stick's end; neither can describe a partition). Returns the size field, or
/// the first byte that differs.
pub fn check_protective_mbr(lba0: &[u8; 512]) -> Result<u32, usize> {
    let mut size = [0u8; 4];
    size.copy_from_slice(&lba0[PMBR_SIZE_FIELD]);
    let size = u32::from_le_bytes(size);
    let want = protective_mbr(size);
    match (0..512).find(|i| !PMBR_CHS_END.contains(i) && lba0[*i] != want[*i]) {
        Some(i) => Err(i),
        None => Ok(size),
    }
}

/// Size of the GPT header homestick writes; the rest of LBA 1 is zero.
pub const HEADER_SIZE: u32 = 92;

/// Why a GPT could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GptWriteError {
    /// Writing LBA 0 failed.
    #[error("protective MBR: {0}")]
    Mbr(#[source] std::io::Error),
    /// The gpt crate refused the header.
    #[error("GPT header: {0}")]
    Header(#[source] gpt::GptError),
    /// The gpt crate refused the entries.
    #[error("GPT entries: {0}")]
    Entries(#[source] gpt::GptError),
    /// Writing the tables failed.
    #[error("writing GPT: {0}")]
    Write(#[source] gpt::GptError),
}

/// Write a protective MBR, primary and backup GPT to `device` (whose size is the disk's size).
/// Output depends only on the arguments and the device size: no random GUIDs.
pub fn write<D: Read + Write + Seek + std::fmt::Debug>(
    device: D,
    total_sectors: u64,
    disk_guid: Uuid,
    partitions: &[NewPartition],
) -> Result<D, GptWriteError> {
    let mut device = device;
    device
        .seek(std::io::SeekFrom::Start(0))
        .and_then(|_| device.write_all(&protective_mbr(pmbr_size_field(total_sectors))))
        .map_err(GptWriteError::Mbr)?;
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(device, Some(disk_guid))
        .map_err(GptWriteError::Header)?;
    let mut map = BTreeMap::new();
    for (i, p) in partitions.iter().enumerate() {
        map.insert(
            i as u32 + 1,
            gpt::partition::Partition {
                part_type_guid: gpt::partition_types::Type {
                    guid: p.type_guid,
                    os: gpt::partition_types::OperatingSystem::None,
                },
                part_guid: p.guid,
                first_lba: p.first_lba,
                last_lba: p.last_lba,
                flags: p.attributes,
                name: p.name.clone(),
            },
        );
    }
    disk.update_partitions(map)
        .map_err(GptWriteError::Entries)?;
    disk.write().map_err(GptWriteError::Write)
}

/// Bytes at the start of a disk that hold its protective MBR and primary GPT (and zeros up to
/// the ESP at LBA 2048).
pub const HEAD_BYTES: usize = 1 << 20;
/// Bytes at the end of a disk that hold the backup entry array and header.
pub const TAIL_BYTES: usize = ((ENTRY_ARRAY_SECTORS + 1) * SECTOR) as usize;

/// A disk of `size` bytes of which only the first [`HEAD_BYTES`] and the last
/// [`TAIL_BYTES`] exist: what [`write`] needs to lay out a GPT for a disk it never touches.
#[derive(Debug)]
struct Ends {
    size: u64,
    head: Vec<u8>,
    tail: Vec<u8>,
    pos: u64,
}

impl Ends {
    /// The buffer and index that byte `pos` is in, if any.
    fn locate(&mut self, pos: u64) -> Option<(&mut Vec<u8>, usize)> {
        let tail_start = self.size - TAIL_BYTES as u64;
        if pos < HEAD_BYTES as u64 {
            Some((&mut self.head, pos as usize))
        } else if pos >= tail_start && pos < self.size {
            Some((&mut self.tail, (pos - tail_start) as usize))
        } else {
            None
        }
    }
}

impl Read for Ends {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let pos = self.pos;
        if pos >= self.size {
            return Ok(0);
        }
        let n = match self.locate(pos) {
            Some((b, i)) => {
                let n = buf.len().min(b.len() - i);
                buf[..n].copy_from_slice(&b[i..i + n]);
                n
            }
            // Between the two ends the disk reads as zeros.
            None => {
                let next = (self.size - TAIL_BYTES as u64) - pos;
                let n = buf.len().min(next as usize);
                buf[..n].fill(0);
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Ends {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let pos = self.pos;
        let (b, i) = self.locate(pos).ok_or_else(|| {
            std::io::Error::other(format!("GPT write at byte {pos}, outside the disk's ends"))
        })?;
        let n = buf.len().min(b.len() - i);
        b[i..i + n].copy_from_slice(&buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for Ends {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        use std::io::SeekFrom;
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| std::io::Error::other("seek out of range"))?;
        self.pos = new;
        Ok(new)
    }
}

/// The first [`HEAD_BYTES`] and the last [`TAIL_BYTES`] of a disk of `total_sectors` holding
/// `partitions`, laid out by the same [`write`] that builds images: how the flasher puts a
/// backup GPT at the real end of a stick larger than the image.
pub fn disk_ends(
    total_sectors: u64,
    disk_guid: Uuid,
    partitions: &[NewPartition],
) -> Result<(Vec<u8>, Vec<u8>), GptWriteError> {
    let size = total_sectors * SECTOR;
    if size < (HEAD_BYTES + TAIL_BYTES) as u64 {
        return Err(GptWriteError::Mbr(std::io::Error::other(
            "disk smaller than its GPT",
        )));
    }
    let ends = Ends {
        size,
        head: vec![0; HEAD_BYTES],
        tail: vec![0; TAIL_BYTES],
        pos: 0,
    };
    let ends = write(ends, total_sectors, disk_guid, partitions)?;
    Ok((ends.head, ends.tail))
}

#[cfg(test)]
mod tests {

    #[test]
    fn disk_ends_are_the_ends_of_a_whole_written_disk() {
        let parts = [NewPartition {
            type_guid: TYPE_ESP,
            guid: Uuid::from_u128(7),
            first_lba: 2048,
            last_lba: 4095,
            attributes: 0,
            name: "esp".into(),
        }];
        let guid = Uuid::from_u128(9);
        for sectors in [8192u64, 8192 + 1, 20_000] {
            let whole = std::io::Cursor::new(vec![0u8; (sectors * SECTOR) as usize]);
            let whole = write(whole, sectors, guid, &parts).unwrap().into_inner();
            let (head, tail) = disk_ends(sectors, guid, &parts).unwrap();
            assert_eq!(&whole[..HEAD_BYTES], &head[..], "{sectors}");
            assert_eq!(&whole[whole.len() - TAIL_BYTES..], &tail[..], "{sectors}");
            assert!(whole[HEAD_BYTES..whole.len() - TAIL_BYTES]
                .iter()
                .all(|&b| b == 0));
        }
        assert!(disk_ends(100, guid, &parts).is_err());
    }

    use super::*;
    use std::io::Cursor;

    fn sample() -> Vec<u8> {
        let total = 8 * 2048u64;
        let dev = Cursor::new(vec![0u8; (total * SECTOR) as usize]);
        let parts = vec![
            NewPartition {
                type_guid: TYPE_ESP,
                guid: Uuid::from_u128(1),
                first_lba: 2048,
                last_lba: 4095,
                attributes: 0,
                name: "esp".into(),
            },
            NewPartition {
                type_guid: TYPE_HOMESTICK_PROFILE,
                guid: Uuid::from_u128(2),
                first_lba: 4096,
                last_lba: 6143,
                attributes: ATTR_READ_ONLY,
                name: "profile".into(),
            },
        ];
        write(dev, total, Uuid::from_u128(0xabc), &parts)
            .unwrap()
            .into_inner()
    }

    #[test]
    fn round_trip_through_own_reader() {
        let img = sample();
        let g = read_primary(&img).unwrap();
        assert!(g.header.header_crc_ok && g.entries_crc_ok);
        assert_eq!(g.header.disk_guid, Uuid::from_u128(0xabc));
        assert_eq!(g.header.num_entries, NUM_ENTRIES);
        assert_eq!(g.header.entries_lba, 2);
        let used: Vec<_> = g.used().collect();
        assert_eq!(used.len(), 2);
        assert_eq!(used[1].name, "profile");
        assert_eq!(used[1].attributes, ATTR_READ_ONLY);
        assert_eq!(
            used[1].raw,
            encode_entry(
                TYPE_HOMESTICK_PROFILE,
                Uuid::from_u128(2),
                4096,
                6143,
                ATTR_READ_ONLY,
                "profile"
            )
            .to_vec()
        );
        assert_eq!(img[510..512], [0x55, 0xAA]);
        assert_eq!(img[450], 0xEE);
        assert_eq!(img[..512], protective_mbr(8 * 2048 - 1));
    }

    #[test]
    fn protective_mbr_is_what_the_gpt_crate_writes() {
        for n in [1u32, 16383, 0x1234_5678, u32::MAX] {
            let theirs = gpt::mbr::ProtectiveMBR::with_lb_size(n).to_bytes();
            assert_eq!(protective_mbr(n), theirs, "size field {n}");
        }
        assert_eq!(pmbr_size_field(1 << 40), u32::MAX);
        assert_eq!(pmbr_size_field(2048), 2047);
    }

    #[test]
    fn protective_mbr_check_allows_only_the_size_fields() {
        let good = protective_mbr(1000);
        assert_eq!(check_protective_mbr(&good), Ok(1000));
        let mut chs = good;
        chs[451..454].copy_from_slice(&[0x97, 0x18, 0x11]);
        assert_eq!(check_protective_mbr(&chs), Ok(1000));
        for at in [0usize, 440, 446, 450, 454, 462, 470, 510] {
            let mut bad = good;
            bad[at] ^= 0x80;
            assert_eq!(check_protective_mbr(&bad), Err(at), "byte {at}");
        }
    }

    #[test]
    fn name_field_shows_what_follows_the_name() {
        let mut e = encode_entry(TYPE_ESP, Uuid::nil(), 1, 2, 0, "esp");
        assert_eq!(name_field(&e), "esp");
        e[56 + 2 * 5 + 1] = 0x01; // the high byte of the sixth unit, after the name's NUL
        assert_eq!(format!("{:?}", name_field(&e)), "\"esp\\0\\0\u{100}\"");
        e[57] = 0xD8; // an unpaired surrogate
        assert!(name_field(&e).starts_with('\u{fffd}'));
    }

    #[test]
    fn deterministic() {
        assert_eq!(sample(), sample());
    }

    #[test]
    fn flipped_entry_byte_breaks_crc() {
        let mut img = sample();
        img[2 * 512 + 130] ^= 1;
        let g = read_primary(&img).unwrap();
        assert!(!g.entries_crc_ok);
    }

    #[test]
    fn hostile_headers_are_errors_not_panics() {
        let good = sample();
        assert!(matches!(
            read_primary(&good[..1000]),
            Err(GptError::TooSmall(_))
        ));
        assert!(matches!(
            read_primary(&vec![0u8; 1 << 20]),
            Err(GptError::NoSignature)
        ));
        let cases: &[(usize, &[u8])] = &[
            (512 + 12, &[0xff, 0xff, 0, 0]),       // header size
            (512 + 84, &[64, 0, 0, 0]),            // entry size
            (512 + 80, &[0xff, 0xff, 0xff, 0xff]), // number of entries
            (512 + 72, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]), // array LBA
            (512 + 72, &[0xf0, 0x3f, 0, 0, 0, 0, 0, 0]), // array near the end
        ];
        for (at, bytes) in cases {
            let mut img = good.clone();
            img[*at..*at + bytes.len()].copy_from_slice(bytes);
            assert!(read_primary(&img).is_err(), "patch at {at} should fail");
        }
    }
}
