//! Which disks a flash may write, from sysfs and procfs alone.
//!
//! A disk is refused, each time with its reason, when it or anything stacked on it
//! (partitions, device-mapper holders) is mounted, is swap, or holds the running system; when
//! it is read-only, smaller than the image or has other than 512-byte sectors; and, unless
//! the technician allows it, when it is neither removable nor on USB. The roots (`/sys`,
//! `/proc`, `/dev`) are parameters so that the rules are tested on made-up trees as well as
//! on the machine's own.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Where the kernel's views are.
#[derive(Debug, Clone)]
pub struct Roots {
    /// Normally `/sys`.
    pub sys: PathBuf,
    /// Normally `/proc`.
    pub proc: PathBuf,
    /// Normally `/dev`.
    pub dev: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            sys: "/sys".into(),
            proc: "/proc".into(),
            dev: "/dev".into(),
        }
    }
}

/// `major:minor`.
pub type DevNum = (u64, u64);

/// One whole disk as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// Kernel name, e.g. `sdb`.
    pub name: String,
    /// Its node, e.g. `/dev/sdb`.
    pub path: PathBuf,
    /// Device number.
    #[serde(skip)]
    pub dev: DevNum,
    /// Size in bytes.
    pub size: u64,
    /// Logical sector size in bytes.
    pub logical_block_size: u64,
    /// The kernel's removable flag.
    pub removable: bool,
    /// Attached through USB.
    pub usb: bool,
    /// Read-only (write-protect switch, `losetup -r`, ...).
    pub read_only: bool,
    /// Vendor (SCSI inquiry or USB manufacturer).
    pub vendor: String,
    /// Model.
    pub model: String,
    /// Serial number, if the device has one.
    pub serial: Option<String>,
    /// USB port path, e.g. `2-1.3` (bus 2, port 1, hub port 3).
    pub port: Option<String>,
    /// Partitions and holders (device-mapper) stacked on it: name and device number.
    #[serde(skip)]
    pub stacked: Vec<(String, DevNum)>,
}

/// Why a disk is not flashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It or something on it is mounted.
    Mounted {
        /// Which device (the disk, a partition or a holder).
        what: String,
        /// Where.
        at: String,
    },
    /// It or something on it is in use as swap.
    Swap {
        /// Which device.
        what: String,
    },
    /// A device-mapper device (LVM, dm-crypt, ...) sits on it.
    Held {
        /// The holder.
        by: String,
    },
    /// Write-protected.
    ReadOnly,
    /// Too small for the image.
    TooSmall {
        /// The disk's size.
        size: u64,
        /// What the image needs.
        need: u64,
    },
    /// Sectors other than 512 bytes.
    SectorSize(u64),
    /// Neither removable nor on USB (a station's own disk, most likely).
    NotRemovable,
    /// Empty (no medium in a card reader, a loop device without a file).
    NoMedium,
    /// Larger than a stick is expected to be (a USB backup disk?): only written when named.
    TooLarge {
        /// The disk's size.
        size: u64,
        /// The limit (--max-size).
        max: u64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Mounted { what, at } => write!(f, "{what} is mounted at {at}"),
            Refusal::Swap { what } => write!(f, "{what} is in use as swap"),
            Refusal::Held { by } => write!(f, "in use by {by} (device-mapper: LVM, dm-crypt, ...)"),
            Refusal::ReadOnly => write!(f, "read-only (write-protected)"),
            Refusal::TooSmall { size, need } => write!(
                f,
                "too small: {} bytes ({}), the image needs {} bytes ({})",
                size,
                human(*size),
                need,
                human(*need)
            ),
            Refusal::SectorSize(n) => write!(f, "{n}-byte sectors (homestick images need 512)"),
            Refusal::NotRemovable => write!(
                f,
                "neither removable nor on USB: probably one of this machine's own disks (--allow-non-removable to flash it anyway)"
            ),
            Refusal::NoMedium => write!(f, "no medium (size 0)"),
            Refusal::TooLarge { size, max } => write!(
                f,
                "{} ({size} bytes), larger than --max-size {}: a USB backup disk? Name it with --target to write it",
                human(*size),
                human(*max)
            ),
        }
    }
}

