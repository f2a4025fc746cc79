//! `homestick revocations …`: its arguments.

use super::*;

/// `homestick revocations ...`
#[derive(Debug, Subcommand)]
pub enum RevocationsCommand {
    /// Add entries to a revocation list (created if missing); its version goes up by one and
    /// its old signature is removed: sign it again.
    #[command(
        after_help = "Examples:\n  homestick revocations add revocations.json --key-id 3f5c0d2a9b8e7f6a5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b --keyring provider.pub\n  \
homestick revocations add revocations.json --image-id 0b1f6a8e-7d6e-4c1b-9a55-2f9e3c1d7b10\n  \
homestick revocations add revocations.json --user stadt-musterhausen/anna.schmidt\n  \
homestick revocations sign revocations.json --key /secure/keys/provider-2026.key\n\n\
`homestick ledger revoke` adds the image ids of lost sticks to the same list."
    )]
    Add {
        /// The revocation list (JSON).
        list: PathBuf,
        /// Revoke a signing key: every image it signed (its 64-digit key id).
        #[arg(long = "key-id", value_name = "ID")]
        key_ids: Vec<String>,
        /// Revoke one image (its image id).
        #[arg(long = "image-id", value_name = "ID")]
        image_ids: Vec<String>,
        /// Revoke every image of a user: CUSTOMER/USER.
        #[arg(long = "user", value_name = "CUSTOMER/USER")]
        users: Vec<String>,
        /// The keyring the existing list's signature is checked against: a list is only
        /// extended when it verifies (an unsigned or changed list on disk is never re-signed).
        #[arg(long, value_name = "PATH")]
        keyring: Option<PathBuf>,
    },
    /// Sign a revocation list: writes LIST.sig (raw Ed25519, as manifest.sig).
    #[command(
        after_help = "Example:\n  homestick revocations sign revocations.json --key /secure/keys/provider-2026.key\n  \
homestick revocations sign revocations.json --key 'pkcs11:token=homestick;object=provider-2026'\n\n\
Check without homestick:\n  openssl pkeyutl -verify -pubin -inkey provider-2026.pub -rawin -in revocations.json -sigfile revocations.json.sig"
    )]
    Sign {
        /// The revocation list (JSON).
        list: PathBuf,
        /// The provider's signing key: a PEM file or a pkcs11: URI.
        #[arg(long, value_name = "FILE|URI")]
        key: String,
        #[command(flatten)]
        secret: SecretArgs,
        /// The PKCS#11 module for a pkcs11: key (default: $HOMESTICK_PKCS11_MODULE).
        #[arg(long, value_name = "FILE.so")]
        pkcs11_module: Option<PathBuf>,
    },
    /// Check a revocation list's signature and print what it revokes.
    #[command(
        after_help = "Example:\n  homestick revocations show revocations.json --keyring /etc/homestick/trusted/"
    )]
    Show {
        /// The revocation list (JSON).
        list: PathBuf,
        /// The trusted public keys.
        #[arg(long, value_name = "PATH")]
        keyring: PathBuf,
    },
}
