//! `manifest.json`: the one signed statement about an image.
//!
//! The signature covers the exact bytes, so serialization only has to be stable for
//! reproducible builds (fixed field order, pretty-printed, trailing newline). Parsing is strict
//! and bounded: unknown fields, impossible layouts and oversized input are errors.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::disk::SECTOR;
use crate::gpt::{self, TYPE_ESP};

/// The format identifier this code writes and reads.
pub const FORMAT: &str = "homestick-manifest/1";
/// Largest manifest.json accepted.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// Where the ESP always starts: verifiers find the manifest here without trusting the GPT.
pub const ESP_FIRST_LBA: u64 = 2048;
/// Path of the manifest on the ESP.
pub const MANIFEST_PATH: &str = "homestick/manifest.json";
/// Path of the signature on the ESP.
pub const SIGNATURE_PATH: &str = "homestick/manifest.sig";
/// Most files the ESP list may hold.
const MAX_FILES: usize = 4096;

/// Who the image is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// Slug, e.g. `stadt-musterhausen`.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// The employee a per-user image is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The roster's `user_id`: 1 to 64 of `a-z 0-9 . _ -`.
    pub id: String,
    /// The roster's `display_name`.
    pub name: String,
}

/// True for a valid user id: 1 to 64 of `a-z 0-9 . _ -`, not `.` or `..` (it names files).
pub fn user_id_ok(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// The base the image was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Base {
    /// Base name from base.toml.
    pub name: String,
    /// Base version from base.toml.
    pub version: String,
}

/// Disk-level facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskInfo {
    /// Disk GUID in the GPT header.
    #[serde(with = "guid")]
    pub guid: Uuid,
    /// Always 512.
    pub sector_size: u64,
    /// Smallest target that holds the image (partitions plus the backup GPT).
    pub min_size_bytes: u64,
    /// Number of GPT entries (128).
    pub partition_entries: u32,
}

/// A file on the ESP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// `/`-separated path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 (lowercase hex on the wire).
    pub sha256: Sha256Sum,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// GPT entry number, 1-based.
    pub number: u32,
    /// GPT partition name.
    pub name: String,
    /// Type GUID.
    #[serde(with = "guid")]
    pub type_guid: Uuid,
    /// Unique GUID.
    #[serde(with = "guid")]
    pub guid: Uuid,
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA, inclusive.
    pub last_lba: u64,
    /// GPT attribute bits.
    pub attributes: u64,
    /// SHA-256 of all sectors first_lba..=last_lba (every partition but the ESP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Sum>,
    /// Files and their hashes (the ESP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileEntry>>,
    /// The dm-verity hash tree that covers this partition (the system), instead of `sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verity: Option<Verity>,
}

/// A dm-verity hash tree over a whole partition, in veritysetup's format (see
/// [`crate::verity`]): the partition is the data device, `hash_partition` the hash device with
/// the superblock at its start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verity {
    /// Number of the partition that holds the superblock and the tree.
    pub hash_partition: u32,
    /// The root hash (lowercase hex).
    pub root_hash: Sha256Sum,
    /// The salt (lowercase hex, at most 256 bytes).
    pub salt: String,
    /// Always `sha256`.
    pub algorithm: String,
    /// Always 4096.
    pub data_block_size: u32,
    /// Always 4096.
    pub hash_block_size: u32,
    /// Data blocks: the whole partition.
    pub data_blocks: u64,
}

impl Verity {
    /// The tree's parameters; the salt as bytes (validated manifests only).
    pub fn params(&self) -> crate::verity::Params {
        crate::verity::Params {
            data_blocks: self.data_blocks,
            // Only called on validated manifests, whose salt is hex.
            salt: unhex(&self.salt).unwrap_or_default(),
        }
    }
}

