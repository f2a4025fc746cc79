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
    /// From the keyring's `keyring.toml`: what the key is, for people.
    pub comment: Option<String>,
    /// Images built before this time (Unix seconds) are not trusted from this key.
    pub not_before: Option<i64>,
    /// Images built after this time are not trusted from this key (it was retired).
    pub not_after: Option<i64>,
    /// What the key may sign: images, revocation lists (keyring.toml's `roles`; both when
    /// the keyring does not say).
    pub roles: Roles,
}

/// What a trusted key may sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Images (their manifest).
    pub images: bool,
    /// The provider's revocation lists.
    pub revocations: bool,
}

impl Default for Roles {
    fn default() -> Self {
        Roles {
            images: true,
            revocations: true,
        }
    }
}

impl TrustedKey {
    /// A key trusted at any time, without a comment.
    pub fn new(key: VerifyingKey, source: PathBuf) -> TrustedKey {
        TrustedKey {
            id: key_id(&key),
            key,
            source,
            comment: None,
            not_before: None,
            not_after: None,
            roles: Roles::default(),
        }
    }

    /// Why a revocation list this key signed is not taken at `now` (Unix seconds): the key
    /// may not sign lists, or is outside its validity window; `None` if it may.
    pub fn refuses_lists_at(&self, now: i64) -> Option<String> {
        use crate::time::rfc3339;
        if !self.roles.revocations {
            return Some(format!(
                "key {} may not sign revocation lists (its roles in {} do not include \"revocations\")",
                self.name(),
                self.source.display()
            ));
        }
        match (self.not_before, self.not_after) {
            (Some(nb), _) if now < nb => Some(format!(
                "key {} signed it, but its validity window opens at {} (keyring {})",
                self.name(),
                rfc3339(nb),
                self.source.display()
            )),
            (_, Some(na)) if now > na => Some(format!(
                "key {} signed it, but the key was retired at {}: a retired key's list is not taken; sign it with a current key (keyring {})",
                self.name(),
                rfc3339(na),
                self.source.display()
            )),
            _ => None,
        }
    }

    /// `<first 16 hex digits of the id> (<comment>)`: how messages name the key.
    pub fn name(&self) -> String {
        match &self.comment {
            Some(c) => format!("{} ({c})", &self.id[..16]),
            None => self.id[..16].to_string(),
        }
    }

    /// Why an image this key signed, built at `built` (Unix seconds, from the signed
    /// manifest), is outside the key's validity window; `None` if it is inside.
    pub fn outside_window(&self, built: i64) -> Option<String> {
        use crate::time::rfc3339;
        match (self.not_before, self.not_after) {
            (Some(nb), _) if built < nb => Some(format!(
                "key {} signed this image, built {}, before the key's validity window opens at {} (keyring {})",
                self.name(),
                rfc3339(built),
                rfc3339(nb),
                self.source.display()
            )),
            (_, Some(na)) if built > na => Some(format!(
                "key {} signed this image, built {}, after the key was retired at {} (keyring {})",
                self.name(),
                rfc3339(built),
                rfc3339(na),
                self.source.display()
            )),
            _ => None,
        }
    }
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

/// The keyring file a directory may hold: a comment and a validity window per key.
pub const KEYRING_FILE: &str = "keyring.toml";

/// Why a private key file must not be used as it is: its group or others may read or write
/// it (the reason says which `chmod` fixes it), or it cannot be examined.
pub fn private_mode_problem(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot read: {e}")),
    };
    let mode = meta.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "a private key that group or others may read (mode {mode:04o}): refusing to use it; \
             run `chmod 600 {}` (and consider who may have copied it)",
            path.display()
        )
    })
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

/// A passphrase: zeroized when dropped, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(zeroize::Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

impl Passphrase {
    /// Take `bytes` (the caller's copy is moved in, not copied).
    pub fn new(bytes: Vec<u8>) -> Passphrase {
        Passphrase(zeroize::Zeroizing::new(bytes))
    }

    /// The passphrase's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The first line of `text`, without its line end; an empty one is refused.
    fn first_line(text: &[u8]) -> Result<Passphrase, &'static str> {
        // split always yields a first part; an empty one is refused below.
        let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
        let first = first.strip_suffix(b"\r").unwrap_or(first);
        if first.is_empty() {
            return Err("the passphrase (first line) is empty");
        }
        Ok(Passphrase::new(first.to_vec()))
    }
}

/// Most bytes read from a passphrase file or descriptor.
const MAX_PASSPHRASE_INPUT: u64 = 4096;

