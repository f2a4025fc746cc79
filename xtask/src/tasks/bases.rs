//! Example bases (bases/NAME) built with `homestick base build`, kept outside the clone
//! while what makes them is unchanged.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::tasks::{homestick_bin, session_program};
use crate::{root, run};

/// An example base (bases/NAME) built with `homestick base build`, packages cached under
/// target/debcache/archives; with `test_channel`, tests/bases/test-channel is copied in.
///
/// A built base is kept outside the clone (`$HOMESTICK_BASE_CACHE`, else
/// /var/cache/homestick/bases), keyed by what makes it ([`base_key`]): while none of that
/// changes, later runs (and benches) take it instead of building it again. Returns the
/// base's directory: the cached one, or `out` when the cache cannot be used.
pub(crate) fn real_base(name: &str, out: &Path, test_channel: bool) -> Result<PathBuf> {
    let session = session_program()?;
    let Some((dir, key)) =
        base_cache().and_then(|d| Some((d, base_key(name, test_channel, &session).ok()?)))
    else {
        return build_real_base(name, out, test_channel, &session);
    };
    let kept = dir.join(format!("{name}-{key}"));
    if kept.join(".complete").is_file() {
        eprintln!(
            "xtask: base {name}: unchanged, taken from {}",
            kept.display()
        );
        return point(out, kept);
    }
    let fresh = dir.join(format!(".{name}-{key}.building"));
    // A half-built base from an interrupted run, if there is one.
    let _ = fs::remove_dir_all(&fresh);
    build_real_base(name, &fresh, test_channel, &session)?;
    fs::write(fresh.join(".complete"), format!("{key}\n"))?;
    // Older bases of this name go; the new one takes its final name in one step.
    for e in fs::read_dir(&dir)?.filter_map(|e| e.ok()) {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&format!("{name}-")) && n != format!("{name}-{key}") {
            // An older base that cannot be removed only takes room.
            let _ = fs::remove_dir_all(e.path());
        }
    }
    // Absent unless an earlier run died between its checks; the rename below fails if it stays.
    let _ = fs::remove_dir_all(&kept);
    fs::rename(&fresh, &kept)?;
    point(out, kept)
}

/// `out` becomes a link to the kept base `kept` (what stood there before goes).
pub(crate) fn point(out: &Path, kept: PathBuf) -> Result<PathBuf> {
    match fs::symlink_metadata(out) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(out)?,
        Ok(_) => fs::remove_file(out)?,
        Err(_) => {}
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    std::os::unix::fs::symlink(&kept, out)?;
    Ok(kept)
}

/// Where built bases are kept (created if missing); `None` if it cannot be.
pub(crate) fn base_cache() -> Option<PathBuf> {
    let dir = std::env::var_os("HOMESTICK_BASE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/homestick/bases"));
    fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// SHA-256 over what a base is made of: its recipe directory, the base crate's code and
/// system files, the test channel's overlay (if taken), the session program, and the Debian
/// archive's state (the InRelease files of a fresh `apt-get update`: a new package version
/// anywhere in the archive is a new key).
pub(crate) fn base_key(name: &str, test_channel: bool, session: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let r = root();
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    let mut h = Sha256::new();
    let mut add = |label: &str, bytes: &[u8]| {
        h.update((label.len() as u64).to_le_bytes());
        h.update(label.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    let mut dirs = vec![
        r.join("bases").join(name),
        r.join("crates/base/src"),
        r.join("crates/base/system"),
    ];
    if test_channel {
        dirs.push(r.join("tests/bases/test-channel"));
    }
    let mut files = vec![session.to_path_buf()];
    for d in dirs {
        for e in walkdir::WalkDir::new(&d).sort_by_file_name() {
            let e = e?;
            if e.file_type().is_file() {
                files.push(e.path().to_path_buf());
            }
        }
    }
    let lists = Path::new("/var/lib/apt/lists");
    let mut indexes: Vec<PathBuf> = fs::read_dir(lists)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("InRelease"))
        .collect();
    indexes.sort();
    files.extend(indexes);
    for f in files {
        let label = f.strip_prefix(&r).unwrap_or(&f).display().to_string();
        add(
            &label,
            &fs::read(&f).with_context(|| format!("reading {}", f.display()))?,
        );
    }
    Ok(h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect())
}

pub(crate) fn build_real_base(
    name: &str,
    out: &Path,
    test_channel: bool,
    session: &Path,
) -> Result<PathBuf> {
    let r = root();
    let bin = homestick_bin()?;
    let mut cmd = Command::new(&bin);
    cmd.args(["base", "build"])
        .arg(r.join("bases").join(name).join("base.toml"))
        .arg("--out")
        .arg(out)
        .arg("--session")
        .arg(session)
        .arg("--cache")
        .arg(r.join("target/debcache/archives"))
        .env("SOURCE_DATE_EPOCH", homestick_testkit::EPOCH_TEXT);
    if test_channel {
        cmd.arg("--overlay").arg(r.join("tests/bases/test-channel"));
    }
    run(&mut cmd)?;
    Ok(out.to_path_buf())
}
