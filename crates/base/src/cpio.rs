//! newc ("070701") cpio archives, as the kernel unpacks them into the initramfs.
//!
//! Deterministic: fixed inode numbers in order, mtime from the build time, uid/gid 0.
//! Archives may be concatenated; the kernel unpacks each in turn.
//!
//! Why our own writer and not the `cpio` crate (which coreos-installer uses): that crate is
//! deterministic too, but writes its header fields in lowercase hex and its trailer with
//! nlink 1, where this writer (since the first release) writes uppercase hex and nlink 0. Both
//! are valid newc; switching would change the bytes of every UKI, and so every image id and
//! signature, for the same inputs: reproducibility across homestick versions is worth more
//! than the 60 lines below. `cpio -itv` is the oracle in the tests.

/// One entry: a directory, or a regular file with its contents and mode.
#[derive(Debug, Clone)]
pub enum Entry {
    /// Directory with permissions (e.g. 0o755).
    Dir {
        /// Path without a leading '/'.
        path: String,
        /// Permission bits.
        mode: u32,
    },
    /// Character device node (e.g. /dev/console, 5:1), so PID 1 has a console from the start.
    CharDev {
        /// Path without a leading '/'.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// Regular file.
    File {
        /// Path without a leading '/'.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Contents.
        data: Vec<u8>,
    },
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn header(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    mtime: u32,
    size: usize,
    name: &str,
    rdev: (u32, u32),
) {
    let fields = [
        ino,
        mode,
        0,
        0,
        1,
        mtime,
        size as u32,
        0,
        0,
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

/// Serialize `entries` (in the given order) with `mtime` on every entry.
pub fn archive(entries: &[Entry], mtime: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let ino = i as u32 + 1;
        match e {
            Entry::Dir { path, mode } => {
                header(&mut out, ino, 0o040000 | mode, mtime, 0, path, (0, 0))
            }
            Entry::CharDev {
                path,
                mode,
                major,
                minor,
            } => header(
                &mut out,
                ino,
                0o020000 | mode,
                mtime,
                0,
                path,
                (*major, *minor),
            ),
            Entry::File { path, mode, data } => {
                header(
                    &mut out,
                    ino,
                    0o100000 | mode,
                    mtime,
                    data.len(),
                    path,
                    (0, 0),
                );
                out.extend_from_slice(data);
                pad4(&mut out);
            }
        }
    }
    header(&mut out, 0, 0, 0, 0, "TRAILER!!!", (0, 0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_tool_reads_it() {
        let a = archive(
            &[
                Entry::Dir {
                    path: "etc".into(),
                    mode: 0o755,
                },
                Entry::File {
                    path: "etc/x".into(),
                    mode: 0o644,
                    data: b"hello".to_vec(),
                },
                Entry::File {
                    path: "init".into(),
                    mode: 0o755,
                    data: vec![1, 2, 3],
                },
                Entry::CharDev {
                    path: "dev/console".into(),
                    mode: 0o600,
                    major: 5,
                    minor: 1,
                },
            ],
            1_700_000_000,
        );
        assert!(a.starts_with(b"070701"));
        assert_eq!(a.len() % 4, 0);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.cpio");
        std::fs::write(&p, &a).unwrap();
        let o = std::process::Command::new("cpio")
            .args(["-itv", "-F"])
            .arg(&p)
            .output()
            .expect("cpio (Debian package cpio) is needed as the oracle; `cargo xtask test` installs it");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let listing = String::from_utf8_lossy(&o.stdout);
        assert!(
            listing.contains("etc/x") && listing.contains("init"),
            "{listing}"
        );
        assert!(
            listing.lines().any(|l| l.starts_with("crw-------")
                && l.contains("5,")
                && l.ends_with("dev/console")),
            "{listing}"
        );
    }
}
