//! The primary GPT reader on any disk contents.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = homestick_image::gpt::read_primary(data) {
        assert!(g.entries.len() as u32 == g.header.num_entries);
        let _ = g.used().count();
    }
});
