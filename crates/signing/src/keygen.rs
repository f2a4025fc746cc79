//! Making keys: the Ed25519 image-signing key and the RSA Secure Boot db key with its
//! certificate. One place decides how key files are written: never over an existing file,
//! private keys created with mode 0600 and flushed before the command reports success.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::SigningKey;
use homestick_image::keys::{key_id, private_key_pem};
use rsa::pkcs8::EncodePrivateKey;
use rsa::RsaPrivateKey;
use sha2::Sha256;
use x509_cert::der::{Decode, Encode, EncodePem};

/// Why keys could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeygenError {
    /// `--out` has no file name.
    #[error("{}: give DIR/NAME: the key files become NAME.key and NAME.pub (or .crt, .cer)", .0.display())]
    NoName(PathBuf),
    /// A file to be written exists already.
    #[error("{}: already exists; refusing to overwrite a key", .0.display())]
    Exists(PathBuf),
    /// Creating or writing a file failed.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Encoding the key or certificate failed (a bug or an exhausted random source).
    #[error("making the key: {0}")]
    Encode(String),
}

fn encode(e: impl std::fmt::Display) -> KeygenError {
    KeygenError::Encode(e.to_string())
}

/// `DIR/NAME.ext` for each extension, none of which may exist yet.
pub fn new_key_files(base: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, KeygenError> {
    let name = base
        .file_name()
        .ok_or_else(|| KeygenError::NoName(base.to_path_buf()))?
        .to_string_lossy()
        .into_owned();
    let paths: Vec<PathBuf> = exts
        .iter()
        .map(|e| base.with_file_name(format!("{name}.{e}")))
        .collect();
    if let Some(p) = paths.iter().find(|p| p.exists()) {
        return Err(KeygenError::Exists(p.clone()));
    }
    Ok(paths)
}

/// Write a private key: created new (never over a file), mode 0600, flushed.
pub fn write_private(path: &Path, pem: &[u8]) -> Result<(), KeygenError> {
    write_new(path, pem, 0o600)
}

/// Write a public file (key or certificate): created new, flushed.
pub fn write_public(path: &Path, data: &[u8]) -> Result<(), KeygenError> {
    write_new(path, data, 0o644)
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), KeygenError> {
    let err = |source| KeygenError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(data).and_then(|_| f.sync_all()).map_err(err)
}

/// Paths of the files written by [`ed25519`].
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// Private key file (`NAME.key`).
    pub private: PathBuf,
    /// Public key file (`NAME.pub`).
    pub public: PathBuf,
    /// Key id.
    pub id: String,
}

/// Create the image-signing key pair `BASE.key` (PKCS#8, encrypted with `passphrase` if
/// given, mode 0600) and `BASE.pub`.
pub fn ed25519(base: &Path, passphrase: Option<&[u8]>) -> Result<GeneratedKey, KeygenError> {
    let paths = new_key_files(base, &["key", "pub"])?;
    let (private, public) = (paths[0].clone(), paths[1].clone());
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let pem = private_key_pem(&key, passphrase).map_err(encode)?;
    let pub_pem = key
        .verifying_key()
        .to_public_key_pem(pkcs8::LineEnding::LF)
        .map_err(encode)?;
    write_private(&private, pem.as_bytes())?;
    write_public(&public, pub_pem.as_bytes())?;
    Ok(GeneratedKey {
        private,
        public,
        id: key_id(&key.verifying_key()),
    })
}

/// Files written by [`secure_boot`].
#[derive(Debug, Clone)]
pub struct SbGenerated {
    /// RSA private key, PKCS#8 PEM, mode 0600.
    pub key: PathBuf,
    /// Self-signed certificate, PEM.
    pub crt: PathBuf,
    /// The same certificate, DER (for firmware setup menus).
    pub cer: PathBuf,
}

/// Create an RSA-2048 key and a self-signed db certificate valid for 20 years.
pub fn secure_boot(base: &Path, common_name: &str) -> Result<SbGenerated, KeygenError> {
    let paths = new_key_files(base, &["key", "crt", "cer"])?;
    let out = SbGenerated {
        key: paths[0].clone(),
        crt: paths[1].clone(),
        cer: paths[2].clone(),
    };
    let key = RsaPrivateKey::new(&mut rand_core::OsRng, 2048).map_err(encode)?;
    let cert = db_certificate(&key, common_name)?;
    let key_pem = key.to_pkcs8_pem(pkcs8::LineEnding::LF).map_err(encode)?;
    write_private(&out.key, key_pem.as_bytes())?;
    let pem = cert.to_pem(pkcs8::LineEnding::LF).map_err(encode)?;
    write_public(&out.crt, pem.as_bytes())?;
    write_public(&out.cer, &cert.to_der().map_err(encode)?)?;
    Ok(out)
}

/// A self-signed code-signing certificate for `key`: not a CA, keyUsage digitalSignature and
/// extended key usage codeSigning (OpenSSL, and so sbverify, refuse code signatures from a
/// certificate without them).
fn db_certificate(
    key: &RsaPrivateKey,
    common_name: &str,
) -> Result<x509_cert::Certificate, KeygenError> {
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
    let spki_der = key.to_public_key().to_public_key_der().map_err(encode)?;
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes())
        .map_err(encode)?;
    let mut serial = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut serial);
    serial[0] &= 0x7f;
    let serial = x509_cert::serial_number::SerialNumber::new(&serial).map_err(encode)?;
    let validity =
        x509_cert::time::Validity::from_now(std::time::Duration::from_secs(20 * 365 * 86_400))
            .map_err(encode)?;
    let subject: x509_cert::name::Name = format!("CN={common_name}").parse().map_err(encode)?;
    let profile = Profile::Leaf {
        issuer: subject.clone(),
        enable_key_agreement: false,
        enable_key_encipherment: false,
    };
    let mut builder = CertificateBuilder::new(profile, serial, validity, subject, spki, &signer)
        .map_err(encode)?;
    builder
        .add_extension(&x509_cert::ext::pkix::ExtendedKeyUsage(vec![
            x509_cert::der::oid::db::rfc5280::ID_KP_CODE_SIGNING,
        ]))
        .map_err(encode)?;
    builder.build::<rsa::pkcs1v15::Signature>().map_err(encode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ed25519_files_are_0600_loadable_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let g = ed25519(&dir.path().join("k"), None).unwrap();
        let mode = fs::metadata(&g.private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let sk = homestick_image::keys::load_signing_key(&g.private, None).unwrap();
        assert_eq!(key_id(&sk.verifying_key()), g.id);
        let ring = homestick_image::keys::load_keyring(&g.public).unwrap();
        assert_eq!(ring[0].id, g.id);
        let again = ed25519(&dir.path().join("k"), None).unwrap_err();
        assert!(matches!(again, KeygenError::Exists(_)), "{again}");
        assert!(matches!(
            ed25519(Path::new("/"), None),
            Err(KeygenError::NoName(_))
        ));
    }

    #[test]
    fn secure_boot_key_and_certificate_belong_together() {
        let dir = tempfile::tempdir().unwrap();
        let g = secure_boot(&dir.path().join("db"), "test db").unwrap();
        let mode = fs::metadata(&g.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        crate::authenticode::load(&g.key, &g.crt, None).unwrap();
        crate::authenticode::load(&g.key, &g.cer, None).unwrap();
        assert!(matches!(
            secure_boot(&dir.path().join("db"), "again"),
            Err(KeygenError::Exists(_))
        ));
    }
}