/// Read a passphrase: the first line of `path` (a small regular file), without its line end.
pub fn read_passphrase_file(path: &Path) -> Result<Passphrase, KeyError> {
    let text = zeroize::Zeroizing::new(
        crate::files::read_bounded(path, MAX_PASSPHRASE_INPUT).map_err(|e| match e {
            crate::files::ReadError::Io(e) => {
                bad(path, format!("cannot read passphrase file: {e}"))
            }
            _ => bad(path, "not a small regular file"),
        })?,
    );
    Passphrase::first_line(&text).map_err(|e| bad(path, e))
}

/// Read a passphrase from the open file descriptor `fd` (a pipe or file the caller opened,
/// as in `--passphrase-fd 3 3<secret`): its first line.
pub fn read_passphrase_fd(fd: u32) -> Result<Passphrase, KeyError> {
    use std::io::Read;
    let path = PathBuf::from(format!("/proc/self/fd/{fd}"));
    let name = PathBuf::from(format!("file descriptor {fd}"));
    let f = fs::File::open(&path)
        .map_err(|e| bad(&name, format!("cannot read a passphrase from it: {e}")))?;
    let mut text = zeroize::Zeroizing::new(Vec::new());
    f.take(MAX_PASSPHRASE_INPUT)
        .read_to_end(&mut text)
        .map_err(|e| bad(&name, format!("cannot read a passphrase from it: {e}")))?;
    Passphrase::first_line(&text).map_err(|e| bad(&name, e))
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
    let text = zeroize::Zeroizing::new(read_small(path)?);
    let (label, der) = pkcs8::der::pem::decode_vec(text.trim().as_bytes())
        .map_err(|e| bad(path, format!("not a PEM private key: {e}")))?;
    let der = zeroize::Zeroizing::new(der);
    if label == "PRIVATE KEY" || label == "ENCRYPTED PRIVATE KEY" {
        if let Some(why) = private_mode_problem(path) {
            return Err(bad(path, why));
        }
    }
    let key = match label {
        "PRIVATE KEY" => SigningKey::from_pkcs8_der(&der)
            .map_err(|e| bad(path, format!("not an Ed25519 PKCS#8 private key: {e}")))?,
        "ENCRYPTED PRIVATE KEY" => {
            let doc = decrypt_pkcs8(&der, passphrase, "--passphrase-file or --passphrase-fd")
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

/// Whether the PEM file at `path` holds an encrypted private key (so a passphrase is needed).
pub fn is_encrypted(path: &Path) -> bool {
    read_small(path).is_ok_and(|t| t.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
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
    Ok(TrustedKey::new(key, path.to_path_buf()))
}

/// One `[[key]]` of a keyring.toml.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringEntry {
    /// The .pub file, relative to the keyring directory.
    file: String,
    comment: Option<String>,
    not_before: Option<String>,
    not_after: Option<String>,
    /// "images", "revocations" (both when absent).
    roles: Option<Vec<String>>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    #[serde(default)]
    key: Vec<KeyringEntry>,
}

/// Load a keyring: one `.pub` file; a directory of `*.pub` files (sorted), with an optional
/// `keyring.toml` that gives each a comment and a validity window; or such a keyring.toml
/// itself. With a keyring.toml, every .pub file of the directory must be listed in it.
pub fn load_keyring(path: &Path) -> Result<Vec<TrustedKey>, KeyError> {
    let meta = fs::metadata(path).map_err(|e| bad(path, format!("cannot read keyring: {e}")))?;
    if meta.is_file() {
        if path.extension().is_some_and(|x| x == "toml") {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
            return load_keyring_file(path, dir.unwrap_or(Path::new(".")));
        }
        return Ok(vec![load_public_key(path)?]);
    }
    let toml = path.join(KEYRING_FILE);
    if toml.is_file() {
        return load_keyring_file(&toml, path);
    }
    let files = pub_files(path)?;
    if files.is_empty() {
        return Err(bad(path, "keyring directory holds no .pub files"));
    }
    files.iter().map(|p| load_public_key(p)).collect()
}

fn pub_files(dir: &Path) -> Result<Vec<PathBuf>, KeyError> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| bad(dir, format!("cannot read keyring directory: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    files.sort();
    if files.len() > MAX_KEYRING {
        return Err(bad(dir, format!("more than {MAX_KEYRING} keys")));
    }
    Ok(files)
}

/// Parse a keyring.toml (`text`): the keys it lists, each read from `dir`.
fn load_keyring_file(toml_path: &Path, dir: &Path) -> Result<Vec<TrustedKey>, KeyError> {
    let text = read_small(toml_path)?;
    let parsed: KeyringFile = toml::from_str(&text).map_err(|e| {
        bad(
            toml_path,
            e.to_string().lines().collect::<Vec<_>>().join(" "),
        )
    })?;
    if parsed.key.is_empty() {
        return Err(bad(toml_path, "no [[key]] entries"));
    }
    if parsed.key.len() > MAX_KEYRING {
        return Err(bad(toml_path, format!("more than {MAX_KEYRING} keys")));
    }
    let mut keys: Vec<TrustedKey> = Vec::new();
    for (i, e) in parsed.key.iter().enumerate() {
        let at = |field: &str, why: String| bad(toml_path, format!("key[{i}].{field}: {why}"));
        let k = entry_key(e, dir, &keys, &at)?;
        keys.push(k);
    }
    for f in pub_files(dir)? {
        if !keys.iter().any(|k| k.source == f) {
            return Err(bad(
                toml_path,
                format!(
                    "{} is in the keyring directory but not listed: add a [[key]] for it or remove the file",
                    f.display()
                ),
            ));
        }
    }
    Ok(keys)
}

/// One `[[key]]` of a keyring.toml: its .pub file beside the toml (in `dir`), loaded and not
/// one of `earlier`, with the entry's comment, validity window and roles checked and applied.
/// `at` names the field.
fn entry_key(
    e: &KeyringEntry,
    dir: &Path,
    earlier: &[TrustedKey],
    at: &dyn Fn(&str, String) -> KeyError,
) -> Result<TrustedKey, KeyError> {
    if e.file.is_empty()
        || e.file.contains('/')
        || e.file.starts_with('.')
        || !e.file.ends_with(".pub")
    {
        return Err(at(
            "file",
            format!("{:?}: a NAME.pub file beside keyring.toml", e.file),
        ));
    }
    if let Some(c) = &e.comment {
        if c.len() > 200 || c.chars().any(char::is_control) {
            return Err(at(
                "comment",
                "at most 200 characters, no control characters".into(),
            ));
        }
    }
    let time = |field: &str, v: &Option<String>| -> Result<Option<i64>, KeyError> {
        v.as_deref()
            .map(crate::time::parse)
            .transpose()
            .map_err(|why| at(field, why.to_string()))
    };
    let not_before = time("not_before", &e.not_before)?;
    let not_after = time("not_after", &e.not_after)?;
    if let (Some(a), Some(b)) = (not_before, not_after) {
        if b < a {
            return Err(at("not_after", "is before not_before".into()));
        }
    }
    let mut k = load_public_key(&dir.join(&e.file))?;
    if let Some(other) = earlier.iter().find(|o| o.id == k.id) {
        return Err(at(
            "file",
            format!(
                "{} is the same key as {} (key id {})",
                e.file,
                other.source.display(),
                &k.id[..16]
            ),
        ));
    }
    k.comment = e.comment.clone();
    k.not_before = not_before;
    k.not_after = not_after;
    if let Some(roles) = &e.roles {
        k.roles = roles_of(roles, at)?;
    }
    Ok(k)
}

/// The roles a keyring entry names: at least one, each `images` or `revocations`.
fn roles_of(roles: &[String], at: &dyn Fn(&str, String) -> KeyError) -> Result<Roles, KeyError> {
    let mut r = Roles {
        images: false,
        revocations: false,
    };
    for name in roles {
        match name.as_str() {
            "images" => r.images = true,
            "revocations" => r.revocations = true,
            other => {
                return Err(at(
                    "roles",
                    format!("{other:?} is not a role (\"images\", \"revocations\")"),
                ))
            }
        }
    }
    if roles.is_empty() {
        return Err(at(
            "roles",
            "give at least one of \"images\", \"revocations\"".into(),
        ));
    }
    Ok(r)
}

/// A keyring.toml for `keys`, each under `file_of(key)`: how a build hands its boot keyring,
/// windows and comments included, to the boot verifier.
pub fn keyring_toml(keys: &[(String, &TrustedKey)]) -> String {
    let mut s = String::from("# Trusted image-signing keys (written by homestick build).\n");
    for (file, k) in keys {
        s.push_str("\n[[key]]\n");
        s.push_str(&format!("file = {}\n", toml_str(file)));
        if let Some(c) = &k.comment {
            s.push_str(&format!("comment = {}\n", toml_str(c)));
        }
        if let Some(t) = k.not_before {
            s.push_str(&format!("not_before = \"{}\"\n", crate::time::rfc3339(t)));
        }
        if let Some(t) = k.not_after {
            s.push_str(&format!("not_after = \"{}\"\n", crate::time::rfc3339(t)));
        }
        if k.roles != Roles::default() {
            let mut roles = Vec::new();
            if k.roles.images {
                roles.push("\"images\"");
            }
            if k.roles.revocations {
                roles.push("\"revocations\"");
            }
            s.push_str(&format!("roles = [{}]\n", roles.join(", ")));
        }
    }
    s
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
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
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
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
    fn private_keys_others_may_read_are_refused_with_the_chmod() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (private, _) = generate(&dir.path().join("k"), None).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
            fs::set_permissions(&private, fs::Permissions::from_mode(mode)).unwrap();
            let e = load_signing_key(&private, None).unwrap_err().to_string();
            assert!(
                e.contains(&format!("mode {mode:04o}"))
                    && e.contains(&format!("chmod 600 {}", private.display())),
                "{mode:o}: {e}"
            );
        }
        for mode in [0o600, 0o400] {
            fs::set_permissions(&private, fs::Permissions::from_mode(mode)).unwrap();
            assert!(load_signing_key(&private, None).is_ok(), "{mode:o}");
        }
        // A public key file may be read by anyone.
        let public = dir.path().join("k.pub");
        fs::set_permissions(&public, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_public_key(&public).is_ok());
    }

    #[test]
    fn keyring_toml_windows_comments_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let (_, old_id) = generate(&dir.path().join("old"), None).unwrap();
        let (_, new_id) = generate(&dir.path().join("new"), None).unwrap();
        let toml = dir.path().join(KEYRING_FILE);
        fs::write(
            &toml,
            "[[key]]\nfile = \"old.pub\"\ncomment = \"2025 key\"\nnot_after = \"2026-06-30\"\n\n\
             [[key]]\nfile = \"new.pub\"\nnot_before = \"2026-06-01T00:00:00Z\"\n",
        )
        .unwrap();
        for ring in [
            load_keyring(dir.path()).unwrap(),
            load_keyring(&toml).unwrap(),
        ] {
            assert_eq!(ring.len(), 2);
            let old = ring.iter().find(|k| k.id == old_id).unwrap();
            let new = ring.iter().find(|k| k.id == new_id).unwrap();
            assert_eq!(old.comment.as_deref(), Some("2025 key"));
            let june30 = crate::time::parse("2026-06-30").unwrap();
            assert_eq!(old.outside_window(june30), None);
            let late = old.outside_window(june30 + 1).unwrap();
            assert!(
                late.contains("after the key was retired at 2026-06-30T00:00:00Z"),
                "{late}"
            );
            assert!(late.contains("(2025 key)"), "{late}");
            let early = new.outside_window(june30 - 40 * 86_400).unwrap();
            assert!(
                early.contains("before the key's validity window opens"),
                "{early}"
            );
            assert_eq!(new.outside_window(june30), None);
        }
        // What keyring_toml writes reads back the same.
        let loaded = load_keyring(dir.path()).unwrap();
        let named: Vec<(String, &TrustedKey)> = loaded
            .iter()
            .map(|k| {
                (
                    k.source.file_name().unwrap().to_string_lossy().into_owned(),
                    k,
                )
            })
            .collect();
        let other = tempfile::tempdir().unwrap();
        for (f, _) in &named {
            fs::copy(dir.path().join(f), other.path().join(f)).unwrap();
        }
        fs::write(other.path().join(KEYRING_FILE), keyring_toml(&named)).unwrap();
        let back = load_keyring(other.path()).unwrap();
        for (_, k) in &named {
            let b = back.iter().find(|b| b.id == k.id).unwrap();
            assert_eq!(
                (&b.comment, b.not_before, b.not_after),
                (&k.comment, k.not_before, k.not_after)
            );
        }
        let cases: &[(&str, &str)] = &[
            ("[[key]]\nfile = \"old.pub\"\n", "new.pub is in the keyring directory but not listed"),
            ("[[key]]\nfile = \"old.pub\"\nnot_after = \"2026-02-30\"\n[[key]]\nfile = \"new.pub\"\n", "key[0].not_after: \"2026-02-30\""),
            ("[[key]]\nfile = \"old.pub\"\nnot_before = \"2027-01-01\"\nnot_after = \"2026-01-01\"\n[[key]]\nfile = \"new.pub\"\n", "key[0].not_after: is before not_before"),
            ("[[key]]\nfile = \"../old.pub\"\n", "key[0].file"),
            ("[[key]]\nfile = \"old.pub\"\n[[key]]\nfile = \"old.pub\"\n", "the same key as"),
            ("[[key]]\nfile = \"old.pub\"\nexpires = 1\n", "unknown field"),
            ("[[key]]\nfile = \"gone.pub\"\n", "gone.pub: cannot read"),
            ("", "no [[key]] entries"),
            ("[[key]]\nfile = \"old.pub\"\ncomment = \"a\\u0007b\"\n", "no control characters"),
        ];
        for (text, want) in cases {
            fs::write(&toml, text).unwrap();
            let e = load_keyring(dir.path()).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
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
                (Ok(got), Ok(w)) => assert_eq!(got.as_bytes(), *w, "case {i}"),
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
        let ring = vec![TrustedKey::new(sk.verifying_key(), PathBuf::new())];
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