/// `14.9 GiB`.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    }
}

/// Why a path given as a target is not a disk this module can describe.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Cannot be examined.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file, a directory, a character device.
    #[error("{0}: not a block device")]
    NotBlock(PathBuf),
    /// A partition rather than a whole disk.
    #[error("{path}: a partition; give the whole disk ({disk})")]
    Partition {
        /// The path.
        path: PathBuf,
        /// The disk it is on.
        disk: PathBuf,
    },
}

fn read_trim(p: &Path) -> Option<String> {
    fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn read_num(p: &Path) -> Option<u64> {
    read_trim(p)?.parse().ok()
}

fn parse_devnum(s: &str) -> Option<DevNum> {
    let (a, b) = s.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The USB device directory (`.../usb2/2-1`) among a sysfs path's ancestors, if any: the last
/// component named like `2-1` or `2-1.3` (bus-port[.port...]) before the interface (`2-1:1.0`).
fn usb_device_dir(canonical: &Path) -> Option<PathBuf> {
    let mut found = None;
    let mut acc = PathBuf::new();
    for c in canonical.components() {
        acc.push(c);
        let s = c.as_os_str().to_string_lossy();
        let is_port = s.split_once('-').is_some_and(|(bus, ports)| {
            !bus.is_empty()
                && bus.bytes().all(|b| b.is_ascii_digit())
                && !ports.is_empty()
                && ports.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        });
        if is_port {
            found = Some(acc.clone());
        }
        if s.contains(':') && found.is_some() {
            break;
        }
    }
    found
}

/// Describe the whole disk `name` (as under /sys/class/block).
pub fn describe(roots: &Roots, name: &str) -> io::Result<Device> {
    let class = roots.sys.join("class/block").join(name);
    let dev = read_trim(&class.join("dev"))
        .and_then(|s| parse_devnum(&s))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{name}: no device number in sysfs"),
            )
        })?;
    let canonical = fs::canonicalize(&class).unwrap_or_else(|_| class.clone());
    let usb_dir = usb_device_dir(&canonical);
    let device = class.join("device");
    // sysfs gives no vendor or model for some devices: shown as empty, as lsblk does.
    let text = |p: PathBuf| read_trim(&p).unwrap_or_default();
    let mut vendor = text(device.join("vendor"));
    let mut model = text(device.join("model"));
    let mut serial = read_trim(&device.join("serial"));
    if let Some(u) = &usb_dir {
        if vendor.is_empty() {
            vendor = text(u.join("manufacturer"));
        }
        if model.is_empty() {
            model = text(u.join("product"));
        }
        serial = read_trim(&u.join("serial")).or(serial);
    }
    if let Some(backing) = read_trim(&class.join("loop/backing_file")) {
        vendor = "loop".into();
        model = backing;
    }
    Ok(Device {
        name: name.to_string(),
        path: roots.dev.join(name),
        dev,
        size: read_num(&class.join("size")).unwrap_or(0) * 512,
        logical_block_size: read_num(&class.join("queue/logical_block_size")).unwrap_or(512),
        removable: read_num(&class.join("removable")) == Some(1),
        usb: usb_dir.is_some(),
        read_only: read_num(&class.join("ro")) == Some(1),
        vendor,
        model,
        serial,
        port: usb_dir.and_then(|u| u.file_name().map(|n| n.to_string_lossy().into_owned())),
        stacked: stacked(roots, name),
    })
}

