//! The shim boot path on a "home PC": OVMF with only Microsoft's keys (a fresh copy of
//! `OVMF_VARS_4M.ms.fd`, Secure Boot on), Debian's Microsoft-signed shim and MokManager, our
//! UKI signed with the snakeoil key (which that firmware does not trust). The enrolment is
//! typed on the serial console with the steps the first-start guide prints.
//!
//! One test, so the enrolled variable store is shared: the first start enrols, the second
//! goes straight to the verifier, and the refusals start from a copy of the enrolled store.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use homestick_formats::shim::{self, ESP_SECOND_STAGE};
use homestick_testkit::build_args::Build;
use homestick_testkit::env::demo_base;
use homestick_testkit::qemu::Qemu;

/// The demo customer's image on the demo base, through shim, the UKI signed with `sb`
/// (`None`: the snakeoil key).
fn shim_image(dir: &Path, name: &str, sb: Option<(&Path, &Path)>) -> PathBuf {
    let out = dir.join(name);
    let mut b = Build::new(&demo_profile(), &demo_base(), &out)
        .bootable()
        .opt("--boot-path", "shim");
    b = match sb {
        None => b.snakeoil_secure_boot(dir),
        Some((key, cert)) => b
            .opt("--secure-boot-key", key)
            .opt("--secure-boot-cert", cert),
    };
    let r = b.run();
    assert_eq!(r.code, 0, "build failed: {}", r.all());
    out
}

/// Start `img` on the Microsoft-keys firmware with the variable store `vars`.
fn start(vars: &Path, img: &Path) -> Qemu {
    let mut cmd = homestick_testkit::qemu_microsoft(vars);
    cmd.arg("-drive").arg(format!(
        "if=virtio,format=raw,snapshot=on,file={}",
        img.display()
    ));
    Qemu::spawn(&mut cmd)
}

/// Wait until QEMU exits (the PC restarts or powers off); the console.
fn until_exit(q: &mut Qemu, secs: u64) -> String {
    q.wait_exit(secs).unwrap_or_else(|e| panic!("{e}"))
}

/// `sbverify --list` of an ESP file: its signers, one line each.
fn signers(img: &Path, path: &str, dir: &Path) -> Vec<String> {
    let f = dir.join(path.replace('/', "_"));
    fs::write(&f, esp_file(img, path)).unwrap();
    let r = tool("sbverify", &["--list".as_ref(), f.as_os_str()]);
    assert_eq!(r.code, 0, "sbverify --list {path}: {}", r.all());
    r.stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("- /") || l.contains("issuer:"))
        .map(|l| l.trim().to_string())
        .collect()
}

/// The ESP's root in directory order, as MokManager lists it (directories with a `/`).
fn esp_root_listing(img: &Path) -> Vec<String> {
    let on = format!("{}@@1M", img.display());
    let r = tool("mdir", &["-i", &on, "::/"]);
    assert_eq!(r.code, 0, "{}", r.all());
    r.stdout
        .lines()
        // Entries carry a date; the summary lines ("3 files", "bytes free") do not.
        .filter(|l| {
            l.split_whitespace()
                .any(|w| w.len() == 10 && w.as_bytes()[4] == b'-' && w.as_bytes()[7] == b'-')
        })
        .filter_map(|l| {
            let long = l.get(42..)?.trim();
            (!long.is_empty()).then(|| match l.contains("<DIR>") {
                true => format!("{long}/"),
                false => long.to_string(),
            })
        })
        .collect()
}

