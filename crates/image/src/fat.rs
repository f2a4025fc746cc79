//! FAT volumes: written reproducibly by the builder, read with bounds by the verifier.
//!
//! Writing: files are added in sorted path order, every timestamp is the build time
//! (SOURCE_DATE_EPOCH), and the volume id is derived by the caller, so the same inputs give the
//! same bytes. Reading: a hostile FAT may hold cyclic cluster chains or deep trees, so directory
//! walks are bounded in depth and in entries, and file reads in size.

use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};

use fatfs::{
    Date, DateTime, FatType, FileSystem, FormatVolumeOptions, FsOptions, Time, TimeProvider,
};

use crate::disk::{Disk, Window, SECTOR};

/// A file to put on a FAT volume: `/`-separated path relative to the root, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatFile {
    /// Path such as `EFI/BOOT/BOOTX64.EFI`.
    pub path: String,
    /// Contents.
    pub data: Vec<u8>,
}

/// Parameters of a new FAT volume.
#[derive(Debug, Clone)]
pub struct FatSpec {
    /// Volume size in bytes (a multiple of 512).
    pub size: u64,
    /// Force FAT32 (the ESP); otherwise fatfs picks by size.
    pub fat32: bool,
    /// Volume label, up to 11 ASCII characters.
    pub label: String,
    /// Volume serial number.
    pub volume_id: u32,
    /// Seconds since the Unix epoch used for every timestamp.
    pub epoch: i64,
}

/// Why a path cannot go on a FAT volume; `None` if it can.
pub fn path_problem(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("empty path".into());
    }
    if path.len() > 240 {
        return Some("path longer than 240 bytes".into());
    }
    for comp in path.split('/') {
        if comp.is_empty() || comp == "." || comp == ".." {
            return Some(format!("path component {comp:?} is not allowed"));
        }
        if comp.ends_with('.') || comp.ends_with(' ') || comp.starts_with(' ') {
            return Some(format!(
                "{comp:?}: FAT names cannot start with a space or end in a dot or space"
            ));
        }
        if let Some(c) = comp
            .chars()
            .find(|c| c.is_control() || "\"*:<>?\\|".contains(*c))
        {
            return Some(format!("{comp:?}: character {c:?} is not allowed on FAT"));
        }
    }
    None
}

pub use crate::time::{rfc3339, utc_fields};

/// A fixed clock for fatfs: every created or modified entry gets the build time.
#[derive(Debug)]
struct FixedTime(DateTime);

impl TimeProvider for FixedTime {
    fn get_current_date(&self) -> Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> DateTime {
        self.0
    }
}

/// fatfs wants a `'static` clock. One per distinct build time, kept in a registry (so memory
/// stays bounded over many builds, and the clocks stay reachable rather than leaked).
fn clock_for(epoch: i64) -> &'static FixedTime {
    static CLOCKS: std::sync::Mutex<Vec<(i64, &'static FixedTime)>> =
        std::sync::Mutex::new(Vec::new());
    let mut clocks = CLOCKS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = clocks.iter().find(|(e, _)| *e == epoch) {
        return c;
    }
    let c: &'static FixedTime = Box::leak(Box::new(FixedTime(dos_time(epoch))));
    clocks.push((epoch, c));
    c
}

/// FAT can store 1980..=2107; clamp and round down to its 2-second resolution.
fn dos_time(epoch: i64) -> DateTime {
    let (y, mo, d, h, mi, s) = utc_fields(epoch);
    let (y, mo, d, h, mi, s) = if y < 1980 {
        (1980, 1, 1, 0, 0, 0)
    } else if y > 2107 {
        (2107, 12, 31, 23, 59, 58)
    } else {
        (y, mo, d, h, mi, s & !1)
    };
    DateTime {
        date: Date {
            year: y as u16,
            month: mo as u16,
            day: d as u16,
        },
        time: Time {
            hour: h as u16,
            min: mi as u16,
            sec: s as u16,
            millis: 0,
        },
    }
}

fn label_bytes(label: &str) -> [u8; 11] {
    let mut b = [b' '; 11];
    for (i, c) in label
        .bytes()
        .filter(u8::is_ascii_graphic)
        .take(11)
        .enumerate()
    {
        b[i] = c.to_ascii_uppercase();
    }
    b
}

