//! The raw ioctls, and nothing else. Each is documented with the kernel header it follows.
//!
//! device-mapper: include/uapi/linux/dm-ioctl.h (interface version 4). A request is one buffer
//! that starts with `struct dm_ioctl` (312 bytes); `data_start` says where the payload begins
//! and `data_size` how large the whole buffer is, so the kernel never reads or writes past it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

use nix::libc;

/// `sizeof(struct dm_ioctl)`.
const DM_IOCTL_SIZE: usize = 312;
/// `sizeof(struct dm_target_spec)`.
const DM_TARGET_SPEC_SIZE: usize = 40;
/// Buffer for every request: room for the header, one target and its parameters, and the
/// kernel's answer (which for these commands is just the header).
const DM_BUF: usize = 16 << 10;
/// `DM_NAME_LEN`.
const DM_NAME_LEN: usize = 128;

const DM_DEV_CREATE_CMD: u8 = 3;
const DM_DEV_REMOVE_CMD: u8 = 4;
const DM_DEV_SUSPEND_CMD: u8 = 6;
const DM_TABLE_LOAD_CMD: u8 = 9;
/// `DM_READONLY_FLAG`: the table (and so the device) is read-only.
const DM_READONLY_FLAG: u32 = 1 << 0;

/// `_IOWR(DM_IOCTL, cmd, struct dm_ioctl)`.
fn dm_request(cmd: u8) -> libc::c_ulong {
    nix::request_code_readwrite!(0xfd, cmd, DM_IOCTL_SIZE) as libc::c_ulong
}

/// A zeroed request buffer with the header filled in: interface version 4.0.0, sizes, name.
fn dm_buffer(name: &str, flags: u32) -> io::Result<Vec<u8>> {
    if name.is_empty() || name.len() >= DM_NAME_LEN || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("device-mapper name {name:?}"),
        ));
    }
    let mut b = vec![0u8; DM_BUF];
    b[0..4].copy_from_slice(&4u32.to_ne_bytes()); // version[0]: major 4; minor and patch 0
    b[12..16].copy_from_slice(&(DM_BUF as u32).to_ne_bytes()); // data_size
    b[16..20].copy_from_slice(&(DM_IOCTL_SIZE as u32).to_ne_bytes()); // data_start
    b[28..32].copy_from_slice(&flags.to_ne_bytes()); // flags
    b[48..48 + name.len()].copy_from_slice(name.as_bytes()); // name, NUL-terminated
    Ok(b)
}

fn dm_call(fd: RawFd, cmd: u8, buf: &mut [u8], what: &str) -> io::Result<()> {
    debug_assert!(buf.len() == DM_BUF);
    // SAFETY: `buf` is a live, writable allocation of DM_BUF bytes that starts with a valid
    // `struct dm_ioctl` whose `data_size` is DM_BUF, so the kernel reads and writes only inside
    // it; the request code encodes the header's size as the kernel expects; `fd` is an open
    // descriptor of /dev/mapper/control owned by the caller for the duration of the call.
    let r = unsafe { libc::ioctl(fd, dm_request(cmd) as _, buf.as_mut_ptr()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("device-mapper {what}: {e}"),
        ));
    }
    Ok(())
}

/// DM_DEV_CREATE: a new, empty mapped device called `name`.
pub fn dm_dev_create(fd: RawFd, name: &str) -> io::Result<()> {
    let mut b = dm_buffer(name, 0)?;
    dm_call(fd, DM_DEV_CREATE_CMD, &mut b, &format!("create {name}"))
}

/// DM_DEV_REMOVE: remove `name` (clean-up after a failed set-up).
pub fn dm_dev_remove(fd: RawFd, name: &str) -> io::Result<()> {
    let mut b = dm_buffer(name, 0)?;
    dm_call(fd, DM_DEV_REMOVE_CMD, &mut b, &format!("remove {name}"))
}

/// DM_TABLE_LOAD: one read-only target of `sectors` sectors, type `target` (e.g. "linear")
/// with the parameter string `params` (e.g. "254:0 2048"), as the inactive table of `name`.
pub fn dm_table_load(
    fd: RawFd,
    name: &str,
    target: &str,
    sectors: u64,
    params: &str,
) -> io::Result<()> {
    let spec_len = (DM_TARGET_SPEC_SIZE + params.len() + 1).div_ceil(8) * 8;
    if target.len() >= 16 || DM_IOCTL_SIZE + spec_len > DM_BUF || params.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("device-mapper table {target} {params:?}"),
        ));
    }
    let mut b = dm_buffer(name, DM_READONLY_FLAG)?;
    b[20..24].copy_from_slice(&1u32.to_ne_bytes()); // target_count
    let s = DM_IOCTL_SIZE;
    // struct dm_target_spec: sector_start 0, length, status 0, next, target_type; then params.
    b[s + 8..s + 16].copy_from_slice(&sectors.to_ne_bytes());
    b[s + 20..s + 24].copy_from_slice(&(spec_len as u32).to_ne_bytes());
    b[s + 24..s + 24 + target.len()].copy_from_slice(target.as_bytes());
    let p = s + DM_TARGET_SPEC_SIZE;
    b[p..p + params.len()].copy_from_slice(params.as_bytes());
    dm_call(
        fd,
        DM_TABLE_LOAD_CMD,
        &mut b,
        &format!("load {target} table of {name}"),
    )
}

