//! The boot-time verifier's logic, apart from the PID-1 plumbing in main.rs.
//!
//! It finds the stick by the disk GUID in its policy, verifies it with the same library as
//! `homestick verify` (LBA 0 and the sector size, signature, GPT, ESP files, the system's
//! dm-verity superblock and tree top against the signed root hash) and the policy's checks
//! (customer, minimum rollback index, disk GUID); reads the profile partition into memory once,
//! checks its hash and takes its files from exactly those bytes; and then says exactly which
//! sector ranges to map and the dm-verity table over them, from the signed manifest. The
//! kernel's own partition scan is never used, and nothing on the stick is read again unchecked:
//! the kernel checks every system block against the tree as it reads it. Everything here works
//! on ordinary files so it can be tested off-boot.

#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use homestick_image::disk::{Disk, FileDisk, SECTOR};
use homestick_image::fat::{self, FatReader, ReadLimits};
use homestick_image::gpt::{TYPE_HOMESTICK_PROFILE, TYPE_ROOT_X86_64};
use homestick_image::hash::hex;
use homestick_image::keys::{load_keyring, TrustedKey};
use homestick_image::manifest::Manifest;
use homestick_image::policy::{BootPolicy, Expectations, OnCorruption};
use homestick_image::verify::{verify_depth, Depth, NoProgress, VerifyError};
use sha2::{Digest, Sha256};

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
    /// The system partition has no dm-verity tree in the signed manifest.
    #[error("the signed manifest has no dm-verity tree for the system partition")]
    NoVerity,
    /// The profile partition: unreadable, too large, not the signed bytes, or no sound FAT.
    #[error("partition {what}: {why}")]
    Profile {
        /// Which partition.
        what: String,
        /// Why.
        why: String,
    },
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
            // No such directory: no entries.
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
/// checks (customer, rollback index, disk GUID, revocation list, and expiry against `now`,
/// the PC's clock). (A block device's logical sector size comes with the disk: [`FileDisk`]
/// reads it from sysfs.)
pub fn decide<D: Disk + ?Sized>(
    disk: &D,
    keys: &[TrustedKey],
    policy: &BootPolicy,
    now: i64,
) -> Result<Manifest, BootError> {
    let expect = Expectations {
        now: Some(now),
        ..Expectations::from(policy)
    };
    let m = verify_depth(
        disk,
        keys,
        &expect,
        Depth::Boot {
            deferred: &[PROFILE_NUMBER],
        },
        &NoProgress,
    )?
    .manifest;
    system_mapping(&m)?;
    Ok(m)
}

/// The profile partition's number; the boot verifier hashes it itself, from memory.
pub const PROFILE_NUMBER: u32 = 3;

/// Most bytes of a profile partition the verifier reads into memory.
pub const MAX_PROFILE_BYTES: u64 = 64 << 20;

/// Read the profile partition into memory once and check its SHA-256 against the signed
/// manifest: what the system gets is taken from exactly these bytes.
pub fn read_profile<D: Disk + ?Sized>(disk: &D, m: &Manifest) -> Result<Vec<u8>, BootError> {
    let p = m
        .partitions
        .iter()
        .find(|p| p.number == PROFILE_NUMBER && p.type_guid == TYPE_HOMESTICK_PROFILE)
        .ok_or(BootError::NoPartition("profile"))?;
    let err = |why: String| BootError::Profile {
        what: p.label(),
        why,
    };
    if p.len() > MAX_PROFILE_BYTES {
        return Err(err(format!(
            "{} bytes, more than the {MAX_PROFILE_BYTES} the verifier reads",
            p.len()
        )));
    }
    let want = p
        .sha256
        .ok_or_else(|| err("no SHA-256 in the manifest".into()))?;
    let mut b = vec![0u8; p.len() as usize];
    disk.read_exact_at(&mut b, p.offset())
        .map_err(|e| err(format!("cannot read: {e}")))?;
    let got: [u8; 32] = Sha256::digest(&b).into();
    if want != got {
        return Err(err(format!(
            "SHA-256 of sectors {}..={} is {}, the signed manifest says {want}",
            p.first_lba,
            p.last_lba,
            hex(&got)
        )));
    }
    Ok(b)
}

/// Most files taken from a profile.
pub const MAX_PROFILE_FILES: usize = 1000;

/// The files of a verified profile partition (`bytes` from [`read_profile`]), read by
/// homestick's own bounded FAT reader: path and contents, in order.
pub fn profile_files(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, BootError> {
    let err = |why: String| BootError::Profile {
        what: format!("{PROFILE_NUMBER} (profile)"),
        why,
    };
    let len = bytes.len() as u64;
    let fat = FatReader::open(bytes, 0, len, fat::budget_for(len))
        .map_err(|e| err(format!("FAT unreadable: {e}")))?;
    fat.check_fat_tables().map_err(|e| err(e.to_string()))?;
    let listed = fat
        .list(ReadLimits::default())
        .map_err(|e| err(format!("cannot list files: {e}")))?;
    if listed.len() > MAX_PROFILE_FILES {
        return Err(err(format!("more than {MAX_PROFILE_FILES} files")));
    }
    let mut out = Vec::new();
    for f in listed {
        if let Some(why) = fat::path_problem(&f.path) {
            return Err(err(format!("{}: {why}", f.path)));
        }
        let data = fat
            .read(&f.path, len)
            .map_err(|e| err(format!("{}: {e}", f.path)))?
            .ok_or_else(|| err(format!("{}: listed but not found", f.path)))?;
        out.push((f.path, data));
    }
    Ok(out)
}

pub fn verify_stick(
    dev: &Path,
    keys: &[TrustedKey],
    policy: &BootPolicy,
    now: i64,
) -> Result<Verdict, BootError> {
    let disk = FileDisk::open(dev).map_err(|source| BootError::Open {
        dev: dev.to_path_buf(),
        source,
    })?;
    let manifest = decide(&disk, keys, policy, now)?;
    let profile = profile_files(&read_profile(&disk, &manifest)?)?;
    Ok(Verdict { manifest, profile })
}

/// A stick that may be started: its signed manifest and the files of its verified profile.
#[derive(Debug)]
pub struct Verdict {
    /// The signed manifest.
    pub manifest: Manifest,
    /// The profile's files, from the very bytes that were hashed.
    pub profile: Vec<(String, Vec<u8>)>,
}

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
/// The dm-verity device the system is mounted from (node /dev/homestick-verity).
pub const SYSTEM_MAP: &str = "homestick-verity";
/// The linear map of the system partition: dm-verity's data device.
pub const DATA_MAP: &str = "homestick-system";
/// The linear map of the hash partition: dm-verity's hash device.
pub const HASH_MAP: &str = "homestick-system-hash";

/// The system's dm-verity device: the two verified ranges it is made of and its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityMapping {
    /// The system partition.
    pub data: Mapping,
    /// The hash partition.
    pub hash: Mapping,
    /// Data blocks (4096 bytes each).
    pub data_blocks: u64,
    /// The signed root hash, hex.
    pub root_hash: String,
    /// The salt, hex.
    pub salt: String,
}

