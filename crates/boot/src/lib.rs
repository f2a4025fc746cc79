//! The boot-time verifier's logic, apart from the PID-1 plumbing in main.rs.
//!
//! It finds the stick by the disk GUID in its policy, verifies it with the same library as
//! `homestick verify` (LBA 0 and the sector size, signature, GPT, partition hashes, ESP files)
//! and the policy's checks (customer, minimum rollback index, disk GUID), and then says exactly
//! which sector ranges to map: the verified ones, from the signed manifest. The kernel's own
//! partition scan is never used. Everything here works on ordinary files so it can be tested
//! off-boot.

#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use homestick_image::disk::{Disk, FileDisk, SECTOR};
use homestick_image::gpt::{TYPE_HOMESTICK_PROFILE, TYPE_ROOT_X86_64};
use homestick_image::keys::{load_keyring, TrustedKey};
use homestick_image::manifest::Manifest;
use homestick_image::policy::{BootPolicy, Expectations};
use homestick_image::verify::{verify_with, NoProgress, VerifyError};

/// Why the boot verifier refuses, before or after looking at the stick.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootError {
    /// The policy in the initramfs cannot be read.
    #[error("policy {}: {source}", path.display())]
    PolicyRead {
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The policy in the initramfs is not usable.
    #[error("policy {}: {source}", path.display())]
    Policy {
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: homestick_image::policy::PolicyError,
    },
    /// The trusted keys in the initramfs are not usable.
    #[error("trusted keys: {0}")]
    Keys(#[source] homestick_image::keys::KeyError),
    /// The stick cannot be opened.
    #[error("{}: cannot open: {source}", dev.display())]
    Open {
        /// The device.
        dev: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The stick is not trusted, or cannot be judged.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A trusted manifest without a system or profile partition: nothing to start.
    #[error("the signed manifest has no {0} partition")]
    NoPartition(&'static str),
}

/// Read and check the policy.
pub fn load_policy(path: &Path) -> Result<BootPolicy, BootError> {
    let b = fs::read(path).map_err(|source| BootError::PolicyRead {
        path: path.to_path_buf(),
        source,
    })?;
    BootPolicy::from_json(&b).map_err(|source| BootError::Policy {
        path: path.to_path_buf(),
        source,
    })
}

/// Load the trusted keys.
pub fn load_keys(dir: &Path) -> Result<Vec<TrustedKey>, BootError> {
    load_keyring(dir).map_err(BootError::Keys)
}

/// Block devices worth looking at (no loop, ram, device-mapper or optical devices).
pub fn candidate_disks(sys_block: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(sys_block)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.retain(|n| {
        !["loop", "ram", "dm-", "sr", "zram", "md"]
            .iter()
            .any(|p| n.starts_with(p))
    });
    names.sort();
    names
}

/// The disk GUID in a device's primary GPT, if it has one.
pub fn disk_guid(dev: &Path) -> Option<uuid::Uuid> {
    let d = FileDisk::open(dev).ok()?;
    homestick_image::gpt::read_primary(&d)
        .ok()
        .map(|g| g.header.disk_guid)
}

/// The boot verifier's whole decision on a disk: the full verification plus the policy's
/// checks. (A block device's logical sector size comes with the disk: [`FileDisk`] reads it
/// from sysfs.)
pub fn decide<D: Disk + ?Sized>(
    disk: &D,
    keys: &[TrustedKey],
    policy: &BootPolicy,
) -> Result<Manifest, BootError> {
    let v = verify_with(disk, keys, &Expectations::from(policy), &NoProgress)?;
    Ok(v.manifest)
}

/// Verify the stick at `dev` against the keys and the policy.
pub fn verify_stick(
    dev: &Path,
    keys: &[TrustedKey],
    policy: &BootPolicy,
) -> Result<Manifest, BootError> {
    let disk = FileDisk::open(dev).map_err(|source| BootError::Open {
        dev: dev.to_path_buf(),
        source,
    })?;
    decide(&disk, keys, policy)
}

/// One range of the stick to map and mount: exactly a partition the signed manifest describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// device-mapper name, also the node's name under /dev.
    pub name: &'static str,
    /// First sector on the whole disk.
    pub start: u64,
    /// Length in sectors.
    pub sectors: u64,
}

/// Name of the mapped system partition.
pub const SYSTEM_MAP: &str = "homestick-system";
/// Name of the mapped profile partition.
pub const PROFILE_MAP: &str = "homestick-profile";

/// The system and profile ranges to map, from the verified manifest (by partition type, not
/// by number or by anything the kernel found on the disk).
pub fn mappings(m: &Manifest) -> Result<[Mapping; 2], BootError> {
    let find = |ty, name: &'static str, what: &'static str| {
        let p = m
            .partitions
            .iter()
            .find(|p| p.type_guid == ty)
            .ok_or(BootError::NoPartition(what))?;
        Ok::<_, BootError>(Mapping {
            name,
            start: p.first_lba,
            sectors: p.len() / SECTOR,
        })
    };
    Ok([
        find(TYPE_ROOT_X86_64, SYSTEM_MAP, "system")?,
        find(TYPE_HOMESTICK_PROFILE, PROFILE_MAP, "profile")?,
    ])
}

/// The partitions the kernel found on `disk` (from sysfs): their numbers, so they can be
/// removed from its view before anything else can use them. Not being able to tell is an
/// error, never "none".
pub fn kernel_partitions(sys_block: &Path, disk: &str) -> std::io::Result<Vec<u32>> {
    let mut out = Vec::new();
    for e in fs::read_dir(sys_block.join(disk))? {
        let e = e?;
        if !e.file_name().to_string_lossy().starts_with(disk) {
            continue;
        }
        let text = fs::read_to_string(e.path().join("partition"))?;
        let n = text.trim().parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: {:?} is not a partition number",
                    e.path().display(),
                    text.trim()
                ),
            )
        })?;
        out.push(n);
    }
    out.sort_unstable();
    Ok(out)
}

