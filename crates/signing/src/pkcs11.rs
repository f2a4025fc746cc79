//! Keys in a PKCS#11 token (an HSM, a smart card, SoftHSM2): named by an RFC 7512 URI such as
//! `pkcs11:token=homestick;object=provider-2026`, used through the token's module (a shared
//! library: `--pkcs11-module`, the URI's `module-path`, or `$HOMESTICK_PKCS11_MODULE`). The
//! private key never leaves the token: homestick asks it for signatures (CKM_EDDSA for the
//! Ed25519 image key, CKM_SHA256_RSA_PKCS for the Secure Boot RSA key).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use ed25519_dalek::VerifyingKey;
use homestick_image::keys::Passphrase;

/// The environment variable naming the default module.
pub const MODULE_ENV: &str = "HOMESTICK_PKCS11_MODULE";

/// DER of the Ed25519 curve's OID (1.3.101.112), as CKA_EC_PARAMS holds it.
const ED25519_OID: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];
/// CKA_EC_PARAMS as a PrintableString "edwards25519" (the other form PKCS#11 3.0 allows).
const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";

/// Why a token key cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// The URI is not one homestick can use.
    #[error("{uri}: {why}")]
    Uri {
        /// The URI as given.
        uri: String,
        /// Why.
        why: String,
    },
    /// The module, token or key is missing or refuses; names which.
    #[error("{uri}: {why}")]
    Token {
        /// The URI.
        uri: String,
        /// What failed, with the module's own error.
        why: String,
    },
}

/// The parts of an RFC 7512 URI homestick uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token=`: the token's label.
    pub token: Option<String>,
    /// `serial=`: the token's serial number.
    pub serial: Option<String>,
    /// `object=`: the key's label.
    pub object: Option<String>,
    /// `id=`: the key's CKA_ID.
    pub id: Option<Vec<u8>>,
    /// `?module-path=`: the module.
    pub module_path: Option<PathBuf>,
    /// `?pin-source=`: a file holding the PIN (first line).
    pub pin_source: Option<PathBuf>,
}

fn pct_decode(v: &str) -> Option<Vec<u8>> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Parse `pkcs11:token=...;object=...;id=%01?module-path=...&pin-source=...`. Unknown
/// attributes are refused (a typo must not select another key), and so is `pin-value`: a PIN
/// on a command line is visible to every user of the machine.
pub fn parse_uri(uri: &str) -> Result<Pkcs11Uri, Pkcs11Error> {
    let bad = |why: String| Pkcs11Error::Uri {
        uri: uri.to_string(),
        why,
    };
    let rest = uri
        .strip_prefix("pkcs11:")
        .ok_or_else(|| bad("not a pkcs11: URI".into()))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut u = Pkcs11Uri::default();
    let text = |k: &str, v: &str| -> Result<String, Pkcs11Error> {
        pct_decode(v)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad(format!("{k}: {v:?} is not percent-encoded UTF-8")))
    };
    for attr in path.split(';').filter(|a| !a.is_empty()) {
        let (k, v) = attr
            .split_once('=')
            .ok_or_else(|| bad(format!("{attr:?} is not NAME=VALUE")))?;
        match k {
            "token" => u.token = Some(text(k, v)?),
            "serial" => u.serial = Some(text(k, v)?),
            "object" => u.object = Some(text(k, v)?),
            "id" => {
                u.id = Some(pct_decode(v).ok_or_else(|| bad(format!("id: {v:?} is not percent-encoded")))?)
            }
            "type" if v == "private" || v == "public" => {}
            "manufacturer" | "model" | "library-manufacturer" | "library-description"
            | "library-version" | "slot-description" | "slot-manufacturer" | "slot-id" => {}
            _ => {
                return Err(bad(format!(
                    "attribute {k:?} is not one homestick understands (token, serial, object, id, type)"
                )))
            }
        }
    }
    for attr in query.split('&').filter(|a| !a.is_empty()) {
        let (k, v) = attr
            .split_once('=')
            .ok_or_else(|| bad(format!("{attr:?} is not NAME=VALUE")))?;
        match k {
            "module-path" => u.module_path = Some(PathBuf::from(text(k, v)?)),
            "pin-source" => {
                let v = text(k, v)?;
                let p = v.strip_prefix("file:").unwrap_or(&v).to_string();
                u.pin_source = Some(PathBuf::from(p));
            }
            "pin-value" => {
                return Err(bad(
                    "pin-value: a PIN in a URI is visible to every user of this machine; use pin-source=FILE, --passphrase-file or --passphrase-fd".into(),
                ))
            }
            "module-name" => {}
            _ => return Err(bad(format!("query attribute {k:?} is not one homestick understands"))),
        }
    }
    if u.token.is_none() && u.serial.is_none() {
        return Err(bad("name the token: token=LABEL (or serial=...)".into()));
    }
    if u.object.is_none() && u.id.is_none() {
        return Err(bad("name the key: object=LABEL (or id=...)".into()));
    }
    Ok(u)
}

