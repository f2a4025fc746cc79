//! A stick set: one signed image per employee of a roster, stored as the parts all users share
//! once (`shared.img`) and per user only the blocks that differ (`users/<id>.part`).
//!
//! ```text
//! SET/set.json        the index: customer, version, every user with image id, manifest
//!                     SHA-256, part size and the credentials a lost stick must have revoked
//! SET/set.json.sig    its Ed25519 signature (64 bytes) by the image key
//! SET/shared.img      the image without a user: the user's ESP files and profile are absent
//! SET/users/<id>.part the user's blocks: "HSPART01", u32 count, u32 0, count × (u64 offset,
//!                     u32 length, u32 0), then the blocks' bytes in that order
//! ```
//!
//! A user's image is `shared.img` with the user's blocks laid over it ([`UserImage`]); it is
//! verified like any image (its own signed manifest names the user). The shared image alone
//! has no manifest and never verifies. Parsing a part is bounded: at most [`MAX_EXTENTS`]
//! extents, in order, without overlap, inside the image, and at most [`MAX_PART_BYTES`] bytes.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::disk::{Disk, FileDisk};
use crate::keys::{self, TrustedKey};
use crate::manifest::{self, Customer, Sha256Sum};

/// Format id of set.json.
pub const SET_FORMAT: &str = "homestick-set/1";
/// The index.
pub const INDEX: &str = "set.json";
/// The index's signature.
pub const INDEX_SIG: &str = "set.json.sig";
/// The shared image.
pub const SHARED: &str = "shared.img";
/// The users' parts.
pub const USERS: &str = "users";
/// Magic of a part file.
pub const PART_MAGIC: &[u8; 8] = b"HSPART01";
/// Most extents in one part.
pub const MAX_EXTENTS: usize = 65_536;
/// Largest part (header and data).
pub const MAX_PART_BYTES: u64 = 64 << 20;
/// Largest set.json.
const MAX_INDEX_BYTES: u64 = 256 << 20;

/// A credential on a user's stick that a server must drop when the stick is lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// What it is: `wireguard-peer`, `sip-user`, `vpn-user`, `eap-identity`,
    /// `certificate-serial`.
    pub kind: String,
    /// The server it is on: a VPN's name, or `pbx`.
    pub server: String,
    /// The value a server knows it by (a public key, a user name, a serial): never a secret.
    pub value: String,
}

/// One user of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetUser {
    /// The roster's user id.
    pub id: String,
    /// The roster's display name.
    pub name: String,
    /// The user's image id.
    #[serde(with = "uuid_str")]
    pub image_id: Uuid,
    /// SHA-256 of the user's manifest.json.
    pub manifest_sha256: Sha256Sum,
    /// SHA-256 of the user's part file.
    pub part_sha256: Sha256Sum,
    /// Size of the part file.
    pub part_bytes: u64,
    /// What to revoke when the stick is lost.
    pub credentials: Vec<Credential>,
}

/// set.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetIndex {
    /// Always [`SET_FORMAT`].
    pub format: String,
    /// The set's id (derived from its inputs; the ledger keys users by it).
    #[serde(with = "uuid_str")]
    pub set_id: Uuid,
    /// Customer.
    pub customer: Customer,
    /// The customer's hotline (for label sheets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotline: Option<String>,
    /// Image version.
    pub version: String,
    /// Key id of the image key.
    pub key_id: Sha256Sum,
    /// Size of every user's image (and of shared.img).
    pub image_size: u64,
    /// SHA-256 of shared.img.
    pub shared_sha256: Sha256Sum,
    /// The users, in the roster's order (the order sticks are handed out in).
    pub users: Vec<SetUser>,
}

mod uuid_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use uuid::Uuid;
    pub fn serialize<S: Serializer>(u: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&u.hyphenated().to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        let s = String::deserialize(d)?;
        Uuid::parse_str(&s).map_err(serde::de::Error::custom)
    }
}