/// The whole-disk device node under `dev_dir`.
pub fn disk_device(dev_dir: &Path, name: &str) -> PathBuf {
    dev_dir.join(name)
}

/// A watchdog: unless disarmed within `timeout`, runs `on_expire` on its own thread. Exactly
/// one of the two happens: [`Watchdog::disarm`] tells the caller which.
#[derive(Debug)]
pub struct Watchdog {
    /// 0: armed, 1: disarmed, 2: fired.
    state: Arc<AtomicU8>,
}

impl Watchdog {
    /// Start the clock.
    pub fn start(timeout: Duration, on_expire: impl FnOnce() + Send + 'static) -> Watchdog {
        let state = Arc::new(AtomicU8::new(0));
        let flag = Arc::clone(&state);
        std::thread::spawn(move || {
            std::thread::sleep(timeout);
            if flag
                .compare_exchange(0, 2, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                on_expire();
            }
        });
        Watchdog { state }
    }

    /// Stop the clock. Returns false if it had already fired (`on_expire` is running): the
    /// caller must not go on as if in time.
    pub fn disarm(&self) -> bool {
        self.state
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

/// One line without control characters, for the console.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn candidates_skip_virtual_devices() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["vda", "loop0", "sda", "ram0", "dm-1", "sr0"] {
            fs::create_dir_all(dir.path().join(n)).unwrap();
        }
        assert_eq!(candidate_disks(dir.path()), ["sda", "vda"]);
    }

    #[test]
    fn kernel_partitions_come_from_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        for (n, pno) in [("vda1", "1"), ("vda3", "3\n"), ("vda2", "2")] {
            fs::create_dir_all(dir.path().join("vda").join(n)).unwrap();
            fs::write(dir.path().join("vda").join(n).join("partition"), pno).unwrap();
        }
        fs::create_dir_all(dir.path().join("vda/queue")).unwrap();
        assert_eq!(kernel_partitions(dir.path(), "vda").unwrap(), [1, 2, 3]);
        assert!(
            kernel_partitions(dir.path(), "sdz").is_err(),
            "no sysfs entry: an error"
        );
        fs::write(dir.path().join("vda/vda2/partition"), "two").unwrap();
        assert!(kernel_partitions(dir.path(), "vda").is_err());
    }

    #[test]
    fn watchdog_fires_unless_disarmed() {
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        let fires = Watchdog::start(Duration::from_millis(50), move || {
            let _ = tx.send("fired");
        });
        let quiet = Watchdog::start(Duration::from_millis(50), move || {
            let _ = tx2.send("disarmed one fired");
        });
        assert!(quiet.disarm(), "disarmed in time");
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("fired"));
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        assert!(!fires.disarm(), "too late: it fired");
    }
}
