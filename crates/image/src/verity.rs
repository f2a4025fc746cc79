//! dm-verity hash trees in veritysetup's on-disk format: format (hash type) 1, SHA-256,
//! 4096-byte data and hash blocks, a 512-byte superblock at the start of the hash area (padded
//! to one hash block), then the tree's levels, the top level first.
//!
//! Each data block's leaf is SHA-256(salt ‖ block); a hash block holds 128 digests and is
//! zero-padded; level i + 1 hashes level i's blocks the same way; the root hash is the hash of
//! the single top-level block (or, for a single data block, of that block). The layout follows
//! cryptsetup's `hash_levels` exactly, so `veritysetup verify` and the kernel's dm-verity target
//! read what the builder writes.

use std::io;

use sha2::{Digest, Sha256};

use crate::disk::Disk;

/// Data and hash block size.
pub const BLOCK: u64 = 4096;
/// SHA-256 digest size.
pub const DIGEST: usize = 32;
/// Digests per hash block (4096 / 32), as a shift.
const PER_BLOCK_BITS: u32 = 7;
/// Longest salt veritysetup's superblock holds.
pub const MAX_SALT: usize = 256;
/// Bytes of the superblock proper (the rest of its hash block is zeros).
pub const SUPERBLOCK_SIZE: usize = 512;
/// The only algorithm homestick writes or accepts.
pub const ALGORITHM: &str = "sha256";
/// Data read per step by each hashing thread.
const CHUNK_BLOCKS: u64 = 256;

/// What a tree is built with: everything veritysetup's superblock records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Number of 4096-byte data blocks.
    pub data_blocks: u64,
    /// Salt, at most [`MAX_SALT`] bytes.
    pub salt: Vec<u8>,
}

/// One level of the tree: where it starts in the hash area and how long it is, in hash blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// First hash block (block 0 is the superblock).
    pub start: u64,
    /// Number of hash blocks.
    pub blocks: u64,
}

/// The levels for `data_blocks` data blocks, leaves first (index 0) and the top last; empty for
/// a single data block. Positions as cryptsetup lays them out: the top level right after the
/// superblock, the leaves last.
pub fn levels(data_blocks: u64) -> Vec<Level> {
    let mut n = 0u32;
    while PER_BLOCK_BITS * n < 64 && (data_blocks.saturating_sub(1) >> (PER_BLOCK_BITS * n)) != 0 {
        n += 1;
    }
    let mut out = vec![
        Level {
            start: 0,
            blocks: 0
        };
        n as usize
    ];
    let mut pos = 1u64;
    for i in (0..n as usize).rev() {
        let shift = (i as u32 + 1) * PER_BLOCK_BITS;
        let blocks = if shift >= 64 {
            1
        } else {
            data_blocks.div_ceil(1u64 << shift)
        };
        out[i] = Level { start: pos, blocks };
        pos += blocks;
    }
    out
}

/// Bytes of the hash area (superblock and tree) for `data_blocks` data blocks: what
/// `veritysetup format` writes.
pub fn hash_area_size(data_blocks: u64) -> u64 {
    let end = levels(data_blocks)
        .first()
        .map_or(1, |l| l.start + l.blocks);
    end * BLOCK
}

fn salted(salt: &[u8]) -> Sha256 {
    let mut h = Sha256::new();
    h.update(salt);
    h
}

/// Hash every `BLOCK` of `data` into `out` (32 bytes each) with the salted hasher `base`.
fn hash_blocks(base: &Sha256, data: &[u8], out: &mut [u8]) {
    for (block, digest) in data.chunks(BLOCK as usize).zip(out.chunks_mut(DIGEST)) {
        let mut h = base.clone();
        h.update(block);
        digest.copy_from_slice(&h.finalize());
    }
}

