//! `cargo xtask ...`: developer tasks that need the outside world (apt-get, external tools).
//!
//! - `fixture-base --out DIR`: a small, deterministic base for tests and the demo
//! - `demo`: build the demo customer's signed image and verify it
//! - `test`: install what the tests need, then fmt, clippy and every test
//! - `bench verify`: homestick verify against sha256sum on a 1 GiB image
//! - `measure`: the code measures (long functions, large files, string errors)

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod base;
mod dist;
mod measure;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Code measures: functions over 80 lines, files over 800 lines of code,
    /// `Result<_, String>` outside a main.rs, `let _ =` and `unwrap_or_default()` counts.
    Measure,
    /// Write a small deterministic base (base.toml, esp/, system.img) to DIR.
    FixtureBase {
        /// Output directory (created).
        #[arg(long)]
        out: PathBuf,
        /// Size of system.img in MiB.
        #[arg(long, default_value_t = 8)]
        system_mib: u64,
    },
    /// Build the demo base from Debian packages (cached in target/debcache).
    Base {
        /// Output directory (replaced).
        #[arg(long)]
        out: PathBuf,
    },
    /// Build the static boot verifier (target/boot/.../homestick-boot).
    BootVerifier,
    /// Build the static session program (target/boot/.../homestick-session).
    Session,
    /// Build an example base from bases/NAME/base.toml with `homestick base build`.
    RealBase {
        /// bases/NAME (headless or desktop).
        name: String,
        /// Output directory (replaced).
        #[arg(long)]
        out: PathBuf,
        /// Also copy tests/bases/test-channel in (the test-only virtio-serial shell).
        #[arg(long)]
        test_channel: bool,
    },
    /// Build the .deb for stations and signing machines (target/dist/).
    Dist,
    /// Build the demo customer's signed image and verify it (the README's main job).
    Demo,
    /// Install test dependencies (apt-get), then run fmt, clippy and all tests.
    Test {
        /// Skip the apt-get step.
        #[arg(long)]
        no_install: bool,
    },
    /// Coverage-guided fuzzing of the parsers that read sticks (cargo-fuzz, libFuzzer).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u32,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Power-on to "sip registered" for the headless base in QEMU (TCG, Secure Boot) against the
    /// office of the end-to-end test, and the share of it that is the boot verifier's verdict.
    Session {
        /// Rounds.
        #[arg(long, default_value_t = 2)]
        rounds: u32,
    },
    /// Hash throughput of `homestick verify` against `sha256sum` on the same image.
    Verify {
        /// System partition size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Rounds (alternating the two tools).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
    /// `homestick build` against `cp` + `sync` of the same output size, cold and warm cache.
    Build {
        /// System image size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Rounds per cache state (alternating the two).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
    /// `homestick flash` to 4 loop devices against 4 parallel `dd oflag=direct conv=fsync` + `cmp`.
    Flash {
        /// System image size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Rounds (alternating the two).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Sticks (loop devices).
        #[arg(long, default_value_t = 4)]
        sticks: usize,
    },
    /// The boot verdict time (the verifier's own line, in QEMU) for a small and a large system
    /// partition; and the builder's dm-verity tree against `veritysetup format` on the large one.
    Verity {
        /// The small system partition in MiB.
        #[arg(long, default_value_t = 64)]
        small_mib: u64,
        /// The large system partition in MiB.
        #[arg(long, default_value_t = 1024)]
        large_mib: u64,
        /// Rounds (alternating).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
}

pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let st = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed with {st}");
    }
    Ok(())
}

fn fixture_base(out: &Path, system_mib: u64) -> Result<()> {
    homestick_testkit::write_fixture_base(out, system_mib)
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "xtask: fixture base in {} (system.img {system_mib} MiB)",
        out.display()
    );
    Ok(())
}