/// A key in a token, with a logged-in session.
pub struct TokenKey {
    // Field order is drop order: the session closes before the module is finalized.
    session: Mutex<Session>,
    key: ObjectHandle,
    public: Option<VerifyingKey>,
    uri: String,
    _ctx: Pkcs11,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey({})", self.uri)
    }
}

/// An open, logged-in session on the token a URI names.
struct Opened {
    session: Session,
    ctx: Pkcs11,
    uri: Pkcs11Uri,
}

fn token_err(uri: &str, why: impl Into<String>) -> Pkcs11Error {
    Pkcs11Error::Token {
        uri: uri.to_string(),
        why: why.into(),
    }
}

fn open(
    uri_text: &str,
    module: Option<&Path>,
    pin: Option<&Passphrase>,
    rw: bool,
) -> Result<Opened, Pkcs11Error> {
    let uri = parse_uri(uri_text)?;
    let err = |why: String| token_err(uri_text, why);
    let module: PathBuf = module
        .map(Path::to_path_buf)
        .or_else(|| uri.module_path.clone())
        .or_else(|| std::env::var_os(MODULE_ENV).map(PathBuf::from))
        .ok_or_else(|| {
            err(format!(
                "no PKCS#11 module: give --pkcs11-module FILE.so, module-path= in the URI, or ${MODULE_ENV} (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)"
            ))
        })?;
    if !module.is_file() {
        return Err(err(format!("module {} does not exist", module.display())));
    }
    let ctx = context(uri_text, &module)?;
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| err(format!("listing tokens: {}", short(&e))))?;
    let mut labels = Vec::new();
    let mut found: Option<Slot> = None;
    for s in slots {
        let Ok(info) = ctx.get_token_info(s) else {
            continue;
        };
        let label = info.label().trim_end().to_string();
        let serial = info.serial_number().trim_end().to_string();
        let ok = uri.token.as_ref().map_or(true, |t| *t == label)
            && uri.serial.as_ref().map_or(true, |x| *x == serial);
        if ok {
            found = Some(s);
            break;
        }
        labels.push(label);
    }
    let slot = found.ok_or_else(|| {
        err(format!(
            "no such token in module {} (tokens: {})",
            module.display(),
            if labels.is_empty() {
                "none".into()
            } else {
                labels.join(", ")
            }
        ))
    })?;
    let session = if rw {
        ctx.open_rw_session(slot)
    } else {
        ctx.open_ro_session(slot)
    }
    .map_err(|e| err(format!("opening a session: {}", short(&e))))?;
    let from_file;
    let pin = match (pin, &uri.pin_source) {
        (Some(p), _) => p,
        (None, Some(f)) => {
            from_file = homestick_image::keys::read_passphrase_file(f)
                .map_err(|e| err(format!("pin-source: {e}")))?;
            &from_file
        }
        (None, None) => {
            return Err(err(
                "the token needs its user PIN: --passphrase-file, --passphrase-fd, pin-source= in the URI, or a terminal to ask on".into(),
            ))
        }
    };
    let pin_text =
        std::str::from_utf8(pin.as_bytes()).map_err(|_| err("the PIN is not UTF-8 text".into()))?;
    match session.login(UserType::User, Some(&AuthPin::new(pin_text.to_string()))) {
        // Login state is per token and process: a second key of the same token is in already.
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => return Err(err(format!("login: {}", short(&e)))),
    }
    Ok(Opened { session, ctx, uri })
}

/// The module loaded and initialized once per process (`uri` names the key in errors), however many keys use it (a second
/// C_Initialize would fail).
fn context(uri: &str, module: &Path) -> Result<Pkcs11, Pkcs11Error> {
    static LOADED: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, c)) = loaded.iter().find(|(p, _)| p == module) {
        return Ok(c.clone());
    }
    let ctx = Pkcs11::new(module).map_err(|e| {
        let why = format!("cannot load module {}: {}", module.display(), short(&e));
        token_err(uri, why)
    })?;
    ctx.initialize(CInitializeArgs::OsThreads).map_err(|e| {
        let why = format!("module {}: {}", module.display(), short(&e));
        token_err(uri, why)
    })?;
    loaded.push((module.to_path_buf(), ctx.clone()));
    Ok(ctx)
}

