//! One changed byte anywhere that matters makes `verify` exit 1 and name what changed.

use std::fs;

use crate::common::*;

#[test]
fn one_changed_byte_in_each_region_is_named() {
    let fx = Fixture::new();
    let img = fx.build("demo.img");
    let bytes = fs::read(&img).unwrap();
    let m = inspect_json(&img);
    let part = |name: &str| {
        m["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    let lba = |name: &str, end: &str| part(name)[end].as_u64().unwrap() as usize * 512;

    let manifest = esp_file(&img, "homestick/manifest.json");
    let sig = esp_file(&img, "homestick/manifest.sig");
    let efi_at = find_once(&bytes, homestick_testkit::EFI_MARKER);
    let manifest_at = find_once(&bytes, &manifest);
    let sig_at = find_once(&bytes, &sig);
    // GPT entries start at LBA 2; entry n (1-based) at 1024 + 128 * (n - 1).
    let entry = |n: usize, field: usize| 1024 + 128 * (n - 1) + field;

    let cases: Vec<(&str, usize, &str)> = vec![
        (
            "system, first sector",
            lba("system", "first_lba"),
            "partition 2 (system), dm-verity tree in partition 4: data block 0 (bytes 0..4096 of the partition)",
        ),
        (
            "system, middle",
            (lba("system", "first_lba") + lba("system", "last_lba")) / 2 + 100,
            "partition 2 (system), dm-verity tree in partition 4: data block 1023 ",
        ),
        (
            "system, last byte",
            lba("system", "last_lba") + 511,
            "partition 2 (system), dm-verity tree in partition 4: data block 2047 ",
        ),
        (
            "verity superblock, salt",
            lba("system-verity", "first_lba") + 90,
            "dm-verity tree in partition 4: superblock: salt differs",
        ),
        (
            "verity tree, top level",
            lba("system-verity", "first_lba") + 4096 + 7,
            "partition 4 (system-verity): SHA-256",
        ),
        (
            "verity tree, a leaf",
            lba("system-verity", "first_lba") + 3 * 4096 + 64,
            "data block 130 ",
        ),
        (
            "profile, boot sector",
            lba("profile", "first_lba") + 3,
            "partition 3 (profile): SHA-256",
        ),
        (
            "profile, last byte",
            lba("profile", "last_lba") + 511,
            "partition 3 (profile): SHA-256",
        ),
        (
            "ESP file BOOTX64.EFI",
            efi_at + 1000,
            "ESP file EFI/BOOT/BOOTX64.EFI: SHA-256",
        ),
        (
            "manifest.json",
            manifest_at + manifest.len() / 2,
            "signature:",
        ),
        ("manifest.json, first byte", manifest_at, "signature:"),
        ("manifest.sig, R", sig_at + 5, "signature:"),
        ("manifest.sig, S", sig_at + 40, "signature:"),
        ("GPT entry 1 type", entry(1, 0), "GPT entry 1 (esp): type"),
        (
            "GPT entry 2 unique GUID",
            entry(2, 20),
            "GPT entry 2 (system): unique GUID",
        ),
        (
            "GPT entry 2 first LBA",
            entry(2, 32),
            "GPT entry 2 (system): LBA",
        ),
        (
            "GPT entry 3 last LBA",
            entry(3, 40),
            "GPT entry 3 (profile): LBA",
        ),
        (
            "GPT entry 3 attributes",
            entry(3, 48 + 7),
            "GPT entry 3 (profile): attributes",
        ),
        (
            "GPT entry 2 name",
            entry(2, 56),
            "GPT entry 2 (system): name",
        ),
        (
            "GPT entry 2 name padding",
            entry(2, 120),
            // The change after the name's end shows, escaped.
            "GPT entry 2 (system): name field \"system\\0",
        ),
        (
            "GPT entry 4 type",
            entry(4, 0),
            "GPT entry 4 (system-verity): type",
        ),
        (
            "GPT entry 5 (unused)",
            entry(5, 0),
            "GPT entry 5: not in the signed manifest",
        ),
        ("GPT header disk GUID", 512 + 56, "GPT header"),
        ("GPT header signature", 512, "GPT: no GPT header"),
    ];
    for (what, at, want) in cases {
        let copy = flipped(&img, at, fx.dir.path(), "tampered.img");
        let r = verify(&copy, &test_pub());
        assert_eq!(r.code, 1, "{what}: expected exit 1\n{}", r.all());
        assert!(r.stdout.contains("NOT TRUSTED"), "{what}: {}", r.stdout);
        assert!(
            r.stdout.contains(want),
            "{what}: expected {want:?} in:\n{}",
            r.stdout
        );
    }
}

#[test]
fn another_key_is_not_trusted() {
    let fx = Fixture::new();
    let img = fx.build("demo.img");
    let other = fx.path("other");
    assert_eq!(
        hs(&["keys", "generate", "--out", &other.display().to_string()]).code,
        0
    );
    let r = verify(&img, &fx.path("other.pub"));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout
            .contains("signature: homestick/manifest.sig does not verify"),
        "{}",
        r.stdout
    );
}

#[test]
fn signature_of_the_wrong_length_is_not_trusted() {
    let fx = Fixture::new();
    let img = fx.build("demo.img");
    let extra = fx.path("manifest.sig");
    fs::write(&extra, [0u8; 65]).unwrap();
    let r = tool(
        "mcopy",
        &[
            "-o",
            "-i",
            &format!("{}@@1M", img.display()),
            &extra.display().to_string(),
            "::/homestick/manifest.sig",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let r = verify(&img, &test_pub());
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("65 bytes, an Ed25519 signature has 64"),
        "{}",
        r.stdout
    );
}

#[test]
fn missing_esp_file_is_named() {
    let fx = Fixture::new();
    let img = fx.build("demo.img");
    let r = tool(
        "mdel",
        &[
            "-i",
            &format!("{}@@1M", img.display()),
            "::/EFI/BOOT/fixture.txt",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let r = verify(&img, &test_pub());
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("ESP file EFI/BOOT/fixture.txt: missing"),
        "{}",
        r.stdout
    );
}

/// `verify --quick` reads the signature, the GPT and each tree's superblock and top: a changed
/// system byte passes it (the full check and the kernel catch it), a changed tree top does not.
#[test]
fn quick_verify_checks_the_tree_top_and_not_the_data() {
    let fx = Fixture::new();
    let img = fx.build("demo.img");
    let (sys, _) = partition_lbas(&img, "system");
    let (hash, _) = partition_lbas(&img, "system-verity");
    let quick = |p: &std::path::Path| {
        hs(&[
            "verify",
            "--quick",
            p.to_str().unwrap(),
            "--keyring",
            test_pub().to_str().unwrap(),
        ])
    };
    let r = quick(&img);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("checked (--quick)"), "{}", r.stdout);
    let data = flipped(
        &img,
        (sys * 512 + 4096 * 5 + 9) as usize,
        fx.dir.path(),
        "data.img",
    );
    assert_eq!(quick(&data).code, 0, "{}", quick(&data).all());
    let full = verify(&data, &test_pub());
    assert_eq!(full.code, 1, "{}", full.all());
    assert!(full.stdout.contains("data block 5 "), "{}", full.stdout);
    let top = flipped(
        &img,
        (hash * 512 + 4096 + 1) as usize,
        fx.dir.path(),
        "top.img",
    );
    let r = quick(&top);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("top level of the hash tree hashes to"),
        "{}",
        r.stdout
    );
}
