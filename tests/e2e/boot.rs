//! QEMU boot tests: real firmware (OVMF, Secure Boot enforced with the snakeoil keys), the
//! real Debian kernel, our UKI and boot verifier. Assertions are on console lines.
//!
//! Needs the demo base and the static verifier: `cargo xtask test` builds both and passes
//! them in HOMESTICK_DEMO_BASE and HOMESTICK_BOOT_VERIFIER. Without them these tests fail.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use homestick_testkit::qemu::Qemu;

const OVMF_SB_VARS: &str = homestick_testkit::OVMF_SNAKEOIL_VARS;
use homestick_testkit::build_args::Build;
use homestick_testkit::env::{boot_verifier as verifier, demo_base};
use homestick_testkit::SB_CERT;

/// Build the demo customer's image on the demo base, Secure-Boot-signed unless `extra` says otherwise.
fn build_boot_image(dir: &Path, name: &str, secure_boot: bool, extra: &[String]) -> PathBuf {
    build_boot_image_at(dir, name, secure_boot, extra, homestick_testkit::EPOCH)
}

/// [`build_boot_image`] with the build time `epoch`.
fn build_boot_image_at(
    dir: &Path,
    name: &str,
    secure_boot: bool,
    extra: &[String],
    epoch: i64,
) -> PathBuf {
    let out = dir.join(name);
    let mut b = Build::bare();
    if !extra.iter().any(|a| a == "--profile") {
        b = b.opt("--profile", demo_profile());
    }
    b = b
        .opt("--base", demo_base())
        .opt("--output", &out)
        .bootable();
    if secure_boot {
        b = b.snakeoil_secure_boot(dir);
    }
    if !extra.iter().any(|a| a == "--key") {
        b = b.opt("--key", test_key());
    }
    let args = b.args(extra).to_vec();
    let r = hs_at(epoch, &args);
    assert_eq!(r.code, 0, "build failed: {}", r.all());
    out
}

struct Boot {
    console: String,
    exit: Option<i32>,
}

/// How the stick is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bus {
    Virtio,
    /// virtio-blk reporting 4096-byte logical sectors.
    Virtio4k,
    Usb,
    Sata,
}

/// Boot `img` with Secure Boot enforced; returns the console when QEMU exits, when `stop_on`
/// appears, or at the timeout (which fails the test).
fn boot(dir: &Path, img: &Path, bus: Bus, stop_on: Option<&str>) -> Boot {
    boot_from(dir, None, img, bus, stop_on)
}

