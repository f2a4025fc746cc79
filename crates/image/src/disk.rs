//! Random-access reads from an image file, a block device or an in-memory buffer.
//!
//! Everything that reads a (possibly hostile) image goes through [`Disk`], whose reads are
//! positioned and bounds-checked: a read past the end is an error, never a short buffer.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes per logical sector. homestick images always use 512-byte sectors.
pub const SECTOR: u64 = 512;

/// A read-only random-access byte source.
pub trait Disk: Sync {
    /// Total size in bytes.
    fn size(&self) -> u64;
    /// Fill `buf` from `offset`; fails with `UnexpectedEof` if the range passes the end.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// The logical sector size a block device reports; `None` for files and buffers, which
    /// firmware and kernels only ever see with 512-byte sectors once written to a stick.
    fn logical_block_size(&self) -> Option<u64> {
        None
    }
}

/// Alignment that O_DIRECT needs of buffer addresses, lengths and offsets: 4096 covers devices
/// with 512- and 4096-byte sectors.
pub const DIRECT_ALIGN: usize = 4096;

/// A zeroed heap buffer whose bytes start at a [`DIRECT_ALIGN`]ed address, for O_DIRECT.
#[derive(Debug)]
pub struct AlignedBuf {
    mem: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// `len` zero bytes.
    pub fn new(len: usize) -> AlignedBuf {
        let mem = vec![0u8; len + DIRECT_ALIGN];
        let start = mem.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
        AlignedBuf { mem, start, len }
    }
    /// Its length.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True if it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.start + self.len]
    }
}

fn check_range(size: u64, offset: u64, len: usize) -> io::Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= size => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("read of {len} bytes at offset {offset} passes the end ({size} bytes)"),
        )),
    }
}

impl Disk for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.len() as u64, offset, buf.len())?;
        let start = offset as usize;
        buf.copy_from_slice(&self[start..start + buf.len()]);
        Ok(())
    }
}

impl Disk for Vec<u8> {
    fn size(&self) -> u64 {
        self.as_slice().size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
}

/// An image file or block device opened read-only.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    size: u64,
    path: PathBuf,
    block_size: Option<u64>,
    /// Opened with O_DIRECT: reads bypass the page cache (unaligned ones through a bounce
    /// buffer).
    direct: bool,
}

/// The logical block size the kernel reports for the block device `rdev`, from sysfs
/// (`/sys/dev/block/MAJ:MIN/queue/logical_block_size`; a partition's queue is its disk's).
pub fn sysfs_logical_block_size(sys: &Path, rdev: u64) -> io::Result<u64> {
    let (major, minor) = homestick_sys::split_dev(rdev);
    let dev = sys.join(format!("dev/block/{major}:{minor}"));
    let own = dev.join("queue/logical_block_size");
    let path = if own.exists() {
        own
    } else {
        dev.join("../queue/logical_block_size")
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {:?} is not a number", path.display(), text.trim()),
        )
    })
}

impl FileDisk {
    /// Open `path` read-only and determine its size (seeking to the end works for block devices too).
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::open_with(path, false)
    }

    /// Open `path` read-only with O_DIRECT: every read comes from the device, not from the
    /// page cache (how the flasher reads a stick back).
    pub fn open_direct(path: &Path) -> io::Result<Self> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, direct: bool) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = if direct { nix::libc::O_DIRECT } else { 0 };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory",
            ));
        }
        let size = file.seek(SeekFrom::End(0))?;
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let block_size = if meta.file_type().is_block_device() {
            Some(
                sysfs_logical_block_size(Path::new("/sys"), meta.rdev()).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot tell the device's logical sector size: {e}"),
                    )
                })?,
            )
        } else {
            None
        };
        Ok(FileDisk {
            file,
            size,
            path: path.to_path_buf(),
            block_size,
            direct,
        })
    }

    /// The path this disk was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device number of the opened block device (fstat of this very descriptor); `None`
    /// for a file.
    pub fn rdev(&self) -> Option<u64> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = self.file.metadata().ok()?;
        m.file_type().is_block_device().then(|| m.rdev())
    }
}