/// A module's error in a few words: the return value's name (CKR_PIN_INCORRECT reads
/// `PinIncorrect`) and the function that returned it.
fn short(e: &cryptoki::error::Error) -> String {
    match e {
        cryptoki::error::Error::Pkcs11(rv, f) => format!("{rv:?} (from {f:?})"),
        e => e.to_string(),
    }
}

fn select(u: &Pkcs11Uri, class: ObjectClass, kind: KeyType) -> Vec<Attribute> {
    let mut t = vec![Attribute::Class(class), Attribute::KeyType(kind)];
    if let Some(o) = &u.object {
        t.push(Attribute::Label(o.as_bytes().to_vec()));
    }
    if let Some(i) = &u.id {
        t.push(Attribute::Id(i.clone()));
    }
    t
}

/// Exactly one object matching `template`.
fn one(
    session: &Session,
    template: &[Attribute],
    uri: &str,
    what: &str,
) -> Result<ObjectHandle, Pkcs11Error> {
    let found = session
        .find_objects(template)
        .map_err(|e| token_err(uri, format!("finding the {what}: {}", short(&e))))?;
    match found.as_slice() {
        [h] => Ok(*h),
        [] => Err(token_err(
            uri,
            format!("no {what} with this object/id in the token"),
        )),
        more => Err(token_err(
            uri,
            format!(
                "{} objects match as the {what}: name it by id= too",
                more.len()
            ),
        )),
    }
}

/// The Ed25519 public key of a CKA_EC_POINT: the 32 bytes, or a DER OCTET STRING of them.
fn ed25519_point(p: &[u8]) -> Option<VerifyingKey> {
    let raw: &[u8] = match p {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        _ if p.len() == 32 => p,
        _ => return None,
    };
    VerifyingKey::from_bytes(raw.try_into().ok()?).ok()
}

