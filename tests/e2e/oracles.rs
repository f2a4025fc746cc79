//! A built image passes every external checker, verifies, and builds reproducibly.

use std::fs;
use std::path::Path;

use crate::common::*;
use homestick_testkit::build_args::Build;

fn partitions(img: &Path) -> Vec<serde_json::Value> {
    inspect_json(img)["partitions"]
        .as_array()
        .expect("partitions")
        .clone()
}

#[test]
fn built_image_passes_sgdisk_fsck_openssl_and_sha256sum() {
    let fx = Fixture::new();
    let img = fx.build("demo.img");

    let r = tool("sgdisk", &["-v", &img.display().to_string()]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("No problems found"),
        "sgdisk -v: {}",
        r.stdout
    );

    let parts = partitions(&img);
    assert_eq!(parts.len(), 4);
    let i = img.display();
    for p in &parts {
        let (first, last) = (
            p["first_lba"].as_u64().unwrap(),
            p["last_lba"].as_u64().unwrap(),
        );
        let count = last - first + 1;
        if let Some(v) = p.get("verity") {
            // The auditor's recipe from the README: veritysetup with the signed root hash.
            let hp = &parts[v["hash_partition"].as_u64().unwrap() as usize - 1];
            let (hf, hl) = (
                hp["first_lba"].as_u64().unwrap(),
                hp["last_lba"].as_u64().unwrap(),
            );
            let (data, hash) = (fx.path("system.part"), fx.path("verity.part"));
            let r = sh(&format!(
                "dd if={i} of={} bs=512 skip={first} count={count} status=none && \
                 dd if={i} of={} bs=512 skip={hf} count={} status=none && \
                 veritysetup verify {} {} {}",
                data.display(),
                hash.display(),
                hl - hf + 1,
                data.display(),
                hash.display(),
                v["root_hash"].as_str().unwrap()
            ));
            assert_eq!(r.code, 0, "veritysetup verify: {}", r.all());
            let dump = tool("veritysetup", &["dump", hash.to_str().unwrap()]);
            for want in [
                format!("Salt:            \t{}", v["salt"].as_str().unwrap()),
                format!("Data blocks:     \t{}", v["data_blocks"]),
                "Hash algorithm:  \tsha256".to_string(),
            ] {
                assert!(
                    dump.stdout.contains(&want),
                    "no {want:?} in {}",
                    dump.stdout
                );
            }
            // The Discoverable Partitions Specification's UUIDs: the root hash's halves.
            let root = v["root_hash"].as_str().unwrap();
            let plain = |g: &serde_json::Value| g.as_str().unwrap().replace('-', "");
            assert_eq!(plain(&p["guid"]), root[..32]);
            assert_eq!(plain(&hp["guid"]), root[32..]);
            continue;
        }
        match p["sha256"].as_str() {
            Some(want) => {
                // The auditor's recipe from the README, verbatim.
                let r = sh(&format!(
                    "dd if={i} bs=512 skip={first} count={count} status=none | sha256sum"
                ));
                assert_eq!(r.code, 0, "{}", r.all());
                assert_eq!(
                    r.stdout.split_whitespace().next(),
                    Some(want),
                    "partition {}",
                    p["name"]
                );
            }
            None => assert_eq!(p["name"], "esp"),
        }
        if p["name"] == "esp" || p["name"] == "profile" {
            let part = fx.path(&format!("{}.fat", p["name"].as_str().unwrap()));
            let r = sh(&format!(
                "dd if={i} of={} bs=512 skip={first} count={count} status=none",
                part.display()
            ));
            assert_eq!(r.code, 0, "{}", r.all());
            let r = tool("fsck.fat", &["-n", &part.display().to_string()]);
            assert_eq!(r.code, 0, "fsck.fat -n on {}: {}", p["name"], r.all());
            assert!(
                !r.stdout.contains("Leaving filesystem unchanged"),
                "{}",
                r.stdout
            );
        }
    }

    let manifest = fx.path("manifest.json");
    let sig = fx.path("manifest.sig");
    fs::write(&manifest, esp_file(&img, "homestick/manifest.json")).unwrap();
    fs::write(&sig, esp_file(&img, "homestick/manifest.sig")).unwrap();
    assert_eq!(fs::metadata(&sig).unwrap().len(), 64);
    let r = tool(
        "openssl",
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            &test_pub().display().to_string(),
            "-rawin",
            "-in",
            &manifest.display().to_string(),
            "-sigfile",
            &sig.display().to_string(),
        ],
    );
    assert_eq!(r.code, 0, "openssl: {}", r.all());
    assert!(
        r.stdout.contains("Signature Verified Successfully"),
        "{}",
        r.stdout
    );

    // ESP file hashes, with mtools + sha256sum.
    let esp = parts.iter().find(|p| p["name"] == "esp").unwrap();
    for f in esp["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        let data = esp_file(&img, path);
        assert_eq!(data.len() as u64, f["size"].as_u64().unwrap(), "{path}");
        let tmp = fx.path("esp-file");
        fs::write(&tmp, &data).unwrap();
        let r = tool("sha256sum", &[&tmp.display().to_string()]);
        assert_eq!(
            r.stdout.split_whitespace().next(),
            f["sha256"].as_str(),
            "{path}"
        );
    }

    let readme = String::from_utf8(esp_file(&img, "homestick/README.txt")).unwrap();
    for want in [
        "DEUTSCH",
        "ENGLISH",
        "Stadt Musterhausen",
        "+49 5555 1234-100",
        "\r\n",
    ] {
        assert!(readme.contains(want), "README.txt lacks {want:?}");
    }
    let key_id = inspect_json(&img)["key_id"].as_str().unwrap().to_string();
    assert!(
        readme.contains(&key_id),
        "README.txt names the key fingerprint"
    );

    let r = verify(&img, &test_pub());
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("TRUSTED"), "{}", r.stdout);
}