/// A copy of `img` whose second stage is `uki`.
fn with_second_stage(img: &Path, dir: &Path, name: &str, uki: &[u8]) -> PathBuf {
    let copy = dir.join(name);
    fs::copy(img, &copy).unwrap();
    let f = dir.join(format!("{name}.efi"));
    fs::write(&f, uki).unwrap();
    let on = format!("{}@@1M", copy.display());
    let r = tool(
        "mcopy",
        &[
            "-o",
            "-i",
            &on,
            &f.display().to_string(),
            &format!("::/{ESP_SECOND_STAGE}"),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    copy
}

/// Start `img` with a copy of the enrolled store: shim must refuse its second stage and nothing
/// of ours may run. Offline, `verify` must name the second stage when `changed` (the other
/// key's image is whole and signed: only the boot path refuses it).
fn refused_by_shim(enrolled: &Path, img: &Path, dir: &Path, changed: bool) -> Result<(), String> {
    let r = verify(img, &test_pub());
    match changed {
        true if r.code != 1 || !r.stdout.contains(ESP_SECOND_STAGE) => {
            return Err(format!("verify must name {ESP_SECOND_STAGE}: {}", r.all()))
        }
        false if r.code != 0 => return Err(format!("a whole image offline: {}", r.all())),
        _ => {}
    }
    let vars = dir.join("vars-refusal.fd");
    fs::copy(enrolled, &vars).unwrap();
    let q = start(&vars, img);
    let deadline = Instant::now() + Duration::from_secs(180);
    while !q.screen_text().contains("Verification failed") {
        if Instant::now() > deadline {
            return Err(format!("shim did not refuse: {}", q.screen_text()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    match q.screen_text().contains("homestick:") {
        true => Err(format!("homestick ran: {}", q.screen_text())),
        false => Ok(()),
    }
}

#[test]
fn a_home_pc_with_microsofts_keys_enrols_the_provider_key_once_and_then_starts_the_stick() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let img = shim_image(dir, "shim.img", None);

    // verify names the path; each of its files is hashed in the signed manifest.
    let r = verify(&img, &test_pub());
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("boot path: shim: EFI/BOOT/BOOTX64.EFI (shim) starts EFI/BOOT/grubx64.efi"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(", 5 ESP files,"),
        "shim, UKI, MokManager, certificate, README: {}",
        r.stdout
    );

    // What an auditor sees with standard tools: who signed each program.
    let shim_signers = signers(&img, shim::ESP_LOADER, dir);
    let mm_signers = signers(&img, shim::ESP_MOK_MANAGER, dir);
    eprintln!(
        "sbverify --list {}:\n  {}",
        shim::ESP_LOADER,
        shim_signers.join("\n  ")
    );
    eprintln!(
        "sbverify --list {}:\n  {}",
        shim::ESP_MOK_MANAGER,
        mm_signers.join("\n  ")
    );
    assert!(
        shim_signers
            .iter()
            .any(|l| l.contains("CN=Microsoft Corporation UEFI CA 2011")),
        "{shim_signers:?}"
    );
    assert!(
        shim_signers
            .iter()
            .any(|l| l.contains("CN=Microsoft UEFI CA 2023")),
        "{shim_signers:?}"
    );
    assert!(
        mm_signers
            .iter()
            .any(|l| l.contains("CN=Debian Secure Boot CA")),
        "{mm_signers:?}"
    );
    let uki = dir.join("uki.efi");
    fs::write(&uki, esp_file(&img, ESP_SECOND_STAGE)).unwrap();
    let r = tool(
        "sbverify",
        &[
            "--cert".as_ref(),
            homestick_testkit::SB_CERT.as_ref(),
            uki.as_os_str(),
        ],
    );
    assert_eq!(
        r.code,
        0,
        "the UKI is signed with the provider's key: {}",
        r.all()
    );
    eprintln!(
        "sbverify --cert {} {ESP_SECOND_STAGE}: {}",
        homestick_testkit::SB_CERT,
        r.stdout.trim()
    );
    let cert = esp_file(&img, shim::ESP_CERT);
    let r = tool(
        "openssl",
        &[
            "x509",
            "-inform",
            "DER",
            "-noout",
            "-subject",
            "-in",
            &write(dir, "c.der", &cert),
        ],
    );
    assert_eq!(
        r.code,
        0,
        "the certificate on the stick is DER: {}",
        r.all()
    );

    // The steps the guide prints, for the root MokManager will list.
    let root = esp_root_listing(&img);
    assert_eq!(
        root,
        shim::esp_root(&[]),
        "the ESP's root as the guide expects it"
    );
    let steps = shim::enrolment(&root);

    // First start: shim refuses, MokManager enrols the certificate from the stick, restart.
    let vars = dir.join("home-pc.fd");
    fs::copy(homestick_testkit::OVMF_MS_VARS, &vars)
        .expect("OVMF (package ovmf) must be installed");
    let mut q = start(&vars, &img);
    let seen = homestick_testkit::mok::enrol(&q, &steps, 180).unwrap_or_else(|e| panic!("{e}"));
    let first = until_exit(&mut q, 120);
    eprintln!("first start:\n  {}", seen.join("\n  "));
    assert!(
        !first.contains("homestick: boot verifier"),
        "the UKI must not start before the enrolment"
    );

    // Second start, same PC: straight to the verifier and the system.
    let mut q = start(&vars, &img);
    let second = until_exit(&mut q, 240);
    let text = homestick_testkit::qemu::plain_text(&second);
    for want in [
        "EFI stub: UEFI Secure Boot is enabled.",
        "homestick: image verified",
        "homestick-demo: system started",
    ] {
        assert!(text.contains(want), "second start: no {want:?}:\n{text}");
    }
    assert!(text.contains("homestick: Secure Boot is on"), "{text}");
    for never in [
        "Verification failed",
        "MOK management",
        "Secure Boot is off",
    ] {
        assert!(
            !text.contains(never),
            "second start shows {never:?}:\n{text}"
        );
    }
    let lines: Vec<&str> = second
        .lines()
        .filter(|l| l.contains("homestick"))
        .take(6)
        .collect();
    eprintln!("second start:\n  {}", lines.join("\n  "));

    // The same stick on a PC with Secure Boot off: shim starts the UKI unchecked, the verifier
    // still checks everything and tells the person, with the hotline.
    let plain = dir.join("plain-pc.fd");
    fs::copy(homestick_testkit::OVMF_PLAIN_VARS, &plain).unwrap();
    let mut cmd = homestick_testkit::qemu_secure_boot_off(&plain);
    cmd.arg("-drive").arg(format!(
        "if=virtio,format=raw,snapshot=on,file={}",
        img.display()
    ));
    let mut q = Qemu::spawn(&mut cmd);
    let off = homestick_testkit::qemu::plain_text(&until_exit(&mut q, 240));
    for want in [
        "homestick: image verified",
        "homestick: Secure Boot is off",
        "Secure Boot ist aus.",
        "+49 5555 1234-100",
        "homestick-demo: system started",
    ] {
        assert!(off.contains(want), "Secure Boot off: no {want:?}:\n{off}");
    }
    assert!(!off.contains("MOK management"), "{off}");
    let notice: Vec<&str> = off
        .lines()
        .skip_while(|l| !l.contains("homestick: Secure Boot is off"))
        .take(12)
        .collect();
    eprintln!("Secure Boot off:\n{}", notice.join("\n"));

    // Refusals on the same PC (the provider's certificate enrolled).
    let other = dir.join("other-db");
    let r = hs(&["keys", "secure-boot", "--out", &other.display().to_string()]);
    assert_eq!(r.code, 0, "{}", r.all());
    let wrong = shim_image(
        dir,
        "wrong.img",
        Some((&dir.join("other-db.key"), &dir.join("other-db.crt"))),
    );
    let unsigned_uki = {
        let b = Build::new(&demo_profile(), &demo_base(), &dir.join("plain.img")).bootable();
        let r = b.run();
        assert_eq!(r.code, 0, "{}", r.all());
        esp_file(&dir.join("plain.img"), shim::ESP_LOADER)
    };
    let unsigned = with_second_stage(&img, dir, "unsigned.img", &unsigned_uki);
    let mut flipped = esp_file(&img, ESP_SECOND_STAGE);
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let changed = with_second_stage(&img, dir, "changed.img", &flipped);
    let cases = [
        ("a UKI signed by another key", wrong),
        ("an unsigned second stage", unsigned),
        ("one changed byte of the UKI", changed),
    ];
    homestick_testkit::cases::table(
        &cases,
        |c| c.0.to_string(),
        |(_, img)| refused_by_shim(&vars, img, dir, !img.ends_with("wrong.img")),
    );
}

fn write(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    fs::write(&p, data).unwrap();
    p.display().to_string()
}

#[test]
fn the_shim_path_s_inputs_are_checked_before_anything_is_written() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let base = demo_base();
    let stub = base.join("linuxx64.efi.stub");
    let debian_shim = base.join(shim::BASE_SHIM);
    let fixture = dir.join("fixture-base");
    homestick_testkit::write_fixture_base(&fixture, 1).unwrap();
    // The demo base without shim and MokManager.
    let no_shim = dir.join("no-shim-base");
    fs::create_dir_all(no_shim.join("esp")).unwrap();
    for e in fs::read_dir(&base).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_file() && name != shim::BASE_SHIM && name != shim::BASE_MOK_MANAGER {
            fs::copy(&p, no_shim.join(&name)).unwrap();
        }
    }
    let out = dir.join("out.img");
    let signed = |b: Build| b.bootable().snakeoil_secure_boot(dir);
    // (case, build arguments, the words the one message must hold)
    let cases: Vec<(&str, Build, &str)> = vec![
        (
            "the shim path without a Secure Boot key",
            Build::new(&demo_profile(), &base, &out)
                .bootable()
                .opt("--boot-path", "shim"),
            "--secure-boot-key: the shim boot path",
        ),
        (
            "a base without a kernel",
            signed(Build::new(&demo_profile(), &fixture, &out)).opt("--boot-path", "shim"),
            "has no kernel",
        ),
        (
            "a base without shim",
            signed(Build::new(&demo_profile(), &no_shim, &out)).opt("--boot-path", "shim"),
            "the shim boot path needs shimx64.efi and mmx64.efi in the base",
        ),
        (
            "Debian's shim as the provider's own",
            signed(Build::new(&demo_profile(), &base, &out)).opt("--shim", &debian_shim),
            "built-in certificate (CN=Debian Secure Boot CA) is not the --secure-boot-cert",
        ),
        (
            "a program that is not shim",
            signed(Build::new(&demo_profile(), &base, &out)).opt("--shim", &stub),
            "not shim: the program has no .vendor_cert section",
        ),
        (
            "--shim with --boot-path db",
            signed(Build::new(&demo_profile(), &base, &out))
                .opt("--shim", &debian_shim)
                .opt("--boot-path", "db"),
            "--shim: --boot-path db puts no shim on the stick",
        ),
        (
            "an unknown boot path",
            signed(Build::new(&demo_profile(), &base, &out)).opt("--boot-path", "grub"),
            "\"grub\" is not a boot path (db or shim)",
        ),
    ];
    table(
        &cases,
        |c| c.0.to_string(),
        |(_, b, want)| {
            let r = b.run();
            if r.code != 2 || !r.stderr.contains(want) {
                return Err(format!("want exit 2 and {want:?}: {} {}", r.code, r.all()));
            }
            if out.exists() {
                return Err("an output was written".into());
            }
            Ok(())
        },
    );
}

#[test]
fn the_base_chooses_the_boot_path_and_a_build_may_override_it() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let base = dir.join("shim-base");
    fs::create_dir_all(base.join("esp")).unwrap();
    for e in fs::read_dir(demo_base()).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            fs::copy(&p, base.join(p.file_name().unwrap())).unwrap();
        }
    }
    let toml = base.join("base.toml");
    let mut meta =
        homestick_formats::base::BaseToml::parse(&fs::read_to_string(&toml).unwrap()).unwrap();
    meta.boot.as_mut().unwrap().path = Some(homestick_formats::base::BootPath::Shim);
    fs::write(
        &toml,
        meta.to_toml("the demo base on the shim path").unwrap(),
    )
    .unwrap();
    for (extra, want) in [(None, "boot path: shim"), (Some("db"), "boot path: db")] {
        let out = dir.join(format!("{}.img", extra.unwrap_or("base")));
        let mut b = Build::new(&demo_profile(), &base, &out)
            .bootable()
            .snakeoil_secure_boot(dir);
        if let Some(p) = extra {
            b = b.opt("--boot-path", p);
        }
        let r = b.run();
        assert_eq!(r.code, 0, "{}", r.all());
        let r = verify(&out, &test_pub());
        assert!(
            r.code == 0 && r.stdout.contains(want),
            "{extra:?}: {}",
            r.all()
        );
    }
}