/// Lowercase hex to bytes; `None` for anything else.
fn unhex(s: &str) -> Option<Vec<u8>> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if s.len() % 2 != 0 {
        return None;
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

impl DiskInfo {
    fn validate(&self) -> Result<(), ManifestError> {
        if self.sector_size != SECTOR {
            return Err(invalid(
                "disk.sector_size",
                format!("{} (only 512 is supported)", self.sector_size),
            ));
        }
        if self.partition_entries != gpt::NUM_ENTRIES {
            return Err(invalid(
                "disk.partition_entries",
                format!("{} (expected 128)", self.partition_entries),
            ));
        }
        if self.min_size_bytes % SECTOR != 0 {
            return Err(invalid("disk.min_size_bytes", "not a multiple of 512"));
        }
        Ok(())
    }
}

impl Partition {
    /// Number, name, GUIDs and range of `partitions[i]`: in order, after `prev_last`, before
    /// `last_usable`.
    fn validate_entry(
        &self,
        i: usize,
        prev_last: u64,
        last_usable: u64,
    ) -> Result<(), ManifestError> {
        let f = |name: &str| format!("partitions[{i}].{name}");
        if self.number != i as u32 + 1 {
            return Err(invalid(
                f("number"),
                format!("{} (expected {})", self.number, i + 1),
            ));
        }
        if self.name.is_empty() || self.name.encode_utf16().count() > 36 || self.name.contains('\0')
        {
            return Err(invalid(
                f("name"),
                "must be 1 to 36 UTF-16 units without NUL",
            ));
        }
        if self.first_lba > self.last_lba {
            return Err(invalid(f("last_lba"), "is before first_lba"));
        }
        if self.first_lba <= prev_last {
            return Err(invalid(
                f("first_lba"),
                "overlaps the GPT or the previous partition",
            ));
        }
        if self.last_lba > last_usable {
            return Err(invalid(
                f("last_lba"),
                format!(
                    "{} is past the last usable LBA {last_usable}",
                    self.last_lba
                ),
            ));
        }
        Ok(())
    }

    /// `partitions[i]` is the ESP: at LBA 2048, checked per file, files sorted and sane.
    fn validate_esp(&self, i: usize) -> Result<(), ManifestError> {
        let f = |name: &str| format!("partitions[{i}].{name}");
        if self.type_guid != TYPE_ESP {
            return Err(invalid(
                f("type_guid"),
                "partition 1 must be the EFI system partition",
            ));
        }
        if self.first_lba != ESP_FIRST_LBA {
            return Err(invalid(
                f("first_lba"),
                format!("the ESP must start at LBA {ESP_FIRST_LBA}"),
            ));
        }
        if self.sha256.is_some() {
            return Err(invalid(
                f("sha256"),
                "the ESP is checked per file, not whole",
            ));
        }
        let files = self
            .files
            .as_ref()
            .ok_or_else(|| invalid(f("files"), "missing"))?;
        if files.len() > MAX_FILES {
            return Err(invalid(f("files"), format!("more than {MAX_FILES} files")));
        }
        let mut prev: Option<&str> = None;
        for (j, file) in files.iter().enumerate() {
            let ff = format!("partitions[{i}].files[{j}]");
            if let Some(why) = crate::fat::path_problem(&file.path) {
                return Err(invalid(format!("{ff}.path"), why));
            }
            if prev.is_some_and(|pp| pp >= file.path.as_str()) {
                return Err(invalid(
                    format!("{ff}.path"),
                    "files must be sorted and unique",
                ));
            }
            if file.path == MANIFEST_PATH || file.path == SIGNATURE_PATH {
                return Err(invalid(
                    format!("{ff}.path"),
                    "the manifest cannot list itself",
                ));
            }
            if file.size > self.len() {
                return Err(invalid(format!("{ff}.size"), "larger than the partition"));
            }
            prev = Some(&file.path);
        }
        Ok(())
    }

    /// `partitions[i]` is hashed whole (`sha256`) or covered by a dm-verity tree in another
    /// partition of `all` (`verity`), and lists no files.
    fn validate_hashed(&self, i: usize, all: &[Partition]) -> Result<(), ManifestError> {
        let f = |name: &str| format!("partitions[{i}].{name}");
        if self.files.is_some() {
            return Err(invalid(f("files"), "only the ESP lists files"));
        }
        match (&self.sha256, &self.verity) {
            (Some(_), None) => Ok(()),
            (None, Some(v)) => self.validate_verity(i, v, all),
            (Some(_), Some(_)) => Err(invalid(
                f("sha256"),
                "a partition with a dm-verity tree has no whole-partition hash",
            )),
            (None, None) => Err(invalid(f("sha256"), "missing")),
        }
    }

    fn validate_verity(
        &self,
        i: usize,
        v: &Verity,
        all: &[Partition],
    ) -> Result<(), ManifestError> {
        let f = |name: &str| format!("partitions[{i}].verity.{name}");
        if v.algorithm != crate::verity::ALGORITHM {
            return Err(invalid(
                f("algorithm"),
                format!("{:?} (only sha256)", v.algorithm),
            ));
        }
        let block = crate::verity::BLOCK;
        if u64::from(v.data_block_size) != block || u64::from(v.hash_block_size) != block {
            return Err(invalid(f("data_block_size"), "block sizes must be 4096"));
        }
        match unhex(&v.salt) {
            Some(b) if b.len() <= crate::verity::MAX_SALT => {}
            _ => return Err(invalid(f("salt"), "not lowercase hex of at most 256 bytes")),
        }
        if v.data_blocks == 0 || v.data_blocks.checked_mul(block) != Some(self.len()) {
            return Err(invalid(
                f("data_blocks"),
                format!(
                    "{} blocks do not cover the partition's {} bytes",
                    v.data_blocks,
                    self.len()
                ),
            ));
        }
        let hash = all
            .iter()
            .find(|p| p.number == v.hash_partition && p.number != self.number)
            .ok_or_else(|| invalid(f("hash_partition"), "no such partition"))?;
        if hash.type_guid != gpt::TYPE_ROOT_X86_64_VERITY || hash.sha256.is_none() {
            return Err(invalid(
                f("hash_partition"),
                "must be a root-verity partition with its own sha256",
            ));
        }
        if hash.len() < crate::verity::hash_area_size(v.data_blocks) {
            return Err(invalid(f("hash_partition"), "too small for the tree"));
        }
        Ok(())
    }

    /// Byte offset of the first sector.
    pub fn offset(&self) -> u64 {
        self.first_lba * SECTOR
    }
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        (self.last_lba - self.first_lba + 1) * SECTOR
    }
    /// Never true for a validated manifest; here for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        self.last_lba < self.first_lba
    }
    /// `"2 (system)"`: how messages name a partition.
    pub fn label(&self) -> String {
        format!("{} ({})", self.number, self.name)
    }
    /// The partition as the GPT writer takes it.
    pub fn new_partition(&self) -> gpt::NewPartition {
        gpt::NewPartition {
            type_guid: self.type_guid,
            guid: self.guid,
            first_lba: self.first_lba,
            last_lba: self.last_lba,
            attributes: self.attributes,
            name: self.name.clone(),
        }
    }

    /// The 128-byte GPT entry this partition must have.
    pub fn gpt_entry(&self) -> [u8; 128] {
        gpt::encode_entry(
            self.type_guid,
            self.guid,
            self.first_lba,
            self.last_lba,
            self.attributes,
            &self.name,
        )
    }
}

