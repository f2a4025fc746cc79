//! The whole verifier on hostile sticks: structure-aware edits of a real signed image (see
//! common.rs), verified. Any verdict is fine; a panic or a hang (libFuzzer's -timeout) is a bug.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let w = common::world();
    let mut img = w.image.lock().unwrap_or_else(|e| e.into_inner());
    common::with_edits(&mut img, &common::DISK_REGIONS, data, |target| {
        let _ =
            homestick_image::verify::verify(target, &w.keys, &homestick_image::verify::NoProgress);
    });
});
