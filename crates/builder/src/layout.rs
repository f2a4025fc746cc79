//! Where everything goes on the disk, and the identities derived from the inputs.
//!
//! Pure functions: sizes in, sector ranges out. Every partition starts on a 1 MiB boundary;
//! the ESP always starts at LBA 2048 (verifiers find the manifest there without the GPT).

use homestick_image::disk::SECTOR;
use homestick_image::gpt;
use homestick_image::manifest::ESP_FIRST_LBA;
use homestick_image::verity;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// 1 MiB in sectors: the alignment of every partition.
pub const ALIGN: u64 = 2048;
/// Smallest ESP (FAT32 wants at least 65525 clusters).
pub const MIN_ESP: u64 = 64 << 20;
/// Smallest profile partition.
pub const MIN_PROFILE: u64 = 4 << 20;

/// Round `v` up to a multiple of `a`.
pub fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// First and last LBA (inclusive) of each partition, and the smallest disk that holds them
/// with the backup GPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The ESP.
    pub esp: (u64, u64),
    /// The system partition.
    pub system: (u64, u64),
    /// The profile partition.
    pub profile: (u64, u64),
    /// The system's dm-verity hash partition (superblock and tree).
    pub verity: (u64, u64),
    /// Smallest disk in sectors.
    pub min_sectors: u64,
}

impl Layout {
    /// Lay out an ESP of `esp_bytes`, a system image of `system_len` bytes (padded to 1 MiB),
    /// a profile partition of `profile_bytes` and the system's dm-verity hash partition.
    pub fn new(esp_bytes: u64, system_len: u64, profile_bytes: u64) -> Layout {
        let esp_first = ESP_FIRST_LBA;
        let esp_last = esp_first + esp_bytes / SECTOR - 1;
        let sys_first = align_up(esp_last + 1, ALIGN);
        let sys_last = sys_first + align_up(system_len, ALIGN * SECTOR) / SECTOR - 1;
        let prof_first = align_up(sys_last + 1, ALIGN);
        let prof_last = prof_first + profile_bytes / SECTOR - 1;
        let data_blocks = (sys_last - sys_first + 1) * SECTOR / verity::BLOCK;
        let verity_first = align_up(prof_last + 1, ALIGN);
        let verity_bytes = align_up(verity::hash_area_size(data_blocks), ALIGN * SECTOR);
        let verity_last = verity_first + verity_bytes / SECTOR - 1;
        let min_sectors = align_up(verity_last + 1 + 1 + gpt::ENTRY_ARRAY_SECTORS, ALIGN);
        Layout {
            esp: (esp_first, esp_last),
            system: (sys_first, sys_last),
            profile: (prof_first, prof_last),
            verity: (verity_first, verity_last),
            min_sectors,
        }
    }

    /// Bytes of the system partition (the system image and its zero padding).
    pub fn system_bytes(&self) -> u64 {
        (self.system.1 - self.system.0 + 1) * SECTOR
    }

    /// Bytes of the hash partition.
    pub fn verity_bytes(&self) -> u64 {
        (self.verity.1 - self.verity.0 + 1) * SECTOR
    }
}

/// Size of a FAT volume for files of the given sizes: each rounded up to 4 KiB, a quarter more
/// for metadata, `slack` on top, at least `min`, a whole number of MiB.
pub fn fat_budget(files: impl Iterator<Item = u64>, min: u64, slack: u64) -> u64 {
    let content: u64 = files.map(|n| align_up(n.max(1), 4096)).sum();
    align_up((content + content / 4 + slack).max(min), ALIGN * SECTOR)
}

/// A UUID derived from a hash: version 4 and RFC 4122 variant bits set, as systemd-repart does.
pub fn derived_uuid(parts: &[&[u8]]) -> Uuid {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Uuid::from_bytes(b)
}

/// A FAT volume serial number derived from `what` and `id`.
pub fn volume_id(what: &[u8], id: &[u8]) -> u32 {
    let u = derived_uuid(&[what, id]);
    let b = u.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_aligned_and_in_order() {
        let l = Layout::new(64 << 20, 8 << 20, 4 << 20);
        assert_eq!(l.esp, (2048, 2048 + 131_072 - 1));
        assert_eq!(l.system, (133_120, 133_120 + 16_384 - 1));
        assert_eq!(l.profile, (149_504, 149_504 + 8192 - 1));
        // 2048 data blocks: superblock and 16 leaf blocks, one MiB.
        assert_eq!(l.verity, (157_696, 157_696 + 2048 - 1));
        // The backup GPT (33 sectors) fits after the hash partition, rounded to 1 MiB.
        assert_eq!(l.min_sectors, 161_792);
        assert_eq!(l.system_bytes(), 8 << 20);
        // A system image of one byte still takes a whole MiB.
        let l = Layout::new(64 << 20, 1, 4 << 20);
        assert_eq!(l.system.1 - l.system.0 + 1, 2048);
        for (first, _) in [l.esp, l.system, l.profile, l.verity] {
            assert_eq!(first % ALIGN, 0);
        }
    }

    #[test]
    fn fat_budgets() {
        assert_eq!(
            fat_budget([].into_iter(), MIN_PROFILE, 1 << 20),
            MIN_PROFILE
        );
        assert_eq!(fat_budget([1].into_iter(), 0, 0), 1 << 20);
        // 100 MiB of files: a quarter more, rounded to MiB.
        assert_eq!(
            fat_budget([100 << 20].into_iter(), MIN_ESP, 8 << 20),
            133 << 20
        );
    }

    #[test]
    fn derived_ids_are_stable_and_rfc4122() {
        let a = derived_uuid(&[b"x", b"y"]);
        assert_eq!(a, derived_uuid(&[b"x", b"y"]));
        assert_ne!(a, derived_uuid(&[b"xy"]), "lengths are part of the hash");
        assert_eq!(a.get_version_num(), 4);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(volume_id(b"a", b"b"), volume_id(b"a", b"b"));
    }
}