/// The signed statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Image id (a UUID derived from the inputs).
    #[serde(with = "guid")]
    pub image_id: Uuid,
    /// Customer.
    pub customer: Customer,
    /// The employee of a per-user image (a stick set's); absent in a customer-wide image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    /// Image version.
    pub version: String,
    /// Build time, RFC 3339 UTC.
    pub build_time: String,
    /// Build time, seconds since the Unix epoch (SOURCE_DATE_EPOCH when set).
    pub build_epoch: i64,
    /// Anti-rollback counter: a verifier may refuse images below its stored index.
    pub rollback_index: u64,
    /// After this time (RFC 3339 UTC) the image is no longer trusted; absent: no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// SHA-256 of the signing key's SubjectPublicKeyInfo DER (lowercase hex on the wire).
    pub key_id: Sha256Sum,
    /// Base.
    pub base: Base,
    /// Disk facts.
    pub disk: DiskInfo,
    /// Partitions in GPT order.
    pub partitions: Vec<Partition>,
}

/// Why a manifest is not acceptable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Larger than [`MAX_MANIFEST_BYTES`].
    #[error("manifest.json is {0} bytes, more than the limit of {MAX_MANIFEST_BYTES}")]
    TooLarge(usize),
    /// Not valid JSON for this schema.
    #[error("manifest.json: {0}")]
    Json(#[from] serde_json::Error),
    /// Valid JSON, impossible content.
    #[error("manifest.json: {field}: {reason}")]
    Invalid {
        /// JSON path of the field.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A SHA-256 value; lowercase hex in JSON and in messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Sum(pub [u8; 32]);

impl fmt::Display for Sha256Sum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hash::hex(&self.0))
    }
}

