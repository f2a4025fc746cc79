//! manifest.json parsing: any bytes, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = homestick_image::manifest::Manifest::parse(data) {
        // A manifest that parses must round-trip and keep its invariants.
        let bytes = m.to_bytes().expect("a parsed manifest serializes");
        let again = homestick_image::manifest::Manifest::parse(&bytes).expect("round trip");
        assert_eq!(again, m);
    }
});