/// Partitions of `name` and every holder above it or them, recursively (bounded): partitions
/// are the subdirectories with a `partition` file, holders the links under `holders/`.
fn stacked(roots: &Roots, name: &str) -> Vec<(String, DevNum)> {
    let start = roots.sys.join("class/block").join(name);
    let mut todo: Vec<(String, PathBuf)> = vec![(name.to_string(), start)];
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    while let Some((n, dir)) = todo.pop() {
        if !seen.insert(n.clone()) || seen.len() > 4096 {
            continue;
        }
        if n != name {
            if let Some(d) = read_trim(&dir.join("dev")).and_then(|s| parse_devnum(&s)) {
                out.push((n.clone(), d));
            }
        }
        let children = |sub: &Path, want_partition: bool| -> Vec<(String, PathBuf)> {
            let Ok(rd) = fs::read_dir(sub) else {
                return Vec::new();
            };
            rd.flatten()
                .filter(|e| !want_partition || e.path().join("partition").exists())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        };
        todo.extend(children(&dir, true));
        todo.extend(children(&dir.join("holders"), false));
    }
    out.sort();
    out
}

/// What the running system uses: mounted devices (with where) and swap devices.
#[derive(Debug, Clone, Default)]
pub struct InUse {
    /// Device number → mount point (the first one).
    pub mounts: BTreeMap<DevNum, String>,
    /// Swap devices.
    pub swaps: BTreeSet<DevNum>,
}

fn devnum_of(path: &Path) -> Option<DevNum> {
    let m = fs::metadata(path).ok()?;
    m.file_type()
        .is_block_device()
        .then(|| homestick_sys::split_dev(m.rdev()))
}

/// Unescape mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Read /proc/self/mountinfo and /proc/swaps. Both the device number of each mount and its
/// source (when that is a block device node) count: a btrfs mount shows an anonymous number.
pub fn in_use(roots: &Roots) -> io::Result<InUse> {
    let mut u = InUse::default();
    let info = fs::read_to_string(roots.proc.join("self/mountinfo"))?;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|&x| x == "-") else {
            continue;
        };
        let (Some(num), Some(at)) = (f.get(2), f.get(4)) else {
            continue;
        };
        let at = unescape(at);
        if let Some(d) = parse_devnum(num) {
            u.mounts.entry(d).or_insert_with(|| at.clone());
        }
        if let Some(src) = f.get(sep + 2) {
            if src.starts_with('/') {
                if let Some(d) = devnum_of(Path::new(&unescape(src))) {
                    u.mounts.entry(d).or_insert(at);
                }
            }
        }
    }
    if let Ok(swaps) = fs::read_to_string(roots.proc.join("swaps")) {
        for line in swaps.lines().skip(1) {
            if let Some(p) = line.split_whitespace().next() {
                if let Some(d) = devnum_of(Path::new(&unescape(p))) {
                    u.swaps.insert(d);
                }
            }
        }
    }
    Ok(u)
}

/// Every reason not to flash `d` with an image of `need` bytes, in a fixed order; empty if it
/// may be flashed.
pub fn refusals(d: &Device, u: &InUse, need: u64, allow_non_removable: bool) -> Vec<Refusal> {
    let mut r = Vec::new();
    if d.size == 0 {
        r.push(Refusal::NoMedium);
        return r;
    }
    let all = std::iter::once((d.name.clone(), d.dev)).chain(d.stacked.iter().cloned());
    for (name, num) in all {
        if let Some(at) = u.mounts.get(&num) {
            r.push(Refusal::Mounted {
                what: name.clone(),
                at: at.clone(),
            });
        }
        if u.swaps.contains(&num) {
            r.push(Refusal::Swap { what: name.clone() });
        }
        if name.starts_with("dm-") || name.starts_with("md") {
            r.push(Refusal::Held { by: name });
        }
    }
    if d.read_only {
        r.push(Refusal::ReadOnly);
    }
    if d.size < need {
        r.push(Refusal::TooSmall { size: d.size, need });
    }
    if d.logical_block_size != 512 {
        r.push(Refusal::SectorSize(d.logical_block_size));
    }
    if !allow_non_removable && !d.removable && !d.usb {
        r.push(Refusal::NotRemovable);
    }
    r
}

/// A disk found by scanning (not named with --target) larger than `max` bytes is refused.
pub fn too_large(d: &Device, max: u64) -> Option<Refusal> {
    (d.size > max).then_some(Refusal::TooLarge { size: d.size, max })
}