/// Why a set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// A file of the set cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file of the set is not what the format says.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// set.json's signature does not verify with a trusted key.
    #[error("{path}: the signature does not verify with any trusted key")]
    Untrusted {
        /// set.json.sig.
        path: PathBuf,
    },
    /// A user's part is not the one set.json lists (changed after signing).
    #[error("{path}: not the part that the signed set.json lists for this user (size or SHA-256 differs)")]
    PartChanged {
        /// The part.
        path: PathBuf,
    },
    /// shared.img is not the one set.json lists (changed after signing).
    #[error("{path}: SHA-256 {got} is not set.json's shared_sha256 {want}: changed after signing")]
    SharedChanged {
        /// shared.img.
        path: PathBuf,
        /// Its SHA-256.
        got: String,
        /// set.json's.
        want: String,
    },
    /// No such user in the set.
    #[error("{set}: no user {user:?} in this set")]
    NoUser {
        /// The set.
        set: PathBuf,
        /// The user asked for.
        user: String,
    },
}

impl SetError {
    /// True where the set itself is not trusted (exit 1), not unusable input (exit 2).
    pub fn untrusted(&self) -> bool {
        matches!(
            self,
            SetError::Untrusted { .. }
                | SetError::PartChanged { .. }
                | SetError::SharedChanged { .. }
        )
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> SetError {
    SetError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// True if `dir` looks like a stick set (a directory with set.json).
pub fn is_set(dir: &Path) -> bool {
    dir.is_dir() && dir.join(INDEX).is_file()
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, SetError> {
    use std::io::Read;
    let io = |source| SetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut data = Vec::new();
    f.take(max + 1).read_to_end(&mut data).map_err(io)?;
    if data.len() as u64 > max {
        return Err(invalid(path, format!("larger than {max} bytes")));
    }
    Ok(data)
}

impl SetIndex {
    /// Parse and check set.json's bytes.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<SetIndex, SetError> {
        let idx: SetIndex =
            serde_json::from_slice(bytes).map_err(|e| invalid(path, e.to_string()))?;
        if idx.format != SET_FORMAT {
            return Err(invalid(
                path,
                format!("format {:?} is not {SET_FORMAT:?}", idx.format),
            ));
        }
        let mut seen = BTreeMap::new();
        for (i, u) in idx.users.iter().enumerate() {
            if !manifest::user_id_ok(&u.id) {
                return Err(invalid(
                    path,
                    format!("users[{i}].id is not a valid user id"),
                ));
            }
            if seen.insert(u.id.as_str(), i).is_some() {
                return Err(invalid(path, format!("user {:?} is listed twice", u.id)));
            }
            if u.part_bytes > MAX_PART_BYTES {
                return Err(invalid(
                    path,
                    format!("users[{i}].part_bytes is over {MAX_PART_BYTES}"),
                ));
            }
        }
        Ok(idx)
    }

    /// The user `id`.
    pub fn user(&self, id: &str) -> Option<&SetUser> {
        self.users.iter().find(|u| u.id == id)
    }

    /// set.json's bytes as written (stable: pretty JSON with a trailing newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Strings, numbers and lists of them: serializing cannot fail.
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// One changed range of a user's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    /// Byte offset in the image.
    pub offset: u64,
    /// The bytes there.
    pub data: Vec<u8>,
}

/// Encode a part: `extents` sorted, without overlap.
pub fn encode_part(extents: &[Extent]) -> Vec<u8> {
    let data: usize = extents.iter().map(|e| e.data.len()).sum();
    let mut out = Vec::with_capacity(16 + 16 * extents.len() + data);
    out.extend_from_slice(PART_MAGIC);
    out.extend_from_slice(&(extents.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for e in extents {
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
    }
    for e in extents {
        out.extend_from_slice(&e.data);
    }
    out
}

/// Why the bytes of a part are not a part (for an image of the given size).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartError {
    /// Over [`MAX_PART_BYTES`].
    #[error("larger than {MAX_PART_BYTES} bytes")]
    TooLarge,
    /// No `HSPART01` header.
    #[error("not a homestick part (no HSPART01 header)")]
    NoHeader,
    /// Too many extents or a reserved header field set.
    #[error("header: {0} extents (at most {MAX_EXTENTS}) or a reserved field set")]
    Header(usize),
    /// The extent table is cut off.
    #[error("cut off in the extent table")]
    TableCut,
    /// Extent `i` is empty or has a reserved field set.
    #[error("extent {0}: empty or a reserved field set")]
    Empty(usize),
    /// Extent `i` ends after the image.
    #[error("extent {0} passes the image's end")]
    PastEnd(usize),
    /// Extent `i` starts before the one before it ends.
    #[error("extent {0} is out of order or overlaps the one before")]
    Order(usize),
    /// Extent `i`'s data is cut off.
    #[error("extent {0}: data cut off")]
    DataCut(usize),
    /// Bytes after the last extent's data.
    #[error("{0} bytes after the last extent")]
    Trailing(usize),
}

/// Decode a part for an image of `image_size` bytes. Bounded: linear in the input, which is
/// at most [`MAX_PART_BYTES`].
pub fn decode_part(b: &[u8], image_size: u64) -> Result<Vec<Extent>, PartError> {
    if b.len() as u64 > MAX_PART_BYTES {
        return Err(PartError::TooLarge);
    }
    if b.len() < 16 || &b[..8] != PART_MAGIC {
        return Err(PartError::NoHeader);
    }
    let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let count = u32_at(8) as usize;
    if count > MAX_EXTENTS || u32_at(12) != 0 {
        return Err(PartError::Header(count));
    }
    let table_end = 16 + 16 * count;
    if b.len() < table_end {
        return Err(PartError::TableCut);
    }
    let mut extents = Vec::with_capacity(count);
    let mut data_at = table_end;
    let mut prev_end = 0u64;
    for i in 0..count {
        let e = &b[16 + 16 * i..32 + 16 * i];
        let mut off = [0u8; 8];
        off.copy_from_slice(&e[..8]);
        let offset = u64::from_le_bytes(off);
        let len = u32::from_le_bytes([e[8], e[9], e[10], e[11]]) as usize;
        if e[12..16] != [0; 4] || len == 0 {
            return Err(PartError::Empty(i));
        }
        let end = offset
            .checked_add(len as u64)
            .filter(|&end| end <= image_size)
            .ok_or(PartError::PastEnd(i))?;
        if i > 0 && offset < prev_end {
            return Err(PartError::Order(i));
        }
        prev_end = end;
        let data = b.get(data_at..data_at + len).ok_or(PartError::DataCut(i))?;
        extents.push(Extent {
            offset,
            data: data.to_vec(),
        });
        data_at += len;
    }
    if data_at != b.len() {
        return Err(PartError::Trailing(b.len() - data_at));
    }
    Ok(extents)
}

/// The extents where `new` differs from `old` (same length), in `block`-byte blocks, adjacent
/// blocks merged, each extent shorter than 4 GiB, at `base` in the image.
pub fn diff(old: &[u8], new: &[u8], block: usize, base: u64) -> Vec<Extent> {
    debug_assert_eq!(old.len(), new.len());
    let mut out: Vec<Extent> = Vec::new();
    let mut at = 0usize;
    for (o, n) in old.chunks(block).zip(new.chunks(block)) {
        if o != n {
            let offset = base + at as u64;
            match out.last_mut() {
                Some(last)
                    if last.offset + last.data.len() as u64 == offset
                        && last.data.len() + n.len() < u32::MAX as usize =>
                {
                    last.data.extend_from_slice(n)
                }
                _ => out.push(Extent {
                    offset,
                    data: n.to_vec(),
                }),
            }
        }
        at += o.len();
    }
    out
}

/// A user's image: the shared image with the user's extents laid over it.
#[derive(Debug, Clone)]
pub struct UserImage {
    shared: Arc<FileDisk>,
    extents: Arc<Vec<Extent>>,
}

impl UserImage {
    /// Over `shared`, these extents (sorted, inside it: as [`decode_part`] returns them).
    pub fn new(shared: Arc<FileDisk>, extents: Vec<Extent>) -> UserImage {
        UserImage {
            shared,
            extents: Arc::new(extents),
        }
    }
}

impl Disk for UserImage {
    fn size(&self) -> u64 {
        self.shared.size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.shared.read_exact_at(buf, offset)?;
        let end = offset + buf.len() as u64;
        let first = self
            .extents
            .partition_point(|e| e.offset + e.data.len() as u64 <= offset);
        for e in &self.extents[first..] {
            if e.offset >= end {
                break;
            }
            let from = e.offset.max(offset);
            let to = (e.offset + e.data.len() as u64).min(end);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&e.data[(from - e.offset) as usize..(to - e.offset) as usize]);
        }
        Ok(())
    }
}

/// An opened set: its index (signature checked) and its shared image.
#[derive(Debug)]
pub struct StickSet {
    /// The set's directory.
    pub dir: PathBuf,
    /// set.json.
    pub index: SetIndex,
    /// SHA-256 of set.json as signed.
    pub index_sha256: [u8; 32],
    /// The key that signed set.json (`None`: opened without checking, for `inspect`).
    pub key: Option<TrustedKey>,
    shared: Arc<FileDisk>,
}

impl StickSet {
    /// Open the set in `dir`: set.json must be signed by one of `keys`, shared.img of the
    /// size it says.
    pub fn open(dir: &Path, keys_: &[TrustedKey]) -> Result<StickSet, SetError> {
        StickSet::open_inner(dir, Some(keys_))
    }

    /// Open the set in `dir` without checking set.json's signature (to show what it says).
    pub fn open_unchecked(dir: &Path) -> Result<StickSet, SetError> {
        StickSet::open_inner(dir, None)
    }

    fn open_inner(dir: &Path, keys_: Option<&[TrustedKey]>) -> Result<StickSet, SetError> {
        use sha2::Digest;
        let ipath = dir.join(INDEX);
        let bytes = read_bounded(&ipath, MAX_INDEX_BYTES)?;
        let key = match keys_ {
            Some(keys_) => {
                let spath = dir.join(INDEX_SIG);
                let sig = read_bounded(&spath, 64)?;
                let sig: [u8; 64] = sig
                    .as_slice()
                    .try_into()
                    .map_err(|_| invalid(&spath, "not a 64-byte Ed25519 signature"))?;
                Some(
                    keys::verify_any(keys_, &bytes, &sig)
                        .ok_or(SetError::Untrusted { path: spath })?
                        .clone(),
                )
            }
            None => None,
        };
        let index = SetIndex::parse(&bytes, &ipath)?;
        let shared_path = dir.join(SHARED);
        let shared = FileDisk::open(&shared_path).map_err(|source| SetError::Io {
            path: shared_path.clone(),
            source,
        })?;
        if shared.size() != index.image_size {
            return Err(invalid(
                &shared_path,
                format!(
                    "{} bytes, set.json says {}",
                    shared.size(),
                    index.image_size
                ),
            ));
        }
        Ok(StickSet {
            dir: dir.to_path_buf(),
            index_sha256: sha2::Sha256::digest(&bytes).into(),
            index,
            key,
            shared: Arc::new(shared),
        })
    }

    /// The path of the shared image.
    pub fn shared_path(&self) -> PathBuf {
        self.dir.join(SHARED)
    }

    /// Whether shared.img is the one set.json names (its `shared_sha256`): the whole file is
    /// hashed. Each user's image is verified on its own as well; this finds a changed byte
    /// outside every user's signed regions too. A reason if it is not.
    pub fn check_shared(&self) -> Result<(), SetError> {
        let path = self.shared_path();
        let got = crate::hash::hash_range(&*self.shared, 0, self.shared.size(), &|_| {}).map_err(
            |source| SetError::Io {
                path: path.clone(),
                source,
            },
        )?;
        if got != self.index.shared_sha256.0 {
            return Err(SetError::SharedChanged {
                path,
                got: crate::hash::hex(&got),
                want: self.index.shared_sha256.to_string(),
            });
        }
        Ok(())
    }

    /// The path of `user`'s part.
    pub fn part_path(&self, user: &str) -> PathBuf {
        self.dir.join(USERS).join(format!("{user}.part"))
    }

    /// `user`'s entry.
    pub fn user(&self, user: &str) -> Result<&SetUser, SetError> {
        self.index.user(user).ok_or_else(|| SetError::NoUser {
            set: self.dir.clone(),
            user: user.to_string(),
        })
    }

    /// `user`'s image, composed from the shared image and the user's part. The part must
    /// match the size and SHA-256 that the signed index gives for it.
    pub fn image(&self, user: &str) -> Result<UserImage, SetError> {
        use sha2::Digest;
        let u = self.user(user)?;
        let path = self.part_path(user);
        let bytes = read_bounded(&path, MAX_PART_BYTES)?;
        if bytes.len() as u64 != u.part_bytes
            || Sha256Sum(sha2::Sha256::digest(&bytes).into()) != u.part_sha256
        {
            return Err(SetError::PartChanged { path });
        }
        let extents = decode_part(&bytes, self.index.image_size)
            .map_err(|r| invalid(&path, r.to_string()))?;
        Ok(UserImage::new(self.shared.clone(), extents))
    }
}

/// Verifies the users of a set, reading the partitions they share only once: the first user
/// is verified in full; a later user whose blocks stay out of the shared partitions, and whose
/// signed manifest describes them exactly as the first's, is verified with those partitions
/// taken as checked (a dm-verity one still by its superblock and tree top). Anything else is
/// verified in full.
#[derive(Debug, Default)]
pub struct SetVerifier {
    /// The shared partitions as the first verified manifest describes them.
    shared: std::sync::Mutex<Option<Vec<manifest::Partition>>>,
}

/// The partitions a set's users share: every one but the ESP and the profile (those with a
/// dm-verity tree and their hash partitions).
fn shared_partitions(m: &manifest::Manifest) -> Vec<manifest::Partition> {
    let trees: Vec<u32> = m
        .partitions
        .iter()
        .filter_map(|p| Some(p.verity.as_ref()?.hash_partition))
        .collect();
    m.partitions
        .iter()
        .filter(|p| p.verity.is_some() || trees.contains(&p.number))
        .cloned()
        .collect()
}

impl SetVerifier {
    /// A verifier that has checked nothing yet.
    pub fn new() -> SetVerifier {
        SetVerifier::default()
    }

    /// Verify `user`'s image of `set` against `keys` and `expect`; it must be the image the
    /// signed index names (image id and manifest SHA-256).
    pub fn verify(
        &self,
        set: &StickSet,
        user: &str,
        keys_: &[TrustedKey],
        expect: &crate::policy::Expectations,
        progress: &dyn crate::verify::Progress,
    ) -> Result<(crate::verify::Verified, UserImage), crate::verify::VerifyError> {
        use crate::verify::{self, Finding, VerifyError};
        let u = set
            .user(user)
            .map_err(|e| VerifyError::Unusable(e.to_string()))?;
        let image = set.image(user).map_err(|e| match e {
            SetError::PartChanged { path } => VerifyError::Untrusted {
                failures: vec![Finding::new(
                    path.display().to_string(),
                    "changed after signing: its SHA-256 is not the one set.json lists",
                )],
                manifest: None,
            },
            e => VerifyError::Unusable(e.to_string()),
        })?;
        let known_parts = self.shared.lock().map(|g| g.clone()).unwrap_or(None);
        let touches = |parts: &[manifest::Partition]| {
            image.extents.iter().any(|e| {
                parts.iter().any(|p| {
                    e.offset < p.offset() + p.len() && p.offset() < e.offset + e.data.len() as u64
                })
            })
        };
        let v = match known_parts.filter(|p| !touches(p)) {
            Some(parts) => {
                let known: Vec<(u32, [u8; 32])> = parts
                    .iter()
                    .map(|p| (p.number, p.sha256.map_or([0; 32], |h| h.0)))
                    .collect();
                let v = verify::verify_known(&image, keys_, expect, &known, progress)?;
                if shared_partitions(&v.manifest) == parts {
                    v
                } else {
                    verify::verify_with(&image, keys_, expect, progress)?
                }
            }
            None => {
                let v = verify::verify_with(&image, keys_, expect, progress)?;
                let parts = shared_partitions(&v.manifest);
                if !touches(&parts) {
                    if let Ok(mut g) = self.shared.lock() {
                        g.get_or_insert(parts);
                    }
                }
                v
            }
        };
        let m = &v.manifest;
        let mut failures = Vec::new();
        if m.image_id != u.image_id {
            failures.push(Finding::new(
                "set.json",
                format!(
                    "lists image {} for {user}, the stick holds {}",
                    u.image_id, m.image_id
                ),
            ));
        }
        if m.user.as_ref().map(|x| x.id.as_str()) != Some(user) {
            failures.push(Finding::new(
                "manifest",
                format!("the signed manifest is not for user {user}"),
            ));
        }
        if !failures.is_empty() {
            return Err(VerifyError::Untrusted {
                failures,
                manifest: Some(Box::new(v.manifest)),
            });
        }
        Ok((v, image))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_encode_decode_and_compose_give_the_new_bytes() {
        let old: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
        let mut new = old.clone();
        new[0] ^= 1;
        new[4096 * 3 + 5] ^= 1;
        new[4096 * 4] ^= 1; // adjacent block: merged
        new[old.len() - 1] ^= 1;
        let ex = diff(&old, &new, 4096, 1000);
        assert_eq!(
            ex.iter()
                .map(|e| (e.offset, e.data.len()))
                .collect::<Vec<_>>(),
            [
                (1000, 4096),
                (1000 + 3 * 4096, 8192),
                (1000 + 15 * 4096, 4096)
            ]
        );
        let part = encode_part(&ex);
        let back = decode_part(&part, 1000 + old.len() as u64).unwrap();
        assert_eq!(back, ex);
        // Composed over a file holding `old` at 1000: reads give `new` at every offset and
        // length, across extent edges.
        let mut file = vec![0u8; 1000];
        file.extend_from_slice(&old);
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), &file).unwrap();
        let img = UserImage::new(Arc::new(FileDisk::open(f.path()).unwrap()), back);
        let mut want = vec![0u8; 1000];
        want.extend_from_slice(&new);
        for (off, len) in [
            (0, 1500),
            (1000, 4096),
            (5000, 20000),
            (900, 65536 + 100),
            (1000 + 15 * 4096 + 4000, 96),
        ] {
            let mut buf = vec![0u8; len];
            img.read_exact_at(&mut buf, off as u64).unwrap();
            assert_eq!(buf, want[off..off + len], "at {off} len {len}");
        }
    }

    #[test]
    fn hostile_parts_are_refused_with_a_reason() {
        let good = encode_part(&[
            Extent {
                offset: 0,
                data: vec![1; 10],
            },
            Extent {
                offset: 100,
                data: vec![2; 10],
            },
        ]);
        assert!(decode_part(&good, 200).is_ok());
        let mut cases: Vec<(&str, Vec<u8>, u64)> = vec![
            ("empty", vec![], 200),
            ("bad magic", b"HSPART02\0\0\0\0\0\0\0\0".to_vec(), 200),
            ("past the end", good.clone(), 105),
            ("cut", good[..good.len() - 1].to_vec(), 200),
            ("trailing", [good.clone(), vec![0]].concat(), 200),
        ];
        let mut huge = good.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        cases.push(("huge count", huge, 200));
        let mut overlap = good.clone();
        overlap[32..40].copy_from_slice(&5u64.to_le_bytes());
        cases.push(("overlap", overlap, 200));
        let mut wrap = good.clone();
        wrap[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        cases.push(("wraps", wrap, 200));
        let mut zero = good.clone();
        zero[24..28].copy_from_slice(&0u32.to_le_bytes());
        cases.push(("empty extent", zero, 200));
        for (name, b, size) in cases {
            assert!(decode_part(&b, size).is_err(), "{name}");
        }
    }
}