/// The leaves: every data block's digest, in hash blocks (zero-padded), hashed on `threads`
/// threads, each over its own run of whole hash blocks.
fn leaves<D: Disk + ?Sized>(
    data: &D,
    offset: u64,
    p: &Params,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<Vec<u8>> {
    let per = 1u64 << PER_BLOCK_BITS;
    let hash_blocks_n = p.data_blocks.div_ceil(per);
    let mut level = vec![0u8; (hash_blocks_n * BLOCK) as usize];
    let base = salted(&p.salt);
    let per_thread = hash_blocks_n.div_ceil(threads.max(1) as u64).max(1);
    std::thread::scope(|s| {
        let jobs: Vec<_> = level
            .chunks_mut((per_thread * BLOCK) as usize)
            .enumerate()
            .map(|(t, out)| {
                let base = &base;
                s.spawn(move || -> io::Result<()> {
                    let first = t as u64 * per_thread * per;
                    let last = (first + per_thread * per).min(p.data_blocks);
                    let mut buf = vec![0u8; (CHUNK_BLOCKS * BLOCK) as usize];
                    let mut b = first;
                    while b < last {
                        let n = (last - b).min(CHUNK_BLOCKS);
                        let bytes = (n * BLOCK) as usize;
                        data.read_exact_at(&mut buf[..bytes], offset + b * BLOCK)?;
                        let at = ((b - first) as usize) * DIGEST;
                        hash_blocks(base, &buf[..bytes], &mut out[at..at + n as usize * DIGEST]);
                        progress(bytes as u64);
                        b += n;
                    }
                    Ok(())
                })
            })
            .collect();
        for j in jobs {
            j.join()
                .unwrap_or_else(|_| Err(io::Error::other("a hashing thread crashed")))?;
        }
        Ok::<(), io::Error>(())
    })?;
    Ok(level)
}

/// A built tree: the whole hash area (superblock, then the levels) and the root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// Exactly [`hash_area_size`] bytes.
    pub area: Vec<u8>,
    /// The root hash.
    pub root: [u8; 32],
}

/// Build the tree over `p.data_blocks` blocks of `data` from `offset`, leaves hashed on
/// `threads` threads; `uuid` goes into the superblock.
pub fn build<D: Disk + ?Sized>(
    data: &D,
    offset: u64,
    p: &Params,
    uuid: [u8; 16],
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<Tree> {
    if p.data_blocks == 0 || p.salt.len() > MAX_SALT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "dm-verity needs at least one data block and a salt of at most 256 bytes",
        ));
    }
    let lv = levels(p.data_blocks);
    let mut area = vec![0u8; hash_area_size(p.data_blocks) as usize];
    area[..SUPERBLOCK_SIZE].copy_from_slice(&superblock(p, uuid));
    let base = salted(&p.salt);
    if lv.is_empty() {
        let mut block = vec![0u8; BLOCK as usize];
        data.read_exact_at(&mut block, offset)?;
        progress(BLOCK);
        let mut root = [0u8; 32];
        hash_blocks(&base, &block, &mut root);
        return Ok(Tree { area, root });
    }
    let mut below = leaves(data, offset, p, threads, progress)?;
    for (i, l) in lv.iter().enumerate() {
        let at = (l.start * BLOCK) as usize;
        area[at..at + below.len()].copy_from_slice(&below);
        if i + 1 < lv.len() {
            let mut up = vec![0u8; (lv[i + 1].blocks * BLOCK) as usize];
            hash_blocks(&base, &below, &mut up);
            below = up;
        }
    }
    let mut root = [0u8; 32];
    hash_blocks(&base, &below[..BLOCK as usize], &mut root);
    Ok(Tree { area, root })
}

/// veritysetup's superblock (`struct verity_sb`, little-endian).
pub fn superblock(p: &Params, uuid: [u8; 16]) -> [u8; SUPERBLOCK_SIZE] {
    let mut b = [0u8; SUPERBLOCK_SIZE];
    b[0..8].copy_from_slice(b"verity\0\0");
    b[8..12].copy_from_slice(&1u32.to_le_bytes()); // superblock version
    b[12..16].copy_from_slice(&1u32.to_le_bytes()); // hash type: normal (salt first)
    b[16..32].copy_from_slice(&uuid);
    b[32..32 + ALGORITHM.len()].copy_from_slice(ALGORITHM.as_bytes());
    b[64..68].copy_from_slice(&(BLOCK as u32).to_le_bytes());
    b[68..72].copy_from_slice(&(BLOCK as u32).to_le_bytes());
    b[72..80].copy_from_slice(&p.data_blocks.to_le_bytes());
    b[80..82].copy_from_slice(&(p.salt.len() as u16).to_le_bytes());
    b[88..88 + p.salt.len()].copy_from_slice(&p.salt);
    b
}

