//! `cargo xtask ...`: developer tasks that need the outside world (apt-get, QEMU, external
//! tools). This file parses the command line and dispatches; the work is in [`tasks`] and
//! [`bench`].
//!
//! - `demo [--snakeoil]`: build the demo customer's signed image, verify it, and boot it through
//!   shim on a Microsoft-keys PC with the one-time enrolment (the README's main job)
//! - `test [--no-install]`: install what the tests need, then fmt, clippy, every test, a short
//!   fuzz run
//! - `fixture-base --out DIR`: a small, deterministic base for tests
//! - `base --out DIR`: the demo base from Debian packages
//! - `real-base NAME --out DIR [--test-channel]`: bases/NAME with `homestick base build`,
//!   kept outside the clone while unchanged
//! - `boot-verifier`, `session`: the static programs that run on the stick
//! - `dist`: the .deb
//! - `fuzz [--seconds N]`: coverage-guided fuzzing of the parsers that read sticks
//! - `measure`: the code measures (long functions, large files, string errors, unexplained
//!   `let _ =` and `unwrap_or_default()`)
//! - `bench session|verify|build|flash|verity`: figures against a standard tool, side by side

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod bench;
mod tasks;

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
    /// Build the demo customer's signed image, verify it, and boot it on a PC that trusts only
    /// Microsoft's keys: through Debian's shim, with the one-time enrolment (the README's main
    /// job).
    Demo {
        /// The old path instead: the UKI as the loader, on firmware whose db holds OVMF's
        /// snakeoil certificate.
        #[arg(long)]
        snakeoil: bool,
    },
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
    // xtask's manifest directory always has a parent (the workspace).
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

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::FixtureBase { out, system_mib } => tasks::fixture_base(&out, system_mib),
        Cmd::Base { out } => tasks::demo_base::base(&out),
        Cmd::BootVerifier => tasks::boot_verifier().map(|p| println!("{}", p.display())),
        Cmd::Session => tasks::session_program().map(|p| println!("{}", p.display())),
        Cmd::RealBase {
            name,
            out,
            test_channel,
        } => {
            tasks::bases::real_base(&name, &out, test_channel).map(|p| println!("{}", p.display()))
        }
        Cmd::Dist => tasks::dist::dist().map(|p| println!("{}", p.display())),
        Cmd::Measure => tasks::measure::measure(&root()),
        Cmd::Demo { snakeoil } => tasks::demo::demo(snakeoil),
        Cmd::Test { no_install } => tasks::test::test(no_install),
        Cmd::Fuzz { seconds } => tasks::fuzz::fuzz(seconds),
        Cmd::Bench {
            what:
                Bench::Verity {
                    small_mib,
                    large_mib,
                    rounds,
                },
        } => bench::verity::bench_verity(small_mib, large_mib, rounds),
        Cmd::Bench {
            what: Bench::Verify { size_mib, rounds },
        } => bench::verify::bench_verify(size_mib, rounds),
        Cmd::Bench {
            what: Bench::Session { rounds },
        } => bench::session::bench_session(rounds),
        Cmd::Bench {
            what: Bench::Build { size_mib, rounds },
        } => bench::build::bench_build(size_mib, rounds),
        Cmd::Bench {
            what:
                Bench::Flash {
                    size_mib,
                    rounds,
                    sticks,
                },
        } => bench::flash::bench_flash(size_mib, rounds, sticks),
    }
}
