//! Ed25519 image-signing keys: PKCS#8 / SubjectPublicKeyInfo PEM files that `openssl pkey` reads.
//!
//! The key id is the SHA-256 of the public key's SubjectPublicKeyInfo DER, so an auditor gets it
//! with `openssl pkey -pubin -in K.pub -outform DER | sha256sum`.

use std::fs;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use pkcs8::der::pem::LineEnding;
use pkcs8::{DecodePrivateKey, EncodePrivateKey};

use sha2::Digest;

/// Largest key file read.
const MAX_KEY_FILE: u64 = 64 << 10;
/// Most keys in a keyring directory.
const MAX_KEYRING: usize = 256;
/// PBKDF2-SHA256 iterations for encrypted private keys.
const PBKDF2_ITERATIONS: u32 = 600_000;

/// A problem with a key file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// What went wrong, with the file named.
    #[error("{path}: {reason}")]
    Bad {
        /// The key file or directory.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
}

fn bad(path: &Path, reason: impl Into<String>) -> KeyError {
    KeyError::Bad {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A public key trusted for verification, and where it came from.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The key.
    pub key: VerifyingKey,
    /// Its key id.
    pub id: String,
    /// The .pub file.
    pub source: PathBuf,
}

/// The DER SubjectPublicKeyInfo of an Ed25519 key, less the key: SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (33 bytes, no unused bits) }. Fixed, so the encoding cannot fail.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The key id of a public key: SHA-256 of its SubjectPublicKeyInfo DER, lowercase hex (what
/// `openssl pkey -pubin -outform DER | sha256sum` prints).
pub fn key_id(key: &VerifyingKey) -> String {
    crate::hash::hex(&key_digest(key))
}

/// The key id as bytes.
pub fn key_digest(key: &VerifyingKey) -> [u8; 32] {
    let mut der = ED25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(key.as_bytes());
    sha2::Sha256::digest(&der).into()
}

fn read_small(path: &Path) -> Result<String, KeyError> {
    let meta = fs::metadata(path).map_err(|e| bad(path, format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(bad(path, "not a regular file"));
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(bad(
            path,
            format!("{} bytes: too large for a key file", meta.len()),
        ));
    }
    let bytes = fs::read(path).map_err(|e| bad(path, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|_| bad(path, "not a PEM file (not text)"))
}

/// Encode a signing key as PKCS#8 v1 PEM, encrypted with PBES2 (PBKDF2-SHA256, AES-256-CBC) if
/// a passphrase is given. v1 without the embedded public key is what `openssl genpkey` writes.
pub fn private_key_pem(key: &SigningKey, passphrase: Option<&[u8]>) -> Result<String, EncodeError> {
    let kp = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let doc = kp.to_pkcs8_der().map_err(EncodeError::from)?;
    match passphrase {
        None => doc
            .to_pem("PRIVATE KEY", LineEnding::LF)
            .map(|p| p.to_string())
            .map_err(EncodeError::from),
        Some(pw) => {
            use rand_core::RngCore;
            let mut salt = [0u8; 16];
            let mut iv = [0u8; 16];
            rand_core::OsRng.fill_bytes(&mut salt);
            rand_core::OsRng.fill_bytes(&mut iv);
            let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(
                PBKDF2_ITERATIONS,
                &salt,
                &iv,
            )
            .map_err(EncodeError::Pkcs5)?;
            let info =
                pkcs8::PrivateKeyInfo::try_from(doc.as_bytes()).map_err(EncodeError::from)?;
            let enc = info
                .encrypt_with_params(params, pw)
                .map_err(EncodeError::from)?;
            enc.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
                .map(|p| p.to_string())
                .map_err(EncodeError::from)
        }
    }
}

/// Read a passphrase: the first line of `path` (a small regular file), without its line end.
pub fn read_passphrase_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    let text = crate::files::read_bounded(path, 4096).map_err(|e| match e {
        crate::files::ReadError::Io(e) => bad(path, format!("cannot read passphrase file: {e}")),
        _ => bad(path, "not a small regular file"),
    })?;
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    if first.is_empty() {
        return Err(bad(path, "the passphrase (first line) is empty"));
    }
    Ok(first.to_vec())
}

/// Why a private key could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// PKCS#8 encoding or encryption failed.
    #[error("{0}")]
    Pkcs8(#[from] pkcs8::Error),
    /// DER encoding failed.
    #[error("{0}")]
    Der(#[from] pkcs8::der::Error),
    /// PBES2 parameters could not be made (pkcs5's error is not a `std::error::Error`).
    #[error("{0}")]
    Pkcs5(pkcs8::pkcs5::Error),
}

/// Why an encrypted private key could not be decrypted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// No passphrase was given; names the option that gives one.
    #[error("the key is encrypted: give {0}")]
    NoPassphrase(String),
    /// Not a PKCS#8 EncryptedPrivateKeyInfo.
    #[error("malformed encrypted key: {0}")]
    Malformed(#[source] pkcs8::Error),
    /// Decryption failed.
    #[error("wrong passphrase or damaged key")]
    WrongPassphrase,
}

/// Decrypt an `ENCRYPTED PRIVATE KEY` (PKCS#8, PBES2) with `passphrase`; `flag` names the
/// option that supplies it, for the message when it is missing.
pub fn decrypt_pkcs8(
    der: &[u8],
    passphrase: Option<&[u8]>,
    flag: &str,
) -> Result<pkcs8::SecretDocument, DecryptError> {
    let pw = passphrase.ok_or_else(|| DecryptError::NoPassphrase(flag.into()))?;
    let enc = pkcs8::EncryptedPrivateKeyInfo::try_from(der).map_err(DecryptError::Malformed)?;
    enc.decrypt(pw).map_err(|_| DecryptError::WrongPassphrase)
}

/// Load a private signing key, decrypting it with `passphrase` if it is encrypted.
pub fn load_signing_key(path: &Path, passphrase: Option<&[u8]>) -> Result<SigningKey, KeyError> {
    let text = read_small(path)?;
    let (label, der) = pkcs8::der::pem::decode_vec(text.trim().as_bytes())
        .map_err(|e| bad(path, format!("not a PEM private key: {e}")))?;
    let key = match label {
        "PRIVATE KEY" => SigningKey::from_pkcs8_der(&der)
            .map_err(|e| bad(path, format!("not an Ed25519 PKCS#8 private key: {e}")))?,
        "ENCRYPTED PRIVATE KEY" => {
            let doc = decrypt_pkcs8(&der, passphrase, "--passphrase-file")
                .map_err(|e| bad(path, e.to_string()))?;
            SigningKey::from_pkcs8_der(doc.as_bytes())
                .map_err(|e| bad(path, format!("not an Ed25519 PKCS#8 private key: {e}")))?
        }
        "PUBLIC KEY" => {
            return Err(bad(
                path,
                "this is a public key; --key needs the private key (NAME.key)",
            ))
        }
        other => {
            return Err(bad(
                path,
                format!("PEM label {other:?}: expected PRIVATE KEY"),
            ))
        }
    };
    Ok(key)
}

/// Load one public key file.
pub fn load_public_key(path: &Path) -> Result<TrustedKey, KeyError> {
    let text = read_small(path)?;
    if text.contains("PRIVATE KEY") {
        return Err(bad(
            path,
            "this is a private key; the keyring takes public keys (NAME.pub)",
        ));
    }
    let key = VerifyingKey::from_public_key_pem(text.trim()).map_err(|e| {
        bad(
            path,
            format!("not an Ed25519 public key (SubjectPublicKeyInfo PEM): {e}"),
        )
    })?;
    if key.is_weak() {
        return Err(bad(
            path,
            "weak Ed25519 key (small order): refusing to trust it",
        ));
    }
    Ok(TrustedKey {
        id: key_id(&key),
        key,
        source: path.to_path_buf(),
    })
}

/// Load a keyring: one `.pub` file, or every `*.pub` file in a directory (sorted).
pub fn load_keyring(path: &Path) -> Result<Vec<TrustedKey>, KeyError> {
    let meta = fs::metadata(path).map_err(|e| bad(path, format!("cannot read keyring: {e}")))?;
    if meta.is_file() {
        return Ok(vec![load_public_key(path)?]);
    }
    let mut files: Vec<PathBuf> = fs::read_dir(path)
        .map_err(|e| bad(path, format!("cannot read keyring directory: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(bad(path, "keyring directory holds no .pub files"));
    }
    if files.len() > MAX_KEYRING {
        return Err(bad(path, format!("more than {MAX_KEYRING} keys")));
    }
    files.iter().map(|p| load_public_key(p)).collect()
}

/// Sign `msg`: the raw 64-byte Ed25519 signature.
pub fn sign(key: &SigningKey, msg: &[u8]) -> [u8; 64] {
    key.sign(msg).to_bytes()
}

/// Strict verification (rejects non-canonical signatures and weak keys): the trusted key that
/// verifies `sig` over `msg`, if any.
pub fn verify_any<'a>(
    keys: &'a [TrustedKey],
    msg: &[u8],
    sig: &[u8; 64],
) -> Option<&'a TrustedKey> {
    let sig = Signature::from_bytes(sig);
    keys.iter().find(|k| k.key.verify_strict(msg, &sig).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePublicKey;

    /// What `homestick keys generate` writes (the generator itself lives in the builder's
    /// keygen module): NAME.key and NAME.pub; returns (private path, key id).
    fn generate(base: &Path, passphrase: Option<&[u8]>) -> Result<(PathBuf, String), KeyError> {
        let private = base.with_extension("key");
        if private.exists() {
            return Err(bad(&private, "already exists"));
        }
        let key = SigningKey::generate(&mut rand_core::OsRng);
        fs::write(&private, private_key_pem(&key, passphrase).unwrap()).unwrap();
        let pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        fs::write(base.with_extension("pub"), pem).unwrap();
        Ok((private, key_id(&key.verifying_key())))
    }

    #[test]
    fn generate_load_sign_verify() {
        let dir = tempfile::tempdir().unwrap();
        let (private, id) = generate(&dir.path().join("k"), None).unwrap();
        let sk = load_signing_key(&private, None).unwrap();
        let ring = load_keyring(dir.path()).unwrap();
        assert_eq!(ring[0].id, id);
        let sig = sign(&sk, b"msg");
        assert!(verify_any(&ring, b"msg", &sig).is_some());
        assert!(verify_any(&ring, b"msG", &sig).is_none());
        assert!(
            generate(&dir.path().join("k"), None).is_err(),
            "no overwrite"
        );
    }

    #[test]
    fn encrypted_key_needs_the_right_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let (private, id) = generate(&dir.path().join("e"), Some(b"correct horse")).unwrap();
        assert!(fs::read_to_string(&private)
            .unwrap()
            .contains("ENCRYPTED PRIVATE KEY"));
        assert!(load_signing_key(&private, None).is_err());
        assert!(load_signing_key(&private, Some(b"wrong")).is_err());
        let k = load_signing_key(&private, Some(b"correct horse")).unwrap();
        assert_eq!(key_id(&k.verifying_key()), id);
    }

    #[test]
    fn key_id_is_the_hash_of_the_spki_der() {
        let k = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        let der = k.to_public_key_der().unwrap();
        assert_eq!(key_id(&k), crate::hash::sha256_hex(der.as_bytes()));
    }

    #[test]
    fn passphrase_files() {
        let dir = tempfile::tempdir().unwrap();
        type Want = Result<&'static [u8], &'static str>;
        let cases: &[(&[u8], Want)] = &[
            (b"secret\n", Ok(b"secret")),
            (b"secret\r\nsecond line\n", Ok(b"secret")),
            (b"no newline", Ok(b"no newline")),
            (b"\nsecret\n", Err("the passphrase (first line) is empty")),
            (b"", Err("the passphrase (first line) is empty")),
        ];
        for (i, (content, want)) in cases.iter().enumerate() {
            let p = dir.path().join(format!("pw{i}"));
            fs::write(&p, content).unwrap();
            match (read_passphrase_file(&p), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, *w, "case {i}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "case {i}: {e}"),
                (got, want) => panic!("case {i}: {got:?} vs {want:?}"),
            }
        }
        fs::write(dir.path().join("big"), vec![b'x'; 5000]).unwrap();
        let e = read_passphrase_file(&dir.path().join("big")).unwrap_err();
        assert!(e.to_string().contains("not a small regular file"), "{e}");
        let e = read_passphrase_file(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("cannot read passphrase file"), "{e}");
    }

    #[test]
    fn non_canonical_signature_is_rejected() {
        let sk = SigningKey::from_bytes(&[9u8; 32]);
        let ring = vec![TrustedKey {
            key: sk.verifying_key(),
            id: String::new(),
            source: PathBuf::new(),
        }];
        let mut sig = sign(&sk, b"m");
        // s += L (the group order) gives a non-canonical encoding of the same scalar.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = sig[32 + i] as u16 + L[i] as u16 + carry;
            sig[32 + i] = v as u8;
            carry = v >> 8;
        }
        assert!(verify_any(&ring, b"m", &sig).is_none());
    }

    #[test]
    fn weak_public_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // The identity point (small order): y = 1.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        let spki = {
            let mut d = vec![
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
            ];
            d.extend_from_slice(&ident);
            d
        };
        let pem = pkcs8::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &spki).unwrap();
        let p = dir.path().join("weak.pub");
        fs::write(&p, pem).unwrap();
        let err = load_public_key(&p).unwrap_err().to_string();
        assert!(err.contains("weak"), "{err}");
    }
}