/// Build a FAT volume holding `files` (in any order: they are sorted here) and return its bytes.
pub fn build(spec: &FatSpec, files: &[FatFile]) -> io::Result<Vec<u8>> {
    if spec.size % SECTOR != 0 || spec.size > u64::from(u32::MAX) * SECTOR {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad FAT volume size",
        ));
    }
    let mut img = Cursor::new(vec![0u8; spec.size as usize]);
    let mut opts = FormatVolumeOptions::new()
        .volume_id(spec.volume_id)
        .volume_label(label_bytes(&spec.label))
        .total_sectors((spec.size / SECTOR) as u32);
    if spec.fat32 {
        // FAT32 needs at least 65525 clusters: 512-byte clusters up to 256 MiB volumes.
        let cluster = if spec.size >= 300 << 20 { 4096 } else { 512 };
        opts = opts.fat_type(FatType::Fat32).bytes_per_cluster(cluster);
    } else {
        // FAT16 (never FAT12, which the repair pass does not walk): 4085..65524 clusters.
        let mut cluster = 512u64;
        while spec.size / cluster > 65_000 {
            cluster *= 2;
        }
        if spec.size / cluster < 4_200 || cluster > 32 << 10 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "FAT16 volume must be 2.1 MiB to 2 GiB",
            ));
        }
        opts = opts
            .fat_type(FatType::Fat16)
            .bytes_per_cluster(cluster as u32);
    }
    fatfs::format_volume(&mut img, opts)?;
    img.seek(SeekFrom::Start(0))?;
    let clock = clock_for(spec.epoch);
    {
        let fs = FileSystem::new(&mut img, FsOptions::new().time_provider(clock))?;
        let mut sorted: Vec<&FatFile> = files.iter().collect();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        {
            let root = fs.root_dir();
            for f in sorted {
                let (dirs, name) = match f.path.rsplit_once('/') {
                    Some((d, n)) => (Some(d), n),
                    None => (None, f.path.as_str()),
                };
                let dir = match dirs {
                    Some(d) => {
                        let mut cur = root.clone();
                        for comp in d.split('/') {
                            cur = cur.create_dir(comp)?;
                        }
                        cur
                    }
                    None => root.clone(),
                };
                let mut file = dir.create_file(name)?;
                file.truncate()?;
                file.write_all(&f.data)?;
                file.flush()?;
            }
        }
        fs.unmount()?;
    }
    let mut bytes = img.into_inner();
    repair(&mut bytes)?;
    Ok(bytes)
}

/// For the repair pass, which reads a volume it just wrote: the fields are inside it.
fn le16(b: &[u8], at: usize) -> u64 {
    crate::bytes::le(b, at, 2).unwrap_or(0)
}

fn le32(b: &[u8], at: usize) -> u64 {
    crate::bytes::le(b, at, 4).unwrap_or(0)
}