impl fmt::Debug for Sha256Sum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Sum({self})")
    }
}

impl PartialEq<[u8; 32]> for Sha256Sum {
    fn eq(&self, other: &[u8; 32]) -> bool {
        &self.0 == other
    }
}

impl Serialize for Sha256Sum {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Sha256Sum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let b = s.as_bytes();
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; 32];
        if b.len() != 64 {
            return Err(serde::de::Error::custom("expected 64 lowercase hex digits"));
        }
        for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
            match (nibble(pair[0]), nibble(pair[1])) {
                (Some(h), Some(l)) => *o = h << 4 | l,
                _ => return Err(serde::de::Error::custom("expected 64 lowercase hex digits")),
            }
        }
        Ok(Sha256Sum(out))
    }
}

/// GUIDs as the manifest writes them: lowercase, hyphenated; any other spelling is refused so
/// that one image has exactly one manifest text.
pub(crate) mod guid {
    use serde::{Deserialize, Deserializer, Serializer};
    use uuid::Uuid;

    pub fn serialize<S: Serializer>(u: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&u.hyphenated())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        use serde::de::Error;
        let s = String::deserialize(d)?;
        let u = Uuid::parse_str(&s)
            .map_err(|e| D::Error::custom(format!("{s:?} is not a GUID: {e}")))?;
        if u.hyphenated().to_string() != s {
            return Err(D::Error::custom(format!(
                "{s:?} is not in lowercase hyphenated form"
            )));
        }
        Ok(u)
    }
}

/// A serde error as [`ManifestError`]: a content error names its field by JSON path (as the
/// checks after parsing do); a syntax error keeps serde_json's line and column.
fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ManifestError {
    let inner = e.inner();
    if inner.classify() != serde_json::error::Category::Data {
        return ManifestError::Json(e.into_inner());
    }
    let path = e.path().to_string();
    let message = inner.to_string();
    // serde_json appends the position to every message; the path says more.
    let suffix = format!(" at line {} column {}", inner.line(), inner.column());
    let reason = message
        .strip_suffix(&suffix)
        .unwrap_or(&message)
        .to_string();
    let field = if path == "." { "-".to_string() } else { path };
    invalid(field, reason)
}

