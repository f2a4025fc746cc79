//! The boot verifier's whole decision on a disk image (`homestick_boot::decide`: verification
//! plus the boot policy's checks, and the ranges it would map), on structure-aware edits of a
//! real signed image. Any verdict is fine; a panic or a hang (libFuzzer's -timeout) is a bug.
#![no_main]
use std::sync::OnceLock;

use homestick_image::policy::{BootPolicy, POLICY_FORMAT};
use libfuzzer_sys::fuzz_target;

mod common;

fn policy() -> &'static BootPolicy {
    static P: OnceLock<BootPolicy> = OnceLock::new();
    P.get_or_init(|| {
        let w = common::world();
        let img = w.image.lock().unwrap_or_else(|e| e.into_inner());
        let st = homestick_image::verify::read_statement(&*img).expect("statement");
        let m = homestick_image::manifest::Manifest::parse(&st.manifest).expect("manifest");
        BootPolicy {
            format: POLICY_FORMAT.into(),
            disk_guid: m.disk.guid,
            customer_id: m.customer.id.clone(),
            customer_name: m.customer.name.clone(),
            hotline: None,
            email: None,
            hours: None,
            modules: vec![],
            failure_delay_seconds: 1,
            min_rollback_index: m.rollback_index,
            device_timeout_seconds: 1,
            verdict_timeout_seconds: 10,
            init: "/sbin/init".into(),
            profile_mount: "/run/homestick/profile".into(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let p = policy();
    let w = common::world();
    let mut img = w.image.lock().unwrap_or_else(|e| e.into_inner());
    common::with_edits(&mut img, &common::DISK_REGIONS, data, |disk| {
        if let Ok(m) = homestick_boot::decide(disk, &w.keys, p) {
            let maps = homestick_boot::mappings(&m).expect("a trusted manifest has both ranges");
            for map in maps {
                assert!(map.sectors > 0 && map.start >= 2048);
            }
        }
    });
});
