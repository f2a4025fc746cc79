//! Command-line definition.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod base;
mod build;
mod flash;
mod guide;
mod inspect;
mod keys;
mod ledger;
mod profile;
mod revocations;
mod roster;
mod values;
mod verify;
pub use base::*;
pub use build::*;
pub use flash::*;
pub use guide::*;
pub use inspect::*;
pub use keys::*;
pub use ledger::*;
pub use profile::*;
pub use revocations::*;
pub use roster::*;
pub use values::*;
pub use verify::*;

/// Build, check and inspect signed home-office USB stick images.
#[derive(Debug, Parser)]
#[command(name = "homestick", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 success/trusted, 1 not trusted, 2 unusable input or arguments.\n\
Documentation: README.md and docs/ in the homestick repository."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Build one signed image for a customer.
    #[command(
        after_help = "Example:\n  homestick build --profile profiles/stadt-musterhausen --base out/base \\\n    --key keys/test/homestick-test.key --output out/stadt-musterhausen.img --version 2026.11.1\n\n\
Set SOURCE_DATE_EPOCH for reproducible builds: same inputs, same key, same epoch -> same bytes."
    )]
    Build(Box<BuildArgs>),
    /// Check an image file or a stick against trusted public keys.
    #[command(
        after_help = "Examples:\n  homestick verify out/stadt-musterhausen.img --keyring keys/test/homestick-test.pub\n  homestick verify /dev/sdc --keyring /etc/homestick/trusted/ --json\n  \
homestick verify /dev/sdc --keyring provider.pub --customer stadt-musterhausen --min-rollback 3\n  \
homestick verify stick.img --keyring provider.pub --policy policy.json\n  \
homestick verify stick.img --keyring /etc/homestick/trusted/ --revocations revocations.json\n\n\
The keyring directory may hold a keyring.toml with each key's comment and validity window\n\
(docs/format.md); verify names the key that signed. An image past its `expires` is not trusted.\n\n\
With --customer, --min-rollback, --disk-guid or --policy, verify applies the boot verifier's checks\n\
too: without them any image signed by a trusted key is trusted, for whichever customer.\n\n\
Exit codes: 0 trusted, 1 NOT trusted (the message names the partition, file or check), 2 unusable input."
    )]
    Verify(VerifyArgs),
    /// Check and render customer profiles.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Build bases (the system every stick runs) from Debian packages.
    #[command(subcommand)]
    Base(BaseCommand),
    /// Check and fill a customer's roster of employees (per-user credentials).
    #[command(subcommand)]
    Roster(RosterCommand),
    /// Show what an image or stick says about itself (signature not checked).
    #[command(
        after_help = "Example:\n  homestick inspect out/stadt-musterhausen.img\n\nUse `homestick verify` to check the signature."
    )]
    Inspect(InspectArgs),
    /// Write the first-start guide for a customer's employees (German and English, A4): how to
    /// start from the stick, the one-time key enrolment step by step, refusals, the hotline.
    #[command(
        after_help = "Example:\n  homestick guide --profile profiles/stadt-musterhausen --out out/guide.html\n\n\
Print it, or render a PDF: chromium --headless --print-to-pdf=guide.pdf out/guide.html\n\
The flasher's label sheet links to guide.html beside it."
    )]
    Guide(GuideArgs),
    /// Write a verified image to many sticks at once, read each back and check it.
    #[command(
        after_help = "Examples:\n  homestick sticks\n  homestick flash out/stadt-musterhausen.img --keyring provider.pub --all-removable --report flash-report.jsonl\n  \
homestick flash out/stadt-musterhausen.img --keyring provider.pub --watch --yes --report weekend.jsonl\n  \
homestick flash stick.img --keyring provider.pub --target /dev/sdc --target /dev/sdd\n  \
homestick flash out/set --keyring provider.pub --revocations revocations.json --watch --yes\n\n\
The image is verified before a byte is written. Mounted disks, swap, the running system, read-only\n\
and too small disks are refused, and so is any disk that is neither removable nor on USB unless\n\
--allow-non-removable is given. A stick counts as good only after it was read back from the device\n\
and verified against the signed manifest.\n\n\
Ctrl-C once: no new sticks, those in progress finish and are verified. Twice: those stop too;\n\
they are wiped and reported failed. The report is complete either way.\n\n\
Exit codes: 0 every stick verified, 1 the image is not trusted or a stick failed, 2 unusable input,\n\
130 stopped by Ctrl-C before every named stick was written."
    )]
    Flash(Box<FlashArgs>),
    /// The ledger of flashed sticks: who got which stick, and what to revoke when one is lost.
    Ledger(LedgerArgs),
    /// The provider's signed revocation list: keys, images and users no longer trusted.
    #[command(subcommand)]
    Revocations(RevocationsCommand),
    /// List the disks `flash` would consider, and why it would refuse each one.
    #[command(
        after_help = "Example:\n  homestick sticks\n  homestick sticks --image out/stadt-musterhausen.img --json"
    )]
    Sticks(SticksArgs),
}
