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

/// `cargo xtask demo`: the demo customer's signed image, built, verified, and booted: through
/// shim on a PC with Microsoft's keys only (the enrolment typed as the first-start guide says),
/// or with `snakeoil` the UKI alone on firmware that trusts the snakeoil db key.
pub(crate) fn demo(snakeoil: bool) -> Result<()> {
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
    if !snakeoil {
        args.extend(["--boot-path".into(), "shim".into()]);
    }
    build_demo_image(&bin, &base, &img, &args)?;
    run(Command::new(&bin).arg("inspect").arg(&img))?;
    run(Command::new(&bin)
        .arg("verify")
        .arg(&img)
        .arg("--keyring")
        .arg(r.join("keys/test/homestick-test.pub")))?;
    if snakeoil {
        return boot_snakeoil(&out, &img);
    }
    boot_home_pc(&out, &img)
}

/// Boot `img` on OVMF with the snakeoil keys, on this terminal.
fn boot_snakeoil(out: &Path, img: &Path) -> Result<()> {
    eprintln!("\nxtask: booting {} in QEMU with OVMF, Secure Boot enforced (about 15 s; Ctrl-A X quits)\n", img.display());
    let vars = out.join("OVMF_VARS_4M.snakeoil.fd");
    fs::copy(homestick_testkit::OVMF_SNAKEOIL_VARS, &vars)?;
    run(homestick_testkit::qemu_secure_boot(&vars)
        .arg("-drive")
        .arg(stick(img)))?;
    eprintln!(
        "xtask: demo done: {} was built, verified offline, and verified itself at boot",
        img.display()
    );
    Ok(())
}

fn stick(img: &Path) -> String {
    format!("if=virtio,format=raw,snapshot=on,file={}", img.display())
}

/// Boot `img` twice on a fresh "home PC" (OVMF, Microsoft's keys only): the first start enrols
/// the provider's certificate with MokManager, the second goes straight to the verifier.
fn boot_home_pc(out: &Path, img: &Path) -> Result<()> {
    use homestick_formats::shim;
    let vars = out.join("OVMF_VARS_4M.ms.fd");
    fs::copy(homestick_testkit::OVMF_MS_VARS, &vars)?;
    let spawn = || {
        let mut cmd = homestick_testkit::qemu_microsoft(&vars);
        cmd.arg("-drive").arg(stick(img));
        homestick_testkit::qemu::Qemu::spawn(&mut cmd)
    };
    eprintln!("\nxtask: first start of {} on a PC that trusts only Microsoft's keys: shim refuses the provider's key, MokManager enrols it from the stick (the first-start guide's steps, typed on the serial console)", img.display());
    let mut q = spawn();
    let steps = shim::enrolment(&shim::esp_root(&[]));
    let seen = homestick_testkit::mok::enrol(&q, &steps, 300).map_err(anyhow::Error::msg)?;
    for line in seen {
        eprintln!("xtask:   {line}");
    }
    q.wait_exit(300).map_err(anyhow::Error::msg)?;
    eprintln!("xtask: second start on the same PC: straight to the boot verifier");
    let console = spawn().wait_exit(300).map_err(anyhow::Error::msg)?;
    let console = homestick_testkit::qemu::plain_text(&console);
    for line in console
        .lines()
        .filter(|l| l.contains("homestick") || l.contains("Secure Boot"))
    {
        eprintln!("  {}", line.trim());
    }
    if !console.contains("homestick: image verified") {
        anyhow::bail!("the second start did not verify the image; console:\n{console}");
    }
    eprintln!(
        "xtask: demo done: {} was built, verified offline, and started on a Microsoft-keys PC through Debian's shim after a one-time enrolment; it verified itself at boot (`cargo xtask demo --snakeoil`: the db path)",
        img.display()
    );
    Ok(())
}
