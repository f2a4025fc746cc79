//! FAT volumes: written reproducibly by the builder, read with bounds by the verifier.
//!
//! Writing: files are added in sorted path order, every timestamp is the build time
//! (SOURCE_DATE_EPOCH), and the volume id is derived by the caller, so the same inputs give the
//! same bytes. Reading: a hostile FAT may hold cyclic cluster chains or deep trees, so directory
//! walks are bounded in depth and in entries, and file reads in size.

use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};

use fatfs::{Date, DateTime, FatType, FileSystem, FormatVolumeOptions, FsOptions, Time, TimeProvider};

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
            return Some(format!("{comp:?}: FAT names cannot start with a space or end in a dot or space"));
        }
        if let Some(c) = comp.chars().find(|c| c.is_control() || "\"*:<>?\\|".contains(*c)) {
            return Some(format!("{comp:?}: character {c:?} is not allowed on FAT"));
        }
    }
    None
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// UTC calendar fields of a Unix time: (year, month, day, hour, minute, second).
pub fn utc_fields(epoch: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, (secs / 3600) as u32, (secs / 60 % 60) as u32, (secs % 60) as u32)
}

/// RFC 3339 UTC form of a Unix time, e.g. `2026-11-23T19:25:00Z`.
pub fn rfc3339(epoch: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(epoch);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

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
        date: Date { year: y as u16, month: mo as u16, day: d as u16 },
        time: Time { hour: h as u16, min: mi as u16, sec: s as u16, millis: 0 },
    }
}

fn label_bytes(label: &str) -> [u8; 11] {
    let mut b = [b' '; 11];
    for (i, c) in label.bytes().filter(u8::is_ascii_graphic).take(11).enumerate() {
        b[i] = c.to_ascii_uppercase();
    }
    b
}

/// Build a FAT volume holding `files` (in any order: they are sorted here) and return its bytes.
pub fn build(spec: &FatSpec, files: &[FatFile]) -> io::Result<Vec<u8>> {
    if spec.size % SECTOR != 0 || spec.size > u64::from(u32::MAX) * SECTOR {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad FAT volume size"));
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
    }
    fatfs::format_volume(&mut img, opts)?;
    img.seek(SeekFrom::Start(0))?;
    // fatfs wants a 'static clock; one small leak per volume built is the price.
    let clock: &'static FixedTime = Box::leak(Box::new(FixedTime(dos_time(spec.epoch))));
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
    Ok(img.into_inner())
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
        ReadLimits { max_depth: 16, max_entries: 10_000 }
    }
}

/// A FAT volume opened read-only from a window of a disk.
pub struct FatReader<'a, D: Disk + ?Sized> {
    fs: FileSystem<Window<'a, D>>,
}

impl<D: Disk + ?Sized> std::fmt::Debug for FatReader<'_, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FatReader")
    }
}

/// A file found by [`FatReader::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// `/`-separated path.
    pub path: String,
    /// Size in bytes as recorded in the directory entry.
    pub size: u64,
}

impl<'a, D: Disk + ?Sized> FatReader<'a, D> {
    /// Open the FAT at `[offset, offset+len)` of `disk`.
    pub fn open(disk: &'a D, offset: u64, len: u64) -> io::Result<Self> {
        let fs = FileSystem::new(Window::new(disk, offset, len), FsOptions::new())?;
        Ok(FatReader { fs })
    }

    /// Every regular file, sorted by path. Fails if the limits are exceeded.
    pub fn list(&self, limits: ReadLimits) -> io::Result<Vec<ListedFile>> {
        let mut out = Vec::new();
        let mut seen = 0usize;
        let mut stack = vec![(self.fs.root_dir(), String::new(), 0usize)];
        while let Some((dir, prefix, depth)) = stack.pop() {
            for entry in dir.iter() {
                let entry = entry?;
                seen += 1;
                if seen > limits.max_entries {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("more than {} directory entries", limits.max_entries),
                    ));
                }
                let name = entry.file_name();
                if name == "." || name == ".." {
                    continue;
                }
                let path = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
                if entry.is_dir() {
                    if depth + 1 > limits.max_depth {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("directories nested deeper than {}", limits.max_depth),
                        ));
                    }
                    stack.push((entry.to_dir(), path, depth + 1));
                } else if entry.is_file() {
                    out.push(ListedFile { path, size: entry.len() });
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
        let n = Read::by_ref(&mut file).take(max + 1).read_to_end(&mut data)?;
        if n as u64 > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{path} is larger than {max} bytes"),
            ));
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
                return Err(io::Error::new(io::ErrorKind::InvalidData, "file larger than expected"));
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
        FatSpec { size, fat32, label: "TEST".into(), volume_id: 0x1234_5678, epoch: 1_700_000_000 }
    }

    fn files() -> Vec<FatFile> {
        vec![
            FatFile { path: "b/z.txt".into(), data: b"zz".to_vec() },
            FatFile { path: "EFI/BOOT/BOOTX64.EFI".into(), data: vec![7u8; 100_000] },
            FatFile { path: "a.txt".into(), data: b"hello".to_vec() },
            FatFile { path: "b/A long name with spaces.conf".into(), data: vec![] },
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
            assert!(a == b, "same files in another order must give the same bytes");
            let r = FatReader::open(&a, 0, size).unwrap();
            let listed = r.list(ReadLimits::default()).unwrap();
            let paths: Vec<_> = listed.iter().map(|f| f.path.as_str()).collect();
            assert_eq!(paths, ["EFI/BOOT/BOOTX64.EFI", "a.txt", "b/A long name with spaces.conf", "b/z.txt"]);
            assert_eq!(r.read("a.txt", 100).unwrap().unwrap(), b"hello");
            assert!(r.read("EFI/BOOT/BOOTX64.EFI", 10).is_err());
            assert!(r.read("missing", 10).unwrap().is_none());
            let (h, n) = r.hash("EFI/BOOT/BOOTX64.EFI", 1 << 20).unwrap().unwrap();
            assert_eq!(n, 100_000);
            assert_eq!(crate::hash::hex(&h), crate::hash::sha256_hex(&vec![7u8; 100_000]));
        }
    }

    #[test]
    fn list_limits_hold() {
        let img = build(&spec(4 << 20, false), &files()).unwrap();
        let r = FatReader::open(&img, 0, img.len() as u64).unwrap();
        assert!(r.list(ReadLimits { max_depth: 1, max_entries: 100 }).is_err());
        assert!(r.list(ReadLimits { max_depth: 16, max_entries: 3 }).is_err());
    }

    #[test]
    fn path_rules() {
        assert!(path_problem("EFI/BOOT/BOOTX64.EFI").is_none());
        for bad in ["", "a//b", "../x", "a/./b", "x:y", "tab\there", "dot.", "q?"] {
            assert!(path_problem(bad).is_some(), "{bad:?}");
        }
    }
}