#[test]
fn key_id_is_the_sha256_of_the_public_key_der() {
    let fx = Fixture::new();
    let img = fx.build("demo.img");
    let r = sh(&format!(
        "openssl pkey -pubin -in {} -outform DER | sha256sum",
        test_pub().display()
    ));
    assert_eq!(
        r.stdout.split_whitespace().next(),
        inspect_json(&img)["key_id"].as_str()
    );
}

#[test]
fn two_builds_are_identical_and_the_epoch_matters() {
    let fx = Fixture::new();
    let a = fs::read(fx.build("a.img")).unwrap();
    let b = fs::read(fx.build("b.img")).unwrap();
    assert!(a == b, "two builds of the same inputs differ");
    let c = fx.build_with("c.img", &demo_profile(), &["--version", "other"]);
    assert!(
        fs::read(c).unwrap() != a,
        "a different version must change the image"
    );
}

#[test]
fn stick_with_backup_gpt_moved_to_its_real_end_still_verifies() {
    let fx = Fixture::new();
    let img = fx.build("demo.img");
    let big = fx.path("bigger-stick.img");
    fs::copy(&img, &big).unwrap();
    let b = big.display().to_string();
    assert_eq!(tool("truncate", &["-s", "+64M", &b]).code, 0);
    let r = tool("sgdisk", &["-e", &b]);
    assert_eq!(r.code, 0, "sgdisk -e: {}", r.all());
    assert!(tool("sgdisk", &["-v", &b])
        .stdout
        .contains("No problems found"));
    let r = verify(&big, &test_pub());
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn explicit_size_pads_the_image_and_records_the_minimum() {
    let fx = Fixture::new();
    let img = fx.build_with("sized.img", &demo_profile(), &["--size", "200M"]);
    assert_eq!(fs::metadata(&img).unwrap().len(), 200 << 20);
    let min = inspect_json(&img)["disk"]["min_size_bytes"]
        .as_u64()
        .unwrap();
    assert!(min < 200 << 20);
    assert!(tool("sgdisk", &["-v", &img.display().to_string()])
        .stdout
        .contains("No problems found"));
    assert_eq!(verify(&img, &test_pub()).code, 0);
}

#[test]
fn keyring_directory_with_several_keys() {
    let fx = Fixture::new();
    let img = fx.build("demo.img");
    let ring = fx.path("ring");
    fs::create_dir(&ring).unwrap();
    let r = hs(&[
        "keys",
        "generate",
        "--out",
        &ring.join("other").display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    fs::remove_file(ring.join("other.key")).unwrap();
    assert_eq!(
        verify(&img, &ring).code,
        1,
        "only an unrelated key in the ring"
    );
    fs::copy(test_pub(), ring.join("test.pub")).unwrap();
    let r = verify(&img, &ring);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("test.pub"),
        "names the key that matched: {}",
        r.stdout
    );
}

#[test]
fn generated_keys_are_read_by_openssl_encrypted_or_not() {
    let d = tempfile::tempdir().unwrap();
    let pw = d.path().join("pw");
    fs::write(&pw, "s3cret passphrase\n").unwrap();
    let plain = d.path().join("plain");
    let enc = d.path().join("enc");
    let r = hs(&["keys", "generate", "--out", &plain.display().to_string()]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("key id:"), "{}", r.stdout);
    let r = hs(&[
        "keys",
        "generate",
        "--out",
        &enc.display().to_string(),
        "--passphrase-file",
        &pw.display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    use std::os::unix::fs::PermissionsExt;
    for k in ["plain.key", "enc.key"] {
        assert_eq!(
            fs::metadata(d.path().join(k)).unwrap().permissions().mode() & 0o777,
            0o600,
            "{k}"
        );
    }
    let p = |n: &str| d.path().join(n).display().to_string();
    assert_eq!(
        tool("openssl", &["pkey", "-in", &p("plain.key"), "-noout"]).code,
        0
    );
    assert_eq!(
        tool(
            "openssl",
            &["pkey", "-pubin", "-in", &p("plain.pub"), "-noout"]
        )
        .code,
        0
    );
    let r = tool(
        "openssl",
        &[
            "pkey",
            "-in",
            &p("enc.key"),
            "-passin",
            &format!("file:{}", pw.display()),
            "-noout",
        ],
    );
    assert_eq!(r.code, 0, "openssl reads the encrypted key: {}", r.all());
    let r = tool(
        "openssl",
        &[
            "pkey",
            "-in",
            &p("enc.key"),
            "-passin",
            "pass:wrong",
            "-noout",
        ],
    );
    assert_ne!(r.code, 0, "openssl must not accept a wrong passphrase");

    // The encrypted key signs a build when given its passphrase.
    let fx = Fixture::new();
    let out = fx.path("enc.img");
    let r = Build::bare()
        .opt("--profile", demo_profile())
        .opt("--base", fx.base())
        .opt("--key", p("enc.key"))
        .opt("--passphrase-file", &pw)
        .opt("--output", &out)
        .run();
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(verify(&out, &d.path().join("enc.pub")).code, 0);
}

#[test]
fn unlisted_esp_file_is_a_warning_not_a_failure() {
    let fx = Fixture::new();
    let img = fx.build("demo.img");
    let extra = fx.path("desktop.ini");
    fs::write(&extra, "[.ShellClassInfo]\r\n").unwrap();
    let r = tool(
        "mcopy",
        &[
            "-i",
            &format!("{}@@1M", img.display()),
            &extra.display().to_string(),
            "::/desktop.ini",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let r = verify(&img, &test_pub());
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("warning: ESP file desktop.ini: not listed"),
        "{}",
        r.stdout
    );
    let r = hs(&[
        "verify".as_ref(),
        img.as_os_str(),
        "--keyring".as_ref(),
        test_pub().as_os_str(),
        "--json".as_ref(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["trusted"], true);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1);
    // The JSON findings and the text lines come from the same values.
    let f = &v["findings"][0];
    assert_eq!(f["severity"], "warning");
    assert!(
        f["region"].as_str().unwrap().starts_with("ESP file "),
        "{f}"
    );
    assert_eq!(
        v["warnings"][0].as_str().unwrap(),
        format!(
            "{}: {}",
            f["region"].as_str().unwrap(),
            f["what"].as_str().unwrap()
        )
    );
}

#[test]
fn inspect_shows_customer_version_key_partitions_and_files() {
    let fx = Fixture::new();
    let img = fx.build_with(
        "demo.img",
        &demo_profile(),
        &["--version", "2026.11.1", "--rollback-index", "7"],
    );
    let r = hs(&["inspect".as_ref(), img.as_os_str()]);
    assert_eq!(r.code, 0, "{}", r.all());
    for want in [
        "stadt-musterhausen (Stadt Musterhausen)",
        "2026.11.1 (rollback index 7)",
        "2026-11-30T00:53:20Z",
        "key id",
        "system",
        "profile",
        "EFI/BOOT/BOOTX64.EFI",
        "not checked",
    ] {
        assert!(
            r.stdout.contains(want),
            "inspect lacks {want:?}:\n{}",
            r.stdout
        );
    }
}

#[test]
fn verifies_a_real_block_device() {
    let fx = Fixture::new();
    let img = fx.build("demo.img");
    let dev = Loop::attach(&img, &[]);
    let r = verify(Path::new(&dev.0), &test_pub());
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains(&format!("TRUSTED: {}", dev.0)),
        "{}",
        r.stdout
    );
    // A byte changed through the device is caught when read back from the device.
    let sys = partitions(&img)
        .into_iter()
        .find(|p| p["name"] == "system")
        .unwrap();
    let at = sys["first_lba"].as_u64().unwrap() * 512 + 4096;
    let r = sh(&format!(
        "printf '\\x42' | dd of={} bs=1 seek={at} conv=notrunc status=none && sync",
        dev.0
    ));
    assert_eq!(r.code, 0, "{}", r.all());
    let r = sh(&format!("blockdev --flushbufs {}", dev.0));
    assert_eq!(r.code, 0, "{}", r.all());
    let r = verify(Path::new(&dev.0), &test_pub());
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("partition 2 (system)"), "{}", r.stdout);
}
