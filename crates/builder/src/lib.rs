//! The builder: base + profile + signing key -> one signed, reproducible image.
//!
//! [`build`] runs the steps in [`pipeline`]: read and check every input; copy the system
//! partition while hashing it; build the profile FAT; derive the image id and GUIDs from the
//! input hashes; compose the ESP (UKI, README) and sign the manifest; write the ESP and the
//! GPT; verify the result with the public key; only then rename the temporary file to the
//! output name.

#![forbid(unsafe_code)]

pub mod base;
pub mod boot;
pub mod error;
pub mod hashtree;
pub mod layout;
pub mod pipeline;
mod plan;
pub mod readme;
pub mod set;
mod system;
pub mod tree;

use std::path::PathBuf;

use homestick_image::manifest::Manifest;
use homestick_image::verify::Progress;

pub use base::{load_base, BaseInput, BaseToml, BootInput, BootPath, BootToml, ShimFiles};
pub use error::{BuildError, ErrorKind};
pub use pipeline::build;
pub use set::{build_set, SetReport};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Profile directory.
    pub profile: PathBuf,
    /// Base directory.
    pub base: PathBuf,
    /// The signing key: a PEM file, or a `pkcs11:` URI.
    pub key: String,
    /// Passphrase for an encrypted key file, or the token's PIN.
    pub passphrase: Option<homestick_image::keys::Passphrase>,
    /// The PKCS#11 module for a `pkcs11:` key (else the URI's or `$HOMESTICK_PKCS11_MODULE`).
    pub pkcs11_module: Option<PathBuf>,
    /// Output image path.
    pub output: PathBuf,
    /// Image version; defaults to the base's version.
    pub version: Option<String>,
    /// Anti-rollback index.
    pub rollback_index: u64,
    /// After this time (Unix seconds) the image is no longer trusted; `None`: never expires.
    pub expires: Option<i64>,
    /// Days before expiry from which the boot verifier warns the person at home.
    pub expiry_warning_days: u32,
    /// The provider's signed revocation list: checked, and embedded into the boot policy.
    pub revocations: Option<PathBuf>,
    /// The lowest revocation-list version taken.
    pub min_revocation_version: u64,
    /// Image file size; defaults to the smallest that holds the image.
    pub size: Option<u64>,
    /// Build time (SOURCE_DATE_EPOCH or now).
    pub epoch: i64,
    /// The static boot verifier binary (bases with a kernel).
    pub boot_verifier: Option<PathBuf>,
    /// Public keys the boot verifier trusts (default: the signing key's).
    pub boot_keyring: Option<PathBuf>,
    /// Seconds the refusal message stays before power-off.
    pub failure_delay_seconds: u32,
    /// Sign the UKI for Secure Boot with this RSA key and X.509 certificate.
    pub secure_boot: Option<SecureBootOptions>,
    /// How the firmware reaches the UKI; `None`: the base's `[boot] path` (default db).
    pub boot_path: Option<BootPath>,
    /// The provider's own shim (its built-in certificate is the Secure Boot certificate), in
    /// place of the base's Debian shim and the MOK enrolment (implies the shim path).
    pub shim: Option<PathBuf>,
    /// Cache of dm-verity trees by system content ([`hashtree::default_cache_dir`]); `None`:
    /// no cache.
    pub cache: Option<PathBuf>,
}

/// Secure Boot signing inputs.
#[derive(Debug, Clone)]
pub struct SecureBootOptions {
    /// RSA private key: a PEM file, or a `pkcs11:` URI (same module as the image key).
    pub key: String,
    /// X.509 certificate (PEM or DER).
    pub cert: PathBuf,
    /// Passphrase for an encrypted key.
    pub passphrase: Option<homestick_image::keys::Passphrase>,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The output file.
    pub output: PathBuf,
    /// Image file size in bytes.
    pub size: u64,
    /// The signed manifest.
    pub manifest: Manifest,
    /// Seconds taken.
    pub seconds: f64,
    /// Warnings from the inputs (certificates close to expiry, ...).
    pub warnings: Vec<String>,
}

/// Progress of a build: stage messages and byte counts.
pub trait BuildProgress: Progress {
    /// A new stage begins.
    fn stage(&self, what: &str);
    /// Whether the user asked to stop (checked between blocks and stages).
    fn cancelled(&self) -> bool {
        false
    }
}

pub use homestick_image::time::{build_epoch, epoch_from, EpochError};
