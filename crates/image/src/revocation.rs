//! The provider's revocation list: signing keys, images and users that must no longer be
//! trusted, whatever their signatures say.
//!
//! `revocations.json` (this schema) with `revocations.json.sig` beside it: the raw 64-byte
//! Ed25519 signature over the file's exact bytes by a key of the provider's keyring, so an
//! auditor checks it with `openssl pkeyutl -verify -rawin`. `verify`, `flash` and `build`
//! take it; a build embeds its entries into the boot policy inside the Secure-Boot-signed
//! UKI, and the boot verifier refuses what it lists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::keys::{verify_any, TrustedKey};
use crate::manifest::{user_id_ok, Manifest};
use crate::verify::Finding;

/// Format id of a revocation list.
pub const FORMAT: &str = "homestick-revocations/1";
/// Largest revocation list read.
pub const MAX_BYTES: u64 = 4 << 20;
/// Most entries (of all kinds together).
pub const MAX_ENTRIES: usize = 50_000;

/// A revoked user: the customer's id and the user's, as in the manifest's `user`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedUser {
    /// Customer id.
    pub customer: String,
    /// User id.
    pub id: String,
}

/// What is revoked. Every list is kept sorted and without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationList {
    /// [`FORMAT`].
    pub format: String,
    /// Raised by one with every change, so a newer list is told from an older one.
    #[serde(default)]
    pub version: u64,
    /// Key ids (64 lowercase hex digits, as `homestick keys generate` prints them).
    #[serde(default)]
    pub key_ids: BTreeSet<String>,
    /// Image ids (the manifest's `image_id`).
    #[serde(default)]
    pub image_ids: BTreeSet<String>,
    /// Users of a customer (every image made for them).
    #[serde(default)]
    pub users: BTreeSet<RevokedUser>,
}

impl Default for RevocationList {
    fn default() -> Self {
        RevocationList {
            format: FORMAT.into(),
            version: 0,
            key_ids: BTreeSet::new(),
            image_ids: BTreeSet::new(),
            users: BTreeSet::new(),
        }
    }
}

/// Why a revocation list cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// Reading, parsing or checking failed; names the file.
    #[error("revocation list {}: {why}", path.display())]
    Bad {
        /// The list (or its signature).
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// Why the bytes of a revocation list are not a list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// Not JSON of this schema; `at` is the field's path when there is one.
    #[error("{}{why}", field_prefix(at))]
    Json {
        /// The field's path (`users[0].id`).
        at: Option<String>,
        /// The parser's reason.
        why: String,
    },
    /// Another format id.
    #[error("format {0:?} is not {FORMAT:?}")]
    Format(String),
    /// More than [`MAX_ENTRIES`].
    #[error("{0} entries, more than {MAX_ENTRIES}")]
    TooMany(usize),
    /// A key id that is not 64 lowercase hex digits.
    #[error("key_ids: {0:?} is not a key id (64 lowercase hex digits)")]
    KeyId(String),
    /// An image id that is not a lowercase UUID.
    #[error("image_ids: {0:?} is not an image id (a lowercase UUID)")]
    ImageId(String),
    /// A user whose customer or user id is not an id.
    #[error("users: customer {:?}, user {:?} is not a customer and user id", .0.customer, .0.id)]
    User(RevokedUser),
}

fn field_prefix(at: &Option<String>) -> String {
    match at {
        Some(a) => format!("{a}: "),
        None => String::new(),
    }
}

