//! The boot verifier's initrd: the kernel modules it loads (with what they depend on, in
//! load order) as a newc cpio archive.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::cpio::{archive, Entry};
use crate::error::{output, BaseError};

/// Kernel modules the boot verifier loads from the initrd: virtio, SATA (AHCI), NVMe and USB
/// storage, FAT, squashfs, code pages, and device-mapper with dm-verity.
pub const VERIFIER_MODULES: &[&str] = &[
    "dm_mod",
    "dm_verity",
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "ahci",
    "nvme",
    "xhci_pci",
    "ehci_pci",
    "usb_storage",
    "uas",
    "sd_mod",
    "squashfs",
    "vfat",
    "nls_cp437",
    "nls_iso8859_1",
    "nls_utf8",
    "nls_ascii",
];

/// `depends=` from a module's .modinfo strings.
pub fn module_depends(ko: &[u8]) -> Vec<String> {
    ko.windows(8)
        .position(|w| w == b"depends=")
        .map(|i| {
            let rest = &ko[i + 8..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(0);
            // A module without dependencies.
            String::from_utf8_lossy(&rest[..end])
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The verifier's modules in load order (dependencies first), as paths relative to `root`
/// (a root with `lib/modules/<kv>/kernel`).
pub fn resolve_modules(root: &Path, kv: &str) -> Result<Vec<PathBuf>, BaseError> {
    let dir = root.join("lib/modules").join(kv).join("kernel");
    let mut all = BTreeMap::new();
    for e in walkdir::WalkDir::new(&dir) {
        let e = e.map_err(|e| output(&dir)(e.into()))?;
        if let Some(name) = e.file_name().to_str().and_then(|n| n.strip_suffix(".ko")) {
            all.insert(name.replace('-', "_"), e.path().to_path_buf());
        }
    }
    fn visit(
        name: &str,
        all: &BTreeMap<String, PathBuf>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<PathBuf>,
    ) -> Result<(), BaseError> {
        if !seen.insert(name.to_string()) {
            return Ok(());
        }
        let Some(p) = all.get(name) else {
            return Ok(()); // built into the kernel
        };
        let ko = fs::read(p).map_err(output(p))?;
        for d in module_depends(&ko) {
            visit(&d.replace('-', "_"), all, seen, order)?;
        }
        order.push(p.clone());
        Ok(())
    }
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for w in VERIFIER_MODULES {
        visit(w, &all, &mut seen, &mut order)?;
    }
    Ok(order
        .into_iter()
        .filter_map(|p| p.strip_prefix(root).ok().map(Path::to_path_buf))
        .collect())
}

/// An initrd (newc cpio) holding the given files of `root`, with their directories.
pub fn initrd(root: &Path, files: &[PathBuf]) -> Result<Vec<u8>, BaseError> {
    let mut dirs = BTreeSet::new();
    for rel in files {
        let mut acc = PathBuf::new();
        for c in rel.parent().into_iter().flat_map(|p| p.components()) {
            acc.push(c);
            dirs.insert(acc.clone());
        }
    }
    let mut entries: Vec<Entry> = dirs
        .iter()
        .map(|d| Entry::Dir {
            path: d.to_string_lossy().into_owned(),
            mode: 0o755,
        })
        .collect();
    for rel in files {
        let p = root.join(rel);
        entries.push(Entry::File {
            path: rel.to_string_lossy().into_owned(),
            mode: 0o644,
            data: fs::read(&p).map_err(output(&p))?,
        });
    }
    Ok(archive(&entries, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_dependencies_come_first() {
        let d = tempfile::tempdir().expect("tmp");
        let k = d.path().join("lib/modules/6.1/kernel/drivers");
        fs::create_dir_all(&k).expect("mkdir");
        fs::write(k.join("dm-verity.ko"), b"x\0depends=dm-bufio,dm-mod\0").expect("w");
        fs::write(k.join("dm-bufio.ko"), b"depends=\0").expect("w");
        fs::write(k.join("dm-mod.ko"), b"depends=\0").expect("w");
        let m = resolve_modules(d.path(), "6.1").expect("resolve");
        let names: Vec<String> = m
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["dm-mod.ko", "dm-bufio.ko", "dm-verity.ko"]);
        let cpio = initrd(d.path(), &m).expect("initrd");
        assert!(cpio.windows(12).any(|w| w == b"dm-verity.ko"));
    }
}
