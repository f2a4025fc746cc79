//! A temporary directory with the fixture base and images built from it; loop devices; stick-like backing files.

use std::fs;
use std::path::{Path, PathBuf};

use crate::run::*;

/// A temporary directory with a fixture base.
#[derive(Debug)]
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Default for Fixture {
    fn default() -> Fixture {
        Fixture::new()
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::write_fixture_base(&dir.path().join("base"), 8).expect("fixture base");
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

    /// Build `profile` into `name` with `extra` arguments; asserts success.
    pub fn build_with(&self, name: &str, profile: &Path, extra: &[&str]) -> PathBuf {
        let out = self.path(name);
        let r = crate::build_args::Build::new(profile, &self.base(), &out)
            .args(extra)
            .run();
        assert_eq!(r.code, 0, "build failed: {}", r.all());
        out
    }
}

/// A loop device over an image file, detached when dropped.
#[derive(Debug)]
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

/// A backing file of `size` bytes whose first and last 2 MiB hold junk, like a used stick.
pub fn junk_file(dir: &Path, name: &str, size: u64) -> PathBuf {
    let p = dir.join(name);
    let f = fs::File::create(&p).unwrap();
    f.set_len(size).unwrap();
    use std::os::unix::fs::FileExt;
    let junk = crate::pseudo_random(size, 2 << 20);
    f.write_all_at(&junk, 0).unwrap();
    f.write_all_at(&junk, size - (2 << 20)).unwrap();
    p
}