/// The system's dm-verity device, from the signed manifest only.
pub fn system_mapping(m: &Manifest) -> Result<VerityMapping, BootError> {
    let sys = m
        .partitions
        .iter()
        .find(|p| p.type_guid == TYPE_ROOT_X86_64)
        .ok_or(BootError::NoPartition("system"))?;
    let v = sys.verity.as_ref().ok_or(BootError::NoVerity)?;
    let hash = m
        .partitions
        .iter()
        .find(|p| p.number == v.hash_partition)
        .ok_or(BootError::NoPartition("system-verity"))?;
    let map = |name, p: &homestick_image::manifest::Partition| Mapping {
        name,
        start: p.first_lba,
        sectors: p.len() / SECTOR,
    };
    Ok(VerityMapping {
        data: map(DATA_MAP, sys),
        hash: map(HASH_MAP, hash),
        data_blocks: v.data_blocks,
        root_hash: v.root_hash.to_string(),
        salt: v.salt.clone(),
    })
}

impl VerityMapping {
    /// The dm-verity table's parameters over the data and hash devices ("major:minor"):
    /// format 1, 4096-byte blocks, the tree after the superblock (hash block 1), SHA-256, the
    /// signed root hash and salt, and what a bad block does.
    pub fn table(&self, data_dev: &str, hash_dev: &str, on: OnCorruption) -> String {
        let salt = if self.salt.is_empty() {
            "-"
        } else {
            &self.salt
        };
        format!(
            "1 {data_dev} {hash_dev} 4096 4096 {} 1 sha256 {} {salt}{}",
            self.data_blocks,
            self.root_hash,
            on.table_args()
        )
    }

    /// Sectors of the dm-verity device.
    pub fn sectors(&self) -> u64 {
        self.data_blocks * 4096 / SECTOR
    }
}

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
    fn the_verdict_the_dm_verity_table_and_the_profile_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let img = homestick_testkit::build_fixture_image(dir.path(), 3).unwrap();
        let mut bytes = fs::read(&img).unwrap();
        let keys = homestick_testkit::test_keyring().unwrap();
        let st = homestick_image::verify::read_statement(&bytes).unwrap();
        let m = Manifest::parse(&st.manifest).unwrap();
        let policy = homestick_testkit::boot_policy_for(&m);
        let got = decide(&bytes, &keys, &policy, homestick_image::time::now()).unwrap();
        assert_eq!(got, m);
        let v = system_mapping(&m).unwrap();
        let sys = &m.partitions[1];
        assert_eq!(
            (v.data.start, v.data.sectors),
            (sys.first_lba, sys.len() / 512)
        );
        assert_eq!(v.hash.start, m.partitions[3].first_lba);
        let root = sys.verity.as_ref().unwrap().root_hash.to_string();
        assert_eq!(
            v.table("254:0", "254:1", OnCorruption::Eio),
            format!("1 254:0 254:1 4096 4096 768 1 sha256 {root} {}", v.salt)
        );
        assert!(v
            .table("254:0", "254:1", OnCorruption::Restart)
            .ends_with(" 1 restart_on_corruption"));
        assert_eq!(v.sectors(), 768 * 8);
        let files = profile_files(&read_profile(&bytes, &m).unwrap()).unwrap();
        assert!(files
            .iter()
            .any(|(p, d)| p == "profile.json" && !d.is_empty()));
        // A changed byte in the profile: refused, before anything is taken from it.
        let at = m.partitions[2].offset() as usize + 70_000;
        bytes[at] ^= 1;
        let e = read_profile(&bytes, &m).unwrap_err().to_string();
        assert!(
            e.starts_with("partition 3 (profile): SHA-256 of sectors"),
            "{e}"
        );
        bytes[at] ^= 1;
        // A changed byte in the system's data: the verdict does not read it (the kernel will).
        bytes[sys.offset() as usize + 5000] ^= 1;
        assert!(decide(&bytes, &keys, &policy, homestick_image::time::now()).is_ok());
        // One in the tree's top: refused.
        let top = m.partitions[3].offset() as usize + 4096 + 3;
        bytes[top] ^= 1;
        let e = decide(&bytes, &keys, &policy, homestick_image::time::now())
            .unwrap_err()
            .to_string();
        assert!(e.contains("top level of the hash tree"), "{e}");
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