/// Why a dm-verity superblock is not the one homestick writes for the signed parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SuperblockError {
    /// Fewer bytes than a superblock.
    #[error("shorter than a superblock")]
    Short,
    /// No `verity` signature.
    #[error("no dm-verity superblock (signature)")]
    Signature,
    /// Another version or hash type.
    #[error("superblock version {0} hash type {1} (homestick writes 1 and 1)")]
    Version(u32, u32),
    /// Another hash algorithm.
    #[error("algorithm {0:?} (expected {ALGORITHM})")]
    Algorithm(String),
    /// Other block sizes.
    #[error("block sizes {0}/{1} (expected 4096/4096)")]
    BlockSizes(u32, u32),
    /// Another number of data blocks than the signed manifest's.
    #[error("{got} data blocks, the signed manifest says {want}")]
    DataBlocks {
        /// In the superblock.
        got: u64,
        /// In the manifest.
        want: u64,
    },
    /// Another salt than the signed manifest's.
    #[error("salt differs from the signed manifest's")]
    Salt,
    /// Padding that is not zero.
    #[error("padding is not zero")]
    Padding,
}

/// Why a hash tree does not prove its data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// The superblock is not the expected one.
    #[error("superblock: {0}")]
    Superblock(#[from] SuperblockError),
    /// A read failed; `what` names the block.
    #[error("{what}: {source}")]
    Read {
        /// The block (`data block 7`, `superblock`).
        what: String,
        /// The read's error.
        #[source]
        source: std::io::Error,
    },
    /// The top of the tree (or the only data block) does not hash to the signed root.
    #[error("{what} hashes to {got}, not the signed root hash {want}")]
    Root {
        /// The top level or the only data block.
        what: &'static str,
        /// Its hash (hex).
        got: String,
        /// The signed root hash (hex).
        want: String,
    },
    /// A data block does not match its leaf.
    #[error("data block {b} (bytes {}..{} of the partition) does not match its hash", b * BLOCK, (b + 1) * BLOCK)]
    DataBlock {
        /// The block's number.
        b: u64,
    },
    /// A hash block does not match its digest one level up.
    #[error("hash block {0} of the hash partition does not match its digest one level up")]
    HashBlock(u64),
    /// The single data block (a one-block partition) failed.
    #[error("data block 0: {0}")]
    OnlyBlock(Box<TreeError>),
    /// A checking thread panicked.
    #[error("a checking thread crashed")]
    Crashed,
}

fn read_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TreeError {
    let what = what.into();
    move |source| TreeError::Read { what, source }
}

/// Read a superblock; every field must be what homestick writes and what `p` says.
pub fn check_superblock(b: &[u8], p: &Params) -> Result<(), SuperblockError> {
    let b: &[u8; SUPERBLOCK_SIZE] = b
        .get(..SUPERBLOCK_SIZE)
        .and_then(|s| s.try_into().ok())
        .ok_or(SuperblockError::Short)?;
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    if &b[0..8] != b"verity\0\0" {
        return Err(SuperblockError::Signature);
    }
    if u32_at(8) != 1 || u32_at(12) != 1 {
        return Err(SuperblockError::Version(u32_at(8), u32_at(12)));
    }
    let alg_end = b[32..64].iter().position(|&c| c == 0).unwrap_or(32);
    if &b[32..32 + alg_end] != ALGORITHM.as_bytes() || b[32 + alg_end..64].iter().any(|&c| c != 0) {
        return Err(SuperblockError::Algorithm(
            String::from_utf8_lossy(&b[32..32 + alg_end]).into_owned(),
        ));
    }
    if u32_at(64) != BLOCK as u32 || u32_at(68) != BLOCK as u32 {
        return Err(SuperblockError::BlockSizes(u32_at(64), u32_at(68)));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&b[72..80]);
    let data_blocks = u64::from_le_bytes(n);
    if data_blocks != p.data_blocks {
        return Err(SuperblockError::DataBlocks {
            got: data_blocks,
            want: p.data_blocks,
        });
    }
    let salt_len = usize::from(u16::from_le_bytes([b[80], b[81]]));
    if salt_len > MAX_SALT || salt_len != p.salt.len() || b[88..88 + salt_len] != p.salt[..] {
        return Err(SuperblockError::Salt);
    }
    if b[82..88].iter().chain(&b[88 + salt_len..]).any(|&c| c != 0) {
        return Err(SuperblockError::Padding);
    }
    Ok(())
}