impl Manifest {
    /// The exact bytes that get signed (pretty-printed, fixed field order, trailing newline).
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut v = serde_json::to_vec_pretty(self)?;
        v.push(b'\n');
        Ok(v)
    }

    /// Parse and validate. Never panics on any input.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let m: Manifest = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
        de.end()?;
        m.validate()?;
        Ok(m)
    }

    /// The ESP entry (partition 1).
    pub fn esp(&self) -> Option<&Partition> {
        self.partitions.first().filter(|p| p.type_guid == TYPE_ESP)
    }

    /// The expiry time (Unix seconds), if the image has one (validated manifests only).
    pub fn expires_at(&self) -> Option<i64> {
        self.expires
            .as_deref()
            .and_then(|e| crate::time::parse(e).ok())
    }

    /// Check every invariant a verifier relies on.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.format != FORMAT {
            return Err(invalid(
                "format",
                format!("{:?} is not supported (expected {FORMAT:?})", self.format),
            ));
        }
        if let Some(u) = &self.user {
            if !user_id_ok(&u.id) {
                return Err(invalid("user.id", "must be 1 to 64 of a-z 0-9 . _ -"));
            }
            if u.name.is_empty()
                || u.name.chars().count() > 100
                || u.name.chars().any(char::is_control)
            {
                return Err(invalid(
                    "user.name",
                    "must be 1 to 100 characters without control characters",
                ));
            }
        }
        if let Some(e) = &self.expires {
            let t = crate::time::parse(e).map_err(|why| invalid("expires", why.to_string()))?;
            if t <= self.build_epoch {
                return Err(invalid("expires", "is not after build_epoch"));
            }
        }
        self.disk.validate()?;
        let disk_sectors = self.disk.min_size_bytes / SECTOR;
        let first_usable = 2 + gpt::ENTRY_ARRAY_SECTORS;
        // The backup entry array and header take the last 33 sectors.
        let last_usable = disk_sectors.saturating_sub(2 + gpt::ENTRY_ARRAY_SECTORS);
        if self.partitions.is_empty() || self.partitions.len() > gpt::NUM_ENTRIES as usize {
            return Err(invalid(
                "partitions",
                format!("{} partitions (expected 1..=128)", self.partitions.len()),
            ));
        }
        let mut prev_last = first_usable - 1;
        for (i, p) in self.partitions.iter().enumerate() {
            p.validate_entry(i, prev_last, last_usable)?;
            prev_last = p.last_lba;
            if i == 0 {
                p.validate_esp(i)?;
            } else {
                p.validate_hashed(i, &self.partitions)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        let h = Sha256Sum([0xab; 32]);
        Manifest {
            format: FORMAT.into(),
            image_id: Uuid::parse_str("0b6a7f0e-1a2b-4c3d-8e4f-0123456789ab").unwrap(),
            customer: Customer {
                id: "stadt-a".into(),
                name: "Stadt A".into(),
            },
            user: None,
            version: "1.0".into(),
            build_time: "2026-01-01T00:00:00Z".into(),
            build_epoch: 1_767_225_600,
            rollback_index: 3,
            expires: None,
            key_id: h,
            base: Base {
                name: "demo".into(),
                version: "1".into(),
            },
            disk: DiskInfo {
                guid: Uuid::parse_str("11111111-2222-4333-8444-555555555555").unwrap(),
                sector_size: 512,
                min_size_bytes: 8 << 20,
                partition_entries: 128,
            },
            partitions: vec![
                Partition {
                    number: 1,
                    name: "esp".into(),
                    type_guid: TYPE_ESP,
                    guid: Uuid::parse_str("21111111-2222-4333-8444-555555555555").unwrap(),
                    first_lba: 2048,
                    last_lba: 4095,
                    attributes: 0,
                    sha256: None,
                    verity: None,
                    files: Some(vec![FileEntry {
                        path: "EFI/BOOT/BOOTX64.EFI".into(),
                        size: 3,
                        sha256: h,
                    }]),
                },
                Partition {
                    number: 2,
                    name: "system".into(),
                    type_guid: gpt::TYPE_ROOT_X86_64,
                    guid: Uuid::parse_str("31111111-2222-4333-8444-555555555555").unwrap(),
                    first_lba: 4096,
                    last_lba: 8191,
                    attributes: gpt::ATTR_READ_ONLY,
                    sha256: Some(h),
                    files: None,
                    verity: None,
                },
            ],
        }
    }

    #[test]
    fn round_trip_is_byte_stable() {
        let m = sample();
        let b = m.to_bytes().unwrap();
        let back = Manifest::parse(&b).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.to_bytes().unwrap(), b);
        assert!(b.ends_with(b"}\n"));
    }

    #[test]
    fn invalid_manifests_name_the_field() {
        type Patch = fn(&mut Manifest);
        let cases: Vec<(Patch, &str)> = vec![
            (|m| m.format = "homestick-manifest/9".into(), "format"),
            (|m| m.disk.sector_size = 4096, "disk.sector_size"),
            (|m| m.disk.partition_entries = 4, "disk.partition_entries"),
            (|m| m.partitions[1].number = 5, "partitions[1].number"),
            (
                |m| m.partitions[1].first_lba = 4000,
                "partitions[1].first_lba",
            ),
            (
                |m| m.partitions[1].last_lba = 100_000,
                "partitions[1].last_lba",
            ),
            (|m| m.partitions[1].last_lba = 10, "partitions[1].last_lba"),
            (
                |m| m.partitions[0].first_lba = 34,
                "partitions[0].first_lba",
            ),
            (|m| m.partitions[1].sha256 = None, "partitions[1].sha256"),
            (|m| m.partitions[0].files = None, "partitions[0].files"),
            (
                |m| m.partitions[0].files.as_mut().unwrap()[0].path = "../x".into(),
                "partitions[0].files[0].path",
            ),
            (
                |m| m.partitions[0].files.as_mut().unwrap()[0].size = u64::MAX,
                "partitions[0].files[0].size",
            ),
            (
                |m| m.partitions[1].name = "x".repeat(37),
                "partitions[1].name",
            ),
            (|m| m.partitions.clear(), "partitions"),
        ];
        for (patch, field) in cases {
            let mut m = sample();
            patch(&mut m);
            match Manifest::parse(&m.to_bytes().unwrap()) {
                Err(ManifestError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn wire_values_that_are_no_guid_or_hash_name_the_field() {
        let cases: &[(&str, serde_json::Value, &str)] = &[
            ("/image_id", "nope".into(), "\"nope\" is not a GUID"),
            (
                "/key_id",
                "AB".repeat(32).into(),
                "expected 64 lowercase hex digits",
            ),
            (
                "/disk/guid",
                "11111111-2222-4333-8444-55555555555".into(),
                "is not a GUID",
            ),
            (
                "/partitions/1/guid",
                "31111111-2222-4333-8444-55555555555A".into(),
                "is not in lowercase hyphenated form",
            ),
            (
                "/partitions/1/type_guid",
                "{4f68bce3-e8cd-4db1-96e7-fbcaf984b709}".into(),
                "is not in lowercase hyphenated form",
            ),
            (
                "/partitions/0/files/0/sha256",
                "ab".repeat(31).into(),
                "expected 64 lowercase hex digits",
            ),
            (
                "/partitions/1/sha256",
                format!("{}zz", "ab".repeat(31)).into(),
                "expected 64 lowercase hex digits",
            ),
            (
                "/partitions/1/sha256",
                7.into(),
                "invalid type: integer `7`",
            ),
        ];
        let mut failed = Vec::new();
        for (pointer, value, reason) in cases {
            let mut v: serde_json::Value =
                serde_json::from_slice(&sample().to_bytes().unwrap()).unwrap();
            *v.pointer_mut(pointer).unwrap() = value.clone();
            let field = pointer[1..]
                .split('/')
                .map(|p| match p.parse::<usize>() {
                    Ok(i) => format!("[{i}]"),
                    Err(_) => format!(".{p}"),
                })
                .collect::<String>()
                .trim_start_matches('.')
                .to_string();
            match Manifest::parse(v.to_string().as_bytes()) {
                Err(ManifestError::Invalid {
                    field: f,
                    reason: r,
                }) if f == field && r.contains(reason) && !r.contains(" at line ") => {}
                other => failed.push(format!("{pointer} = {value}: {other:?}")),
            }
        }
        assert!(failed.is_empty(), "{failed:#?}");
    }

    #[test]
    fn syntax_errors_keep_their_position_and_trailing_bytes_are_refused() {
        let mut b = sample().to_bytes().unwrap();
        b.extend_from_slice(b"{}");
        let e = Manifest::parse(&b).unwrap_err();
        assert!(matches!(e, ManifestError::Json(_)), "{e:?}");
        let e = Manifest::parse(b"{\"format\": ").unwrap_err();
        assert!(e.to_string().contains("line 1 column"), "{e}");
        let mut v: serde_json::Value =
            serde_json::from_slice(&sample().to_bytes().unwrap()).unwrap();
        v["disk"].as_object_mut().unwrap().remove("guid");
        let e = Manifest::parse(v.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.to_string(), "manifest.json: disk: missing field `guid`");
    }

    #[test]
    fn hostile_json() {
        assert!(matches!(
            Manifest::parse(&vec![b' '; MAX_MANIFEST_BYTES + 1]),
            Err(ManifestError::TooLarge(_))
        ));
        let deep = "[".repeat(100_000);
        assert!(Manifest::parse(deep.as_bytes()).is_err());
        assert!(Manifest::parse(b"\xff\xfe").is_err());
        let mut v: serde_json::Value =
            serde_json::from_slice(&sample().to_bytes().unwrap()).unwrap();
        v["extra"] = serde_json::json!(1);
        assert!(
            Manifest::parse(v.to_string().as_bytes()).is_err(),
            "unknown fields are rejected"
        );
    }
}