fn bad_data(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Geometry of a FAT16/FAT32 volume, from its boot sector.
struct Geometry {
    fat32: bool,
    cluster_bytes: usize,
    fat_offset: usize,
    data_offset: usize,
    clusters: u64,
    root_cluster: u64,
    root_dir: (usize, usize),
    fsinfo: usize,
}

impl Geometry {
    fn read(b: &[u8]) -> io::Result<Geometry> {
        if b.len() < 512 || le16(b, 11) != 512 {
            return Err(bad_data("FAT repair: not a 512-byte-sector volume"));
        }
        let spc = b[13] as u64;
        let reserved = le16(b, 14);
        let nfats = b[16] as u64;
        let root_entries = le16(b, 17);
        let total = if le16(b, 19) != 0 {
            le16(b, 19)
        } else {
            le32(b, 32)
        };
        let fat32 = le16(b, 22) == 0;
        let fat_sectors = if fat32 { le32(b, 36) } else { le16(b, 22) };
        let root_sectors = (root_entries * 32).div_ceil(512);
        let data_start = reserved + nfats * fat_sectors + root_sectors;
        if spc == 0 || data_start >= total || total * 512 > b.len() as u64 {
            return Err(bad_data("FAT repair: inconsistent boot sector"));
        }
        Ok(Geometry {
            fat32,
            cluster_bytes: (spc * 512) as usize,
            fat_offset: (reserved * 512) as usize,
            data_offset: (data_start * 512) as usize,
            clusters: (total - data_start) / spc,
            root_cluster: if fat32 { le32(b, 44) } else { 0 },
            root_dir: (
                ((reserved + nfats * fat_sectors) * 512) as usize,
                (root_sectors * 512) as usize,
            ),
            fsinfo: if fat32 {
                (le16(b, 48) * 512) as usize
            } else {
                0
            },
        })
    }

    fn next(&self, b: &[u8], c: u64) -> Option<u64> {
        let n = if self.fat32 {
            le32(b, self.fat_offset + c as usize * 4) & 0x0FFF_FFFF
        } else {
            le16(b, self.fat_offset + c as usize * 2)
        };
        let end = if self.fat32 { 0x0FFF_FFF8 } else { 0xFFF8 };
        (n >= 2 && n < end && n < self.clusters + 2).then_some(n)
    }

    fn cluster_range(&self, c: u64) -> std::ops::Range<usize> {
        let start = self.data_offset + (c as usize - 2) * self.cluster_bytes;
        start..start + self.cluster_bytes
    }

    /// Byte ranges of a directory's clusters (bounded against cycles).
    fn dir_ranges(&self, b: &[u8], first: u64) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut c = Some(first);
        while let Some(cl) = c {
            if out.len() as u64 > self.clusters {
                break;
            }
            out.push(self.cluster_range(cl));
            c = self.next(b, cl);
        }
        out
    }
}

/// Repair what fatfs 0.3 gets wrong (fixed in its unreleased 0.4), so that fsck.fat is clean:
/// it writes "." and ".." through the long-name path (an LFN entry before each), and on FAT32
/// gives ".." of a top-level directory the root's cluster instead of 0; it also leaves the
/// FSInfo free-cluster count unset. Deterministic, so reproducibility holds.
fn repair(b: &mut [u8]) -> io::Result<()> {
    let g = Geometry::read(b)?;
    // Directories to visit: (first cluster, parent is root).
    let mut stack: Vec<(u64, bool)> = Vec::new();
    let root_ranges = if g.fat32 {
        g.dir_ranges(b, g.root_cluster)
    } else {
        std::iter::once(g.root_dir.0..g.root_dir.0 + g.root_dir.1).collect()
    };
    let push_children = |b: &[u8],
                         ranges: &[std::ops::Range<usize>],
                         parent_is_root: bool,
                         stack: &mut Vec<(u64, bool)>| {
        for r in ranges {
            for e in b[r.clone()].chunks_exact(32) {
                if e[0] == 0 {
                    return;
                }
                let is_dir = e[11] & 0x10 != 0 && e[11] != 0x0F;
                if e[0] == 0xE5 || !is_dir || e[0] == b'.' {
                    continue;
                }
                let cl = (le16(e, 20) << 16) | le16(e, 26);
                if cl >= 2 && cl < g.clusters + 2 {
                    stack.push((cl, parent_is_root));
                }
            }
        }
    };
    push_children(b, &root_ranges, true, &mut stack);
    let mut visited = 0u64;
    while let Some((cl, parent_is_root)) = stack.pop() {
        visited += 1;
        if visited > g.clusters {
            return Err(bad_data("FAT repair: directory cycle"));
        }
        let r = g.cluster_range(cl);
        let d = &mut b[r.clone()];
        let lfn = |e: &[u8]| e[11] == 0x0F;
        if d.len() >= 128
            && lfn(&d[0..32])
            && &d[32..43] == b".          "
            && lfn(&d[64..96])
            && &d[96..107] == b"..         "
        {
            let dot: Vec<u8> = d[32..64].to_vec();
            let dotdot: Vec<u8> = d[96..128].to_vec();
            d[0..32].copy_from_slice(&dot);
            d[32..64].copy_from_slice(&dotdot);
            for slot in [64..96, 96..128] {
                d[slot.clone()].fill(0);
                d[slot.start] = 0xE5;
            }
        }
        if parent_is_root && &d[32..43] == b"..         " {
            d[32 + 20..32 + 22].fill(0);
            d[32 + 26..32 + 28].fill(0);
        }
        let ranges = g.dir_ranges(b, cl);
        push_children(b, &ranges, false, &mut stack);
    }
    if g.fat32 && g.fsinfo > 0 && g.fsinfo + 512 <= b.len() && le32(b, g.fsinfo) == 0x4161_5252 {
        let free: Vec<u64> = (2..g.clusters + 2)
            .filter(|&c| le32(b, g.fat_offset + c as usize * 4) & 0x0FFF_FFFF == 0)
            .collect();
        let count = free.len() as u32;
        let next = free.first().copied().unwrap_or(0xFFFF_FFFF) as u32;
        b[g.fsinfo + 488..g.fsinfo + 492].copy_from_slice(&count.to_le_bytes());
        b[g.fsinfo + 492..g.fsinfo + 496].copy_from_slice(&next.to_le_bytes());
    }
    Ok(())
}

