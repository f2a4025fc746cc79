//! The FAT reader on hostile volumes: structure-aware edits (boot sector, FSInfo, FATs, root
//! directory) of a small FAT16 and a FAT32 volume with nested folders, then every read the
//! verifier makes: the FAT tables check, the listing, a file read and a file hash. Errors are
//! fine; a panic or a hang (libFuzzer's -timeout) is a bug.
#![no_main]
use std::sync::{Mutex, OnceLock};

use homestick_image::fat::{self, FatFile, FatReader, FatSpec, ReadLimits};
use libfuzzer_sys::fuzz_target;

mod common;

fn volumes() -> &'static [Mutex<Vec<u8>>; 2] {
    static V: OnceLock<[Mutex<Vec<u8>>; 2]> = OnceLock::new();
    V.get_or_init(|| {
        let files: Vec<FatFile> = [
            ("EFI/BOOT/BOOTX64.EFI", 20_000usize),
            ("homestick/manifest.json", 3000),
            ("homestick/manifest.sig", 64),
            ("a/b/c/d.txt", 10),
            ("A long name with spaces.conf", 700),
        ]
        .iter()
        .map(|(p, n)| FatFile {
            path: p.to_string(),
            data: homestick_testkit::pseudo_random(*n as u64, *n),
        })
        .collect();
        let vol = |size: u64, fat32: bool| {
            let spec = FatSpec {
                size,
                fat32,
                label: "FUZZ".into(),
                volume_id: 7,
                epoch: 1_796_000_000,
            };
            Mutex::new(fat::build(&spec, &files).expect("FAT"))
        };
        [vol(4 << 20, false), vol(40 << 20, true)]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, edits)) = data.split_first() else {
        return;
    };
    let mut v = volumes()[usize::from(which & 1)]
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let regions = [(0usize, 64 << 10), (64 << 10, 1 << 20)];
    common::with_edits(&mut v, &regions, edits, |vol| {
        let len = vol.len() as u64;
        let Ok(r) = FatReader::open(vol, 0, len, fat::budget_for(len)) else {
            return;
        };
        let _ = r.check_fat_tables();
        let _ = r.list(ReadLimits::default());
        let _ = r.read("homestick/manifest.json", 1 << 20);
        let _ = r.hash("EFI/BOOT/BOOTX64.EFI", 1 << 20);
    });
});
