//! `cargo xtask demo`: the demo customer's signed image, and the `build` arguments of a
//! bootable image that the benches share.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::tasks::test::install_test_packages;
use crate::tasks::{boot_verifier, homestick_bin};
use crate::{root, run};

/// Build the demo customer's image from `base`, signed with the test key, reproducibly.
pub(crate) fn build_demo_image<S: AsRef<std::ffi::OsStr>>(
    bin: &Path,
    base: &Path,
    img: &Path,
    extra: &[S],
) -> Result<()> {
    let r = root();
    run(Command::new(bin)
        .arg("build")
        .arg("--profile")
        .arg(r.join("profiles/stadt-musterhausen"))
        .arg("--base")
        .arg(base)
        .arg("--key")
        .arg(homestick_testkit::test_key())
        .arg("--output")
        .arg(img)
        .args(extra)
        .env("SOURCE_DATE_EPOCH", homestick_testkit::EPOCH_TEXT))
}

/// `build` arguments for a bootable image: the static boot verifier, the refusal delay, and
/// the UKI signed for Secure Boot with OVMF's snakeoil db key (test material shipped with
/// Debian's ovmf package; its passphrase goes to a file in `dir`).
pub(crate) fn signed_boot_args(dir: &Path, failure_delay: u32) -> Result<Vec<String>> {
    let verifier = boot_verifier()?;
    let pw = dir.join("snakeoil.pw");
    fs::write(&pw, "snakeoil\n")?;
    // Debian ships the key 0644; homestick takes private keys only if no one else may read them.
    let key =
        homestick_testkit::private_copy(Path::new("/usr/share/ovmf/PkKek-1-snakeoil.key"), dir);
    Ok(vec![
        "--boot-verifier".into(),
        verifier.display().to_string(),
        "--failure-delay".into(),
        failure_delay.to_string(),
        "--secure-boot-key".into(),
        key.display().to_string(),
        "--secure-boot-cert".into(),
        "/usr/share/ovmf/PkKek-1-snakeoil.pem".into(),
        "--secure-boot-passphrase-file".into(),
        pw.display().to_string(),
    ])
}

/// `cargo xtask demo`: the demo customer's signed image, built and verified.
pub(crate) fn demo() -> Result<()> {
    install_test_packages()?;
    let r = root();
    let out = r.join("out");
    fs::create_dir_all(&out)?;
    let base = out.join("demo-base");
    crate::tasks::demo_base::base(&base)?;
    let bin = homestick_bin()?;
    let img = out.join("stadt-musterhausen.img");
    let mut args = vec!["--version".to_string(), "2026.11.1".into()];
    args.extend(signed_boot_args(&out, 15)?);
    build_demo_image(&bin, &base, &img, &args)?;
    run(Command::new(&bin).arg("inspect").arg(&img))?;
    run(Command::new(&bin)
        .arg("verify")
        .arg(&img)
        .arg("--keyring")
        .arg(r.join("keys/test/homestick-test.pub")))?;
    eprintln!("\nxtask: booting {} in QEMU with OVMF, Secure Boot enforced (about 15 s; Ctrl-A X quits)\n", img.display());
    let vars = out.join("OVMF_VARS_4M.snakeoil.fd");
    fs::copy(homestick_testkit::OVMF_SNAKEOIL_VARS, &vars)?;
    run(homestick_testkit::qemu_secure_boot(&vars)
        .arg("-drive")
        .arg(format!(
            "if=virtio,format=raw,snapshot=on,file={}",
            img.display()
        )))?;
    eprintln!(
        "xtask: demo done: {} was built, verified offline, and verified itself at boot",
        img.display()
    );
    Ok(())
}