/// Limits for reading an untrusted FAT.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Deepest directory nesting walked.
    pub max_depth: usize,
    /// Most directory entries looked at in total.
    pub max_entries: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_depth: 16,
            max_entries: 10_000,
        }
    }
}

/// A read budget for walking a FAT volume of `len` bytes: enough to read every byte of it
/// twice (directories, FAT entries and files are each read once by a full check) plus the
/// metadata of a few lookups, and never enough for a walk around a cyclic cluster chain to go
/// on for long.
pub fn budget_for(len: u64) -> u64 {
    len.saturating_mul(2).saturating_add(16 << 20)
}

/// A FAT volume opened read-only from a window of a disk.
pub struct FatReader<'a, D: Disk + ?Sized> {
    fs: FileSystem<Window<'a, D>>,
    disk: &'a D,
    offset: u64,
    len: u64,
}

impl<D: Disk + ?Sized> std::fmt::Debug for FatReader<'_, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FatReader")
    }
}

/// A file found by [`FatReader::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// `/`-separated path, with long names where the directory entries have them.
    pub path: String,
    /// The same path in the 8.3 short names every FAT entry also carries (firmware and other
    /// readers may look a file up by either).
    pub short_path: String,
    /// Size in bytes as recorded in the directory entry.
    pub size: u64,
}

fn invalid_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// The name a FAT reader compares: case folded, trailing dots and spaces dropped (Windows and
/// some firmware drop them when they look names up).
fn fold_name(name: &str) -> String {
    name.trim_end_matches(['.', ' ']).to_lowercase()
}

/// Why the boot chain would read the ESP file at `path` (any case, long or short name), or
/// `None` for a file nothing in the boot chain reads. A file the firmware, systemd-stub or a
/// UEFI shell reads must be listed in the signed manifest: see docs/threat-model.md.
pub fn read_by_boot_chain(path: &str) -> Option<&'static str> {
    let comps: Vec<String> = path.split('/').map(fold_name).collect();
    let (name, dirs) = comps.split_last()?;
    if dirs.first().map(String::as_str) == Some("efi") {
        return Some("UEFI firmware and boot loaders load programs from EFI/");
    }
    if dirs.first().map(String::as_str) == Some("loader") {
        return Some("systemd-stub and systemd-boot read loader/ (credentials, add-ons, entries)");
    }
    if dirs.iter().any(|d| d.ends_with(".extra.d")) {
        return Some("systemd-stub packs *.extra.d/ beside a UKI into the initramfs");
    }
    if name.ends_with(".addon.efi") {
        return Some("systemd-stub loads *.addon.efi add-ons");
    }
    if name == "startup.nsh" {
        return Some("a UEFI shell runs startup.nsh");
    }
    None
}

/// Largest FAT [`FatReader::check_fat_tables`] holds in memory (a 4 GiB FAT32 ESP with 512-byte
/// clusters has a 32 MiB FAT).
pub const MAX_FAT_BYTES: u64 = 64 << 20;

