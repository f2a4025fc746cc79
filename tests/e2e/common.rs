//! Shared helpers: running the binary and external tools, building fixture images.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Fixed build time for reproducible fixtures.
/// (After the example profiles' test certificates became valid.)
pub const EPOCH: &str = "1796000000";

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_homestick"))
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The committed test signing key (keys/test/).
pub fn test_key() -> PathBuf {
    root().join("keys/test/homestick-test.key")
}

/// Its public key.
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

fn finish(cmd: &mut Command, out: std::io::Result<Output>) -> Run {
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

/// A temporary directory with a fixture base.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        homestick_build::fixture::write_fixture_base(&dir.path().join("base"), 8)
            .expect("fixture base");
        Fixture { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn base(&self) -> PathBuf {
        self.path("base")
    }

    /// Build the demo profile into `name`; asserts success.
    pub fn build(&self, name: &str) -> PathBuf {
        self.build_with(name, &demo_profile(), &[])
    }

    pub fn build_with(&self, name: &str, profile: &Path, extra: &[&str]) -> PathBuf {
        let out = self.path(name);
        let mut args: Vec<String> = vec![
            "build".into(),
            "--profile".into(),
            profile.display().to_string(),
            "--base".into(),
            self.base().display().to_string(),
            "--key".into(),
            test_key().display().to_string(),
            "--output".into(),
            out.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let r = hs(&args);
        assert_eq!(r.code, 0, "build failed: {}", r.all());
        out
    }
}

/// `homestick inspect --json`.
pub fn inspect_json(img: &Path) -> serde_json::Value {
    let r = hs(&["inspect".as_ref(), img.as_os_str(), "--json".as_ref()]);
    assert_eq!(r.code, 0, "{}", r.all());
    serde_json::from_str(&r.stdout).expect("inspect --json is JSON")
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

/// Offset of `needle` in `hay` (exactly once).
pub fn find_once(hay: &[u8], needle: &[u8]) -> usize {
    let hits: Vec<usize> = hay
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "expected exactly one occurrence, found {}",
        hits.len()
    );
    hits[0]
}

/// A copy of `img` with the byte at `at` changed.
pub fn flipped(img: &Path, at: usize, dir: &Path, name: &str) -> PathBuf {
    let mut b = fs::read(img).expect("read image");
    b[at] ^= 0x01;
    let p = dir.join(name);
    fs::write(&p, b).expect("write copy");
    p
}

/// Extract a file from the ESP of `img` with mtools.
pub fn esp_file(img: &Path, path: &str) -> Vec<u8> {
    let out = tempfile::NamedTempFile::new().expect("tmp");
    let r = tool(
        "mcopy",
        &[
            "-n",
            "-o",
            "-i",
            &format!("{}@@1M", img.display()),
            &format!("::/{path}"),
            &out.path().display().to_string(),
        ],
    );
    assert_eq!(r.code, 0, "mcopy {path}: {}", r.all());
    fs::read(out.path()).expect("read extracted")
}
