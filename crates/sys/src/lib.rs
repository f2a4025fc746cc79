//! The Linux interfaces homestick needs that have no safe wrapper in a well-kept crate:
//! device-mapper (the boot verifier maps exactly the verified sectors of the stick) and
//! partition removal (so no node from the kernel's own partition scan is left to be used).
//!
//! All `unsafe` code of homestick lives in [`ioctl`] (the ioctls, and taking ownership of a
//! descriptor from openat2 for [`open_beneath`]), each call with a `// SAFETY:` comment;
//! everything else in the workspace denies it.

pub mod ioctl;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// A device-mapper device that maps one range of another block device, read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearMap<'a> {
    /// Name of the new device (also its node under /dev/mapper when udev runs; we make our own).
    pub name: &'a str,
    /// `dev_t` of the whole disk the range is on.
    pub disk: u64,
    /// First 512-byte sector of the range on the disk.
    pub start: u64,
    /// Length in 512-byte sectors.
    pub sectors: u64,
}

/// Create a read-only linear device-mapper device for `map` through `control`
/// (`/dev/mapper/control`) and activate it. Returns the new device's `dev_t`.
pub fn create_linear(control: &Path, map: &LinearMap<'_>) -> io::Result<u64> {
    let (major, minor) = split_dev(map.disk);
    let params = format!("{major}:{minor} {}", map.start);
    create_device(control, map.name, "linear", map.sectors, &params)
}

/// Create a read-only device-mapper device `name` of `sectors` sectors with one target of type
/// `target` (e.g. "verity") and its parameter string, through `control`, and activate it.
/// Returns the new device's `dev_t`. On failure nothing is left behind.
pub fn create_device(
    control: &Path,
    name: &str,
    target: &str,
    sectors: u64,
    params: &str,
) -> io::Result<u64> {
    let ctl = OpenOptions::new()
        .read(true)
        .write(true)
        .open(control)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", control.display())))?;
    let fd = ctl.as_raw_fd();
    ioctl::dm_dev_create(fd, name)?;
    let res = ioctl::dm_table_load(fd, name, target, sectors, params)
        .and_then(|()| ioctl::dm_resume(fd, name));
    match res {
        Ok(dev) => Ok(dev),
        Err(e) => {
            // Undoing a half-made device after the error that is returned; a failure here adds
            // nothing to it.
            let _ = ioctl::dm_dev_remove(fd, name);
            Err(e)
        }
    }
}

/// Remove partition `number` from the kernel's view of the disk open in `disk` (BLKPG).
pub fn delete_partition(disk: &File, number: u32) -> io::Result<()> {
    ioctl::blkpg_del_partition(disk.as_raw_fd(), number)
}

/// Drop the kernel's cached blocks of the block device open in `disk` (BLKFLSBUF), so the
/// next reads come from the device.
pub fn flush_buffers(disk: &File) -> io::Result<()> {
    ioctl::blkflsbuf(disk.as_raw_fd())
}

/// Make the kernel read the partition table of the disk open in `disk` again (BLKRRPART).
pub fn reread_partitions(disk: &File) -> io::Result<()> {
    ioctl::blkrrpart(disk.as_raw_fd())
}

/// (major, minor) of a glibc-encoded `dev_t`.
pub fn split_dev(dev: u64) -> (u64, u64) {
    (
        ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff),
        ((dev >> 12) & 0xffff_ff00) | (dev & 0xff),
    )
}

/// Open the file `rel` for reading strictly beneath the directory `dir` (openat2 with
/// RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS): an absolute path, a `..` that leaves `dir`, or a
/// symbolic link anywhere on the way fails with the kernel's error (EXDEV or ELOOP) instead
/// of reaching a file elsewhere. The check and the open are one step, so nothing can swap a
/// link in between.
pub fn open_beneath(dir: &Path, rel: &Path) -> io::Result<File> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    let d = File::open(dir)?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_NOCTTY)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let fd = openat2(d.as_raw_fd(), rel, how).map_err(io::Error::from)?;
    Ok(ioctl::own_new_fd(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_numbers_split_like_glibc() {
        assert_eq!(split_dev((254 << 8) | 3), (254, 3));
        assert_eq!(split_dev((259 << 8) | (0x100 << 12) | 0x01), (259, 0x101));
        assert_eq!(split_dev((0x1000 << 32) | (1 << 8)), (0x1001, 0));
    }

    #[test]
    fn open_beneath_refuses_links_parents_and_absolute_paths() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/ok.pem"), "x").unwrap();
        std::fs::write(t.path().join("secret.key"), "k").unwrap();
        std::os::unix::fs::symlink(d.join("secret.key"), d.join("sub/link.pem")).unwrap();
        std::os::unix::fs::symlink(d, d.join("sub/up")).unwrap();
        let dir = d.join("sub");
        assert!(open_beneath(&dir, Path::new("ok.pem")).is_ok());
        for bad in [
            "link.pem",
            "up/secret.key",
            "../secret.key",
            "/etc/hostname",
        ] {
            let e = open_beneath(&dir, Path::new(bad)).unwrap_err();
            println!("{bad}: {e}");
            assert!(
                matches!(e.raw_os_error(), Some(40) | Some(18)),
                "{bad}: {e}"
            );
        }
    }
}