fn bad(path: &Path, why: impl std::fmt::Display) -> RevocationError {
    RevocationError::Bad {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

/// The signature file of a list: `FILE.sig`.
pub fn sig_path(list: &Path) -> PathBuf {
    let mut s = list.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

fn key_id_ok(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl RevocationList {
    /// Parse and check: the format, every id well-formed, at most [`MAX_ENTRIES`].
    pub fn parse(bytes: &[u8]) -> Result<RevocationList, ListError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let l: RevocationList = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ListError::Json {
                at: (path != ".").then_some(path),
                why: e.inner().to_string(),
            }
        })?;
        if l.format != FORMAT {
            return Err(ListError::Format(l.format));
        }
        if l.len() > MAX_ENTRIES {
            return Err(ListError::TooMany(l.len()));
        }
        if let Some(k) = l.key_ids.iter().find(|k| !key_id_ok(k)) {
            return Err(ListError::KeyId(k.clone()));
        }
        if let Some(i) = l
            .image_ids
            .iter()
            .find(|i| uuid::Uuid::parse_str(i).map_or(true, |u| u.to_string() != **i))
        {
            return Err(ListError::ImageId(i.clone()));
        }
        if let Some(u) = l
            .users
            .iter()
            .find(|u| !user_id_ok(&u.id) || !user_id_ok(&u.customer))
        {
            return Err(ListError::User(u.clone()));
        }
        Ok(l)
    }

    /// The entries of every kind together.
    pub fn len(&self) -> usize {
        self.key_ids.len() + self.image_ids.len() + self.users.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The list as written: pretty JSON with a final line end.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Strings, numbers and sets of strings only: serializing cannot fail.
        let mut b = serde_json::to_vec_pretty(self).unwrap_or_default();
        b.push(b'\n');
        b
    }

    /// Read `path` and require `path.sig` to verify it with a key of `keys` that may sign
    /// revocation lists and is inside its validity window at `now`; the list must not revoke
    /// the key that signed it (a revoked key cannot sign its own un-revocation) and its version
    /// must be at least `min_version` (a station's or build's floor: an older list, which
    /// misses later entries, is refused). Returns the list and the id of the key that signed it.
    pub fn load_signed(
        path: &Path,
        keys: &[TrustedKey],
        now: i64,
        min_version: u64,
    ) -> Result<(RevocationList, String), RevocationError> {
        let b =
            crate::files::read_bounded(path, MAX_BYTES).map_err(|e| bad(path, e.to_string()))?;
        let sp = sig_path(path);
        let sig = match crate::files::read_bounded(&sp, 4096) {
            Ok(s) => s,
            Err(crate::files::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad(
                    path,
                    format!(
                        "not signed: {} is missing (homestick revocations sign {} --key ...)",
                        sp.display(),
                        path.display()
                    ),
                ))
            }
            Err(e) => return Err(bad(&sp, e.to_string())),
        };
        let sig: [u8; 64] = sig.as_slice().try_into().map_err(|_| {
            bad(
                &sp,
                format!("{} bytes, an Ed25519 signature has 64", sig.len()),
            )
        })?;
        let key = verify_any(keys, &b, &sig).ok_or_else(|| {
            bad(
                path,
                format!(
                    "{} does not verify it with any trusted key: changed since it was signed, or signed by a key the keyring does not hold",
                    sp.display()
                ),
            )
        })?;
        if let Some(why) = key.refuses_lists_at(now) {
            return Err(bad(path, why));
        }
        let l = RevocationList::parse(&b).map_err(|e| bad(path, e))?;
        if l.key_ids.contains(&key.id) {
            return Err(bad(
                path,
                format!(
                    "version {} revokes the key that signed it ({}): a revoked key cannot sign a list; sign it with another revocation key of the keyring",
                    l.version,
                    key.name()
                ),
            ));
        }
        if l.version < min_version {
            return Err(bad(
                path,
                format!(
                    "version {} is older than the lowest version taken here ({min_version}): an older list misses later revocations",
                    l.version
                ),
            ));
        }
        Ok((l, key.id.clone()))
    }

    /// Whether user `user` of customer `customer` is revoked (every image made for them).
    pub fn revokes_user(&self, customer: &str, user: &str) -> bool {
        self.users
            .iter()
            .any(|r| r.customer == customer && r.id == user)
    }

    /// Both lists as one: a key, image or user either revokes is revoked; the higher version.
    pub fn merge(mut self, other: RevocationList) -> RevocationList {
        self.key_ids.extend(other.key_ids);
        self.image_ids.extend(other.image_ids);
        self.users.extend(other.users);
        self.version = self.version.max(other.version);
        self
    }

    /// At most one list from two that may each be absent ([`RevocationList::merge`]).
    pub fn merge_opt(
        a: Option<RevocationList>,
        b: Option<RevocationList>,
    ) -> Option<RevocationList> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.merge(b)),
            (a, b) => a.or(b),
        }
    }

    /// What this list finds revoked about a signed manifest, in a fixed order.
    pub fn check(&self, m: &Manifest) -> Vec<Finding> {
        let mut fails = Vec::new();
        let region = || format!("revocation list version {}", self.version);
        let key = m.key_id.to_string();
        if self.key_ids.contains(&key) {
            fails.push(Finding::revoked(
                region(),
                format!("the signing key {key} is revoked"),
            ));
        }
        let image = m.image_id.to_string();
        if self.image_ids.contains(&image) {
            fails.push(Finding::revoked(
                region(),
                format!("image {image} is revoked"),
            ));
        }
        if let Some(u) = &m.user {
            if self.revokes_user(&m.customer.id, &u.id) {
                fails.push(Finding::revoked(
                    region(),
                    format!("user {} of customer {} is revoked", u.id, m.customer.id),
                ));
            }
        }
        fails
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(json: &str) -> Result<RevocationList, String> {
        RevocationList::parse(json.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn parse_table() {
        let k = "a".repeat(64);
        let ok: &[&str] = &[
            r#"{"format":"homestick-revocations/1"}"#,
            r#"{"format":"homestick-revocations/1","version":3,"image_ids":["0b1f6a8e-7d6e-4c1b-9a55-2f9e3c1d7b10"]}"#,
            r#"{"format":"homestick-revocations/1","users":[{"customer":"stadt-musterhausen","id":"anna.schmidt"}]}"#,
        ];
        for (i, j) in ok.iter().enumerate() {
            assert!(list(j).is_ok(), "case {i}: {:?}", list(j));
        }
        assert!(list(&format!(
            r#"{{"format":"homestick-revocations/1","key_ids":["{k}"]}}"#
        ))
        .is_ok());
        let bad: &[(&str, String, &str)] = &[
            ("other format", r#"{"format":"x"}"#.into(), "is not \"homestick-revocations/1\""),
            ("unknown field", r#"{"format":"homestick-revocations/1","keys":[]}"#.into(), "unknown field `keys`"),
            ("short key id", r#"{"format":"homestick-revocations/1","key_ids":["abc"]}"#.into(), "key_ids: \"abc\""),
            ("uppercase key id", format!(r#"{{"format":"homestick-revocations/1","key_ids":["{}"]}}"#, "A".repeat(64)), "not a key id"),
            ("image id not a uuid", r#"{"format":"homestick-revocations/1","image_ids":["x"]}"#.into(), "image_ids: \"x\""),
            ("image id uppercase", r#"{"format":"homestick-revocations/1","image_ids":["0B1F6A8E-7D6E-4C1B-9A55-2F9E3C1D7B10"]}"#.into(), "lowercase UUID"),
            ("bad user", r#"{"format":"homestick-revocations/1","users":[{"customer":"c","id":"a b"}]}"#.into(), "users: customer \"c\""),
            ("negative version", r#"{"format":"homestick-revocations/1","version":-1}"#.into(), "version"),
            ("not json", "[".into(), "EOF"),
        ];
        for (name, j, want) in bad {
            let e = list(j).expect_err(name);
            assert!(e.contains(want), "{name}: {e}");
        }
    }

    #[test]
    fn round_trip_is_sorted_and_stable() {
        let mut l = RevocationList::default();
        l.image_ids
            .insert("0b1f6a8e-7d6e-4c1b-9a55-2f9e3c1d7b10".into());
        l.users.insert(RevokedUser {
            customer: "c".into(),
            id: "b".into(),
        });
        l.users.insert(RevokedUser {
            customer: "c".into(),
            id: "a".into(),
        });
        let b = l.to_bytes();
        let back = RevocationList::parse(&b).unwrap();
        assert_eq!(back, l);
        assert_eq!(back.to_bytes(), b);
        assert_eq!(back.users.iter().next().unwrap().id, "a");
    }

    #[test]
    fn merged_lists_revoke_what_either_revokes() {
        let user = |c: &str, id: &str| RevokedUser {
            customer: c.into(),
            id: id.into(),
        };
        let mut a = RevocationList {
            version: 3,
            ..RevocationList::default()
        };
        a.key_ids.insert("aa".into());
        a.users.insert(user("stadt-a", "anna"));
        let mut b = RevocationList {
            version: 5,
            ..RevocationList::default()
        };
        b.image_ids.insert("0b6a".into());
        b.users.insert(user("stadt-a", "bernd"));
        let m = RevocationList::merge_opt(Some(a.clone()), Some(b.clone())).expect("merged");
        assert_eq!(m.version, 5);
        assert!(m.key_ids.contains("aa") && m.image_ids.contains("0b6a"));
        assert!(m.revokes_user("stadt-a", "anna") && m.revokes_user("stadt-a", "bernd"));
        assert!(!m.revokes_user("stadt-b", "anna"));
        assert_eq!(RevocationList::merge_opt(None, Some(b.clone())), Some(b));
        assert_eq!(RevocationList::merge_opt(Some(a.clone()), None), Some(a));
        assert_eq!(RevocationList::merge_opt(None, None), None);
    }
}