/// Where a tree's data and its hash area are (the same disk, for a stick).
#[derive(Debug, Clone, Copy)]
pub struct On<'a, D: ?Sized, H: ?Sized> {
    /// The data.
    pub data: &'a D,
    /// Byte offset of data block 0.
    pub data_offset: u64,
    /// The hash area (superblock first).
    pub hash: &'a H,
    /// Byte offset of the superblock.
    pub hash_offset: u64,
}

/// Read the superblock where `on` says and check it against `p`.
fn stored_superblock<D: Disk + ?Sized, H: Disk + ?Sized>(
    on: &On<'_, D, H>,
    p: &Params,
) -> Result<(), TreeError> {
    let mut sb = vec![0u8; SUPERBLOCK_SIZE];
    on.hash
        .read_exact_at(&mut sb, on.hash_offset)
        .map_err(read_err("superblock"))?;
    Ok(check_superblock(&sb, p)?)
}

/// The quick check: the superblock matches `p` and the top of the tree (or the single data
/// block) hashes to `root`. Reads two blocks: what the kernel then checks every read against.
pub fn check_top<D: Disk + ?Sized, H: Disk + ?Sized>(
    on: On<'_, D, H>,
    p: &Params,
    root: &[u8; 32],
) -> Result<(), TreeError> {
    stored_superblock(&on, p)?;
    let mut block = vec![0u8; BLOCK as usize];
    let (what, read) = match levels(p.data_blocks).last() {
        Some(top) => (
            "top level of the hash tree",
            on.hash
                .read_exact_at(&mut block, on.hash_offset + top.start * BLOCK),
        ),
        None => (
            "the only data block",
            on.data.read_exact_at(&mut block, on.data_offset),
        ),
    };
    read.map_err(read_err(what))?;
    let mut got = [0u8; 32];
    hash_blocks(&salted(&p.salt), &block, &mut got);
    if &got != root {
        return Err(TreeError::Root {
            what,
            got: crate::hash::hex(&got),
            want: crate::hash::hex(root),
        });
    }
    Ok(())
}

