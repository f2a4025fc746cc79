//! The image-signing key, wherever it lives: a PEM file on disk, or a key inside a PKCS#11
//! token that never leaves it. Everything the builder signs (manifests, a set's index, a
//! revocation list) goes through [`Signer::sign`].

use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};
use homestick_image::keys::{self, KeyError, Passphrase};

/// An Ed25519 signing key.
#[derive(Debug)]
pub enum Signer {
    /// Read from a PKCS#8 file (zeroized when dropped).
    File(SigningKey),
    /// Inside a PKCS#11 token, with its public key.
    Token(Box<crate::pkcs11::TokenKey>, VerifyingKey),
}

/// Why a signature could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The key file is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The token refused or failed.
    #[error(transparent)]
    Token(#[from] crate::pkcs11::Pkcs11Error),
}

impl Signer {
    /// Load a key file (`passphrase` for an encrypted one).
    pub fn from_file(path: &Path, passphrase: Option<&Passphrase>) -> Result<Signer, SignError> {
        Ok(Signer::File(keys::load_signing_key(
            path,
            passphrase.map(Passphrase::as_bytes),
        )?))
    }

    /// Open `--key`: a `pkcs11:` URI (with the token's PIN and module) or a key file.
    pub fn open(
        key: &str,
        secret: Option<&Passphrase>,
        module: Option<&Path>,
    ) -> Result<Signer, SignError> {
        if key.starts_with("pkcs11:") {
            let k = crate::pkcs11::TokenKey::open_ed25519(key, module, secret)?;
            let public = k
                .ed25519_public()
                .ok_or_else(|| crate::pkcs11::Pkcs11Error::Token {
                    uri: key.to_string(),
                    why: "no Ed25519 public key".into(),
                })?;
            return Ok(Signer::Token(Box::new(k), public));
        }
        Signer::from_file(Path::new(key), secret)
    }

    /// The public key.
    pub fn public(&self) -> VerifyingKey {
        match self {
            Signer::File(k) => k.verifying_key(),
            Signer::Token(_, p) => *p,
        }
    }

    /// The raw 64-byte Ed25519 signature of `msg`. The same key gives the same bytes
    /// wherever it lives (Ed25519 is deterministic).
    pub fn sign(&self, msg: &[u8]) -> Result<[u8; 64], SignError> {
        match self {
            Signer::File(k) => Ok(keys::sign(k, msg)),
            Signer::Token(t, _) => Ok(t.sign_ed25519(msg)?),
        }
    }
}
