//! `cargo xtask base`: a real, small demo base from Debian packages.
//!
//! Fetches linux-image (kernel + modules), busybox-static, systemd-boot-efi (the EFI stub) and
//! Debian's Microsoft-signed shim with MokManager (shim-signed, shim-helpers-amd64-signed)
//! with `apt-get download` into a cache (target/debcache), then writes a base: the kernel, an
//! initrd with just the modules the boot verifier needs (dependencies resolved from each
//! module's modinfo), a locked-down command line, the stub, and a squashfs system whose init
//! prints what the profile partition holds and powers off.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{root, run};

/// The demo system's init: reads the mounted profile, prints the demo lines, powers off
/// (`@PROFILE_MOUNT@` and `@PROFILE_JSON@` replaced by the formats crate's paths).
const DEMO_INIT: &str = r#"#!/bin/busybox sh
# homestick demo system: shows what the verified profile partition holds, then powers off.
export PATH=/bin
P=@PROFILE_MOUNT@/@PROFILE_JSON@
echo "homestick-demo: system started"
# What the system runs from: the verifier's device-mapper node, and no partition of the stick
# that the kernel found by itself.
echo "homestick-demo: root $(awk '$2 == "/" { print $1 }' /proc/mounts)"
echo "homestick-demo: block devices" $(ls /sys/class/block)
echo "homestick-demo: profile from $(awk '$2 == "/run/homestick/profile" { print $1 " (" $3 ")" }' /proc/mounts)"
# Every block the system reads is checked by dm-verity: a changed one is an I/O error here.
if cat /usr/share/homestick-demo/data.bin > /dev/null; then
  echo "homestick-demo: read all of data.bin"
else
  echo "homestick-demo: I/O error reading /usr/share/homestick-demo/data.bin"