/// The whole disk with device number `dev`, described afresh from sysfs (its name may have
/// changed; its number is what was checked).
pub fn describe_dev(roots: &Roots, dev: DevNum) -> io::Result<Device> {
    let sysdir = roots.sys.join(format!("dev/block/{}:{}", dev.0, dev.1));
    let name = fs::canonicalize(&sysdir)?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| io::Error::other("no sysfs name"))?;
    let d = describe(roots, &name)?;
    if d.dev != dev {
        return Err(io::Error::other(format!(
            "{name} is now device {}:{}",
            d.dev.0, d.dev.1
        )));
    }
    Ok(d)
}

/// Every whole disk under /sys/block that a flash could consider (not RAM disks, not
/// device-mapper or md devices, not unused loop devices).
pub fn scan(roots: &Roots) -> io::Result<Vec<Device>> {
    let mut out = Vec::new();
    let mut names: Vec<String> = fs::read_dir(roots.sys.join("block"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !["ram", "zram", "dm-", "md", "sr", "fd", "nbd"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .collect();
    names.sort();
    for n in names {
        match describe(roots, &n) {
            Ok(d) if n.starts_with("loop") && d.size == 0 => {}
            Ok(d) => out.push(d),
            Err(_) => {}
        }
    }
    Ok(out)
}

/// The whole disk a target path names: it must be a block device and not a partition.
pub fn resolve(roots: &Roots, path: &Path) -> Result<Device, DeviceError> {
    let io = |source| DeviceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let m = fs::metadata(path).map_err(io)?;
    if !m.file_type().is_block_device() {
        return Err(DeviceError::NotBlock(path.to_path_buf()));
    }
    let (major, minor) = homestick_sys::split_dev(m.rdev());
    let sysdir = roots.sys.join(format!("dev/block/{major}:{minor}"));
    if sysdir.join("partition").exists() {
        let disk = fs::canonicalize(sysdir.join(".."))
            .ok()
            .and_then(|p| p.file_name().map(|n| roots.dev.join(n)))
            .unwrap_or_else(|| PathBuf::from("?"));
        return Err(DeviceError::Partition {
            path: path.to_path_buf(),
            disk,
        });
    }
    let name = fs::canonicalize(&sysdir)
        .map_err(io)?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| io(io::Error::other("no sysfs name")))?;
    let mut d = describe(roots, &name).map_err(io)?;
    d.path = path.to_path_buf();
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(name: &str) -> Device {
        Device {
            name: name.into(),
            path: format!("/dev/{name}").into(),
            dev: (8, 16),
            size: 16 << 30,
            logical_block_size: 512,
            removable: true,
            usb: true,
            read_only: false,
            vendor: "V".into(),
            model: "M".into(),
            serial: Some("S1".into()),
            port: Some("2-1".into()),
            stacked: vec![("sdb1".into(), (8, 17))],
        }
    }

    #[test]
    fn each_rule_refuses_on_its_own() {
        type Case = (&'static str, fn(&mut Device, &mut InUse), Refusal);
        let cases: Vec<Case> = vec![
            (
                "partition mounted",
                |_, u| {
                    u.mounts.insert((8, 17), "/media/x".into());
                },
                Refusal::Mounted {
                    what: "sdb1".into(),
                    at: "/media/x".into(),
                },
            ),
            (
                "disk mounted",
                |_, u| {
                    u.mounts.insert((8, 16), "/".into());
                },
                Refusal::Mounted {
                    what: "sdb".into(),
                    at: "/".into(),
                },
            ),
            (
                "swap",
                |_, u| {
                    u.swaps.insert((8, 17));
                },
                Refusal::Swap {
                    what: "sdb1".into(),
                },
            ),
            (
                "holder",
                |d, _| d.stacked.push(("dm-0".into(), (254, 0))),
                Refusal::Held { by: "dm-0".into() },
            ),
            ("read-only", |d, _| d.read_only = true, Refusal::ReadOnly),
            (
                "small",
                |d, _| d.size = 1 << 20,
                Refusal::TooSmall {
                    size: 1 << 20,
                    need: 8 << 20,
                },
            ),
            (
                "4K",
                |d, _| d.logical_block_size = 4096,
                Refusal::SectorSize(4096),
            ),
            (
                "fixed",
                |d, _| {
                    d.removable = false;
                    d.usb = false;
                },
                Refusal::NotRemovable,
            ),
            ("empty", |d, _| d.size = 0, Refusal::NoMedium),
        ];
        let mut failed = Vec::new();
        for (what, patch, want) in cases {
            let mut d = dev("sdb");
            let mut u = InUse::default();
            patch(&mut d, &mut u);
            let got = refusals(&d, &u, 8 << 20, false);
            if got != vec![want.clone()] {
                failed.push(format!("{what}: {got:?}, expected [{want:?}]"));
            }
        }
        assert!(failed.is_empty(), "{failed:#?}");
        assert!(refusals(&dev("sdb"), &InUse::default(), 8 << 20, false).is_empty());
        let mut fixed = dev("sdb");
        fixed.removable = false;
        fixed.usb = false;
        assert!(refusals(&fixed, &InUse::default(), 8 << 20, true).is_empty());
    }

    #[test]
    fn usb_port_and_serial_from_a_made_up_sysfs() {
        let t = tempfile::tempdir().unwrap();
        let sys = t.path().join("sys");
        let usb = sys.join("devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1.3");
        let blockdir = usb.join("2-1.3:1.0/host6/target6:0:0/6:0:0:0/block/sdb");
        fs::create_dir_all(blockdir.join("sdb1")).unwrap();
        fs::create_dir_all(blockdir.join("queue")).unwrap();
        fs::create_dir_all(blockdir.join("holders")).unwrap();
        let scsi = usb.join("2-1.3:1.0/host6/target6:0:0/6:0:0:0");
        fs::write(scsi.join("vendor"), "SanDisk \n").unwrap();
        fs::write(scsi.join("model"), "Ultra           \n").unwrap();
        fs::write(usb.join("serial"), "4C530001\n").unwrap();
        std::os::unix::fs::symlink(&scsi, blockdir.join("device")).unwrap();
        for (f, v) in [
            ("dev", "8:16"),
            ("size", "30031872"),
            ("removable", "1"),
            ("ro", "0"),
            ("queue/logical_block_size", "512"),
        ] {
            fs::write(blockdir.join(f), v).unwrap();
        }
        fs::write(blockdir.join("sdb1/partition"), "1").unwrap();
        fs::write(blockdir.join("sdb1/dev"), "8:17").unwrap();
        fs::create_dir_all(sys.join("class/block")).unwrap();
        std::os::unix::fs::symlink(&blockdir, sys.join("class/block/sdb")).unwrap();
        let roots = Roots {
            sys,
            proc: t.path().join("proc"),
            dev: "/dev".into(),
        };
        let d = describe(&roots, "sdb").unwrap();
        assert_eq!(d.vendor, "SanDisk");
        assert_eq!(d.model, "Ultra");
        assert_eq!(d.serial.as_deref(), Some("4C530001"));
        assert_eq!(d.port.as_deref(), Some("2-1.3"));
        assert!(d.usb && d.removable && !d.read_only);
        assert_eq!(d.size, 30031872 * 512);
        assert_eq!(d.stacked, vec![("sdb1".to_string(), (8, 17))]);
    }

    #[test]
    fn a_disk_found_by_scanning_above_the_size_limit_is_refused() {
        let mut d = dev("sdz");
        d.size = 2 << 40;
        let r = too_large(&d, 256 << 30).unwrap();
        assert!(
            r.to_string().contains("larger than --max-size 256.0 GiB"),
            "{r}"
        );
        assert!(r.to_string().contains("--target"), "{r}");
        d.size = 64 << 30;
        assert_eq!(too_large(&d, 256 << 30), None);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/media/my\\040stick"), "/media/my stick");
        assert_eq!(unescape("/a\\"), "/a\\");
    }
}