/// The first data block in `first..last` whose leaf digest differs from the stored one, reading
/// the data and the stored leaves a chunk at a time.
fn first_bad_leaf<D: Disk + ?Sized, H: Disk + ?Sized>(
    on: &On<'_, D, H>,
    base: &Sha256,
    leaves_at: u64,
    (first, last): (u64, u64),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Option<u64>, TreeError> {
    let mut data = vec![0u8; (CHUNK_BLOCKS * BLOCK) as usize];
    let mut stored = vec![0u8; CHUNK_BLOCKS as usize * DIGEST];
    let mut got = vec![0u8; CHUNK_BLOCKS as usize * DIGEST];
    let mut b = first;
    while b < last {
        let n = (last - b).min(CHUNK_BLOCKS);
        let (bytes, digests) = ((n * BLOCK) as usize, n as usize * DIGEST);
        on.data
            .read_exact_at(&mut data[..bytes], on.data_offset + b * BLOCK)
            .map_err(read_err(format!("data block {b}")))?;
        on.hash
            .read_exact_at(&mut stored[..digests], leaves_at + b * DIGEST as u64)
            .map_err(read_err(format!("the leaves of data block {b}")))?;
        hash_blocks(base, &data[..bytes], &mut got[..digests]);
        if let Some(i) = (0..n as usize)
            .find(|&i| got[i * DIGEST..(i + 1) * DIGEST] != stored[i * DIGEST..(i + 1) * DIGEST])
        {
            return Ok(Some(b + i as u64));
        }
        progress(bytes as u64);
        b += n;
    }
    Ok(None)
}

/// The full check, in bounded memory (a few chunks per thread, whatever the size): every data
/// block against its leaf (on `threads` threads), every hash block of each level against its
/// digest one level up, the top block against `root`, and the superblock against `p`. Names
/// the first data block whose leaf differs, else the first hash block that does not match its
/// parent, else a top that does not match the root.
pub fn check_tree<D: Disk + ?Sized, H: Disk + ?Sized>(
    on: On<'_, D, H>,
    p: &Params,
    root: &[u8; 32],
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), TreeError> {
    stored_superblock(&on, p)?;
    let base = salted(&p.salt);
    let lv = levels(p.data_blocks);
    let Some(leaves) = lv.first() else {
        // One data block: its hash is the root.
        return check_top(on, p, root).map_err(|e| TreeError::OnlyBlock(Box::new(e)));
    };
    let leaves_at = on.hash_offset + leaves.start * BLOCK;
    let per = p.data_blocks.div_ceil(threads.max(1) as u64).max(1);
    let found: Vec<Result<Option<u64>, TreeError>> = std::thread::scope(|s| {
        let jobs: Vec<_> = (0..threads.max(1) as u64)
            .map(|t| (t * per, ((t + 1) * per).min(p.data_blocks)))
            .filter(|(a, b)| a < b)
            .map(|range| {
                let (on, base) = (&on, &base);
                s.spawn(move || first_bad_leaf(on, base, leaves_at, range, progress))
            })
            .collect();
        jobs.into_iter()
            .map(|j| j.join().unwrap_or(Err(TreeError::Crashed)))
            .collect()
    });
    let mut first_bad = None;
    for f in found {
        if let Some(b) = f? {
            first_bad = Some(first_bad.map_or(b, |x: u64| x.min(b)));
        }
    }
    if let Some(b) = first_bad {
        return Err(TreeError::DataBlock { b });
    }
    // Each level's blocks against their digests in the level above.
    let mut block = vec![0u8; BLOCK as usize];
    let mut want = [0u8; DIGEST];
    let mut got = [0u8; DIGEST];
    for pair in lv.windows(2) {
        let (below, above) = (pair[0], pair[1]);
        for j in 0..below.blocks {
            let at = below.start + j;
            on.hash
                .read_exact_at(&mut block, on.hash_offset + at * BLOCK)
                .map_err(read_err(format!("hash block {at}")))?;
            on.hash
                .read_exact_at(
                    &mut want,
                    on.hash_offset + above.start * BLOCK + j * DIGEST as u64,
                )
                .map_err(read_err(format!("hash block {}", above.start + j / 128)))?;
            hash_blocks(&base, &block, &mut got);
            if got != want {
                return Err(TreeError::HashBlock(at));
            }
        }
    }
    check_top(on, p, root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn known_answer_8_mib_of_zeros() {
        let data = vec![0u8; 8 << 20];
        let p = Params {
            data_blocks: 2048,
            salt: hex("e48da609055204e89ae53b655ca2216dd983cf3cb829f34f63a297d106d53e2d"),
        };
        let t = build(&data, 0, &p, [0; 16], 2, &|_| {}).unwrap();
        assert_eq!(
            crate::hash::hex(&t.root),
            "e522df0f97da4febb882ac40f30b37dc0b444bf6df418929463fa25280f09d5c"
        );
        assert_eq!(t.area.len() as u64, hash_area_size(2048));
    }

    #[test]
    fn layout_follows_cryptsetup() {
        // 1 block: no levels, only the superblock.
        assert!(levels(1).is_empty());
        assert_eq!(hash_area_size(1), 4096);
        // 128 blocks: one leaf block; 129: two leaf blocks and a top.
        assert_eq!(
            levels(128),
            [Level {
                start: 1,
                blocks: 1
            }]
        );
        assert_eq!(
            levels(129),
            [
                Level {
                    start: 2,
                    blocks: 2
                },
                Level {
                    start: 1,
                    blocks: 1
                }
            ]
        );
        // 10 GiB: 2621440 blocks -> 20480 + 160 + 2 + 1 hash blocks and the superblock. The
        // oracle: `veritysetup format` (cryptsetup 2.6.1) of a sparse 10 GiB file, run by hand
        // (a minute of hashing zeros, too long for every test run), wrote 84557824 bytes.
        assert_eq!(hash_area_size(10 << 18), 84_557_824);
        assert_eq!(84_557_824, (1 + 20480 + 160 + 2 + 1) * 4096);
    }

    #[test]
    fn thread_count_does_not_change_the_tree() {
        let data: Vec<u8> = (0..(300 * BLOCK as usize))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let p = Params {
            data_blocks: 300,
            salt: vec![1, 2, 3],
        };
        let one = build(&data, 0, &p, [9; 16], 1, &|_| {}).unwrap();
        for t in [2, 3, 8, 64] {
            assert_eq!(
                build(&data, 0, &p, [9; 16], t, &|_| {}).unwrap(),
                one,
                "{t} threads"
            );
        }
    }

    fn on<'a>(data: &'a Vec<u8>, hash: &'a Vec<u8>) -> On<'a, Vec<u8>, Vec<u8>> {
        On {
            data,
            data_offset: 0,
            hash,
            hash_offset: 0,
        }
    }

    #[test]
    fn checks_find_the_first_bad_block_and_a_bad_top() {
        let mut data: Vec<u8> = (0..(20000 * BLOCK as usize))
            .map(|i| (i % 253) as u8)
            .collect();
        let p = Params {
            data_blocks: 20000,
            salt: vec![7; 32],
        };
        let t = build(&data, 0, &p, [1; 16], 2, &|_| {}).unwrap();
        assert!(levels(20000).len() == 3, "more than two levels");
        assert!(check_top(on(&data, &t.area), &p, &t.root).is_ok());
        assert!(check_tree(on(&data, &t.area), &p, &t.root, 2, &|_| {}).is_ok());
        data[(12345 * BLOCK + 17) as usize] ^= 1;
        data[(15000 * BLOCK) as usize] ^= 1;
        let e = check_tree(on(&data, &t.area), &p, &t.root, 2, &|_| {})
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("data block 12345 "), "{e}");
        // The quick check does not read the data: it still passes.
        assert!(check_top(on(&data, &t.area), &p, &t.root).is_ok());
        let mut area = t.area.clone();
        let top = levels(20000).last().unwrap().start;
        area[(top * BLOCK + 5) as usize] ^= 1;
        assert!(check_top(on(&data, &area), &p, &t.root)
            .unwrap_err()
            .to_string()
            .contains("top level"));
        // The padding of the last leaf block: no leaf differs, its parent's digest does.
        let restored = {
            let mut d = data.clone();
            d[(12345 * BLOCK + 17) as usize] ^= 1;
            d[(15000 * BLOCK) as usize] ^= 1;
            d
        };
        let leaves = levels(20000)[0];
        let mut area = t.area.clone();
        area[((leaves.start + 156) * BLOCK + 32 * 32 + 5) as usize] ^= 1;
        let e = check_tree(on(&restored, &area), &p, &t.root, 3, &|_| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("hash block {} ", leaves.start + 156)),
            "{e}"
        );
        let mut area = t.area.clone();
        area[72] ^= 1; // data_blocks in the superblock
        assert!(check_top(on(&data, &area), &p, &t.root)
            .unwrap_err()
            .to_string()
            .contains("superblock"));
    }

    #[test]
    fn superblock_round_trip_and_refusals() {
        let p = Params {
            data_blocks: 5,
            salt: vec![0xab; 32],
        };
        let sb = superblock(&p, [3; 16]);
        assert_eq!(check_superblock(&sb, &p), Ok(()));
        for (at, what) in [
            (0, "signature"),
            (8, "version"),
            (32, "algorithm"),
            (64, "block"),
            (80, "salt"),
            (300, "padding"),
        ] {
            let mut b = sb;
            b[at] ^= 0x40;
            let e = check_superblock(&b, &p).unwrap_err().to_string();
            assert!(e.contains(what), "byte {at}: {e}");
        }
        assert!(check_superblock(&sb[..100], &p).is_err());
    }
}