fi
if [ -r "$P" ]; then
  awk '
    /^  "vpn": \[/ { invpn = 1; next }
    invpn && /^  \]/ { invpn = 0 }
    invpn && /^      "name": / { gsub(/[",]/, "", $2); name = $2 }
    invpn && /^      "endpoint": / { gsub(/[",]/, "", $2); print "homestick-demo: vpn " name " " $2 }
    /^    "registrar": / { gsub(/[",]/, "", $2); print "homestick-demo: sip " $2 }
  ' "$P"
else
  echo "homestick-demo: no profile at $P"
fi
echo "homestick-demo: powering off"
sync
poweroff -f
"#;

fn cache() -> PathBuf {
    std::env::var_os("HOMESTICK_DEB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/debcache"))
}

fn output(cmd: &mut Command) -> Result<String> {
    let o = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !o.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Download and unpack a Debian package once; returns its unpacked root.
fn fetch(pkg: &str) -> Result<PathBuf> {
    let dir = cache().join(pkg);
    if dir.join(".done").exists() {
        return Ok(dir);
    }
    let dl = cache().join("downloads");
    fs::create_dir_all(&dl)?;
    run(Command::new("apt-get")
        .args(["download", pkg])
        .current_dir(&dl))?;
    let deb = fs::read_dir(&dl)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{pkg}_")))
        })
        .with_context(|| format!("apt-get download {pkg} left no .deb"))?;
    // What an earlier run left, if anything; writing below fails if it stays.
    let _ = fs::remove_dir_all(&dir);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
    fs::write(dir.join(".done"), "")?;
    Ok(dir)
}

/// A static busybox (Debian's busybox-static), for test VMs that need a shell.
pub fn busybox() -> Result<PathBuf> {
    Ok(fetch("busybox-static")?.join("bin/busybox"))
}

/// The versioned kernel package linux-image-amd64 points to.
fn kernel_package() -> Result<String> {
    let deps = match output(Command::new("apt-cache").args(["depends", "linux-image-amd64"])) {
        Ok(d) if d.contains("Depends: linux-image-") => d,
        _ => {
            run(Command::new("apt-get").args(["update", "-qq"]))?;
            output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?
        }
    };
    deps.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|d| d.starts_with("linux-image-"))
        .map(str::to_string)
        .context("apt-cache depends linux-image-amd64 names no kernel (run apt-get update)")
}

fn system_image(busybox: &Path, out: &Path) -> Result<()> {
    let tree = out.with_extension("tree");
    // What an earlier run left, if anything; writing below fails if it stays.
    let _ = fs::remove_dir_all(&tree);
    for d in ["bin", "sbin", "dev", "proc", "sys", "run", "tmp", "etc"] {
        fs::create_dir_all(tree.join(d))?;
    }
    fs::copy(busybox, tree.join("bin/busybox"))?;
    let share = tree.join("usr/share/homestick-demo");
    fs::create_dir_all(&share)?;
    fs::write(
        share.join("data.bin"),
        homestick_testkit::pseudo_random(
            homestick_testkit::DEMO_DATA_SEED,
            homestick_testkit::DEMO_DATA_LEN,
        ),
    )?;
    for applet in [
        "sh", "awk", "cat", "echo", "mount", "poweroff", "sync", "sleep", "ls",
    ] {
        std::os::unix::fs::symlink("busybox", tree.join("bin").join(applet))?;
    }
    let init = DEMO_INIT
        .replace("@PROFILE_MOUNT@", homestick_formats::paths::PROFILE_MOUNT)
        .replace("@PROFILE_JSON@", homestick_formats::paths::PROFILE_JSON);
    fs::write(tree.join("sbin/init"), init)?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(tree.join("sbin/init"), fs::Permissions::from_mode(0o755))?;
    fs::write(
        tree.join("etc/os-release"),
        "NAME=\"homestick demo system\"\nID=homestick-demo\n",
    )?;
    // mksquashfs appends to an existing file: the old one goes first, if there is one.
    let _ = fs::remove_file(out);
    run(Command::new("mksquashfs").arg(&tree).arg(out).args([
        "-noappend",
        "-all-root",
        "-no-xattrs",
        "-comp",
        "gzip",
        "-mkfs-time",
        "0",
        "-all-time",
        "0",
        "-quiet",
    ]))?;
    fs::remove_dir_all(&tree)?;
    Ok(())
}

/// Write the demo base to `out`.
pub fn base(out: &Path) -> Result<()> {
    if Command::new("mksquashfs").arg("-version").output().is_err() {
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "squashfs-tools"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let kpkg = kernel_package()?;
    let linux = fetch(&kpkg)?;
    let busybox = fetch("busybox-static")?;
    let sdboot = fetch("systemd-boot-efi")?;
    let kv = fs::read_dir(linux.join("lib/modules"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .context("kernel package has no modules")?;
    // The base is replaced; creating it below fails if the old one stays.
    let _ = fs::remove_dir_all(out);
    fs::create_dir_all(out.join("esp"))?;
    fs::copy(linux.join(format!("boot/vmlinuz-{kv}")), out.join("kernel"))?;
    fs::copy(
        sdboot.join("usr/lib/systemd/boot/efi/linuxx64.efi.stub"),
        out.join("linuxx64.efi.stub"),
    )?;
    // The shim boot path's programs (used with `build --boot-path shim`).
    let shim = fetch("shim-signed")?;
    let helpers = fetch("shim-helpers-amd64-signed")?;
    fs::copy(
        shim.join("usr/lib/shim/shimx64.efi.signed"),
        out.join(homestick_formats::shim::BASE_SHIM),
    )?;
    fs::copy(
        helpers.join("usr/lib/shim/mmx64.efi.signed"),
        out.join(homestick_formats::shim::BASE_MOK_MANAGER),
    )?;
    fs::write(
        out.join("cmdline"),
        "console=tty0 console=ttyS0,115200 lockdown=integrity ro panic=-1 loglevel=4\n",
    )?;

    let modules = homestick_base::resolve_modules(&linux, &kv)?;
    fs::write(
        out.join("initrd"),
        homestick_base::initrd(&linux, &modules)?,
    )?;
    let base_toml = homestick_formats::base::BaseToml {
        name: "homestick-demo".into(),
        version: kv.clone(),
        boot: Some(homestick_formats::base::BootToml {
            init: Some("/sbin/init".into()),
            modules: modules.iter().map(|rel| rel.display().to_string()).collect(),
            ..Default::default()
        }),
    }
    .to_toml(&format!(
        "Demo base generated by `cargo xtask base` from Debian packages ({kpkg}, busybox-static, systemd-boot-efi, shim-signed, shim-helpers-amd64-signed)."
    ))?;
    fs::write(out.join("base.toml"), base_toml)?;
    system_image(&busybox.join("bin/busybox"), &out.join("system.img"))?;
    eprintln!(
        "xtask: demo base in {} (kernel {kv}, {} modules)",
        out.display(),
        modules.len()
    );
    Ok(())
}