/// Debian's shim with its `.vendor_cert` section rewritten to hold `cert` (DER): a stand-in for
/// a provider's own shim (its Microsoft signature no longer matches; only the build reads it).
fn shim_with_vendor_cert(shim: &[u8], cert: &[u8]) -> Vec<u8> {
    let sec = homestick_image::pe::section(shim, ".vendor_cert")
        .unwrap()
        .expect("Debian's shim has .vendor_cert");
    let at = sec.as_ptr() as usize - shim.as_ptr() as usize;
    assert!(
        16 + cert.len() <= sec.len(),
        "the certificate fits the section"
    );
    let mut out = shim.to_vec();
    let table = [cert.len() as u32, 0, 16, (16 + cert.len()) as u32];
    for (i, v) in table.iter().enumerate() {
        out[at + 4 * i..at + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    out[at + 16..at + 16 + cert.len()].copy_from_slice(cert);
    out
}

#[test]
fn a_provider_s_own_shim_needs_no_enrolment_and_must_carry_its_certificate() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let debian = fs::read(demo_base().join(shim::BASE_SHIM)).unwrap();
    let cert = {
        let p = dir.join("sb.der");
        let r = tool(
            "openssl",
            &[
                "x509",
                "-in",
                homestick_testkit::SB_CERT,
                "-outform",
                "DER",
                "-out",
                &p.display().to_string(),
            ],
        );
        assert_eq!(r.code, 0, "{}", r.all());
        fs::read(&p).unwrap()
    };
    let own = dir.join("provider-shim.efi");
    fs::write(&own, shim_with_vendor_cert(&debian, &cert)).unwrap();
    let out = dir.join("own.img");
    let r = Build::new(&demo_profile(), &demo_base(), &out)
        .bootable()
        .snakeoil_secure_boot(dir)
        .opt("--shim", &own)
        .run();
    assert_eq!(r.code, 0, "{}", r.all());
    let r = verify(&out, &test_pub());
    assert!(
        r.code == 0
            && r.stdout
                .contains("(the provider's own shim) starts EFI/BOOT/grubx64.efi"),
        "{}",
        r.all()
    );
    assert!(
        r.stdout.contains(", 3 ESP files,"),
        "shim, UKI, README; no MokManager: {}",
        r.stdout
    );
    assert_eq!(esp_file(&out, shim::ESP_LOADER), fs::read(&own).unwrap());
}
