//! `cargo xtask dist`: the .deb for stations and signing machines, and the minimal Debian root
//! the tests install it into.
//!
//! The package holds `homestick` (/usr/bin), the static boot verifier at the fixed path
//! `homestick build` takes by default (/usr/lib/homestick/homestick-boot), the session program
//! `homestick base build` puts into bases (/usr/lib/homestick/homestick-session), a man page for the
//! command and for every subcommand (clap_mangen), bash, zsh and fish completions
//! (clap_complete), all made from the CLI definition itself, and the docs and example profiles.
//! It is put together with dpkg-deb (no cargo-deb needed: one more tool to install on every
//! build machine for what a dozen lines do).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::tasks::{boot_verifier, session_program};
use crate::{root, run};

/// Where the .deb puts the static boot verifier (the CLI's default).
const BOOT_VERIFIER_PATH: &str = "usr/lib/homestick/homestick-boot";
/// Where the .deb puts the session program `homestick base build` installs into bases.
const SESSION_PATH: &str = "usr/lib/homestick/homestick-session";

/// The package's tree under target/dist/ while it is made.
struct Stage(PathBuf);

impl Stage {
    /// Put `data` at `rel` with `mode`.
    fn put(&self, rel: &str, data: &[u8], mode: u32) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().context("path has a parent")?)?;
        fs::write(&p, data).with_context(|| format!("writing {}", p.display()))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
        Ok(())
    }
}

/// Build the .deb; returns its path under target/dist/.
pub(crate) fn dist() -> Result<PathBuf> {
    let r = root();
    let version = env!("CARGO_PKG_VERSION");
    anyhow::ensure!(
        homestick::INSTALLED_BOOT_VERIFIER == format!("/{BOOT_VERIFIER_PATH}"),
        "the CLI looks for the boot verifier at {}, the package installs it at /{BOOT_VERIFIER_PATH}",
        homestick::INSTALLED_BOOT_VERIFIER
    );
    anyhow::ensure!(
        homestick::INSTALLED_SESSION == format!("/{SESSION_PATH}"),
        "the CLI looks for the session program at {}, the package installs it at /{SESSION_PATH}",
        homestick::INSTALLED_SESSION
    );
    run(Command::new("cargo")
        .args(["build", "--release", "--quiet", "-p", "homestick"])
        .current_dir(&r))?;
    let stage = Stage(r.join(format!("target/dist/homestick_{version}_amd64")));
    if stage.0.exists() {
        fs::remove_dir_all(&stage.0)?;
    }
    programs(&stage, &r)?;
    manual_and_completions(&stage)?;
    docs(&stage, &r)?;
    control(&stage, version)?;
    let deb = r.join(format!("target/dist/homestick_{version}_amd64.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&stage.0)
        .arg(&deb))?;
    eprintln!("xtask: {}", deb.display());
    Ok(deb)
}

/// The CLI (stripped), the static boot verifier and the session program.
fn programs(stage: &Stage, r: &Path) -> Result<()> {
    let verifier = boot_verifier()?;
    stage.put(
        "usr/bin/homestick",
        &fs::read(r.join("target/release/homestick"))?,
        0o755,
    )?;
    // The release profile keeps line tables for backtraces during development; a package
    // ships without them (77 MB -> 12 MB).
    run(Command::new("strip")
        .arg("--strip-debug")
        .arg(stage.0.join("usr/bin/homestick")))?;
    stage.put(BOOT_VERIFIER_PATH, &fs::read(&verifier)?, 0o755)?;
    stage.put(SESSION_PATH, &fs::read(session_program()?)?, 0o755)
}

/// Man pages (homestick(1), homestick-flash(1), homestick-keys-generate(1), ...) and the
/// shells' completions.
fn manual_and_completions(stage: &Stage) -> Result<()> {
    let cmd = homestick::cli::Cli::command();
    let mut pages = Vec::new();
    man_pages(&cmd, "homestick", &mut pages)?;
    for (name, page) in &pages {
        let gz = gzip(page)?;
        stage.put(&format!("usr/share/man/man1/{name}.1.gz"), &gz, 0o644)?;
    }
    for (shell, rel) in [
        (
            clap_complete::Shell::Bash,
            "usr/share/bash-completion/completions/homestick",
        ),
        (
            clap_complete::Shell::Zsh,
            "usr/share/zsh/vendor-completions/_homestick",
        ),
        (
            clap_complete::Shell::Fish,
            "usr/share/fish/vendor_completions.d/homestick.fish",
        ),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(
            shell,
            &mut homestick::cli::Cli::command(),
            "homestick",
            &mut out,
        );
        stage.put(rel, &out, 0o644)?;
    }
    Ok(())
}

/// The README, docs/*.md, the example profiles and the copyright file.
fn docs(stage: &Stage, r: &Path) -> Result<()> {
    let doc = "usr/share/doc/homestick";
    stage.put(
        &format!("{doc}/README.md"),
        &fs::read(r.join("README.md"))?,
        0o644,
    )?;
    for e in fs::read_dir(r.join("docs"))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "md") {
            let name = p
                .file_name()
                .context("file name")?
                .to_string_lossy()
                .into_owned();
            stage.put(&format!("{doc}/docs/{name}"), &fs::read(&p)?, 0o644)?;
        }
    }
    for e in walkdir::WalkDir::new(r.join("profiles")) {
        let e = e?;
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(r)?.display().to_string();
            stage.put(
                &format!("{doc}/examples/{rel}"),
                &fs::read(e.path())?,
                0o644,
            )?;
        }
    }
    stage.put(
        &format!("{doc}/copyright"),
        b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
Upstream-Name: homestick\n\nFiles: *\nLicense: Apache-2.0 or MIT\n",
        0o644,
    )
}