/// Build homestick-boot as a static, stripped binary for the initramfs.
/// A static, stripped release build of one of the programs that run on the stick.
fn static_program(package: &str) -> Result<PathBuf> {
    let r = root();
    run(Command::new("cargo")
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            package,
            "--target",
            "x86_64-unknown-linux-gnu",
            "--target-dir",
        ])
        .arg(r.join("target/boot"))
        .env(
            "RUSTFLAGS",
            "-C target-feature=+crt-static -C strip=symbols -C debuginfo=0",
        )
        .current_dir(&r))?;
    Ok(r.join("target/boot/x86_64-unknown-linux-gnu/release")
        .join(package))
}

pub(crate) fn boot_verifier() -> Result<PathBuf> {
    static_program("homestick-boot")
}

/// The session program bases get (`homestick base build --session`).
pub(crate) fn session_program() -> Result<PathBuf> {
    static_program("homestick-session")
}

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
    let _ = fs::remove_dir_all(&fresh);
    build_real_base(name, &fresh, test_channel, &session)?;
    fs::write(fresh.join(".complete"), format!("{key}\n"))?;
    // Older bases of this name go; the new one takes its final name in one step.
    for e in fs::read_dir(&dir)?.filter_map(|e| e.ok()) {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&format!("{name}-")) && n != format!("{name}-{key}") {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    let _ = fs::remove_dir_all(&kept);
    fs::rename(&fresh, &kept)?;
    point(out, kept)
}