/// DM_DEV_SUSPEND without DM_SUSPEND_FLAG: resume `name`, making the loaded table live.
/// Returns the device's `dev_t` from the kernel's answer.
pub fn dm_resume(fd: RawFd, name: &str) -> io::Result<u64> {
    let mut b = dm_buffer(name, 0)?;
    dm_call(fd, DM_DEV_SUSPEND_CMD, &mut b, &format!("resume {name}"))?;
    let mut dev = [0u8; 8];
    dev.copy_from_slice(&b[40..48]);
    Ok(u64::from_ne_bytes(dev))
}

/// `BLKPG`, `_IO(0x12, 105)`, from include/uapi/linux/fs.h; its argument and payload from
/// include/uapi/linux/blkpg.h.
const BLKPG: libc::c_ulong = 0x1269;
/// `BLKPG_DEL_PARTITION`.
const BLKPG_DEL_PARTITION: libc::c_int = 2;

/// `struct blkpg_partition`.
#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [libc::c_char; 64],
    volname: [libc::c_char; 64],
}

/// `struct blkpg_ioctl_arg`.
#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

/// Remove partition `pno` from the kernel's view of the disk open as `fd`.
pub fn blkpg_del_partition(fd: RawFd, pno: u32) -> io::Result<()> {
    let mut part = BlkpgPartition {
        start: 0,
        length: 0,
        pno: libc::c_int::try_from(pno)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "partition number"))?,
        devname: [0; 64],
        volname: [0; 64],
    };
    let mut arg = BlkpgIoctlArg {
        op: BLKPG_DEL_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: std::ptr::addr_of_mut!(part).cast(),
    };
    // SAFETY: `arg` and the `part` it points to are live, properly laid out (`repr(C)` copies of
    // the kernel's structs) for the whole call, and `datalen` is `part`'s size; the kernel only
    // reads them. `fd` is an open block device owned by the caller.
    let r = unsafe { libc::ioctl(fd, BLKPG as _, std::ptr::addr_of_mut!(arg)) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("removing partition {pno} from the kernel's view: {e}"),
        ));
    }
    Ok(())
}

/// `BLKFLSBUF`, `_IO(0x12, 97)` (include/uapi/linux/fs.h).
const BLKFLSBUF: libc::c_ulong = nix::request_code_none!(0x12, 97) as libc::c_ulong;
/// `BLKRRPART`, `_IO(0x12, 95)` (include/uapi/linux/fs.h).
const BLKRRPART: libc::c_ulong = nix::request_code_none!(0x12, 95) as libc::c_ulong;

/// An argument-less block-device ioctl on `fd`.
fn block_none(fd: RawFd, request: libc::c_ulong, what: &str) -> io::Result<()> {
    // SAFETY: both requests this is called with (BLKFLSBUF, BLKRRPART) take no argument, so
    // the kernel reads and writes no memory of ours; `fd` is an open block device owned by the
    // caller for the duration of the call.
    let r = unsafe { libc::ioctl(fd, request as _, 0) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// Write back and drop the kernel's buffer cache of the block device open as `fd`.
pub fn blkflsbuf(fd: RawFd) -> io::Result<()> {
    block_none(fd, BLKFLSBUF, "dropping the device's cache (BLKFLSBUF)")
}

/// Ask the kernel to read the partition table of the disk open as `fd` again.
pub fn blkrrpart(fd: RawFd) -> io::Result<()> {
    block_none(fd, BLKRRPART, "re-reading the partition table (BLKRRPART)")
}

/// Take ownership of a descriptor that a system call (openat2) has just returned.
pub(crate) fn own_new_fd(fd: std::os::fd::RawFd) -> std::fs::File {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was returned by a successful openat2 a moment ago and has not been stored,
    // closed or handed to anything else: this File becomes its only owner.
    unsafe { std::fs::File::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_codes_match_the_kernel_headers() {
        // Values from the C headers (x86-64): DM_DEV_CREATE = 0xc138fd03, DM_TABLE_LOAD =
        // 0xc138fd09, DM_DEV_SUSPEND = 0xc138fd06.
        assert_eq!(dm_request(DM_DEV_CREATE_CMD), 0xc138_fd03);
        assert_eq!(dm_request(DM_TABLE_LOAD_CMD), 0xc138_fd09);
        assert_eq!(dm_request(DM_DEV_SUSPEND_CMD), 0xc138_fd06);
        assert_eq!(std::mem::size_of::<BlkpgPartition>(), 152);
        assert_eq!(std::mem::size_of::<BlkpgIoctlArg>(), 24);
    }

    #[test]
    fn header_layout() {
        let b = dm_buffer("homestick-system", DM_READONLY_FLAG).unwrap();
        assert_eq!(&b[0..4], &4u32.to_ne_bytes());
        assert_eq!(&b[48..64], b"homestick-system");
        assert_eq!(b[64], 0);
        assert!(dm_buffer(&"x".repeat(128), 0).is_err());
        assert!(dm_buffer("a/b", 0).is_err());
    }
}
