//! `homestick keys …`: its arguments.

use super::*;

/// `homestick keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate an Ed25519 signing key pair: NAME.key (PKCS#8, mode 0600) and NAME.pub.
    #[command(
        after_help = "Examples:\n  homestick keys generate --out /secure/keys/provider-2026 --ask-passphrase\n  homestick keys generate --out /secure/keys/provider-2026 --passphrase-file /run/secrets/pw\n  \
homestick keys generate --out keys/provider-2026 --pkcs11 'pkcs11:token=homestick;object=provider-2026' \\\n    --module /usr/lib/softhsm/libsofthsm2.so --pin-file /run/secrets/pin\n\n\
Both files are PEM that `openssl pkey` reads. The printed key id is the SHA-256 of the public key's DER.\n\
With --pkcs11 the private key never leaves the token; sign with --key 'pkcs11:...'."
    )]
    Generate {
        /// Output path without extension: DIR/NAME gives DIR/NAME.key and DIR/NAME.pub.
        #[arg(long, value_name = "DIR/NAME")]
        out: PathBuf,
        /// Encrypt the private key with the passphrase in this file (first line).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["passphrase_fd", "ask_passphrase", "pkcs11"])]
        passphrase_file: Option<PathBuf>,
        /// Encrypt the private key with the passphrase read from this file descriptor.
        #[arg(long, value_name = "N", conflicts_with_all = ["ask_passphrase", "pkcs11"])]
        passphrase_fd: Option<u32>,
        /// Encrypt the private key with a passphrase asked for on the terminal (twice).
        #[arg(long, conflicts_with = "pkcs11")]
        ask_passphrase: bool,
        /// Create the key inside a PKCS#11 token instead (non-extractable); only NAME.pub is
        /// written. The token's PIN: --pin-file, --pin-fd or the terminal.
        #[arg(long, value_name = "URI")]
        pkcs11: Option<String>,
        /// The PKCS#11 module (default: $HOMESTICK_PKCS11_MODULE).
        #[arg(long, value_name = "FILE.so", requires = "pkcs11")]
        module: Option<PathBuf>,
        /// The token's user PIN, first line of this file.
        #[arg(
            long,
            value_name = "FILE",
            requires = "pkcs11",
            conflicts_with = "pin_fd"
        )]
        pin_file: Option<PathBuf>,
        /// The token's user PIN, from this file descriptor.
        #[arg(long, value_name = "N", requires = "pkcs11")]
        pin_fd: Option<u32>,
    },
    /// Create a Secure Boot db key: NAME.key (RSA, PKCS#8, mode 0600), NAME.crt (PEM), NAME.cer (DER).
    #[command(
        after_help = "Example:\n  homestick keys secure-boot --out /secure/keys/provider-db-2026\n\n\
Enroll NAME.cer in the firmware's db (setup menu: Secure Boot > Key Management > db), or with\n\
efi-updatevar/KeyTool; see docs/secure-boot.md. Sign images with --secure-boot-key/--secure-boot-cert."
    )]
    SecureBoot {
        /// Output path without extension: DIR/NAME.
        #[arg(long, value_name = "DIR/NAME")]
        out: PathBuf,
        /// Certificate common name.
        #[arg(long, default_value = "homestick Secure Boot db key")]
        name: String,
    },
}
