//! The system partition's dm-verity tree, and a cache of trees keyed by the system's content.
//!
//! The salt derives from the system partition's SHA-256, so one system gives one tree: builds
//! are reproducible, and the tree of an unchanged base is read from the cache instead of being
//! hashed again for every customer. A cache entry is checked before use (its own SHA-256, its
//! superblock, and the top of its tree against the root it claims); the kernel and
//! `homestick verify` check the rest.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use homestick_image::disk::{FileDisk, SECTOR};
use homestick_image::hash::hex;
use homestick_image::verity::{self, Params, Tree};
use sha2::{Digest, Sha256};

use crate::error::{io_err, BuildError};
use crate::layout::Layout;

const MAGIC: &[u8; 16] = b"hs-verity-tree/1";

/// The salt for a system partition whose SHA-256 is `sys_sha`: random-looking, reproducible.
pub fn salt(sys_sha: &[u8; 32]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"homestick-verity-salt/1");
    h.update(sys_sha);
    h.finalize().to_vec()
}

/// Where the default cache lives: `$XDG_CACHE_HOME/homestick` or `~/.cache/homestick`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("homestick"))
}

fn entry_path(dir: &Path, sys_sha: &[u8; 32]) -> PathBuf {
    dir.join("verity").join(format!("{}.tree", hex(sys_sha)))
}

/// A cached tree for this system, if there is a sound one.
fn from_cache(
    dir: &Path,
    sys_sha: &[u8; 32],
    p: &Params,
    data: &FileDisk,
    data_offset: u64,
) -> Option<Tree> {
    let want = 16 + 32 + 32 + verity::hash_area_size(p.data_blocks);
    let path = entry_path(dir, sys_sha);
    if fs::metadata(&path).ok()?.len() != want {
        return None;
    }
    let b = fs::read(&path).ok()?;
    let (magic, rest) = b.split_at(16);
    let (root, rest) = rest.split_at(32);
    let (sum, area) = rest.split_at(32);
    let root: [u8; 32] = root.try_into().ok()?;
    if magic != MAGIC || Sha256::digest(area).as_slice() != sum {
        return None;
    }
    let area = area.to_vec();
    let on = verity::On {
        data,
        data_offset,
        hash: &area,
        hash_offset: 0,
    };
    verity::check_top(on, p, &root).ok()?;
    Some(Tree { area, root })
}

/// Store `t` (best effort: a cache that cannot be written only costs time).
fn to_cache(dir: &Path, sys_sha: &[u8; 32], t: &Tree) {
    let path = entry_path(dir, sys_sha);
    let Some(parent) = path.parent() else { return };
    if fs::create_dir_all(parent).is_err() {
        return;
    }
    let Ok(mut tmp) = tempfile::NamedTempFile::new_in(parent) else {
        return;
    };
    let sum = Sha256::digest(&t.area);
    let ok = tmp.write_all(MAGIC).is_ok()
        && tmp.write_all(&t.root).is_ok()
        && tmp.write_all(&sum).is_ok()
        && tmp.write_all(&t.area).is_ok();
    if ok {
        // A cache: one that cannot be written only costs time next build.
        let _ = tmp.persist(&path);
    }
}

/// The system's tree, with the superblock's UUID that of the hash partition (the root hash's
/// last 16 bytes, as the Discoverable Partitions Specification names that partition). From
/// the cache in `cache` if it has one, else hashed from the system partition of `output` (the
/// bytes written) on every core and then stored there.
pub fn system_tree(
    output: &Path,
    layout: &Layout,
    sys_sha: &[u8; 32],
    cache: Option<&Path>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(Params, Tree), BuildError> {
    let p = Params {
        data_blocks: layout.system_bytes() / verity::BLOCK,
        salt: salt(sys_sha),
    };
    let data = FileDisk::open(output).map_err(io_err("reopening the output"))?;
    let offset = layout.system.0 * SECTOR;
    let cached = cache.and_then(|d| from_cache(d, sys_sha, &p, &data, offset));
    let mut tree = match cached {
        Some(t) => t,
        None => {
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            let t = verity::build(&data, offset, &p, [0; 16], threads, progress)
                .map_err(io_err("hashing the system partition's dm-verity tree"))?;
            if let Some(d) = cache {
                to_cache(d, sys_sha, &t);
            }
            t
        }
    };
    tree.area[16..32].copy_from_slice(&tree.root[16..]);
    Ok((p, tree))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_entries_are_used_only_when_sound() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(64 << 20, 3 << 20, 4 << 20);
        let img = dir.path().join("img");
        let f = fs::File::create(&img).unwrap();
        f.set_len(l.min_sectors * SECTOR).unwrap();
        use std::os::unix::fs::FileExt;
        let data: Vec<u8> = (0..l.system_bytes()).map(|i| (i % 251) as u8).collect();
        f.write_all_at(&data, l.system.0 * SECTOR).unwrap();
        let sha: [u8; 32] = Sha256::digest(&data).into();
        let cache = dir.path().join("cache");
        let (p, first) = system_tree(&img, &l, &sha, Some(&cache), &|_| {}).unwrap();
        let entry = entry_path(&cache, &sha);
        assert!(entry.exists());
        let disk = FileDisk::open(&img).unwrap();
        let off = l.system.0 * SECTOR;
        assert!(from_cache(&cache, &sha, &p, &disk, off).is_some());
        let (_, again) = system_tree(&img, &l, &sha, Some(&cache), &|_| {}).unwrap();
        assert_eq!(again, first);
        // A changed byte in the entry: not used (and the tree is hashed again, the same).
        let mut b = fs::read(&entry).unwrap();
        let n = b.len();
        b[n - 1] ^= 1;
        fs::write(&entry, &b).unwrap();
        assert!(from_cache(&cache, &sha, &p, &disk, off).is_none());
        let (_, rebuilt) = system_tree(&img, &l, &sha, Some(&cache), &|_| {}).unwrap();
        assert_eq!(rebuilt, first);
        // An entry whose own checksum fits but whose top does not match its root: not used.
        let mut b = fs::read(&entry).unwrap();
        b[16] ^= 1; // the root
        fs::write(&entry, &b).unwrap();
        assert!(from_cache(&cache, &sha, &p, &disk, off).is_none());
        // The superblock names the hash partition by the root hash's last 16 bytes.
        assert_eq!(&first.area[16..32], &first.root[16..]);
    }
}