/// Check that no cluster chain in `fat` (FAT 1 of a volume with `clusters` data clusters)
/// loops or points outside the volume. Every cluster is visited once.
fn check_chains(fat: &[u8], clusters: u64, fat32: bool) -> io::Result<()> {
    let fat12 = !fat32 && clusters < 4085;
    let (bits, end_min) = match (fat32, fat12) {
        (true, _) => (32, 0x0FFF_FFF7u64),
        (false, true) => (12, 0xFF7),
        (false, false) => (16, 0xFFF7),
    };
    let entry = |c: u64| -> Option<u64> {
        let v = match bits {
            32 => crate::bytes::le(fat, usize::try_from(c * 4).ok()?, 4)? & 0x0FFF_FFFF,
            16 => crate::bytes::le(fat, usize::try_from(c * 2).ok()?, 2)?,
            _ => {
                let at = usize::try_from(c + c / 2).ok()?;
                let v = crate::bytes::le(fat, at, 2)?;
                if c % 2 == 1 {
                    v >> 4
                } else {
                    v & 0xFFF
                }
            }
        };
        Some(v)
    };
    let last = clusters + 1;
    let entries = (fat.len() as u64 * 8) / bits;
    if last >= entries {
        return Err(invalid_data(format!(
            "the FAT has {entries} entries, too few for {clusters} clusters"
        )));
    }
    // 0: not yet seen, 1: on the chain being walked, 2: known to end.
    let mut state = vec![0u8; (last + 1) as usize];
    let mut path = Vec::new();
    for start in 2..=last {
        let mut c = start;
        path.clear();
        loop {
            match state[c as usize] {
                1 => {
                    return Err(invalid_data(format!(
                        "the cluster chain through cluster {c} loops: a reader would go round in circles"
                    )))
                }
                2 => break,
                _ => {}
            }
            state[c as usize] = 1;
            path.push(c);
            let next = entry(c).unwrap_or(0);
            match next {
                0 => break,
                n if n >= end_min => break,
                n if (2..=last).contains(&n) => c = n,
                n => {
                    return Err(invalid_data(format!(
                    "cluster {c} points to cluster {n}, outside the volume (clusters 2..={last})"
                )))
                }
            }
        }
        for &p in &path {
            state[p as usize] = 2;
        }
    }
    Ok(())
}

impl<'a, D: Disk + ?Sized> FatReader<'a, D> {
    /// Open the FAT at `[offset, offset+len)` of `disk`; all reads through this reader together
    /// may fetch at most `budget` bytes (see [`budget_for`]).
    pub fn open(disk: &'a D, offset: u64, len: u64, budget: u64) -> io::Result<Self> {
        let fs = FileSystem::new(Window::new(disk, offset, len, budget), FsOptions::new())?;
        Ok(FatReader {
            fs,
            disk,
            offset,
            len,
        })
    }

    /// Refuse a volume whose readers could disagree about which clusters a file has, or on
    /// which a reader could go round in circles: FAT32 with mirroring switched off
    /// (BPB_ExtFlags bit 7; fatfs then reads the "active" FAT, Linux and fsck.fat the first), FAT
    /// copies that differ, and a FAT in which any cluster chain loops or points outside the
    /// volume. Reads each copy once, in 1 MiB pieces; holds FAT 1 (at most [`MAX_FAT_BYTES`]).
    pub fn check_fat_tables(&self) -> io::Result<()> {
        let mut bs = [0u8; 512];
        self.disk.read_exact_at(&mut bs, self.offset)?;
        let le_at = |at, n| crate::bytes::le(&bs, at, n).unwrap_or(0); // inside the 512 bytes
        let sector = le_at(11, 2);
        let spc = le_at(13, 1);
        let reserved = le_at(14, 2);
        let fats = le_at(16, 1);
        let root_entries = le_at(17, 2);
        let total = match le_at(19, 2) {
            0 => le_at(32, 4),
            n => n,
        };
        let fat16_sectors = le_at(22, 2);
        let fat32 = fat16_sectors == 0;
        let fat_sectors = if fat32 { le_at(36, 4) } else { fat16_sectors };
        if fat32 && le_at(40, 2) & 0x80 != 0 {
            return Err(invalid_data(format!(
                "FAT mirroring is switched off (BPB_ExtFlags {:#06x}): readers would disagree on which FAT counts",
                le_at(40, 2)
            )));
        }
        let fat_bytes = fat_sectors * sector;
        let fats_end = reserved + fats * fat_sectors;
        let data_start = fats_end + (root_entries * 32).div_ceil(sector.max(1));
        if sector == 0
            || spc == 0
            || fats == 0
            || fat_bytes == 0
            || data_start >= total
            || total * sector > self.len
        {
            return Err(invalid_data(format!(
                "boot sector: {fats} FATs of {fat_sectors} sectors and {total} sectors in all do not fit the volume"
            )));
        }
        if fat_bytes > MAX_FAT_BYTES {
            return Err(invalid_data(format!(
                "a FAT of {fat_bytes} bytes is larger than this verifier reads ({MAX_FAT_BYTES})"
            )));
        }
        let clusters = (total - data_start) / spc;
        let mut fat1 = vec![0u8; fat_bytes as usize];
        let mut other = vec![0u8; (1u64 << 20).min(fat_bytes) as usize];
        let mut at = 0u64;
        while at < fat_bytes {
            let n = (other.len() as u64).min(fat_bytes - at) as usize;
            let base = self.offset + reserved * sector + at;
            let first = &mut fat1[at as usize..at as usize + n];
            self.disk.read_exact_at(first, base)?;
            for copy in 1..fats {
                self.disk
                    .read_exact_at(&mut other[..n], base + copy * fat_bytes)?;
                if let Some(i) = first.iter().zip(&other[..n]).position(|(a, b)| a != b) {
                    return Err(invalid_data(format!(
                        "FAT copy {} differs from FAT 1 at byte {}: readers would disagree on which clusters a file has",
                        copy + 1,
                        at + i as u64
                    )));
                }
            }
            at += n as u64;
        }
        check_chains(&fat1, clusters, fat32)
    }

