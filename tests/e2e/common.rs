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

/// The committed test signing key (keys/test/), mode 0600.
pub fn test_key() -> PathBuf {
    homestick_testkit::test_key()
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

/// A temporary directory with a fixture base.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        homestick_testkit::write_fixture_base(&dir.path().join("base"), 8).expect("fixture base");
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

/// A loop device over an image file, detached when dropped.
pub struct Loop(pub String);

impl Loop {
    /// `losetup --find --show [extra] IMG`; panics if loop devices are not available.
    pub fn attach(img: &Path, extra: &[&str]) -> Loop {
        let mut args: Vec<String> = vec!["--find".into(), "--show".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(img.display().to_string());
        let r = tool("losetup", &args);
        assert_eq!(
            r.code,
            0,
            "losetup needs root and loop devices: {}",
            r.all()
        );
        Loop(r.stdout.trim().to_string())
    }

    pub fn path(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.0])
            .status();
    }
}

/// Where the ESP's FAT32 keeps things, from its boot sector (the ESP starts at 1 MiB).
#[derive(Debug, Clone, Copy)]
pub struct EspFat {
    /// Byte offset of FAT 1 in the image.
    pub fat: usize,
    /// Bytes per FAT.
    pub fat_bytes: usize,
    /// Number of FATs.
    pub fats: usize,
    /// Byte offset of cluster 2.
    pub data: usize,
    /// Bytes per cluster.
    pub cluster: usize,
    /// First cluster of the root directory.
    pub root: u32,
}

impl EspFat {
    pub fn read(b: &[u8]) -> EspFat {
        let e = 1 << 20;
        let le16 = |at: usize| u16::from_le_bytes([b[e + at], b[e + at + 1]]) as usize;
        let le32 = |at: usize| {
            u32::from_le_bytes([b[e + at], b[e + at + 1], b[e + at + 2], b[e + at + 3]])
        };
        let reserved = le16(14);
        let fats = b[e + 16] as usize;
        let fat_sectors = le32(36) as usize;
        assert_eq!(le16(11), 512, "ESP with 512-byte sectors");
        EspFat {
            fat: e + reserved * 512,
            fat_bytes: fat_sectors * 512,
            fats,
            data: e + (reserved + fats * fat_sectors) * 512,
            cluster: b[e + 13] as usize * 512,
            root: le32(44),
        }
    }

    /// Set FAT entry `cluster` to `value` in every FAT copy.
    pub fn set_entry(&self, b: &mut [u8], cluster: u32, value: u32) {
        for k in 0..self.fats {
            let at = self.fat + k * self.fat_bytes + cluster as usize * 4;
            b[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
    }

    /// Byte offset of a cluster's data.
    pub fn cluster_at(&self, cluster: u32) -> usize {
        self.data + (cluster as usize - 2) * self.cluster
    }
}

/// A copy of `img` called `name` in `dir`, changed by `edit`.
pub fn edited(img: &Path, dir: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut b = fs::read(img).expect("read image");
    edit(&mut b);
    let p = dir.join(name);
    fs::write(&p, b).expect("write copy");
    p
}

/// Run `cases`, collecting every failure instead of stopping at the first.
pub fn table<T>(
    cases: &[T],
    name: impl Fn(&T) -> String,
    check: impl Fn(&T) -> Result<(), String>,
) {
    let mut failed = Vec::new();
    for c in cases {
        match check(c) {
            Ok(()) => eprintln!("case {}: ok", name(c)),
            Err(e) => {
                eprintln!("case {}: FAILED: {e}", name(c));
                failed.push(format!("{}: {e}", name(c)));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
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

/// A backing file of `size` bytes whose first and last 2 MiB hold junk, like a used stick.
pub fn junk_file(dir: &Path, name: &str, size: u64) -> PathBuf {
    let p = dir.join(name);
    let f = fs::File::create(&p).unwrap();
    f.set_len(size).unwrap();
    use std::os::unix::fs::FileExt;
    let junk = homestick_testkit::pseudo_random(size, 2 << 20);
    f.write_all_at(&junk, 0).unwrap();
    f.write_all_at(&junk, size - (2 << 20)).unwrap();
    p
}

pub fn sha(p: &Path) -> String {
    let r = tool("sha256sum", &[p]);
    r.stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Every file below `root`: path relative to it -> contents.
pub fn files_under(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}
