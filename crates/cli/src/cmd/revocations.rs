//! `homestick revocations`: add to, sign and show the provider's revocation list.

use crate::output::out;
use crate::*;

/// What an offline check requires besides the signature: the signed revocation list (its
/// signature checked against `keys`), and expiry against this computer's clock.
pub(crate) fn offline_expectations(
    revocations: Option<&Path>,
    min_version: u64,
    keys: &[keys::TrustedKey],
) -> Result<Expectations, Failure> {
    let now = homestick_image::time::now();
    let revoked = match revocations {
        Some(p) => Some(
            RevocationList::load_signed(p, keys, now, min_version)
                .map_err(usage)?
                .0,
        ),
        None => None,
    };
    Ok(Expectations {
        revoked,
        now: Some(homestick_image::time::now()),
        expiry_warning_days: homestick_image::policy::DEFAULT_EXPIRY_WARNING_DAYS,
        ..Expectations::none()
    })
}

pub(crate) fn revocations(c: &RevocationsCommand) -> Result<(), Failure> {
    match c {
        RevocationsCommand::Add {
            list,
            key_ids,
            image_ids,
            users,
            keyring,
        } => add(list, key_ids, image_ids, users, keyring.as_deref()),
        RevocationsCommand::Sign {
            list,
            key,
            secret,
            pkcs11_module,
        } => sign(list, key, secret, pkcs11_module.as_deref()),
        RevocationsCommand::Show { list, keyring } => show(list, keyring),
    }
}

/// `revocations add`: the entries added, the version raised, written without a signature.
fn add(
    list: &Path,
    key_ids: &[String],
    image_ids: &[String],
    users: &[String],
    keyring: Option<&Path>,
) -> Result<(), Failure> {
    let mut l = list_to_extend(list, keyring)?;
    let before = l.len();
    l.key_ids
        .extend(key_ids.iter().map(|k| k.trim().to_ascii_lowercase()));
    l.image_ids
        .extend(image_ids.iter().map(|k| k.trim().to_ascii_lowercase()));
    for u in users {
        let (customer, id) = u.split_once('/').ok_or_else(|| {
            usage(format!(
                "--user {u:?}: give CUSTOMER/USER, e.g. stadt-musterhausen/anna.schmidt"
            ))
        })?;
        l.users.insert(homestick_image::revocation::RevokedUser {
            customer: customer.into(),
            id: id.into(),
        });
    }
    if l.len() == before {
        return Err(usage(
            "nothing new to revoke: give --key-id, --image-id or --user (each not listed yet)",
        ));
    }
    l.version += 1;
    // What was added must be well-formed, like every list read.
    let l = RevocationList::parse(&l.to_bytes())
        .map_err(|e| usage(format!("{}: {e}", list.display())))?;
    write_list(list, &l)?;
    out!(
        "revocation list {}: version {}, {} key(s), {} image(s), {} user(s)",
        list.display(),
        l.version,
        l.key_ids.len(),
        l.image_ids.len(),
        l.users.len()
    );
    out!(
        "sign it: homestick revocations sign {} --key PROVIDER.key",
        list.display()
    );
    Ok(())
}

/// `revocations sign`: LIST.sig from the provider's key.
fn sign(
    list: &Path,
    key: &str,
    secret: &SecretArgs,
    pkcs11_module: Option<&Path>,
) -> Result<(), Failure> {
    let bytes = homestick_image::files::read_bounded(list, homestick_image::revocation::MAX_BYTES)
        .map_err(|e| usage(format!("{}: {e}", list.display())))?;
    let l = RevocationList::parse(&bytes).map_err(|e| usage(format!("{}: {e}", list.display())))?;
    let signer = open_signer(key, secret, pkcs11_module)?;
    let sig = signer.sign(&bytes).map_err(usage)?;
    let sp = homestick_image::revocation::sig_path(list);
    homestick_image::files::write_atomic(&sp, &sig)
        .map_err(|e| usage(format!("{}: {e}", sp.display())))?;
    out!(
        "signed {} (version {}) with key {}: {}",
        list.display(),
        l.version,
        keys::key_id(&signer.public()),
        sp.display()
    );
    Ok(())
}

/// `revocations show`: the signature checked, then every entry.
fn show(list: &Path, keyring: &Path) -> Result<(), Failure> {
    let ring = keys::load_keyring(keyring).map_err(usage)?;
    let (l, by) =
        RevocationList::load_signed(list, &ring, homestick_image::time::now(), 0).map_err(usage)?;
    out!(
        "revocation list {}: version {}, signed by key {by}",
        list.display(),
        l.version
    );
    for k in &l.key_ids {
        out!("  key    {k}");
    }
    for i in &l.image_ids {
        out!("  image  {i}");
    }
    for u in &l.users {
        out!("  user   {}/{}", u.customer, u.id);
    }
    Ok(())
}

/// The list `path` to add entries to: a new one if there is none; an existing one only if
/// its signature verifies with `keyring` (a list planted or changed on disk, unsigned, is
/// never extended and signed again).
pub(crate) fn list_to_extend(
    path: &Path,
    keyring: Option<&Path>,
) -> Result<RevocationList, Failure> {
    if !path.exists() {
        return Ok(RevocationList::default());
    }
    let ring = keyring.ok_or_else(|| {
        usage(format!(
            "{} exists: give --keyring, against which its signature is checked before it is extended",
            path.display()
        ))
    })?;
    let ring = keys::load_keyring(ring).map_err(usage)?;
    RevocationList::load_signed(path, &ring, homestick_image::time::now(), 0)
        .map(|(l, _)| l)
        .map_err(|e| {
            usage(format!(
                "{e}; a list is only extended from its signed version (restore it, or start a new list)"
            ))
        })
}

/// Write a revocation list whole, and remove its signature, which no longer matches.
pub(crate) fn write_list(path: &Path, l: &RevocationList) -> Result<(), Failure> {
    homestick_image::files::write_atomic(path, &l.to_bytes())
        .map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let sp = homestick_image::revocation::sig_path(path);
    match fs::remove_file(&sp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(usage(format!(
            "{}: cannot remove the old signature: {e}",
            sp.display()
        ))),
    }
}