impl Disk for FileDisk {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.size, offset, buf.len())?;
        let a = DIRECT_ALIGN as u64;
        let aligned = offset % a == 0
            && buf.len() as u64 % a == 0
            && (buf.as_ptr() as usize) % DIRECT_ALIGN == 0;
        if !self.direct || aligned {
            return self.file.read_exact_at(buf, offset);
        }
        // The covering aligned range; at the very end, the device's size (a whole number of
        // its sectors, which O_DIRECT accepts).
        let from = offset / a * a;
        let to = (offset + buf.len() as u64)
            .div_ceil(a)
            .saturating_mul(a)
            .min(self.size);
        let mut bounce = AlignedBuf::new((to - from) as usize);
        self.file.read_exact_at(&mut bounce, from)?;
        let skip = (offset - from) as usize;
        buf.copy_from_slice(&bounce[skip..skip + buf.len()]);
        Ok(())
    }
    fn logical_block_size(&self) -> Option<u64> {
        self.block_size
    }
}

/// Bytes fetched at a time by [`Window`]: fatfs reads 4-byte FAT entries and 32-byte
/// directory entries one by one, so reading whole blocks keeps system calls few.
const WINDOW_BLOCK: u64 = 4096;

/// A window `[start, start+len)` of a [`Disk`] as a `Read + Seek` stream (for fatfs), with a
/// read budget.
///
/// Writes are refused: verification never changes the medium. Reads past the window's end
/// return end-of-file, so a FAT that claims to be larger than its window fails cleanly. Every
/// byte handed to the reader counts against the budget: a hostile FAT whose cluster chains loop
/// makes fatfs read forever, and the budget turns that into an error after a bounded amount of
/// work (see [`BudgetExhausted`]).
pub struct Window<'a, D: Disk + ?Sized> {
    disk: &'a D,
    start: u64,
    len: u64,
    pos: u64,
    budget: u64,
    limit: u64,
    block: Vec<u8>,
    block_at: u64,
}

/// The error a [`Window`] returns when its read budget is used up.
#[derive(Debug, thiserror::Error)]
#[error("stopped after reading {} MiB without finishing: a cluster chain loops or files are cross-linked", .budget >> 20)]
pub struct BudgetExhausted {
    /// The budget in bytes.
    pub budget: u64,
}

/// Whether `e` (or an error it wraps) is a [`BudgetExhausted`].
pub fn is_budget_exhausted(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<BudgetExhausted>().is_some())
}

impl<'a, D: Disk + ?Sized> Window<'a, D> {
    /// A window clamped to the disk's size that may hand out at most `budget` bytes in total.
    pub fn new(disk: &'a D, start: u64, len: u64, budget: u64) -> Self {
        let start = start.min(disk.size());
        let len = len.min(disk.size() - start);
        Window {
            disk,
            start,
            len,
            pos: 0,
            budget,
            limit: budget,
            block: Vec::new(),
            block_at: 0,
        }
    }

    fn fill_block(&mut self, at: u64) -> io::Result<()> {
        let block_at = at - at % WINDOW_BLOCK;
        if !self.block.is_empty() && self.block_at == block_at {
            return Ok(());
        }
        let n = WINDOW_BLOCK.min(self.len - block_at) as usize;
        self.block.resize(n, 0);
        self.block_at = block_at;
        let res = self
            .disk
            .read_exact_at(&mut self.block, self.start + block_at);
        if res.is_err() {
            self.block.clear();
        }
        res
    }
}

impl<D: Disk + ?Sized> std::fmt::Debug for Window<'_, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Window({}+{} at {})", self.start, self.len, self.pos)
    }
}

