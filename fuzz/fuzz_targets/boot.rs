//! The boot verifier's whole decision on a disk image (`homestick_boot::decide`: verification
//! plus the boot policy's checks, the dm-verity superblock and tree top, the ranges it would
//! map; then the profile read into memory, hashed and its files taken), on structure-aware
//! edits of a real signed image (its metadata and the hash partition's superblock and top
//! block). Any verdict is fine; a panic or a hang (libFuzzer's -timeout) is a bug.
#![no_main]
use std::sync::OnceLock;

use homestick_image::policy::BootPolicy;
use libfuzzer_sys::fuzz_target;

mod common;

/// The common regions, and the hash partition's superblock and top block.
fn regions() -> &'static [(usize, usize); 3] {
    static R: OnceLock<[(usize, usize); 3]> = OnceLock::new();
    R.get_or_init(|| {
        let w = common::world();
        let img = w.image.lock().unwrap_or_else(|e| e.into_inner());
        let st = homestick_image::verify::read_statement(&*img).expect("statement");
        let m = homestick_image::manifest::Manifest::parse(&st.manifest).expect("manifest");
        let hash = m
            .partitions
            .iter()
            .find(|p| p.name == "system-verity")
            .expect("verity");
        let at = hash.offset() as usize;
        [
            common::DISK_REGIONS[0],
            common::DISK_REGIONS[1],
            (at, at + 8192),
        ]
    })
}

fn policy() -> &'static BootPolicy {
    static P: OnceLock<BootPolicy> = OnceLock::new();
    P.get_or_init(|| {
        let w = common::world();
        let img = w.image.lock().unwrap_or_else(|e| e.into_inner());
        let st = homestick_image::verify::read_statement(&*img).expect("statement");
        let m = homestick_image::manifest::Manifest::parse(&st.manifest).expect("manifest");
        homestick_testkit::boot_policy_for(&m)
    })
}

fuzz_target!(|data: &[u8]| {
    // Both lock the image on first use: take them before this call locks it.
    let (p, regions) = (policy(), regions());
    let w = common::world();
    let mut img = w.image.lock().unwrap_or_else(|e| e.into_inner());
    common::with_edits(&mut img, regions, data, |disk| {
        if let Ok(m) = homestick_boot::decide(disk, &w.keys, p, homestick_image::time::now()) {
            let v = homestick_boot::system_mapping(&m).expect("a trusted manifest has the tree");
            for map in [v.data, v.hash] {
                assert!(map.sectors > 0 && map.start >= 2048);
            }
            if let Ok(bytes) = homestick_boot::read_profile(disk, &m) {
                let _ = homestick_boot::profile_files(&bytes);
            }
        }
    });
});