fn public_of(session: &Session, h: ObjectHandle, uri: &str) -> Result<VerifyingKey, Pkcs11Error> {
    let attrs = session
        .get_attributes(h, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(|e| token_err(uri, format!("reading the public key: {}", short(&e))))?;
    let mut params = None;
    let mut point = None;
    for a in attrs {
        match a {
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    match params.as_deref() {
        Some(p) if p == ED25519_OID || p == ED25519_NAME => {}
        _ => return Err(token_err(uri, "the key is not on curve Ed25519")),
    }
    point
        .as_deref()
        .and_then(ed25519_point)
        .ok_or_else(|| token_err(uri, "the public key's CKA_EC_POINT is not an Ed25519 point"))
}

impl TokenKey {
    /// Open the one private key of type `kind` that `uri` names, in a logged-in session;
    /// with `public`, also the public key object of the same name, as Ed25519.
    fn open_private(
        uri: &str,
        module: Option<&Path>,
        pin: Option<&Passphrase>,
        kind: KeyType,
        what: &str,
        public: bool,
    ) -> Result<TokenKey, Pkcs11Error> {
        let o = open(uri, module, pin, false)?;
        let key = one(
            &o.session,
            &select(&o.uri, ObjectClass::PRIVATE_KEY, kind),
            uri,
            &format!("{what} private key"),
        )?;
        let public = if public {
            let h = one(
                &o.session,
                &select(&o.uri, ObjectClass::PUBLIC_KEY, kind),
                uri,
                &format!("{what} public key"),
            )?;
            Some(public_of(&o.session, h, uri)?)
        } else {
            None
        };
        Ok(TokenKey {
            session: Mutex::new(o.session),
            key,
            public,
            uri: uri.to_string(),
            _ctx: o.ctx,
        })
    }

    /// Open the Ed25519 key `uri` names (with its public half, which must match it).
    pub fn open_ed25519(
        uri: &str,
        module: Option<&Path>,
        pin: Option<&Passphrase>,
    ) -> Result<TokenKey, Pkcs11Error> {
        let k = Self::open_private(uri, module, pin, KeyType::EC_EDWARDS, "Ed25519", true)?;
        // The public key beside it must be this key's: a signature proves it.
        let probe = b"homestick: does the token's public key belong to its private key?";
        let sig = k.sign_ed25519(probe)?;
        let matches = k.public.is_some_and(|p| {
            p.verify_strict(probe, &ed25519_dalek::Signature::from_bytes(&sig))
                .is_ok()
        });
        if !matches {
            return Err(token_err(
                uri,
                "the public key object does not belong to the private key",
            ));
        }
        Ok(k)
    }

    /// Open the RSA key `uri` names (Secure Boot signing).
    pub fn open_rsa(
        uri: &str,
        module: Option<&Path>,
        pin: Option<&Passphrase>,
    ) -> Result<TokenKey, Pkcs11Error> {
        Self::open_private(uri, module, pin, KeyType::RSA, "RSA", false)
    }

    /// The Ed25519 public key (of keys opened with [`TokenKey::open_ed25519`]).
    pub fn ed25519_public(&self) -> Option<VerifyingKey> {
        self.public
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An Ed25519 signature (CKM_EDDSA) of `msg`.
    pub fn sign_ed25519(&self, msg: &[u8]) -> Result<[u8; 64], Pkcs11Error> {
        let sig = self
            .session()
            .sign(&Mechanism::Eddsa, self.key, msg)
            .map_err(|e| token_err(&self.uri, format!("signing: {}", short(&e))))?;
        sig.as_slice().try_into().map_err(|_| {
            token_err(
                &self.uri,
                format!("the token gave a {}-byte signature", sig.len()),
            )
        })
    }

    /// An RSA PKCS#1 v1.5 signature with SHA-256 (CKM_SHA256_RSA_PKCS) of `msg`.
    pub fn sign_rsa_sha256(&self, msg: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        self.session()
            .sign(&Mechanism::Sha256RsaPkcs, self.key, msg)
            .map_err(|e| token_err(&self.uri, format!("signing: {}", short(&e))))
    }
}

/// Create a non-extractable Ed25519 key pair in the token `uri` names (its `object=` becomes
/// both objects' label); returns the public key. Refuses if the label is taken.
pub fn generate_ed25519(
    uri: &str,
    module: Option<&Path>,
    pin: Option<&Passphrase>,
) -> Result<VerifyingKey, Pkcs11Error> {
    let o = open(uri, module, pin, true)?;
    let label = o
        .uri
        .object
        .clone()
        .ok_or_else(|| token_err(uri, "give the new key's label: object=LABEL"))?;
    let taken = o
        .session
        .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .map_err(|e| token_err(uri, format!("looking for {label:?}: {}", short(&e))))?;
    if !taken.is_empty() {
        return Err(token_err(
            uri,
            format!(
                "the token already holds an object labelled {label:?}; refusing to add a second"
            ),
        ));
    }
    let id = o
        .uri
        .id
        .clone()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| label.as_bytes().to_vec());
    let public_t = vec![
        Attribute::Token(true),
        Attribute::Verify(true),
        Attribute::EcParams(ED25519_OID.to_vec()),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.clone()),
    ];
    let private_t = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id),
    ];
    let (pubh, _) = o
        .session
        .generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public_t, &private_t)
        .map_err(|e| token_err(uri, format!("generating the key: {}", short(&e))))?;
    public_of(&o.session, pubh, uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let u = parse_uri("pkcs11:token=home%20stick;object=provider-2026;id=%01%02?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin").unwrap();
        assert_eq!(u.token.as_deref(), Some("home stick"));
        assert_eq!(u.object.as_deref(), Some("provider-2026"));
        assert_eq!(u.id, Some(vec![1, 2]));
        assert_eq!(
            u.module_path,
            Some(PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(u.pin_source, Some(PathBuf::from("/run/pin")));
        let cases = [
            ("pkcs11:object=k", "name the token"),
            ("pkcs11:token=t", "name the key"),
            (
                "pkcs11:token=t;object=k?pin-value=1234",
                "visible to every user",
            ),
            ("pkcs11:token=t;objekt=k", "\"objekt\""),
            ("pkcs11:token=t;object=%zz", "percent-encoded"),
            ("pkcs11:token=t;object", "NAME=VALUE"),
            ("file:/x", "not a pkcs11: URI"),
        ];
        for (uri, want) in cases {
            let e = parse_uri(uri).unwrap_err().to_string();
            assert!(e.contains(want), "{uri}: {e}");
        }
    }

    #[test]
    fn ec_points() {
        let k = ed25519_dalek::SigningKey::from_bytes(&[5; 32]).verifying_key();
        let mut der = vec![0x04, 0x20];
        der.extend_from_slice(k.as_bytes());
        assert_eq!(ed25519_point(&der), Some(k));
        assert_eq!(ed25519_point(k.as_bytes()), Some(k));
        assert_eq!(ed25519_point(&der[..20]), None);
    }
}
