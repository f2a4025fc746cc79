//! The boot-time verifier's logic, apart from the PID-1 plumbing in main.rs.
//!
//! It finds the stick by the disk GUID in its policy, verifies it with the same library as
//! `homestick verify` (signature, GPT, partition hashes, ESP files), and checks the rollback
//! index and customer. Everything here works on ordinary files so it can be tested off-boot.

#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};

use homestick_image::disk::FileDisk;
use homestick_image::keys::{load_keyring, TrustedKey};
use homestick_image::manifest::Manifest;
use homestick_image::policy::{BootPolicy, POLICY_FORMAT};
use homestick_image::verify::{verify, NoProgress, VerifyError};

/// Read and check the policy.
pub fn load_policy(path: &Path) -> Result<BootPolicy, String> {
    let b = fs::read(path).map_err(|e| format!("policy {}: {e}", path.display()))?;
    let p: BootPolicy =
        serde_json::from_slice(&b).map_err(|e| format!("policy {}: {e}", path.display()))?;
    if p.format != POLICY_FORMAT {
        return Err(format!(
            "policy {}: format {:?} not supported",
            path.display(),
            p.format
        ));
    }
    Ok(p)
}

/// Load the trusted keys.
pub fn load_keys(dir: &Path) -> Result<Vec<TrustedKey>, String> {
    load_keyring(dir).map_err(|e| format!("trusted keys: {e}"))
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
pub fn disk_guid(dev: &Path) -> Option<String> {
    let d = FileDisk::open(dev).ok()?;
    homestick_image::gpt::read_primary(&d)
        .ok()
        .map(|g| g.header.disk_guid.to_string())
}

/// Partition `n` of disk `name`: `vda2`, or `nvme0n1p2` for names ending in a digit.
pub fn partition_device(dev_dir: &Path, name: &str, n: u32) -> PathBuf {
    if name.ends_with(|c: char| c.is_ascii_digit()) {
        dev_dir.join(format!("{name}p{n}"))
    } else {
        dev_dir.join(format!("{name}{n}"))
    }
}

/// Verify the stick at `dev` against the keys and the policy; the reason on failure is one line.
pub fn verify_stick(
    dev: &Path,
    keys: &[TrustedKey],
    policy: &BootPolicy,
) -> Result<Manifest, String> {
    let disk = FileDisk::open(dev).map_err(|e| format!("{}: cannot open: {e}", dev.display()))?;
    let v = verify(&disk, keys, &NoProgress).map_err(|e| match e {
        VerifyError::Untrusted { failures, .. } => failures.join("; "),
        other => other.to_string(),
    })?;
    let m = v.manifest;
    if m.rollback_index < policy.min_rollback_index {
        return Err(format!(
            "rollback index {} is below the minimum {} of this boot image",
            m.rollback_index, policy.min_rollback_index
        ));
    }
    if m.customer.id != policy.customer_id {
        return Err(format!(
            "the image is for customer {:?}, this boot image for {:?}",
            m.customer.id, policy.customer_id
        ));
    }
    if m.disk.guid != policy.disk_guid {
        return Err(format!(
            "disk GUID {} is not {}",
            m.disk.guid, policy.disk_guid
        ));
    }
    Ok(m)
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

    #[test]
    fn partition_names() {
        let d = Path::new("/dev");
        assert_eq!(partition_device(d, "vda", 2), Path::new("/dev/vda2"));
        assert_eq!(partition_device(d, "sda", 3), Path::new("/dev/sda3"));
        assert_eq!(
            partition_device(d, "nvme0n1", 2),
            Path::new("/dev/nvme0n1p2")
        );
        assert_eq!(
            partition_device(d, "mmcblk0", 1),
            Path::new("/dev/mmcblk0p1")
        );
    }

    #[test]
    fn candidates_skip_virtual_devices() {
        let dir = std::env::temp_dir().join(format!("hs-sysblock-{}", std::process::id()));
        for n in ["vda", "loop0", "sda", "ram0", "dm-1", "sr0"] {
            fs::create_dir_all(dir.join(n)).unwrap();
        }
        assert_eq!(candidate_disks(&dir), ["sda", "vda"]);
        let _ = fs::remove_dir_all(&dir);
    }
}