impl<D: Disk + ?Sized> Read for Window<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.len - self.pos);
        if want > self.budget {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                BudgetExhausted { budget: self.limit },
            ));
        }
        let n = if want >= WINDOW_BLOCK {
            self.disk
                .read_exact_at(&mut buf[..want as usize], self.start + self.pos)?;
            want as usize
        } else {
            self.fill_block(self.pos)?;
            let off = (self.pos - self.block_at) as usize;
            let n = (want as usize).min(self.block.len() - off);
            buf[..n].copy_from_slice(&self.block[off..off + n]);
            n
        };
        self.budget -= n as u64;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: Disk + ?Sized> Seek for Window<'_, D> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek out of range",
            )),
        }
    }
}

impl<D: Disk + ?Sized> Write for Window<'_, D> {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "read-only medium",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn reads_past_the_end_fail() {
        let d = vec![1u8; 100];
        let mut b = [0u8; 10];
        assert!(d.read_exact_at(&mut b, 90).is_ok());
        assert!(d.read_exact_at(&mut b, 91).is_err());
        assert!(d.read_exact_at(&mut b, u64::MAX - 2).is_err());
    }

    #[test]
    fn window_is_clamped_and_read_only() {
        let d: Vec<u8> = (0..=255).collect();
        let mut w = Window::new(&d, 250, 100, 1000);
        let mut b = Vec::new();
        w.read_to_end(&mut b).unwrap();
        assert_eq!(b, vec![250, 251, 252, 253, 254, 255]);
        assert!(w.write(&[0]).is_err());
    }

    #[test]
    fn logical_block_size_comes_from_the_disk_or_its_parent() {
        let sys = tempfile::tempdir().unwrap();
        let disk = sys.path().join("devices/vda");
        fs::create_dir_all(disk.join("queue")).unwrap();
        fs::create_dir_all(disk.join("vda2")).unwrap();
        fs::write(disk.join("queue/logical_block_size"), "4096\n").unwrap();
        fs::create_dir_all(sys.path().join("dev/block")).unwrap();
        std::os::unix::fs::symlink(&disk, sys.path().join("dev/block/254:0")).unwrap();
        std::os::unix::fs::symlink(disk.join("vda2"), sys.path().join("dev/block/254:2")).unwrap();
        // glibc's dev_t encoding of 254:0 and 254:2, and of 259:65536 (large minor).
        assert_eq!(
            sysfs_logical_block_size(sys.path(), 254 << 8).unwrap(),
            4096
        );
        assert_eq!(
            sysfs_logical_block_size(sys.path(), (254 << 8) | 2).unwrap(),
            4096
        );
        let err = sysfs_logical_block_size(sys.path(), (259 << 8) | (0x100 << 12)).unwrap_err();
        assert!(err.to_string().contains("dev/block/259:256/"), "{err}");
    }

    #[test]
    fn window_reads_through_its_block_cache_exactly() {
        let d: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = Window::new(&d, 100, 19_000, u64::MAX);
        for (at, len) in [
            (0u64, 4usize),
            (4090, 32),
            (4095, 2),
            (8000, 5000),
            (18_990, 10),
        ] {
            w.seek(SeekFrom::Start(at)).unwrap();
            let mut b = vec![0u8; len];
            w.read_exact(&mut b).unwrap();
            let s = (100 + at) as usize;
            assert_eq!(b, d[s..s + len], "at {at} len {len}");
        }
    }

    #[test]
    fn window_budget_ends_an_endless_reader() {
        let d = vec![0u8; 4096];
        let mut w = Window::new(&d, 0, 4096, 10_000);
        let mut b = [0u8; 32];
        let mut reads = 0;
        let err = loop {
            // A reader that goes round in circles, as fatfs does on a cyclic cluster chain.
            w.seek(SeekFrom::Start(64)).unwrap();
            match w.read_exact(&mut b) {
                Ok(()) => reads += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(reads, 10_000 / 32);
        assert!(is_budget_exhausted(&err), "{err}");
    }
}