/// [`boot`], the firmware starting from `first` (another disk, ahead of the stick) if given.
fn boot_from(
    dir: &Path,
    first: Option<&Path>,
    img: &Path,
    bus: Bus,
    stop_on: Option<&str>,
) -> Boot {
    let vars = dir.join(format!(
        "vars-{}.fd",
        img.file_name().unwrap().to_string_lossy()
    ));
    fs::copy(OVMF_SB_VARS, &vars).expect("OVMF (package ovmf) must be installed");
    let mut cmd = homestick_testkit::qemu_secure_boot(&vars);
    if let Some(f) = first {
        cmd.args([
            "-drive",
            &format!(
                "if=none,id=first,format=raw,snapshot=on,file={}",
                f.display()
            ),
            "-device",
            "virtio-blk-pci,drive=first,bootindex=0",
        ]);
    }
    let drive = format!(
        "if=none,id=stick,format=raw,snapshot=on,file={}",
        img.display()
    );
    match bus {
        Bus::Usb => {
            cmd.args([
                "-device",
                "qemu-xhci,id=xhci",
                "-drive",
                &drive,
                "-device",
                "usb-storage,bus=xhci.0,drive=stick,removable=on",
            ]);
        }
        Bus::Sata => {
            cmd.args(["-drive", &drive, "-device", "ide-hd,drive=stick,bus=ide.0"]);
        }
        Bus::Virtio => {
            cmd.args(["-drive", &drive, "-device", "virtio-blk-pci,drive=stick"]);
        }
        Bus::Virtio4k => {
            cmd.args([
                "-drive",
                &drive,
                "-device",
                "virtio-blk-pci,drive=stick,logical_block_size=4096,physical_block_size=4096",
            ]);
        }
    }
    let mut q = Qemu::spawn(&mut cmd);
    let started = Instant::now();
    let timeout = Duration::from_secs(240);
    loop {
        let text = q.console();
        if let Some(s) = stop_on {
            if text.contains(s) {
                return Boot {
                    console: text,
                    exit: None,
                };
            }
        }
        if let Some(st) = q.child.try_wait().unwrap() {
            std::thread::sleep(Duration::from_millis(200));
            let text = q.console();
            return Boot {
                console: text,
                exit: st.code(),
            };
        }
        assert!(
            started.elapsed() < timeout,
            "QEMU did not finish within {timeout:?}; console:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn lines_with<'a>(console: &'a str, prefix: &str) -> Vec<&'a str> {
    console
        .lines()
        .map(|l| l.trim_start_matches(|c: char| c.is_control()))
        .filter(|l| l.starts_with(prefix))
        .collect()
}

fn assert_clean_power_off(b: &Boot) {
    assert!(
        b.console.contains("reboot: Power down"),
        "no clean power-off:\n{}",
        b.console
    );
    assert_eq!(b.exit, Some(0), "QEMU exit status");
}

/// The boot ended in exactly one refusal naming `want`; neither our system nor an attacker's
/// started; the PC powered off.
fn assert_refused(b: &Boot, want: &str) {
    let failed = lines_with(&b.console, "homestick: VERIFICATION FAILED: ");
    assert_eq!(failed.len(), 1, "expected one failure line:\n{}", b.console);
    assert!(
        failed[0].contains(want),
        "expected {want:?} in {:?}",
        failed[0]
    );
    assert!(
        !b.console.contains("homestick-demo"),
        "the system must not start:\n{}",
        b.console
    );
    assert!(
        !b.console.contains("ATTACKER-INIT-RUNS"),
        "the attacker's init ran:\n{}",
        b.console
    );
    assert_clean_power_off(b);
}

/// Build the good image, change it with `edit` (image, temporary directory -> changed copy),
/// boot the copy on `bus` and require a refusal naming `want`.
fn refused_at_boot(edit: impl FnOnce(&Path, &Path) -> PathBuf, bus: Bus, want: &str) -> Boot {
    let d = tempfile::tempdir().unwrap();
    let img = build_boot_image(d.path(), "good.img", true, &[]);
    let changed = edit(&img, d.path());
    let b = boot(d.path(), &changed, bus, None);
    assert_refused(&b, want);
    b
}

#[test]
fn good_image_boots_with_secure_boot_enforced() {
    let d = tempfile::tempdir().unwrap();
    let img = build_boot_image(d.path(), "good.img", true, &[]);
    let b = boot(d.path(), &img, Bus::Virtio, None);
    let ok = lines_with(&b.console, "homestick: image verified: ");
    assert_eq!(ok.len(), 1, "success line:\n{}", b.console);
    assert!(ok[0].contains(" stadt-musterhausen "), "{}", ok[0]);
    let verdict = lines_with(&b.console, "homestick: verdict after ");
    assert_eq!(verdict.len(), 1, "{}", b.console);
    eprintln!("BOOT VERDICT (virtio, Secure Boot): {}", verdict[0]);
    assert!(
        b.console
            .contains("homestick-demo: vpn buero vpn.musterhausen.example:51820"),
        "{}",
        b.console
    );
    assert!(
        b.console
            .contains("homestick-demo: sip sip:sip.musterhausen.example"),
        "{}",
        b.console
    );
    assert!(!b.console.contains("VERIFICATION FAILED"));
    assert!(
        b.console.contains("homestick: Secure Boot is on"),
        "{}",
        b.console
    );
    // The system runs from the verifier's dm-verity device over the verified sectors (data and
    // hash partitions, each a linear map), the profile from a tmpfs the verifier filled from
    // the bytes it hashed, and the kernel's own partitions of the stick are gone.
    for want in [
        "homestick: system through dm-verity, root hash ",
        "homestick-demo: root /dev/homestick-verity",
        "homestick-demo: profile from tmpfs (tmpfs)",
        "homestick-demo: read all of data.bin",
    ] {
        assert!(b.console.contains(want), "no {want:?} in:\n{}", b.console);
    }
    let devices = lines_with(&b.console, "homestick-demo: block devices ");
    assert_eq!(devices.len(), 1, "{}", b.console);
    assert_eq!(
        devices[0],
        "homestick-demo: block devices dm-0 dm-1 dm-2 vda"
    );
    assert_clean_power_off(&b);
}

/// The stick as an attacker without a key makes it: LBA 0 becomes a DOS partition table whose
/// 0xEF entry covers the real ESP (the firmware still boots the signed UKI) and whose entries
/// 2 and 3 point past the image's end, at the attacker's squashfs (whose init prints
/// `ATTACKER-INIT-RUNS`) and a copy of the profile partition.
fn dos_table_attack(img: &Path, dir: &Path) -> PathBuf {
    let root = attacker_root(dir);
    let mut b = fs::read(img).unwrap();
    let part = |name: &str| {
        let (f, l) = partition_lbas(img, name);
        (f as usize, l as usize)
    };
    let esp = part("esp");
    let prof = part("profile");
    let profile_bytes = b[prof.0 * 512..(prof.1 + 1) * 512].to_vec();
    let sys_first = b.len() / 512;
    b.extend_from_slice(&root);
    let prof_first = b.len() / 512;
    b.extend_from_slice(&profile_bytes);
    crate::stick_gaps::dos_table(
        &mut b,
        (esp.1 - esp.0 + 1) as u32,
        (sys_first as u32, (root.len() / 512) as u32),
        (prof_first as u32, (profile_bytes.len() / 512) as u32),
    );
    let p = dir.join("dos-attack.img");
    fs::write(&p, b).unwrap();
    p
}

/// The attacker's system: the demo system with an init that prints `ATTACKER-INIT-RUNS`, as a
/// squashfs padded to whole MiB.
fn attacker_root(dir: &Path) -> Vec<u8> {
    let tree = dir.join("attacker-tree");
    let sys = demo_base().join("system.img");
    let r = tool(
        "unsquashfs",
        &[
            "-q",
            "-d",
            &tree.display().to_string(),
            &sys.display().to_string(),
        ],
    );
    assert_eq!(r.code, 0, "unsquashfs: {}", r.all());
    fs::write(
        tree.join("sbin/init"),
        "#!/bin/busybox sh\necho ATTACKER-INIT-RUNS\n/bin/busybox poweroff -f\n",
    )
    .unwrap();
    let squash = dir.join("attacker.squashfs");
    let r = tool(
        "mksquashfs",
        &[
            &tree.display().to_string(),
            &squash.display().to_string(),
            "-noappend",
            "-all-root",
            "-quiet",
        ],
    );
    assert_eq!(r.code, 0, "mksquashfs: {}", r.all());
    let mut root = fs::read(&squash).unwrap();
    root.resize(root.len().div_ceil(1 << 20) << 20, 0);
    root
}

/// A 4K-sector view only a device with 4096-byte logical sectors shows: the 512-byte view
/// stays exactly as signed, and a valid *backup* GPT in 4096-byte units at the disk's new end
/// (firmware and Linux fall back to it, since there is no 4K primary at byte 4096) holds the
/// real ESP, the attacker's root and a copy of the profile.
fn forged_4k_view(img: &Path, dir: &Path) -> PathBuf {
    let root = attacker_root(dir);
    let mut b = fs::read(img).unwrap();
    let (prof_first, prof_last) = partition_lbas(img, "profile");
    let prof = b[prof_first as usize * 512..(prof_last as usize + 1) * 512].to_vec();
    b.resize(b.len().div_ceil(1 << 20) << 20, 0);
    let sys = (
        b.len() as u64 / 4096,
        (b.len() + root.len()) as u64 / 4096 - 1,
    );
    b.extend_from_slice(&root);
    let pf = (
        b.len() as u64 / 4096,
        (b.len() + prof.len()) as u64 / 4096 - 1,
    );
    b.extend_from_slice(&prof);
    b.resize(b.len().div_ceil(4096) * 4096 + (1 << 20), 0);
    let last = b.len() as u64 / 4096 - 1;
    let esp_last = (partition_lbas(img, "esp").1 + 1) * 512 / 4096 - 1;
    let mut arr = vec![0u8; 128 * 128];
    for (i, (ty, first, end)) in [
        (homestick_image::gpt::TYPE_ESP, 256, esp_last),
        (homestick_image::gpt::TYPE_ROOT_X86_64, sys.0, sys.1),
        (homestick_image::gpt::TYPE_HOMESTICK_PROFILE, pf.0, pf.1),
    ]
    .into_iter()
    .enumerate()
    {
        let e = homestick_image::gpt::encode_entry(
            ty,
            uuid::Uuid::from_u128(i as u128 + 1),
            first,
            end,
            0,
            "forged",
        );
        arr[i * 128..(i + 1) * 128].copy_from_slice(&e);
    }
    let entries_lba = last - 4;
    let mut h = vec![0u8; 92];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    for (at, v) in [
        (24, last),
        (32, 1),
        (40, 6),
        (48, last - 5),
        (72, entries_lba),
    ] {
        h[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    h[56..72].copy_from_slice(&uuid::Uuid::from_u128(0xfeed).to_bytes_le());
    h[80..84].copy_from_slice(&128u32.to_le_bytes());
    h[84..88].copy_from_slice(&128u32.to_le_bytes());
    h[88..92].copy_from_slice(&crc32fast::hash(&arr).to_le_bytes());
    let crc = crc32fast::hash(&h);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    let at = entries_lba as usize * 4096;
    b[at..at + arr.len()].copy_from_slice(&arr);
    let at = last as usize * 4096;
    b[at..at + 92].copy_from_slice(&h);
    let p = dir.join("forged-4k.img");
    fs::write(&p, b).unwrap();
    p
}

#[test]
fn forged_4k_sector_view_is_refused_at_boot() {
    let forge = |img: &Path, dir: &Path| {
        let forged = forged_4k_view(img, dir);
        // With 512-byte sectors the forged bytes are outside everything that is read: trusted.
        assert_eq!(verify(&forged, &test_pub()).code, 0);
        forged
    };
    refused_at_boot(forge, Bus::Virtio4k, "4096-byte logical sectors");
}

#[test]
fn dos_partition_table_attack_is_refused_at_boot() {
    let attack = |img: &Path, dir: &Path| {
        let attack = dos_table_attack(img, dir);
        expect_untrusted(&attack, "LBA 0: not the protective MBR").unwrap();
        attack
    };
    refused_at_boot(attack, Bus::Virtio, "LBA 0: not the protective MBR");
}

#[test]
fn cyclic_fat_is_refused_at_boot_with_the_message() {
    let cyclic = |img: &Path, dir: &Path| {
        edited(img, dir, "cyclic.img", |b| {
            crate::stick_gaps::cyclic_homestick_dir(b)
        })
    };
    let b = refused_at_boot(cyclic, Bus::Virtio, "cluster chain loops");
    assert!(b.console.contains("DEUTSCH") && b.console.contains("+49 5555 1234-100"));
}

#[test]
fn firmware_refuses_an_unsigned_or_wrongly_signed_uki() {
    let d = tempfile::tempdir().unwrap();
    let unsigned = build_boot_image(d.path(), "unsigned.img", false, &[]);
    let other = d.path().join("other-db");
    let r = hs(&["keys", "secure-boot", "--out", &other.display().to_string()]);
    assert_eq!(r.code, 0, "{}", r.all());
    let wrong = build_boot_image(
        d.path(),
        "wrong.img",
        false,
        &[
            "--secure-boot-key".into(),
            d.path().join("other-db.key").display().to_string(),
            "--secure-boot-cert".into(),
            d.path().join("other-db.crt").display().to_string(),
        ],
    );
    // The not-enrolled key's signature is a valid Authenticode signature; only the firmware's db decides.
    let uki = esp_file(&wrong, "EFI/BOOT/BOOTX64.EFI");
    let p = d.path().join("wrong.efi");
    fs::write(&p, uki).unwrap();
    let r = tool(
        "sbverify",
        &[
            "--cert",
            &d.path().join("other-db.crt").display().to_string(),
            &p.display().to_string(),
        ],
    );
    assert_eq!(r.code, 0, "sbverify with its own cert: {}", r.all());
    for img in [unsigned, wrong] {
        let b = boot(d.path(), &img, Bus::Virtio, Some("Access Denied"));
        assert!(
            b.console.contains("Access Denied"),
            "{}: firmware must refuse:\n{}",
            img.display(),
            b.console
        );
        assert!(
            !b.console.contains("homestick:"),
            "{}: nothing of ours may run:\n{}",
            img.display(),
            b.console
        );
    }
}

fn tampered_boot(what: &str, at: impl Fn(&Path) -> usize, want: &str) {
    eprintln!("tampered: {what}");
    let flip = |img: &Path, dir: &Path| flipped(img, at(img), dir, "tampered.img");
    let b = refused_at_boot(flip, Bus::Virtio, want);
    assert!(
        b.console.contains("DEUTSCH") && b.console.contains("ENGLISH"),
        "{what}: message for the person at home"
    );
    assert!(
        b.console.contains("+49 5555 1234-100"),
        "{what}: the hotline"
    );
}

fn part_offset(img: &Path, name: &str) -> usize {
    let (f, l) = partition_lbas(img, name);
    ((f + l) / 2 * 512) as usize
}

/// One changed byte in a file of the system: the verdict (signature, GPT, the tree's top
/// against the signed root hash) is still good, because the verifier no longer reads the whole
/// system; dm-verity then fails the read of that block, and the demo system says so.
#[test]
fn changed_byte_in_a_system_file_is_an_io_error_for_the_system() {
    let dir = tempfile::tempdir().unwrap();
    let img = build_boot_image(dir.path(), "demo.img", true, &[]);
    let data = homestick_testkit::pseudo_random(
        homestick_testkit::DEMO_DATA_SEED,
        homestick_testkit::DEMO_DATA_LEN,
    );
    let at = find_once(&fs::read(&img).unwrap(), &data[100_000..100_064]);
    let (first, last) = partition_lbas(&img, "system");
    assert!((first * 512..=last * 512).contains(&(at as u64)));
    let bad = flipped(&img, at + 10, dir.path(), "tampered.img");
    let b = boot(dir.path(), &bad, Bus::Virtio, None);
    for want in [
        "homestick: image verified:",
        "homestick: system through dm-verity",
        "homestick-demo: I/O error reading /usr/share/homestick-demo/data.bin",
        "homestick-demo: vpn buero",
    ] {
        assert!(b.console.contains(want), "no {want:?} in:\n{}", b.console);
    }
    assert!(!b.console.contains("VERIFICATION FAILED"), "{}", b.console);
    assert!(!b.console.contains("read all of data.bin"), "{}", b.console);
    assert_clean_power_off(&b);
}

#[test]
fn changed_byte_in_the_verity_superblock_is_refused_at_boot() {
    tampered_boot(
        "verity superblock",
        |i| partition_lbas(i, "system-verity").0 as usize * 512 + 90,
        "superblock: salt differs from the signed manifest's",
    );
}

#[test]
fn changed_byte_in_the_top_of_the_hash_tree_is_refused_at_boot() {
    tampered_boot(
        "top of the tree",
        |i| partition_lbas(i, "system-verity").0 as usize * 512 + 4096 + 7,
        "top level of the hash tree hashes to",
    );
}

#[test]
fn changed_byte_in_the_profile_partition_is_refused_at_boot() {
    tampered_boot(
        "profile",
        |i| part_offset(i, "profile") + 100,
        "partition 3 (profile): SHA-256",
    );
}

#[test]
fn changed_byte_in_manifest_json_is_refused_at_boot() {
    tampered_boot(
        "manifest.json",
        |i| {
            let m = esp_file(i, "homestick/manifest.json");
            find_once(&fs::read(i).unwrap(), &m) + m.len() / 2
        },
        "signature:",
    );
}

#[test]
fn changed_byte_in_manifest_sig_is_refused_at_boot() {
    tampered_boot(
        "manifest.sig",
        |i| {
            find_once(
                &fs::read(i).unwrap(),
                &esp_file(i, "homestick/manifest.sig"),
            ) + 10
        },
        "signature:",
    );
}

/// Flip one byte of the primary GPT's entry array and recompute both CRCs, as an attacker
/// would: with the CRCs left broken, OVMF restores the primary GPT from the backup before
/// anything of ours runs (and the verifier then rightly trusts the healed table).
fn consistent_gpt_edit(img: &Path, dir: &Path) -> PathBuf {
    let mut b = fs::read(img).unwrap();
    b[1024 + 128 + 20] ^= 1; // entry 2 (system), unique GUID
    let entries_crc = crc32fast::hash(&b[1024..1024 + 128 * 128]);
    b[512 + 88..512 + 92].copy_from_slice(&entries_crc.to_le_bytes());
    b[512 + 16..512 + 20].fill(0);
    let header_crc = crc32fast::hash(&b[512..512 + 92]);
    b[512 + 16..512 + 20].copy_from_slice(&header_crc.to_le_bytes());
    let p = dir.join("gpt-edited.img");
    fs::write(&p, b).unwrap();
    p
}

#[test]
fn consistently_edited_gpt_entry_is_refused_at_boot() {
    refused_at_boot(
        consistent_gpt_edit,
        Bus::Virtio,
        "GPT entry 2 (system): unique GUID",
    );
}

#[test]
fn image_signed_with_an_untrusted_ed25519_key_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let other = d.path().join("other");
    assert_eq!(
        hs(&["keys", "generate", "--out", &other.display().to_string()]).code,
        0
    );
    // The UKI trusts only the test key; the manifest is signed with another key.
    let img = build_boot_image(
        d.path(),
        "other-key.img",
        true,
        &[
            "--key".into(),
            d.path().join("other.key").display().to_string(),
            "--boot-keyring".into(),
            test_pub().display().to_string(),
        ],
    );
    let b = boot(d.path(), &img, Bus::Virtio, None);
    assert_refused(&b, "does not verify");
    assert!(b.console.contains("with any trusted key"), "{}", b.console);
}

/// The good image boots with the stick on `bus`.
fn boots_on(bus: Bus) {
    let d = tempfile::tempdir().unwrap();
    let img = build_boot_image(d.path(), "good.img", true, &[]);
    let b = boot(d.path(), &img, bus, None);
    assert_eq!(
        lines_with(&b.console, "homestick: image verified: ").len(),
        1,
        "{bus:?}:\n{}",
        b.console
    );
    eprintln!(
        "BOOT VERDICT ({bus:?}): {:?}",
        lines_with(&b.console, "homestick: verdict after ")
    );
    assert!(
        b.console.contains("homestick-demo: vpn buero"),
        "{bus:?}:\n{}",
        b.console
    );
    assert_clean_power_off(&b);
}

#[test]
fn stick_attached_as_usb_storage_boots() {
    boots_on(Bus::Usb);
}

#[test]
fn builder_refuses_forbidden_kernel_parameters() {
    let cases = [
        ("init=/bin/sh", "forbidden parameter \"init=/bin/sh\""),
        ("rdinit=/bin/sh", "forbidden parameter \"rdinit=/bin/sh\""),
        ("rd.shell", "forbidden parameter \"rd.shell\""),
        (
            "rd.break=pre-mount",
            "forbidden parameter \"rd.break=pre-mount\"",
        ),
        (
            "systemd.debug_shell=1",
            "forbidden parameter \"systemd.debug_shell=1\"",
        ),
        ("single", "forbidden parameter \"single\""),
        ("emergency", "forbidden parameter \"emergency\""),
        (
            "systemd.unit=rescue.target",
            "forbidden parameter \"systemd.unit=rescue.target\"",
        ),
        ("lockdown=none", "\"lockdown=none\": use lockdown=integrity"),
        ("rw", "\"rw\": the root file system must be read-only"),
    ];
    let d = tempfile::tempdir().unwrap();
    let good = fs::read_to_string(demo_base().join("cmdline")).unwrap();
    let base = d.path().join("base");
    let r = sh(&format!(
        "cp -r {} {}",
        demo_base().display(),
        base.display()
    ));
    assert_eq!(r.code, 0);
    let out = d.path().join("x.img");
    let build_with_cmdline = |cmdline: &str| {
        fs::write(base.join("cmdline"), cmdline).unwrap();
        Build::new(&demo_profile(), &base, &out)
            .opt("--boot-verifier", verifier())
            .run()
    };
    for (param, want) in cases {
        let r = build_with_cmdline(&format!("{} {param}\n", good.trim()));
        assert_eq!(r.code, 2, "{param}: {}", r.all());
        assert!(
            r.stderr.contains("cmdline: ") && r.stderr.contains(want),
            "{param}: expected {want:?} in {}",
            r.stderr
        );
        assert!(!out.exists());
    }
    let r = build_with_cmdline(&good.replace("lockdown=integrity", ""));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("lockdown=integrity (or lockdown=confidentiality) is required"),
        "{}",
        r.stderr
    );
    // The unchanged command line builds: the lint is not refusing everything.
    let r = build_with_cmdline(&good);
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn secure_boot_signature_passes_sbverify_and_the_uki_has_its_sections_in_order() {
    let d = tempfile::tempdir().unwrap();
    let img = build_boot_image(d.path(), "good.img", true, &[]);
    let p = d.path().join("BOOTX64.EFI");
    fs::write(&p, esp_file(&img, "EFI/BOOT/BOOTX64.EFI")).unwrap();
    let r = tool("sbverify", &["--cert", SB_CERT, &p.display().to_string()]);
    assert_eq!(r.code, 0, "sbverify: {}", r.all());
    let names = homestick_signing::uki::section_names(&fs::read(&p).unwrap()).unwrap();
    let tail: Vec<&str> = names
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [".osrel", ".cmdline", ".initrd", ".linux", ".sbat"],
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| *n == ".sbat").count(),
        1,
        "exactly one .sbat: {names:?}"
    );
    let r = tool("objdump", &["-h", &p.display().to_string()]);
    assert_eq!(r.code, 0, "objdump reads the UKI: {}", r.all());
    // Reproducible: the same inputs give the same signed UKI and image.
    let again = build_boot_image(d.path(), "again.img", true, &[]);
    assert!(
        fs::read(&img).unwrap() == fs::read(&again).unwrap(),
        "two builds differ"
    );
}

#[test]
fn stick_attached_as_sata_disk_boots() {
    boots_on(Bus::Sata);
}

#[test]
fn a_users_image_from_a_stick_set_boots_with_secure_boot_enforced() {
    let d = tempfile::tempdir().unwrap();
    let profile = crate::roster::profile_with_pool(d.path());
    let roster = d.path().join("roster.csv");
    crate::roster::two_users(&roster);
    let set = d.path().join("set");
    // The provider revoked anna (her stick was lost): the set's one UKI lets ben in and keeps
    // anna out.
    let mut extra: Vec<String> = vec![
        "--profile".into(),
        profile.display().to_string(),
        "--roster".into(),
        roster.display().to_string(),
    ];
    extra.extend(signed_list(
        d.path(),
        &["--user", "stadt-musterhausen/anna"],
    ));
    // With --roster, build_boot_image's output is the set's directory.
    let out = build_boot_image(d.path(), "set", true, &extra);
    assert_eq!(out, set);
    let s = homestick_image::set::StickSet::open_unchecked(&set).unwrap();
    let user_image = |user: &str| {
        let img = s.image(user).unwrap();
        let mut bytes = vec![0u8; homestick_image::disk::Disk::size(&img) as usize];
        homestick_image::disk::Disk::read_exact_at(&img, &mut bytes, 0).unwrap();
        let file = d.path().join(format!("{user}.img"));
        fs::write(&file, bytes).unwrap();
        file
    };
    let anna = boot(d.path(), &user_image("anna"), Bus::Virtio, None);
    assert_refused(&anna, "user anna of customer stadt-musterhausen is revoked");
    assert!(
        anna.console.contains("wurde gesperrt") && anna.console.contains("has been revoked"),
        "{}",
        anna.console
    );
    let file = user_image("ben");
    let b = boot(d.path(), &file, Bus::Virtio, None);
    let ok = lines_with(&b.console, "homestick: image verified: ");
    assert_eq!(ok.len(), 1, "success line:\n{}", b.console);
    let id = s.index.user("ben").unwrap().image_id.to_string();
    assert!(
        ok[0].contains(&id) && ok[0].ends_with(" user ben"),
        "{}",
        ok[0]
    );
    assert!(
        b.console
            .contains("homestick-demo: profile from tmpfs (tmpfs)"),
        "{}",
        b.console
    );
    assert_clean_power_off(&b);
}

/// A revocation list with `add`'s entries, signed by a revocation key of its own (a key
/// cannot sign a list that revokes it); returns the build arguments that take it: the list and
/// a boot keyring of the test key and that revocation key.
fn signed_list(dir: &Path, add: &[&str]) -> Vec<String> {
    let ring = dir.join("ring");
    fs::create_dir_all(&ring).unwrap();
    let r = hs(&[
        "keys".as_ref(),
        "generate".as_ref(),
        "--out".as_ref(),
        dir.join("revoker").as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    fs::copy(dir.join("revoker.pub"), ring.join("revoker.pub")).unwrap();
    fs::copy(test_pub(), ring.join("test.pub")).unwrap();
    let list = dir.join("revocations.json");
    let l = list.display().to_string();
    let mut a = vec!["revocations", "add", &l];
    a.extend(add);
    let r = hs(&a);
    assert_eq!(r.code, 0, "{}", r.all());
    let k = dir.join("revoker.key").display().to_string();
    let r = hs(&["revocations", "sign", &l, "--key", &k]);
    assert_eq!(r.code, 0, "{}", r.all());
    vec![
        "--revocations".into(),
        l,
        "--boot-keyring".into(),
        ring.display().to_string(),
    ]
}

#[test]
fn an_image_whose_signing_key_is_revoked_is_refused_at_boot() {
    let d = tempfile::tempdir().unwrap();
    let key_id = homestick_image::keys::load_public_key(&test_pub())
        .unwrap()
        .id;
    let list_args = signed_list(d.path(), &["--key-id", &key_id]);
    let img = build_boot_image(d.path(), "revoked-key.img", true, &list_args);
    let b = boot(d.path(), &img, Bus::Virtio, None);
    assert_refused(
        &b,
        &format!("revocation list version 1: the signing key {key_id} is revoked"),
    );
    assert!(b.console.contains("wurde gesperrt"), "{}", b.console);
}

/// A copy of `img` with new random disk and partition GUIDs: the firmware boots its ESP, and
/// no verifier takes it for the stick it was built for.
fn other_disk(dir: &Path, img: &Path) -> PathBuf {
    let disk = dir.join("boot-disk.img");
    fs::copy(img, &disk).unwrap();
    let r = tool("sgdisk", &["-G", &disk.display().to_string()]);
    assert_eq!(r.code, 0, "{}", r.all());
    disk
}

#[test]
fn a_newer_uki_refuses_an_older_stick_whose_image_id_is_revoked() {
    // The image id covers the UKI, so no image can list itself. The list protects when the
    // UKI comes from a newer build than the stick's partitions: here the PC starts the newer
    // build's UKI from another disk and it finds the older stick by its disk GUID.
    let d = tempfile::tempdir().unwrap();
    let old = build_boot_image(d.path(), "old.img", true, &[]);
    let old_id = inspect_json(&old)["image_id"].as_str().unwrap().to_string();
    let list_args = signed_list(d.path(), &["--image-id", &old_id]);
    let newer = build_boot_image(d.path(), "newer.img", true, &list_args);
    assert_eq!(
        inspect_json(&newer)["disk"]["guid"],
        inspect_json(&old)["disk"]["guid"],
        "same inputs, same disk GUID"
    );
    let first = other_disk(d.path(), &newer);
    let b = boot_from(d.path(), Some(&first), &old, Bus::Virtio, None);
    assert_refused(
        &b,
        &format!("revocation list version 1: image {old_id} is revoked"),
    );
    // The older stick's own UKI, which has no list, still starts it: what stops an old stick
    // for good is its expiry, or a new Secure Boot db key (docs/threat-model.md).
    let b = boot(d.path(), &old, Bus::Virtio, None);
    assert_eq!(
        lines_with(&b.console, "homestick: image verified: ").len(),
        1,
        "{}",
        b.console
    );
}

#[test]
fn an_expired_image_is_refused_at_boot_and_one_in_its_last_days_warns_first() {
    let d = tempfile::tempdir().unwrap();
    // Built two hours ago: the PC's clock (QEMU's, the host's) is past the first image's expiry.
    let built = now() - 7200;
    let expired_at = homestick_image::time::rfc3339(built + 3600);
    let expired = build_boot_image_at(
        d.path(),
        "expired.img",
        true,
        &["--expires".into(), expired_at.clone()],
        built,
    );
    let b = boot(d.path(), &expired, Bus::Virtio, None);
    assert_refused(&b, &format!("expiry: the image expired at {expired_at}"));
    assert!(
        b.console.contains("ist abgelaufen") && b.console.contains("has expired"),
        "{}",
        b.console
    );

    let soon = build_boot_image_at(
        d.path(),
        "soon.img",
        true,
        &["--expires".into(), "+3".into()],
        built,
    );
    let b = boot(d.path(), &soon, Bus::Virtio, None);
    let notice = b.console.find("laeuft am").expect("the notice in German");
    assert!(
        b.console.contains("expires on") && b.console.contains("(in 3 day(s))"),
        "{}",
        b.console
    );
    assert!(
        b.console.contains("+49 5555 1234-100"),
        "the hotline: {}",
        b.console
    );
    let started = b
        .console
        .find("homestick-demo: vpn buero")
        .expect("the system starts after the notice");
    assert!(notice < started, "{}", b.console);
    assert_clean_power_off(&b);
}

#[test]
fn a_rotated_keyring_at_boot_trusts_the_new_key_beside_the_old_and_refuses_the_retired_one() {
    let d = tempfile::tempdir().unwrap();
    let ring = d.path().join("ring");
    fs::create_dir(&ring).unwrap();
    for name in ["provider-2025", "provider-2026"] {
        let r = hs(&[
            "keys",
            "generate",
            "--out",
            &ring.join(name).display().to_string(),
        ]);
        assert_eq!(r.code, 0, "{}", r.all());
    }
    // Every image here is built at EPOCH, 2026-11-30: after the 2025 key was retired.
    fs::write(
        ring.join("keyring.toml"),
        "[[key]]\nfile = \"provider-2025.pub\"\ncomment = \"2025\"\nnot_after = \"2026-11-01\"\n\n\
         [[key]]\nfile = \"provider-2026.pub\"\ncomment = \"2026\"\nnot_before = \"2026-11-01\"\n",
    )
    .unwrap();
    let signed_by = |name: &str| {
        build_boot_image(
            d.path(),
            &format!("{name}.img"),
            true,
            &[
                "--key".into(),
                ring.join(format!("{name}.key")).display().to_string(),
                "--boot-keyring".into(),
                ring.display().to_string(),
            ],
        )
    };
    let new = boot(d.path(), &signed_by("provider-2026"), Bus::Virtio, None);
    assert_eq!(
        lines_with(&new.console, "homestick: image verified: ").len(),
        1,
        "{}",
        new.console
    );
    assert_clean_power_off(&new);
    let old = boot(d.path(), &signed_by("provider-2025"), Bus::Virtio, None);
    assert_refused(&old, "(2025) signed this image, built 2026-11-30T00:53:20Z, after the key was retired at 2026-11-01T00:00:00Z");
}