/// DEBIAN/control, with the installed size of what is staged so far.
fn control(stage: &Stage, version: &str) -> Result<()> {
    let size_kib: u64 = walkdir::WalkDir::new(&stage.0)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len().div_ceil(1024))
        .sum();
    stage.put(
        "DEBIAN/control",
        format!(
            "Package: homestick\nVersion: {version}\nArchitecture: amd64\nMaintainer: homestick developers <homestick@example.invalid>\n\
Installed-Size: {size_kib}\nDepends: libc6 (>= 2.34), libgcc-s1\nSuggests: softhsm2, opensc, openssl, mtools, cryptsetup-bin, sbsigntool, mmdebstrap, squashfs-tools\n\
Section: admin\nPriority: optional\nDescription: signed home-office USB sticks: build, flash, verify\n \
homestick builds one signed, locked-down, bootable image per customer and per employee,\n \
writes many sticks in parallel and verifies each from the device, and lets auditors check\n \
signatures offline. Includes the static boot verifier that images embed.\n"
        )
        .as_bytes(),
        0o644,
    )
}

/// `cmd`'s man page as `name`, and one for each subcommand (`name-sub`), depth first.
fn man_pages(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let mut page = Vec::new();
    let named = cmd
        .clone()
        .name(name.to_string())
        .bin_name(name.replace('-', " "));
    clap_mangen::Man::new(named).render(&mut page)?;
    out.push((name.to_string(), page));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        man_pages(sub, &format!("{name}-{}", sub.get_name()), out)?;
    }
    Ok(())
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .args(["-9n"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("gzip")?;
    child.stdin.take().context("stdin")?.write_all(data)?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "gzip failed");
    Ok(out.stdout)
}

/// A minimal Debian root (mmdebstrap, variant minbase, with man-db and bash-completion) as a
/// tarball under target/debcache/, made once and kept: the .deb's install test unpacks it.
pub(crate) fn station_root() -> Result<PathBuf> {
    let r = root();
    let tar = r.join("target/debcache/station-root.tar");
    if tar.exists() {
        return Ok(tar);
    }
    fs::create_dir_all(tar.parent().context("parent")?)?;
    let partial = tar.with_extension("tar.partial");
    let mut cmd = Command::new("mmdebstrap");
    cmd.args([
        "--variant=minbase",
        "--include=man-db,bash-completion",
        "--format=tar",
        "bookworm",
    ])
    .arg(&partial);
    // The same package sources as this machine.
    for sources in [
        "/etc/apt/sources.list.d/debian.sources",
        "/etc/apt/sources.list",
    ] {
        if Path::new(sources).is_file() {
            cmd.arg(sources);
            break;
        }
    }
    run(&mut cmd)?;
    fs::rename(&partial, &tar)?;
    Ok(tar)
}
