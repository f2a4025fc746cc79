//! `bench flash`: `homestick flash` to loop devices against `dd oflag=direct` + `cmp`.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::bench::{bench_base, best_of};
use crate::root;
use crate::tasks::demo::build_demo_image;
use crate::tasks::homestick_bin;

/// Loop devices over files of `size` bytes under `dir`, detached when dropped.
pub(crate) struct Loops(Vec<String>);

impl Loops {
    fn attach(dir: &Path, n: usize, size: u64) -> Result<Loops> {
        let mut loops = Loops(Vec::new());
        for i in 0..n {
            let f = dir.join(format!("stick{i}"));
            fs::File::create(&f)?.set_len(size)?;
            let out = Command::new("losetup")
                .args(["--find", "--show"])
                .arg(&f)
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "losetup: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            loops
                .0
                .push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        Ok(loops)
    }
}

impl Drop for Loops {
    fn drop(&mut self) {
        for l in &self.0 {
            // Detaching on drop: a device already gone needs nothing.
            let _ = Command::new("losetup").args(["-d", l]).status();
        }
    }
}

/// `homestick flash` of an image with a `size_mib` system partition to `n` loop devices
/// (written, read back through O_DIRECT and verified against the manifest) against `n`
/// parallel `dd bs=4M oflag=direct conv=fsync` each followed by `cmp` of the device with the
/// image; homestick's peak RSS from GNU time.
pub(crate) fn bench_flash(size_mib: u64, rounds: u32, n: usize) -> Result<()> {
    let r = root();
    let dir = r.join("target/bench-flash");
    fs::create_dir_all(&dir)?;
    let base = bench_base(&r.join("target/bench-build"), size_mib)?;
    let bin = homestick_bin()?;
    let img = dir.join("bench.img");
    // The image of an earlier run, if there is one.
    let _ = fs::remove_file(&img);
    build_demo_image::<&str>(&bin, &base, &img, &[])?;
    let size = fs::metadata(&img)?.len();
    let loops = Loops::attach(&dir, n, size + (1 << 20))?;
    let keyring = r.join("keys/test/homestick-test.pub");
    let mut rss_kib = 0u64;
    let mut flash = || -> Result<()> {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "RSS %M"]).arg(&bin).arg("flash").arg(&img);
        c.arg("--keyring").arg(&keyring);
        c.args(["--yes", "--allow-non-removable"]);
        for l in &loops.0 {
            c.args(["--target", l]);
        }
        let out = c.output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(out.status.success(), "homestick flash: {err}");
        if let Some(k) = err.lines().rev().find_map(|l| l.strip_prefix("RSS ")) {
            rss_kib = rss_kib.max(k.trim().parse().unwrap_or(0));
        }
        Ok(())
    };
    let dd = || -> Result<()> {
        let children: Vec<_> = loops
            .0
            .iter()
            .map(|l| {
                Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "dd if='{i}' of='{l}' bs=4M oflag=direct conv=fsync status=none && cmp -n {size} '{i}' '{l}'",
                        i = img.display()
                    ))
                    .spawn()
            })
            .collect::<std::io::Result<_>>()?;
        for mut c in children {
            anyhow::ensure!(c.wait()?.success(), "dd or cmp failed");
        }
        Ok(())
    };
    let (mut hs, mut d) = (f64::MAX, f64::MAX);
    let mut dd = dd;
    for _ in 0..rounds {
        hs = hs.min(best_of(1, &mut flash)?);
        d = d.min(best_of(1, &mut dd)?);
    }
    let mib = size as f64 / (1 << 20) as f64;
    println!("bench flash: image {mib:.0} MiB to {n} loop devices, best of {rounds} rounds each, alternating");
    println!(
        "  homestick flash (write, read back O_DIRECT, verify) {hs:6.2} s; dd oflag=direct conv=fsync + cmp {d:6.2} s; ratio {:.2}x (target <= 1.0x)",
        hs / d
    );
    println!(
        "  homestick peak RSS {} MiB (bound 64 MiB + 16 MiB per stick = {} MiB)",
        rss_kib / 1024,
        64 + 16 * n
    );
    Ok(())
}
