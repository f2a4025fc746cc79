//! Reading and changing image bytes: finding a needle, flipping a byte, the ESP's FAT, files under a directory.

use std::fs;
use std::path::{Path, PathBuf};

use crate::run::*;

/// Offset of `needle` in `hay` (exactly once).
pub fn find_once(hay: &[u8], needle: &[u8]) -> usize {
    let hits: Vec<usize> = hay
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "expected exactly one occurrence, found {}",
        hits.len()
    );
    hits[0]
}

/// A copy of `img` with the byte at `at` changed.
pub fn flipped(img: &Path, at: usize, dir: &Path, name: &str) -> PathBuf {
    let mut b = fs::read(img).expect("read image");
    b[at] ^= 0x01;
    let p = dir.join(name);
    fs::write(&p, b).expect("write copy");
    p
}

/// Extract a file from the ESP of `img` with mtools.
pub fn esp_file(img: &Path, path: &str) -> Vec<u8> {
    let out = tempfile::NamedTempFile::new().expect("tmp");
    let r = tool(
        "mcopy",
        &[
            "-n",
            "-o",
            "-i",
            &format!("{}@@1M", img.display()),
            &format!("::/{path}"),
            &out.path().display().to_string(),
        ],
    );
    assert_eq!(r.code, 0, "mcopy {path}: {}", r.all());
    fs::read(out.path()).expect("read extracted")
}

/// Where the ESP's FAT32 keeps things, from its boot sector (the ESP starts at 1 MiB).
#[derive(Debug, Clone, Copy)]
pub struct EspFat {
    /// Byte offset of FAT 1 in the image.
    pub fat: usize,
    /// Bytes per FAT.
    pub fat_bytes: usize,
    /// Number of FATs.
    pub fats: usize,
    /// Byte offset of cluster 2.
    pub data: usize,
    /// Bytes per cluster.
    pub cluster: usize,
    /// First cluster of the root directory.
    pub root: u32,
}

impl EspFat {
    pub fn read(b: &[u8]) -> EspFat {
        let e = 1 << 20;
        let le16 = |at: usize| u16::from_le_bytes([b[e + at], b[e + at + 1]]) as usize;
        let le32 = |at: usize| {
            u32::from_le_bytes([b[e + at], b[e + at + 1], b[e + at + 2], b[e + at + 3]])
        };
        let reserved = le16(14);
        let fats = b[e + 16] as usize;
        let fat_sectors = le32(36) as usize;
        assert_eq!(le16(11), 512, "ESP with 512-byte sectors");
        EspFat {
            fat: e + reserved * 512,
            fat_bytes: fat_sectors * 512,
            fats,
            data: e + (reserved + fats * fat_sectors) * 512,
            cluster: b[e + 13] as usize * 512,
            root: le32(44),
        }
    }

    /// Set FAT entry `cluster` to `value` in every FAT copy.
    pub fn set_entry(&self, b: &mut [u8], cluster: u32, value: u32) {
        for k in 0..self.fats {
            let at = self.fat + k * self.fat_bytes + cluster as usize * 4;
            b[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
    }

    /// Byte offset of a cluster's data.
    pub fn cluster_at(&self, cluster: u32) -> usize {
        self.data + (cluster as usize - 2) * self.cluster
    }
}

/// A copy of `img` called `name` in `dir`, changed by `edit`.
pub fn edited(img: &Path, dir: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut b = fs::read(img).expect("read image");
    edit(&mut b);
    let p = dir.join(name);
    fs::write(&p, b).expect("write copy");
    p
}

/// Every file below `root`: path relative to it -> contents.
pub fn files_under(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}
