//! `bench verity`: the boot verdict time in QEMU, and the dm-verity tree against
//! `veritysetup format`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::bench::best_of;
use crate::tasks::demo::{build_demo_image, signed_boot_args};
use crate::tasks::test::install_test_packages;
use crate::tasks::{homestick_bin, quiet};
use crate::{root, run};

/// A copy of the demo base whose system image (the demo squashfs) is padded with zeros to
/// `mib` MiB: a valid system of that size, for the boot verdict time.
pub(crate) fn padded_demo_base(dir: &Path, demo: &Path, mib: u64) -> Result<PathBuf> {
    let base = dir.join(format!("base-{mib}"));
    // The copy of an earlier run, if there is one; cp fails if it stays.
    let _ = fs::remove_dir_all(&base);
    run(Command::new("cp").arg("-a").arg(demo).arg(&base))?;
    let sys = fs::OpenOptions::new()
        .write(true)
        .open(base.join("system.img"))?;
    sys.set_len(mib << 20)?;
    Ok(base)
}

/// Boot `img` in QEMU (Secure Boot enforced) until the verifier's verdict line; its figure.
pub(crate) fn verdict_ms(img: &Path, vars: &Path) -> Result<u64> {
    fs::copy(homestick_testkit::OVMF_SNAKEOIL_VARS, vars)?;
    let mut child = homestick_testkit::qemu_secure_boot(vars)
        .arg("-drive")
        .arg(format!(
            "if=virtio,format=raw,snapshot=on,file={}",
            img.display()
        ))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let out = child.stdout.take().context("QEMU's console")?;
    let mut found = None;
    use std::io::BufRead;
    for line in std::io::BufReader::new(out).lines() {
        let line = line?;
        if let Some(ms) = line
            .split("homestick: verdict after ")
            .nth(1)
            .and_then(|r| r.trim().strip_suffix(" ms"))
        {
            found = ms.parse().ok();
            break;
        }
    }
    // The guest may have powered off already.
    let _ = child.kill();
    // Only reaps the killed QEMU; its status says nothing.
    let _ = child.wait();
    found.context("no verdict line on the console")
}

/// The boot verdict time (QEMU, Secure Boot) for a `small_mib` and a `large_mib` system
/// partition, and the builder's dm-verity tree against `veritysetup format` on the large one.
pub(crate) fn bench_verity(small_mib: u64, large_mib: u64, rounds: u32) -> Result<()> {
    install_test_packages()?;
    let r = root();
    let dir = r.join("target/bench-verity");
    fs::create_dir_all(&dir)?;
    let demo = r.join("target/demo-base");
    crate::tasks::demo_base::base(&demo)?;
    let bin = homestick_bin()?;
    let mut args = vec!["--no-cache".to_string()];
    args.extend(signed_boot_args(&dir, 1)?);
    let mut imgs = Vec::new();
    for mib in [small_mib, large_mib] {
        let base = padded_demo_base(&dir, &demo, mib)?;
        let img = dir.join(format!("system-{mib}.img"));
        build_demo_image(&bin, &base, &img, &args)?;
        imgs.push((mib, img));
    }
    let mut best = [u64::MAX; 2];
    for _ in 0..rounds {
        for (i, (_, img)) in imgs.iter().enumerate() {
            best[i] = best[i].min(verdict_ms(img, &dir.join("vars.fd"))?);
        }
    }
    println!("bench verity: boot verdict time from the verifier's own line (QEMU, TCG, Secure Boot), best of {rounds}, alternating");
    for (i, (mib, _)) in imgs.iter().enumerate() {
        println!("  system {mib:5} MiB   verdict after {:6} ms", best[i]);
    }
    println!(
        "  ratio             {:.2} (large / small; target within 10%)",
        best[1] as f64 / best[0] as f64
    );
    tree(&dir, large_mib, rounds)
}

/// The tree alone: the builder's code against `veritysetup format` on the same `mib` MiB of
/// data (page cache warm), best of `rounds`, alternating.
fn tree(dir: &Path, mib: u64, rounds: u32) -> Result<()> {
    let data = dir.join("tree-data");
    {
        let f = fs::File::create(&data)?;
        let chunk = homestick_testkit::pseudo_random(7, 1 << 20);
        use std::io::Write;
        let mut w = std::io::BufWriter::new(f);
        for _ in 0..mib {
            w.write_all(&chunk)?;
        }
    }
    quiet(
        Command::new("cat")
            .arg(&data)
            .stdout(std::process::Stdio::null()),
    )?;
    let disk = homestick_image::disk::FileDisk::open(&data)?;
    let params = homestick_image::verity::Params {
        data_blocks: (mib << 20) / homestick_image::verity::BLOCK,
        salt: vec![0x5a; 32],
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (mut hs, mut vs) = (f64::MAX, f64::MAX);
    let hash = dir.join("tree-hash");
    for _ in 0..rounds {
        hs = hs.min(best_of(1, || {
            homestick_image::verity::build(&disk, 0, &params, [0; 16], threads, &|_| {})
                .map(|_| ())
                .map_err(Into::into)
        })?);
        // veritysetup writes a new file each round; the last one, if any, goes.
        let _ = fs::remove_file(&hash);
        vs = vs.min(best_of(1, || {
            quiet(
                Command::new("veritysetup")
                    .arg("format")
                    .arg(&data)
                    .arg(&hash)
                    .args(["--salt", &"5a".repeat(32)]),
            )
        })?);
    }
    println!("bench verity: dm-verity tree of {mib} MiB (page cache warm), best of {rounds}, alternating");
    println!("  homestick ({threads} threads) {hs:7.3} s");
    println!("  veritysetup format  {vs:7.3} s");
    println!(
        "  ratio               {:.2}x veritysetup's speed (target > 1)",
        vs / hs
    );
    Ok(())
}