    /// Every regular file, sorted by path. Fails if the limits are exceeded, or if one
    /// directory holds two entries that a reader could confuse (the same long or short name
    /// in any case): which of the two a reader takes would then decide what it reads.
    pub fn list(&self, limits: ReadLimits) -> io::Result<Vec<ListedFile>> {
        let mut out = Vec::new();
        let mut seen = 0usize;
        let mut stack = vec![(self.fs.root_dir(), String::new(), String::new(), 0usize)];
        while let Some((dir, prefix, short_prefix, depth)) = stack.pop() {
            let mut names: std::collections::BTreeMap<String, String> = Default::default();
            for entry in dir.iter() {
                let entry = entry?;
                seen += 1;
                if seen > limits.max_entries {
                    return Err(invalid_data(format!(
                        "more than {} directory entries",
                        limits.max_entries
                    )));
                }
                let name = entry.file_name();
                if name == "." || name == ".." {
                    continue;
                }
                if !entry.is_dir() && !entry.is_file() {
                    continue; // the volume label
                }
                let short = entry.short_file_name();
                let join = |p: &str, n: &str| {
                    if p.is_empty() {
                        n.to_string()
                    } else {
                        format!("{p}/{n}")
                    }
                };
                let path = join(&prefix, &name);
                let short_path = join(&short_prefix, &short);
                for key in [fold_name(&name), fold_name(&short)] {
                    if let Some(other) = names.get(&key) {
                        if *other != path {
                            return Err(invalid_data(format!(
                                "{:?} and {other:?} have the same name for a FAT reader ({key:?})",
                                path
                            )));
                        }
                    }
                    names.insert(key, path.clone());
                }
                if entry.is_dir() {
                    if depth + 1 > limits.max_depth {
                        return Err(invalid_data(format!(
                            "directories nested deeper than {}",
                            limits.max_depth
                        )));
                    }
                    stack.push((entry.to_dir(), path, short_path, depth + 1));
                } else {
                    out.push(ListedFile {
                        path,
                        short_path,
                        size: entry.len(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Read the file at `path` if it exists; fails if it is larger than `max` bytes.
    pub fn read(&self, path: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        let mut file = match self.fs.root_dir().open_file(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut data = Vec::new();
        let n = Read::by_ref(&mut file)
            .take(max + 1)
            .read_to_end(&mut data)?;
        if n as u64 > max {
            return Err(invalid_data(format!("{path} is larger than {max} bytes")));
        }
        Ok(Some(data))
    }

    /// SHA-256 and length of the file at `path`, read in blocks, at most `max` bytes.
    pub fn hash(&self, path: &str, max: u64) -> io::Result<Option<([u8; 32], u64)>> {
        use sha2::{Digest, Sha256};
        let mut file = match self.fs.root_dir().open_file(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > max {
                return Err(invalid_data("file larger than expected".into()));
            }
            h.update(&buf[..n]);
        }
        Ok(Some((h.finalize().into(), total)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(size: u64, fat32: bool) -> FatSpec {
        FatSpec {
            size,
            fat32,
            label: "TEST".into(),
            volume_id: 0x1234_5678,
            epoch: 1_700_000_000,
        }
    }

    fn files() -> Vec<FatFile> {
        vec![
            FatFile {
                path: "b/z.txt".into(),
                data: b"zz".to_vec(),
            },
            FatFile {
                path: "EFI/BOOT/BOOTX64.EFI".into(),
                data: vec![7u8; 100_000],
            },
            FatFile {
                path: "a.txt".into(),
                data: b"hello".to_vec(),
            },
            FatFile {
                path: "b/A long name with spaces.conf".into(),
                data: vec![],
            },
        ]
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        let t = dos_time(0);
        assert_eq!((t.date.year, t.date.month, t.date.day), (1980, 1, 1));
        let t = dos_time(1_700_000_001);
        assert_eq!(t.time.sec, 20);
    }

    #[test]
    fn round_trip_and_determinism() {
        for (size, fat32) in [(4u64 << 20, false), (40 << 20, true)] {
            let a = build(&spec(size, fat32), &files()).unwrap();
            let mut rev = files();
            rev.reverse();
            let b = build(&spec(size, fat32), &rev).unwrap();
            assert!(
                a == b,
                "same files in another order must give the same bytes"
            );
            let r = FatReader::open(&a, 0, size, budget_for(size)).unwrap();
            let listed = r.list(ReadLimits::default()).unwrap();
            let paths: Vec<_> = listed.iter().map(|f| f.path.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "EFI/BOOT/BOOTX64.EFI",
                    "a.txt",
                    "b/A long name with spaces.conf",
                    "b/z.txt"
                ]
            );
            assert_eq!(r.read("a.txt", 100).unwrap().unwrap(), b"hello");
            assert!(r.read("EFI/BOOT/BOOTX64.EFI", 10).is_err());
            assert!(r.read("missing", 10).unwrap().is_none());
            let (h, n) = r.hash("EFI/BOOT/BOOTX64.EFI", 1 << 20).unwrap().unwrap();
            assert_eq!(n, 100_000);
            assert_eq!(
                crate::hash::hex(&h),
                crate::hash::sha256_hex(&vec![7u8; 100_000])
            );
        }
    }

    #[test]
    fn list_limits_hold() {
        let img = build(&spec(4 << 20, false), &files()).unwrap();
        let r = FatReader::open(&img, 0, img.len() as u64, u64::MAX).unwrap();
        assert!(r
            .list(ReadLimits {
                max_depth: 1,
                max_entries: 100
            })
            .is_err());
        assert!(r
            .list(ReadLimits {
                max_depth: 16,
                max_entries: 3
            })
            .is_err());
    }

    #[test]
    fn chains_that_loop_or_leave_the_volume_are_found() {
        // FAT32: 2 -> 3 -> EOC, 4 -> 4 (a loop), clusters 2..=5.
        let mut f32 = vec![0u8; 4 * 8];
        for (c, v) in [(2usize, 3u32), (3, 0x0FFF_FFFF), (4, 4), (5, 0)] {
            f32[c * 4..c * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        let e = check_chains(&f32, 4, true).unwrap_err();
        assert!(e.to_string().contains("cluster 4 loops"), "{e}");
        f32[16..20].copy_from_slice(&2u32.to_le_bytes()); // 4 -> 2 -> 3 -> EOC
        check_chains(&f32, 4, true).unwrap();
        f32[20..24].copy_from_slice(&9u32.to_le_bytes()); // 5 -> 9: outside
        assert!(check_chains(&f32, 4, true)
            .unwrap_err()
            .to_string()
            .contains("outside"));
        // A longer loop: 2 -> 3 -> 4 -> 2.
        let mut f16 = vec![0u8; 2 * 8];
        for (c, v) in [(2usize, 3u16), (3, 4), (4, 2)] {
            f16[c * 2..c * 2 + 2].copy_from_slice(&v.to_le_bytes());
        }
        assert!(check_chains(&f16, 5000, false).is_err(), "too few entries");
        let mut big16 = vec![0u8; 2 * 5002];
        big16[..16].copy_from_slice(&f16);
        assert!(check_chains(&big16, 5000, false)
            .unwrap_err()
            .to_string()
            .contains("loops"));
        // FAT12 packs two entries in three bytes: 2 -> 3, 3 -> EOC; then 3 -> 2.
        let mut f12 = vec![0u8; 12];
        f12[3] = 0x03; // entry 2 = 0x003
        f12[4] = 0xF0; // entry 3 low nibble 0xF
        f12[5] = 0xFF; // entry 3 = 0xFFF
        check_chains(&f12, 4, false).unwrap();
        f12[4] = 0x20;
        f12[5] = 0x00; // entry 3 = 0x002
        assert!(check_chains(&f12, 4, false)
            .unwrap_err()
            .to_string()
            .contains("loops"));
    }

    #[test]
    fn fat_tables_must_agree_and_be_mirrored() {
        let img = build(&spec(40 << 20, true), &files()).unwrap();
        let len = img.len() as u64;
        let r = FatReader::open(&img, 0, len, u64::MAX).unwrap();
        r.check_fat_tables().unwrap();
        let reserved = le16(&img, 14) as usize;
        let fat_bytes = le32(&img, 36) as usize * 512;
        let mut off = img.clone();
        off[40] = 0x81;
        let r = FatReader::open(&off, 0, len, u64::MAX).unwrap();
        assert!(r
            .check_fat_tables()
            .unwrap_err()
            .to_string()
            .contains("mirroring"));
        let mut split = img.clone();
        split[reserved * 512 + fat_bytes + 4000] ^= 1;
        let r = FatReader::open(&split, 0, len, u64::MAX).unwrap();
        let e = r.check_fat_tables().unwrap_err().to_string();
        assert!(
            e.contains("FAT copy 2 differs from FAT 1 at byte 4000"),
            "{e}"
        );
    }

    #[test]
    fn a_cyclic_directory_ends_in_an_error_not_a_hang() {
        let img = build(&spec(4 << 20, false), &files()).unwrap();
        let g = Geometry::read(&img).unwrap();
        // Directory "b": its entry in the root holds its first cluster.
        let root = &img[g.root_dir.0..g.root_dir.0 + g.root_dir.1];
        let at = root
            .chunks_exact(32)
            .position(|e| &e[..11] == b"B          ")
            .unwrap();
        let cl = le16(root, at * 32 + 26) as usize;
        let mut bad = img.clone();
        for k in 0..2 {
            let fat = g.fat_offset + k * (le16(&img, 22) as usize * 512);
            bad[fat + cl * 2..fat + cl * 2 + 2].copy_from_slice(&(cl as u16).to_le_bytes());
        }
        // Every entry deleted, so no live entry counts against the entry limit.
        let r0 = g.cluster_range(cl as u64);
        for e in (r0.start..r0.end).step_by(32) {
            bad[e] = 0xE5;
        }
        let len = bad.len() as u64;
        let r = FatReader::open(&bad, 0, len, budget_for(len)).unwrap();
        let e = r.list(ReadLimits::default()).unwrap_err();
        assert!(crate::disk::is_budget_exhausted(&e), "{e}");
        assert!(r
            .check_fat_tables()
            .unwrap_err()
            .to_string()
            .contains("loops"));
    }

    #[test]
    fn boot_chain_paths_any_case_and_form() {
        for p in [
            "EFI/BOOT/BOOTX64.EFI",
            "efi/linux/x.efi",
            "EFI./BOOT/x",
            "loader/credentials/a.cred",
            "LOADER/addons/b.addon.efi",
            "x.addon.efi",
            "a/b.EXTRA.D/c.raw",
            "startup.nsh",
            "deep/StartUp.Nsh",
        ] {
            assert!(read_by_boot_chain(p).is_some(), "{p}");
        }
        for p in [
            "homestick/README.txt",
            "notes.txt",
            "efi.txt",
            "x.extra.d",
            "addon.efi.txt",
        ] {
            assert!(read_by_boot_chain(p).is_none(), "{p}");
        }
    }

    #[test]
    fn path_rules() {
        assert!(path_problem("EFI/BOOT/BOOTX64.EFI").is_none());
        for bad in [
            "",
            "a//b",
            "../x",
            "a/./b",
            "x:y",
            "tab\there",
            "dot.",
            "q?",
        ] {
            assert!(path_problem(bad).is_some(), "{bad:?}");
        }
    }
}
