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
}

impl FileDisk {
    /// Open `path` read-only and determine its size (seeking to the end works for block devices too).
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory",
            ));
        }
        let size = file.seek(SeekFrom::End(0))?;
        Ok(FileDisk {
            file,
            size,
            path: path.to_path_buf(),
        })
    }

    /// The path this disk was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Disk for FileDisk {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.size, offset, buf.len())?;
        self.file.read_exact_at(buf, offset)
    }
}

/// A window `[start, start+len)` of a [`Disk`] as a `Read + Seek` stream (for fatfs).
///
/// Writes are refused: verification never changes the medium. Reads past the window's end
/// return end-of-file, so a FAT that claims to be larger than its window fails cleanly.
pub struct Window<'a, D: Disk + ?Sized> {
    disk: &'a D,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'a, D: Disk + ?Sized> Window<'a, D> {
    /// A window clamped to the disk's size.
    pub fn new(disk: &'a D, start: u64, len: u64) -> Self {
        let start = start.min(disk.size());
        let len = len.min(disk.size() - start);
        Window {
            disk,
            start,
            len,
            pos: 0,
        }
    }
}

impl<D: Disk + ?Sized> std::fmt::Debug for Window<'_, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Window({}+{} at {})", self.start, self.len, self.pos)
    }
}

impl<D: Disk + ?Sized> Read for Window<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(self.len - self.pos) as usize;
        self.disk
            .read_exact_at(&mut buf[..n], self.start + self.pos)?;
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
        let mut w = Window::new(&d, 250, 100);
        let mut b = Vec::new();
        w.read_to_end(&mut b).unwrap();
        assert_eq!(b, vec![250, 251, 252, 253, 254, 255]);
        assert!(w.write(&[0]).is_err());
    }
}