/// `out` becomes a link to the kept base `kept` (what stood there before goes).
fn point(out: &Path, kept: PathBuf) -> Result<PathBuf> {
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
fn base_cache() -> Option<PathBuf> {
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
fn base_key(name: &str, test_channel: bool, session: &Path) -> Result<String> {
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

fn build_real_base(name: &str, out: &Path, test_channel: bool, session: &Path) -> Result<PathBuf> {
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
        .env("SOURCE_DATE_EPOCH", "1796000000");
    if test_channel {
        cmd.arg("--overlay").arg(r.join("tests/bases/test-channel"));
    }
    run(&mut cmd)?;
    Ok(out.to_path_buf())
}

/// `bench session`: the end-to-end office test, `rounds` times; its `session-timing:` lines.
fn bench_session(rounds: u32) -> Result<()> {
    install_test_packages()?;
    let r = root();
    let headless = real_base("headless", &r.join("target/headless-test"), true)?;
    let verifier = boot_verifier()?;
    let mut rows = Vec::new();
    for round in 1..=rounds {
        let out = Command::new("cargo")
            .args(["test", "-p", "homestick", "--test", "e2e", "--", "--exact"])
            .arg("session::a_headless_stick_brings_up_wireguard_registers_over_tls_calls_with_srtp_and_is_locked_down")
            .arg("--nocapture")
            .env("HOMESTICK_HEADLESS_BASE", &headless)
            .env("HOMESTICK_BOOT_VERIFIER", &verifier)
            .current_dir(&r)
            .output()
            .context("starting cargo test")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("session-timing: "))
            .with_context(|| {
                format!(
                    "round {round}: no timing line; the test said:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })?
            .to_string();
        println!("round {round}: {line}");
        rows.push(line);
    }
    let field = |l: &str, k: &str| -> f64 {
        l.split_whitespace()
            .find_map(|f| f.strip_prefix(k))
            .and_then(|v| v.trim_end_matches('%').parse().ok())
            .unwrap_or(f64::NAN)
    };
    let best = rows
        .iter()
        .min_by(|a, b| field(a, "sip_registered_s=").total_cmp(&field(b, "sip_registered_s=")))
        .context("no rounds")?;
    println!(
        "bench session (QEMU TCG, Secure Boot, headless base): power-on to vpn up {:.1} s, to sip registered {:.1} s; boot verifier verdict {:.0} ms = {:.1} % of it (best of {rounds})",
        field(best, "vpn_up_s="),
        field(best, "sip_registered_s="),
        field(best, "verdict_ms="),
        field(best, "verification_share=")
    );
    Ok(())
}

fn homestick_bin() -> Result<PathBuf> {
    run(Command::new("cargo")
        .args(["build", "--release", "--quiet", "-p", "homestick"])
        .current_dir(root()))?;
    Ok(root().join("target/release/homestick"))
}

/// Build the demo customer's image from `base`, signed with the test key, reproducibly.
fn build_demo_image<S: AsRef<std::ffi::OsStr>>(
    bin: &Path,
    base: &Path,
    img: &Path,
    extra: &[S],
) -> Result<()> {
    let r = root();
    run(Command::new(bin)
        .arg("build")
        .arg("--profile")
        .arg(r.join("profiles/stadt-musterhausen"))
        .arg("--base")
        .arg(base)
        .arg("--key")
        .arg(homestick_testkit::test_key())
        .arg("--output")
        .arg(img)
        .args(extra)
        .env("SOURCE_DATE_EPOCH", "1796000000"))
}

/// `build` arguments for a bootable image: the static boot verifier, the refusal delay, and
/// the UKI signed for Secure Boot with OVMF's snakeoil db key (test material shipped with
/// Debian's ovmf package; its passphrase goes to a file in `dir`).
fn signed_boot_args(dir: &Path, failure_delay: u32) -> Result<Vec<String>> {
    let verifier = boot_verifier()?;
    let pw = dir.join("snakeoil.pw");
    fs::write(&pw, "snakeoil\n")?;
    // Debian ships the key 0644; homestick takes private keys only if no one else may read them.
    let key =
        homestick_testkit::private_copy(Path::new("/usr/share/ovmf/PkKek-1-snakeoil.key"), dir);
    Ok(vec![
        "--boot-verifier".into(),
        verifier.display().to_string(),
        "--failure-delay".into(),
        failure_delay.to_string(),
        "--secure-boot-key".into(),
        key.display().to_string(),
        "--secure-boot-cert".into(),
        "/usr/share/ovmf/PkKek-1-snakeoil.pem".into(),
        "--secure-boot-passphrase-file".into(),
        pw.display().to_string(),
    ])
}

fn demo() -> Result<()> {
    install_test_packages()?;
    let r = root();
    let out = r.join("out");
    fs::create_dir_all(&out)?;
    let base = out.join("demo-base");
    base::base(&base)?;
    let bin = homestick_bin()?;
    let img = out.join("stadt-musterhausen.img");
    let mut args = vec!["--version".to_string(), "2026.11.1".into()];
    args.extend(signed_boot_args(&out, 15)?);
    build_demo_image(&bin, &base, &img, &args)?;
    run(Command::new(&bin).arg("inspect").arg(&img))?;
    run(Command::new(&bin)
        .arg("verify")
        .arg(&img)
        .arg("--keyring")
        .arg(r.join("keys/test/homestick-test.pub")))?;
    eprintln!("\nxtask: booting {} in QEMU with OVMF, Secure Boot enforced (about 15 s; Ctrl-A X quits)\n", img.display());
    let vars = out.join("OVMF_VARS_4M.snakeoil.fd");
    fs::copy(homestick_testkit::OVMF_SNAKEOIL_VARS, &vars)?;
    run(homestick_testkit::qemu_secure_boot(&vars)
        .arg("-drive")
        .arg(format!(
            "if=virtio,format=raw,snapshot=on,file={}",
            img.display()
        )))?;
    eprintln!(
        "xtask: demo done: {} was built, verified offline, and verified itself at boot",
        img.display()
    );
    Ok(())
}

/// Debian packages the tests call as oracles or need as parts.
const TEST_PACKAGES: &[&str] = &[
    "gdisk",
    "dosfstools",
    "mtools",
    "openssl",
    "cryptsetup-bin",
    "coreutils",
    "util-linux",
    "wireguard-tools",
    "wireguard-go",
    "postgresql",
    "iproute2",
    "openvpn",
    "strongswan-swanctl",
    "strongswan-charon",
    "libstrongswan-standard-plugins",
    "baresip-core",
    "cpio",
    "qemu-system-x86",
    "ovmf",
    "sbsigntool",
    "binutils",
    "squashfs-tools",
    "dmsetup",
    "softhsm2",
    "opensc",
    "mmdebstrap",
    "dnsmasq-base",
    "tcpdump",
    "kamailio",
    "kamailio-tls-modules",
    "nftables",
];

fn install_test_packages() -> Result<()> {
    let missing: Vec<&str> = TEST_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg")
                .args(["-s", p])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        eprintln!("xtask: test packages present");
        return Ok(());
    }
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn test(no_install: bool) -> Result<()> {
    if !no_install {
        install_test_packages()?;
    }
    let r = root();
    run(Command::new("cargo")
        .args(["fmt", "--all", "--check"])
        .current_dir(&r))?;
    run(Command::new("cargo")
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .current_dir(&r))?;
    // Stream cargo's output and add up its per-target summaries, so the run closes on one
    // line that counts every test (cargo's own last line is often a target with none).
    use std::io::BufRead;
    eprintln!("xtask: running cargo test --workspace");
    // Every parser that reads a stick gets a short coverage-guided run (longer: cargo xtask fuzz).
    fuzz(20)?;
    // The QEMU boot tests need the demo base and the static boot verifier.
    let demo_base = r.join("target/demo-base");
    base::base(&demo_base)?;
    let verifier = boot_verifier()?;
    // The .deb's install test: the package and a minimal Debian root to install it into.
    let deb = dist::dist()?;
    let station = dist::station_root()?;
    // The headless example base with the test-only channel, built once per run.
    let headless = real_base("headless", &r.join("target/headless-test"), true)?;
    // The desktop example base (the kiosk's screenshot test), with the channel to explain a
    // failure.
    let desktop = real_base("desktop", &r.join("target/desktop-test"), true)?;
    let mut child = Command::new("cargo")
        .args(["test", "--workspace"])
        .env("HOMESTICK_DEMO_BASE", &demo_base)
        .env("HOMESTICK_BOOT_VERIFIER", &verifier)
        .env("HOMESTICK_DEB", &deb)
        .env("HOMESTICK_STATION_ROOT", &station)
        .env("HOMESTICK_HEADLESS_BASE", &headless)
        .env("HOMESTICK_DESKTOP_BASE", &desktop)
        .env("HOMESTICK_BUSYBOX", base::busybox()?)
        .current_dir(&r)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |word: &str| -> u64 {
                    rest.split(';')
                        .find(|p| p.trim().ends_with(word))
                        .and_then(|p| {
                            p.split_whitespace()
                                .rev()
                                .nth(1)
                                .and_then(|n| n.parse().ok())
                        })
                        .unwrap_or(0)
                };
                passed += count("passed");
                failed += count("failed");
            }
        }
    }
    let status = child.wait()?;
    println!("{passed} passed, {failed} failed");
    if !status.success() || failed > 0 {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

/// Fuzz each target for `seconds`. cargo-fuzz comes from the Rust crate registry; libFuzzer's compiler flags
/// are unstable, which RUSTC_BOOTSTRAP=1 allows on this stable toolchain.
fn fuzz(seconds: u32) -> Result<()> {
    let r = root();
    if Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked", "--quiet"]))?;
    }
    let dir = r.join("fuzz");
    // Seeds for the GPT reader: the primary GPT of a real image (parsers start from valid input).
    let seeds = r.join("target/fuzz-seeds/gpt");
    fs::create_dir_all(&seeds)?;
    let base = r.join("target/fuzz-seeds/base");
    if !base.join("system.img").exists() {
        fixture_base(&base, 1)?;
    }
    let img = r.join("target/fuzz-seeds/seed.img");
    let bin = homestick_bin()?;
    build_demo_image::<&str>(&bin, &base, &img, &[])?;
    let head = fs::read(&img)?;
    fs::write(seeds.join("primary-gpt"), &head[..34 * 512])?;
    // (target, extra seed corpora, libFuzzer flags). Every target runs with a timeout: an
    // input that takes longer is reported like a crash, because a hang at boot is a finding.
    let targets: [(&str, Vec<PathBuf>, Vec<&str>); 5] = [
        ("manifest", vec![], vec!["-timeout=10"]),
        (
            "gpt",
            vec![seeds.clone()],
            vec!["-max_len=40000", "-timeout=10"],
        ),
        ("fat", vec![], vec!["-timeout=10"]),
        ("verify", vec![], vec!["-timeout=20"]),
        ("boot", vec![], vec!["-timeout=20"]),
    ];
    for (t, extra_corpora, flags) in targets {
        let corpus = r.join("target/fuzz-corpus").join(t);
        fs::create_dir_all(&corpus)?;
        run(Command::new("cargo")
            .args(["fuzz", "run", "-O", t])
            .arg(&corpus)
            .args(&extra_corpora)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args(["-rss_limit_mb=4096", "-print_final_stats=1"])
            .args(flags)
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(&dir))?;
        eprintln!("xtask: fuzz target {t}: {seconds} s, no crash");
    }
    Ok(())
}

fn best_of(rounds: u32, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn bench_verify(size_mib: u64, rounds: u32) -> Result<()> {
    let r = root();
    let dir = r.join("target/bench-verify");
    let base = bench_base(&dir, size_mib)?;
    let bin = homestick_bin()?;
    let img = dir.join("bench.img");
    if !img.exists() {
        build_demo_image::<&str>(&bin, &base, &img, &[])?;
    }
    let size = fs::metadata(&img)?.len();
    let pubkey = r.join("keys/test/homestick-test.pub");
    // Warm the page cache so both tools read from memory, not from the (shared, noisy) disk.
    quiet(
        Command::new("cat")
            .arg(&img)
            .stdout(std::process::Stdio::null()),
    )?;
    let mut hs = f64::MAX;
    let mut sha = f64::MAX;
    for _ in 0..rounds {
        hs = hs.min(best_of(1, || {
            quiet(
                Command::new(&bin)
                    .arg("verify")
                    .arg(&img)
                    .arg("--keyring")
                    .arg(&pubkey),
            )
        })?);
        sha = sha.min(best_of(1, || quiet(Command::new("sha256sum").arg(&img)))?);
    }
    // verify hashes the signed ranges (partitions + ESP files), sha256sum the whole file:
    // compare bytes hashed per second, not files per second.
    let hashed = hashed_bytes(&img)?;
    let mib = size as f64 / (1 << 20) as f64;
    let hmib = hashed as f64 / (1 << 20) as f64;
    println!("bench verify: image {mib:.0} MiB ({hmib:.0} MiB of it signed by hash), best of {rounds} rounds, run alternately");
    println!(
        "  homestick verify  {hs:7.3} s  {:8.1} MiB/s hashed",
        hmib / hs
    );
    println!(
        "  sha256sum         {sha:7.3} s  {:8.1} MiB/s hashed",
        mib / sha
    );
    println!(
        "  ratio             {:.2}x sha256sum per byte hashed (target >= 2.5x); {:.2}x per image",
        (hmib / hs) / (mib / sha),
        sha / hs
    );
    Ok(())
}

/// Run `c` with its output captured; fail with its stderr.
fn quiet(c: &mut Command) -> Result<()> {
    let o = c.output().with_context(|| format!("starting {c:?}"))?;
    if !o.status.success() {
        bail!("{c:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(())
}

/// Drop the page cache (root only), so the next run reads from the disk.
fn drop_caches() -> Result<()> {
    quiet(&mut Command::new("sync"))?;
    fs::write("/proc/sys/vm/drop_caches", "3\n")
        .context("dropping the page cache needs root (/proc/sys/vm/drop_caches)")
}

/// `homestick build` of a `size_mib` base against `cp` of a file of the output's size followed
/// by `sync`: the least any tool must do to put that many bytes on the disk. Cold: the page
/// cache is dropped before each run; warm: the base was just read.
/// A fixture base with a `size_mib` system image under `dir` (kept between runs).
fn bench_base(dir: &Path, size_mib: u64) -> Result<PathBuf> {
    let base = dir.join("base");
    if !base.join("system.img").exists()
        || fs::metadata(base.join("system.img"))?.len() != size_mib << 20
    {
        let _ = fs::remove_dir_all(&base);
        fixture_base(&base, size_mib)?;
    }
    Ok(base)
}

fn bench_build(size_mib: u64, rounds: u32) -> Result<()> {
    let r = root();
    let dir = r.join("target/bench-build");
    let base = bench_base(&dir, size_mib)?;
    let bin = homestick_bin()?;
    let img = dir.join("bench.img");
    let copy_src = dir.join("copy-source.img");
    let copy_dst = dir.join("copy.img");
    let _ = fs::remove_file(&img);
    build_demo_image::<&str>(&bin, &base, &img, &[])?;
    let size = fs::metadata(&img)?.len();
    // cp's source: a file of the same size with the base's system image at its start, so both
    // tools read as many real bytes.
    run(Command::new("cp")
        .arg(base.join("system.img"))
        .arg(&copy_src))?;
    fs::OpenOptions::new()
        .write(true)
        .open(&copy_src)?
        .set_len(size)?;
    let k = homestick_testkit::test_key();
    let p = r.join("profiles/stadt-musterhausen");
    let mut build = || -> Result<()> {
        let _ = fs::remove_file(&img);
        quiet(
            Command::new(&bin)
                .arg("build")
                .args([
                    "--profile".as_ref(),
                    p.as_os_str(),
                    "--base".as_ref(),
                    base.as_os_str(),
                ])
                .args([
                    "--key".as_ref(),
                    k.as_os_str(),
                    "--output".as_ref(),
                    img.as_os_str(),
                ])
                .env("SOURCE_DATE_EPOCH", "1796000000"),
        )?;
        quiet(&mut Command::new("sync"))
    };
    let mut cp = || -> Result<()> {
        let _ = fs::remove_file(&copy_dst);
        quiet(Command::new("cp").arg(&copy_src).arg(&copy_dst))?;
        quiet(&mut Command::new("sync"))
    };
    let mut results = Vec::new();
    for cold in [true, false] {
        let (mut hs, mut c) = (f64::MAX, f64::MAX);
        for _ in 0..rounds {
            if cold {
                drop_caches()?;
            }
            hs = hs.min(best_of(1, &mut build)?);
            if cold {
                drop_caches()?;
            }
            c = c.min(best_of(1, &mut cp)?);
        }
        results.push((if cold { "cold" } else { "warm" }, hs, c));
    }
    let mib = size as f64 / (1 << 20) as f64;
    println!("bench build: base system {size_mib} MiB, image {mib:.0} MiB, best of {rounds} rounds each, alternating");
    for (what, hs, c) in results {
        println!(
            "  {what}: homestick build {hs:6.2} s, cp + sync {c:6.2} s, ratio {:.2}x (target <= {})",
            hs / c,
            if what == "cold" { "1.5x" } else { "1.2x" }
        );
    }
    let _ = fs::remove_file(&copy_dst);
    Ok(())
}

/// Loop devices over files of `size` bytes under `dir`, detached when dropped.
struct Loops(Vec<String>);

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
            let _ = Command::new("losetup").args(["-d", l]).status();
        }
    }
}

/// `homestick flash` of an image with a `size_mib` system partition to `n` loop devices
/// (written, read back through O_DIRECT and verified against the manifest) against `n`
/// parallel `dd bs=4M oflag=direct conv=fsync` each followed by `cmp` of the device with the
/// image; homestick's peak RSS from GNU time.
fn bench_flash(size_mib: u64, rounds: u32, n: usize) -> Result<()> {
    let r = root();
    let dir = r.join("target/bench-flash");
    fs::create_dir_all(&dir)?;
    let base = bench_base(&r.join("target/bench-build"), size_mib)?;
    let bin = homestick_bin()?;
    let img = dir.join("bench.img");
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

/// Bytes `verify` hashes: the whole-hashed partitions plus the ESP files, from the image's
/// manifest (read the way `homestick inspect` reads it).
/// A copy of the demo base whose system image (the demo squashfs) is padded with zeros to
/// `mib` MiB: a valid system of that size, for the boot verdict time.
fn padded_demo_base(dir: &Path, demo: &Path, mib: u64) -> Result<PathBuf> {
    let base = dir.join(format!("base-{mib}"));
    let _ = fs::remove_dir_all(&base);
    run(Command::new("cp").arg("-a").arg(demo).arg(&base))?;
    let sys = fs::OpenOptions::new()
        .write(true)
        .open(base.join("system.img"))?;
    sys.set_len(mib << 20)?;
    Ok(base)
}

/// Boot `img` in QEMU (Secure Boot enforced) until the verifier's verdict line; its figure.
fn verdict_ms(img: &Path, vars: &Path) -> Result<u64> {
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
    let _ = child.kill();
    let _ = child.wait();
    found.context("no verdict line on the console")
}

fn bench_verity(small_mib: u64, large_mib: u64, rounds: u32) -> Result<()> {
    install_test_packages()?;
    let r = root();
    let dir = r.join("target/bench-verity");
    fs::create_dir_all(&dir)?;
    let demo = r.join("target/demo-base");
    base::base(&demo)?;
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
    // The tree alone: the builder's code against veritysetup format on the same data.
    let data = dir.join("tree-data");
    {
        let f = fs::File::create(&data)?;
        let chunk = homestick_testkit::pseudo_random(7, 1 << 20);
        use std::io::Write;
        let mut w = std::io::BufWriter::new(f);
        for _ in 0..large_mib {
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
        data_blocks: (large_mib << 20) / homestick_image::verity::BLOCK,
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
    println!("bench verity: dm-verity tree of {large_mib} MiB (page cache warm), best of {rounds}, alternating");
    println!("  homestick ({threads} threads) {hs:7.3} s");
    println!("  veritysetup format  {vs:7.3} s");
    println!(
        "  ratio               {:.2}x veritysetup's speed (target > 1)",
        vs / hs
    );
    Ok(())
}

fn hashed_bytes(img: &Path) -> Result<u64> {
    let disk = homestick_image::disk::FileDisk::open(img)
        .with_context(|| format!("opening {}", img.display()))?;
    let st = homestick_image::verify::read_statement(&disk)?;
    let m = homestick_image::manifest::Manifest::parse(&st.manifest)?;
    let parts: u64 = m
        .partitions
        .iter()
        .filter(|p| p.sha256.is_some() || p.verity.is_some())
        .map(|p| p.len())
        .sum();
    let files: u64 = m
        .esp()
        .and_then(|p| p.files.as_ref())
        .map_or(0, |f| f.iter().map(|f| f.size).sum());
    Ok(parts + files)
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::FixtureBase { out, system_mib } => fixture_base(&out, system_mib),
        Cmd::Base { out } => base::base(&out),
        Cmd::BootVerifier => boot_verifier().map(|p| println!("{}", p.display())),
        Cmd::Session => session_program().map(|p| println!("{}", p.display())),
        Cmd::RealBase {
            name,
            out,
            test_channel,
        } => real_base(&name, &out, test_channel).map(|p| println!("{}", p.display())),
        Cmd::Dist => dist::dist().map(|p| println!("{}", p.display())),
        Cmd::Measure => measure::measure(&root()),
        Cmd::Demo => demo(),
        Cmd::Test { no_install } => test(no_install),
        Cmd::Fuzz { seconds } => fuzz(seconds),
        Cmd::Bench {
            what:
                Bench::Verity {
                    small_mib,
                    large_mib,
                    rounds,
                },
        } => bench_verity(small_mib, large_mib, rounds),
        Cmd::Bench {
            what: Bench::Verify { size_mib, rounds },
        } => bench_verify(size_mib, rounds),
        Cmd::Bench {
            what: Bench::Session { rounds },
        } => bench_session(rounds),
        Cmd::Bench {
            what: Bench::Build { size_mib, rounds },
        } => bench_build(size_mib, rounds),
        Cmd::Bench {
            what:
                Bench::Flash {
                    size_mib,
                    rounds,
                    sticks,
                },
        } => bench_flash(size_mib, rounds, sticks),
    }
}
