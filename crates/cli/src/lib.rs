//! The `homestick` command: argument handling, output and exit codes around the libraries.
//!
//! Exit codes: 0 success or trusted; 1 not trusted; 2 unusable input or arguments.

#![forbid(unsafe_code)]

pub mod cli;
/// One file per command family.
mod cmd {
    pub(crate) mod base;
    pub(crate) mod build;
    pub(crate) mod guide;
    pub(crate) mod inspect;
    pub(crate) mod keys;
    pub(crate) mod ledger;
    mod ledger_print;
    pub(crate) mod profile;
    pub(crate) mod revocations;
    pub(crate) mod roster;
    pub(crate) mod verify;
    pub(crate) mod verify_set;
}
mod flash;
mod output;
mod progress;
mod terminal;

use std::fs;
use std::path::Path;
use std::process::ExitCode;

use cli::{
    BaseCommand, BuildArgs, Cli, Command, InspectArgs, KeysCommand, ProfileCommand,
    RevocationsCommand, RosterCommand, SecretArgs, VerifyArgs,
};
use homestick_image::disk::FileDisk;
use homestick_image::keys;
use homestick_image::keys::Passphrase;
use homestick_image::manifest::Manifest;
use homestick_image::policy::{BootPolicy, Expectations};
use homestick_image::revocation::RevocationList;
use homestick_image::verify::{self, VerifyError};
use progress::Reporter;
use serde_json::json;

pub(crate) use cmd::base::{base_build, default_boot_verifier};
pub(crate) use cmd::build::build;
pub(crate) use cmd::inspect::inspect;
pub(crate) use cmd::keys::{
    keys_generate, keys_generate_pkcs11, keys_secure_boot, open_signer, secret_for,
};
pub(crate) use cmd::profile::{load_profile, profile_check, profile_render};
pub(crate) use cmd::revocations::{list_to_extend, offline_expectations, revocations, write_list};
pub(crate) use cmd::roster::{roster_check, roster_export, roster_fill};
pub(crate) use cmd::verify::verify_cmd;
pub(crate) use cmd::verify_set::open_set;

/// How a command failed.
#[derive(Debug)]
enum Failure {
    /// Unusable input or arguments: exit 2.
    Usage(String),
    /// Not trusted: exit 1 (details already printed).
    Untrusted,
    /// Stopped by Ctrl-C: exit 130, like a shell.
    Interrupted(String),
    /// Some sticks failed: exit 1 (details already printed).
    SticksFailed,
}

impl Failure {
    /// The message, for --json output.
    fn message(&self) -> String {
        match self {
            Failure::Usage(m) | Failure::Interrupted(m) => m.clone(),
            Failure::Untrusted => "not trusted".into(),
            Failure::SticksFailed => "a stick failed".into(),
        }
    }
}

/// Unusable input or arguments, with the message that names the file, field or option.
fn usage(msg: impl std::fmt::Display) -> Failure {
    Failure::Usage(msg.to_string())
}

/// Run a parsed command line and return the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Keys(KeysCommand::Generate {
            out,
            passphrase_file,
            passphrase_fd,
            ask_passphrase,
            pkcs11,
            module,
            pin_file,
            pin_fd,
        }) => match pkcs11 {
            Some(uri) => keys_generate_pkcs11(
                &out,
                &uri,
                module.as_deref(),
                &SecretArgs {
                    passphrase_file: pin_file,
                    passphrase_fd: pin_fd,
                },
            ),
            None => keys_generate(
                &out,
                &SecretArgs {
                    passphrase_file,
                    passphrase_fd,
                },
                ask_passphrase,
            ),
        },
        Command::Keys(KeysCommand::SecureBoot { out, name }) => keys_secure_boot(&out, &name),
        Command::Build(args) => build(&args),
        Command::Verify(args) => verify_cmd(&args),
        Command::Inspect(args) => inspect(&args),
        Command::Guide(args) => cmd::guide::guide(&args),
        Command::Base(BaseCommand::Build(args)) => base_build(&args),
        Command::Profile(ProfileCommand::Check { dir }) => profile_check(&dir),
        Command::Profile(ProfileCommand::Render { dir, out }) => profile_render(&dir, &out),
        Command::Roster(RosterCommand::Check { profile, roster }) => {
            roster_check(&profile, &roster)
        }
        Command::Roster(RosterCommand::Fill {
            profile,
            roster,
            out,
        }) => roster_fill(&profile, &roster, &out),
        Command::Roster(RosterCommand::Export {
            profile,
            roster,
            out,
            ha1,
        }) => roster_export(&profile, &roster, &out, ha1.as_deref()),
        Command::Flash(args) => flash::flash(&args),
        Command::Sticks(args) => flash::sticks(&args),
        Command::Ledger(args) => cmd::ledger::run(&args),
        Command::Revocations(c) => revocations(&c),
    };
    let result = match (result, output::unwritten()) {
        (Ok(()), Some(why)) => Err(Failure::Usage(format!("writing to standard output: {why}"))),
        (r, _) => r,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Untrusted | Failure::SticksFailed) => ExitCode::from(1),
        Err(Failure::Usage(msg)) => {
            eprintln!("homestick: error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Interrupted(msg)) => {
            eprintln!("homestick: {msg}");
            ExitCode::from(130)
        }
    }
}

fn source_date_epoch() -> Result<i64, Failure> {
    homestick_build::build_epoch().map_err(usage)
}

/// Where the .deb installs the static boot verifier; `build` takes it when none is given and
/// none lies beside the program.
pub const INSTALLED_BOOT_VERIFIER: &str = "/usr/lib/homestick/homestick-boot";

/// Where the .deb installs the session program that `base build` puts into bases.
pub const INSTALLED_SESSION: &str = "/usr/lib/homestick/homestick-session";

fn open_target(path: &Path) -> Result<FileDisk, Failure> {
    FileDisk::open(path).map_err(|e| usage(format!("{}: cannot open: {e}", path.display())))
}

/// The signed statement and its parsed manifest, signature not checked (`t` names the target
/// in messages).
fn read_manifest(
    disk: &dyn homestick_image::disk::Disk,
    t: &str,
) -> Result<(verify::Statement, Manifest), Failure> {
    let st = verify::read_statement(disk).map_err(|e| usage(format!("{t}: {e}")))?;
    let m = Manifest::parse(&st.manifest).map_err(|e| usage(format!("{t}: {e}")))?;
    Ok((st, m))
}
