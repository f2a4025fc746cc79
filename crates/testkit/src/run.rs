//! Running the `homestick` binary under test and the external tools the tests use as oracles.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::EPOCH_TEXT as EPOCH;

/// The binary under test: `$HOMESTICK_BIN` if set, else the workspace's `homestick` built
/// once per test process by the cargo that runs the tests (dev profile, the workspace's target
/// directory: the code under test, and quick from cargo's cache).
pub fn bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os(crate::env::BIN) {
            return PathBuf::from(p);
        }
        build_bin().unwrap_or_else(|e| panic!("building the homestick binary: {e}"))
    })
    .clone()
}

/// The session program to test (`homestick-session`): the one the bases get, else the
/// workspace's, built.
pub fn session_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os(crate::env::SESSION_BIN) {
            return PathBuf::from(p);
        }
        build_program("homestick-session")
            .unwrap_or_else(|e| panic!("building homestick-session: {e}"))
    })
    .clone()
}

/// `cargo build -p homestick --bin homestick`; the executable cargo reports.
fn build_bin() -> Result<PathBuf, String> {
    build_program("homestick")
}

/// `cargo build -p NAME --bin NAME`; the executable cargo reports.
fn build_program(name: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--quiet", "-p", name, "--bin", name])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(root().join("Cargo.toml"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("starting cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo build failed ({})", out.status));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| format!("cargo named no {name} executable"))
}

/// The workspace root.
pub fn root() -> PathBuf {
    crate::repo_root()
}

/// The test signing key's public half (keys/test/homestick-test.pub).
pub fn test_pub() -> PathBuf {
    root().join("keys/test/homestick-test.pub")
}

/// The demo customer's profile.
pub fn demo_profile() -> PathBuf {
    root().join("profiles/stadt-musterhausen")
}

/// Result of a command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub fn finish(cmd: &mut Command, out: std::io::Result<Output>) -> Run {
    let out = out.unwrap_or_else(|e| {
        panic!(
            "cannot start {cmd:?}: {e} (is it installed? `cargo xtask test` installs test tools)"
        )
    });
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !r.stderr.contains("panicked"),
        "{cmd:?} panicked:\n{}",
        r.stderr
    );
    r
}

/// Run homestick with `args`.
pub fn hs<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let mut c = Command::new(bin());
    c.args(args).env("SOURCE_DATE_EPOCH", EPOCH);
    let o = c.output();
    finish(&mut c, o)
}

/// Run homestick with `args` at build time `epoch` (SOURCE_DATE_EPOCH).
pub fn hs_at<S: AsRef<std::ffi::OsStr>>(epoch: i64, args: &[S]) -> Run {
    let mut c = Command::new(bin());
    c.args(args).env("SOURCE_DATE_EPOCH", epoch.to_string());
    let o = c.output();
    finish(&mut c, o)
}

/// This computer's clock, Unix seconds.
pub fn now() -> i64 {
    homestick_image::time::now()
}

/// Run an external tool; panics loudly if it is missing.
pub fn tool<S: AsRef<std::ffi::OsStr>>(prog: &str, args: &[S]) -> Run {
    let mut c = Command::new(prog);
    c.args(args);
    let o = c.output();
    finish(&mut c, o)
}

/// Run a shell pipeline.
pub fn sh(script: &str) -> Run {
    tool("bash", &["-euo", "pipefail", "-c", script])
}

/// `homestick inspect --json`.
pub fn inspect_json(img: &Path) -> serde_json::Value {
    let r = hs(&["inspect".as_ref(), img.as_os_str(), "--json".as_ref()]);
    assert_eq!(r.code, 0, "{}", r.all());
    serde_json::from_str(&r.stdout).expect("inspect --json is JSON")
}

/// First and last LBA of the partition called `name`, from `inspect --json`.
pub fn partition_lbas(img: &Path, name: &str) -> (u64, u64) {
    let m = inspect_json(img);
    let p = m["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no partition {name}"))
        .clone();
    (
        p["first_lba"].as_u64().expect("first_lba"),
        p["last_lba"].as_u64().expect("last_lba"),
    )
}

/// `homestick verify IMG --keyring K`.
pub fn verify(img: &Path, keyring: &Path) -> Run {
    hs(&[
        "verify".as_ref(),
        img.as_os_str(),
        "--keyring".as_ref(),
        keyring.as_os_str(),
    ])
}

/// `verify` must say NOT TRUSTED (exit 1) with `want` in a finding, or fail with the reason.
pub fn expect_untrusted(img: &Path, want: &str) -> Result<(), String> {
    let r = verify(img, &test_pub());
    if r.code != 1 {
        return Err(format!("exit {} (wanted 1):\n{}", r.code, r.all()));
    }
    if !r.stdout.contains(want) {
        return Err(format!("no {want:?} in:\n{}", r.stdout));
    }
    Ok(())
}

pub fn sha(p: &Path) -> String {
    let r = tool("sha256sum", &[p]);
    r.stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}
