//! Verification of an image or stick against trusted keys.
//!
//! Order: find the signed statement at its fixed place (the ESP at LBA 2048), check the
//! signature, then compare the GPT with the manifest, hash the partitions (in parallel, each
//! read once) and the ESP files. Nothing from the medium is trusted before the signature holds;
//! afterwards, every range read comes from the signed manifest, never from the GPT.

use std::path::PathBuf;

use crate::disk::{Disk, SECTOR};
use crate::fat::{self, FatReader, ReadLimits};
use crate::gpt;
use crate::hash::{hash_range, hex};
use crate::keys::{verify_any, TrustedKey};
use crate::manifest::{self, Manifest, ESP_FIRST_LBA, MANIFEST_PATH, SIGNATURE_PATH};
use crate::policy::Expectations;

/// One thing found wrong (or worth a warning) about a target: where, and what. Both the text
/// and the JSON output of `verify` are made from it; its text form is `region: what`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Where: `LBA 0`, `GPT header`, `GPT entry 2 (system)`, `partition 3 (profile)`,
    /// `ESP file EFI/BOOT/BOOTX64.EFI`, `signature`, `manifest`, `policy`, `device`, ...
    pub region: String,
    /// What is wrong there, in words, with the values found and signed.
    pub what: String,
    /// What kind of problem it is (not in the JSON output: the region and words say it).
    #[serde(skip)]
    pub kind: FindingKind,
}

/// What kind of problem a finding is: it chooses the words the person at home is shown
/// ([`crate::policy::Refusal`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FindingKind {
    /// Changed, damaged, unsigned, or not what the policy expects.
    #[default]
    Integrity,
    /// Signed and intact, but past (or near) its `expires`.
    Expiry,
    /// Signed and intact, but its key, image or user is revoked.
    Revoked,
}

impl Finding {
    /// A finding about `region`.
    pub fn new(region: impl Into<String>, what: impl Into<String>) -> Finding {
        Finding {
            region: region.into(),
            what: what.into(),
            kind: FindingKind::Integrity,
        }
    }

    /// A finding about the image's expiry (region `expiry`).
    pub fn expiry(what: impl Into<String>) -> Finding {
        Finding {
            kind: FindingKind::Expiry,
            ..Finding::new("expiry", what)
        }
    }

    /// A finding of the revocation list at `region`.
    pub fn revoked(region: impl Into<String>, what: impl Into<String>) -> Finding {
        Finding {
            kind: FindingKind::Revoked,
            ..Finding::new(region, what)
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.region, self.what)
    }
}

/// The findings as one line, `; `-separated.
pub fn join(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(Finding::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a target is not trusted, or cannot be judged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The target cannot be judged: not a homestick image, damaged beyond reading, truncated,
    /// or unreadable. Exit code 2.
    #[error("{0}")]
    Unusable(String),
    /// The target was judged and is not trusted. Each entry names the partition, file or check.
    /// Exit code 1.
    #[error("{}", join(.failures))]
    Untrusted {
        /// What failed, in check order.
        failures: Vec<Finding>,
        /// The manifest, when the signature held.
        manifest: Option<Box<Manifest>>,
    },
}

fn untrusted(finding: Finding) -> VerifyError {
    VerifyError::Untrusted {
        failures: vec![finding],
        manifest: None,
    }
}

/// Progress reporting for the hashing phase.
pub trait Progress: Sync {
    /// Total bytes to be hashed.
    fn set_total(&self, total: u64);
    /// `n` more bytes hashed.
    fn advance(&self, n: u64);
}

/// No progress output.
#[derive(Debug, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn set_total(&self, _: u64) {}
    fn advance(&self, _: u64) {}
}

/// The manifest and signature as found on the medium, not yet checked.
#[derive(Debug, Clone)]
pub struct Statement {
    /// manifest.json bytes.
    pub manifest: Vec<u8>,
    /// manifest.sig bytes (any length).
    pub signature: Vec<u8>,
}

/// Most bytes read from the ESP to find the statement (before anything is trusted): the
/// manifest's size limit, the signature and a generous amount of directory metadata.
const STATEMENT_READ_BUDGET: u64 = 64 << 20;

/// Read manifest.json and manifest.sig from the FAT that starts at LBA 2048.
pub fn read_statement<D: Disk + ?Sized>(disk: &D) -> Result<Statement, VerifyError> {
    let off = ESP_FIRST_LBA * SECTOR;
    if disk.size() <= off {
        return Err(VerifyError::Unusable(format!(
            "not a homestick image: {} bytes is too small to hold one (truncated?)",
            disk.size()
        )));
    }
    let fat =
        FatReader::open(disk, off, disk.size() - off, STATEMENT_READ_BUDGET).map_err(|e| {
            VerifyError::Unusable(format!(
            "not a homestick image: no readable EFI system partition at LBA {ESP_FIRST_LBA}: {e}"
        ))
        })?;
    let manifest = match fat.read(MANIFEST_PATH, manifest::MAX_MANIFEST_BYTES as u64) {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Err(VerifyError::Unusable(format!(
                "not a homestick image: the ESP has no {MANIFEST_PATH}"
            )))
        }
        Err(e) => {
            return Err(VerifyError::Unusable(format!(
                "ESP: cannot read {MANIFEST_PATH}: {e}"
            )))
        }
    };
    let signature = match fat.read(SIGNATURE_PATH, 4096) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(untrusted(Finding::new(
                "ESP",
                format!("{SIGNATURE_PATH} is missing: the image is not signed"),
            )))
        }
        Err(e) => {
            return Err(untrusted(Finding::new(
                "ESP",
                format!("{SIGNATURE_PATH}: {e}"),
            )))
        }
    };
    Ok(Statement {
        manifest,
        signature,
    })
}

/// A successful verification.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The signed manifest.
    pub manifest: Manifest,
    /// Id of the key that signed it.
    pub key_id: String,
    /// The trusted key file it matched.
    pub key_source: PathBuf,
    /// The keyring's comment on that key.
    pub key_comment: Option<String>,
    /// Findings that do not break trust (files on the ESP that the manifest does not list).
    pub warnings: Vec<Finding>,
}

/// Check the signature of `st` and parse the manifest it covers.
pub fn check_statement<'k>(
    st: &Statement,
    keys: &'k [TrustedKey],
) -> Result<(Manifest, &'k TrustedKey), VerifyError> {
    let sig: [u8; 64] = st.signature.as_slice().try_into().map_err(|_| {
        untrusted(Finding::new(
            SIGNATURE_PATH,
            format!("{} bytes, an Ed25519 signature has 64", st.signature.len()),
        ))
    })?;
    let key = verify_any(keys, &st.manifest, &sig).ok_or_else(|| {
        let ids: Vec<&str> = keys.iter().map(|k| &k.id[..16]).collect();
        untrusted(Finding::new("signature", format!("{SIGNATURE_PATH} does not verify {MANIFEST_PATH} with any trusted key (key ids {})", ids.join(", "))))
    })?;
    let m = Manifest::parse(&st.manifest).map_err(|e| {
        VerifyError::Unusable(format!(
            "signed manifest is not usable by this homestick: {e}"
        ))
    })?;
    if m.key_id.to_string() != key.id {
        return Err(untrusted(Finding::new(
            "manifest",
            format!(
                "key_id {} does not match the key that signed it ({})",
                m.key_id, key.id
            ),
        )));
    }
    Ok((m, key))
}

/// What a 512-byte LBA 0 that is not a protective MBR holds, in words, for the finding.
fn describe_lba0(b: &[u8; 512], first_bad: usize) -> String {
    if b[510..512] != [0x55, 0xAA] {
        return "no 55 AA boot signature".into();
    }
    let types: Vec<String> = (0..4)
        .map(|i| b[446 + 16 * i + 4])
        .filter(|&t| t != 0)
        .map(|t| format!("{t:#04x}"))
        .collect();
    if types.len() != 1 || types[0] != "0xee" {
        return format!(
            "an MBR partition table with partition types [{}]",
            types.join(", ")
        );
    }
    format!(
        "byte {first_bad} is {:#04x}, the protective MBR has {:#04x} there",
        b[first_bad],
        gpt::protective_mbr(0)[first_bad]
    )
}

/// Check what firmware and kernels read before the GPT entries: the logical sector size of a
/// block device (with 4096-byte sectors they would look for a GPT at byte 4096), LBA 0 (it must
/// be exactly the protective MBR of docs/format.md, whose only free field is the size that
/// covers the disk) and LBA 1 (the GPT header and zeros). Returns the failures.
pub fn check_boot_sectors<D: Disk + ?Sized>(disk: &D, m: &Manifest) -> Vec<Finding> {
    let mut fails = Vec::new();
    if let Some(bs) = disk.logical_block_size() {
        if bs != SECTOR {
            fails.push(Finding::new("device", format!("it reports {bs}-byte logical sectors; firmware and Linux would read a partition table at byte {bs}, \
                 which is not signed (homestick sticks have 512-byte sectors)")));
        }
    }
    let mut b = [0u8; 1024];
    if let Err(e) = disk.read_exact_at(&mut b, 0) {
        fails.push(Finding::new("LBA 0", format!("cannot read: {e}")));
        return fails;
    }
    let mut lba0 = [0u8; 512];
    lba0.copy_from_slice(&b[..512]);
    match gpt::check_protective_mbr(&lba0) {
        Err(first_bad) => fails.push(Finding::new("LBA 0", format!("not the protective MBR homestick writes ({}); firmware and Linux would take partitions from it that nobody signed", describe_lba0(&lba0, first_bad)))),
        Ok(size) => {
        let disk_sectors = disk.size() / SECTOR;
        let last_signed = m.partitions.iter().map(|p| p.last_lba).max().unwrap_or(0);
        if size != u32::MAX && (u64::from(size) < last_signed || u64::from(size) >= disk_sectors) {
            fails.push(Finding::new("LBA 0", format!("the protective partition covers sectors 1..={size}, which must reach past the signed partitions (..={last_signed}) and stay on the disk ({disk_sectors} sectors)")));
        }
        }
    }
    let lba1 = &b[512..];
    if lba1[..8] == *b"EFI PART" {
        let header_size = crate::bytes::le32(lba1, 12).unwrap_or(0);
        let revision = crate::bytes::le32(lba1, 8).unwrap_or(0);
        if header_size != gpt::HEADER_SIZE || revision != 0x0001_0000 || lba1[20..24] != [0; 4] {
            fails.push(Finding::new("GPT header", format!("revision {revision:#010x}, size {header_size}, reserved {:02x?}; homestick writes 0x00010000, {}, zeros", &lba1[20..24], gpt::HEADER_SIZE)));
        } else if let Some(i) = lba1[gpt::HEADER_SIZE as usize..]
            .iter()
            .position(|&x| x != 0)
        {
            fails.push(Finding::new(
                "LBA 1",
                format!(
                    "byte {} after the GPT header is not zero",
                    gpt::HEADER_SIZE as usize + i
                ),
            ));
        }
    }
    fails
}

/// How GPT entry `e` differs from the signed partition `p`, field by field.
fn entry_differences(e: &gpt::Entry, p: &manifest::Partition) -> String {
    let mut what = Vec::new();
    if e.type_guid != p.type_guid {
        what.push(format!("type {} (signed: {})", e.type_guid, p.type_guid));
    }
    if e.guid != p.guid {
        what.push(format!("unique GUID {} (signed: {})", e.guid, p.guid));
    }
    if e.first_lba != p.first_lba || e.last_lba != p.last_lba {
        what.push(format!(
            "LBA {}..={} (signed: {}..={})",
            e.first_lba, e.last_lba, p.first_lba, p.last_lba
        ));
    }
    if e.attributes != p.attributes {
        what.push(format!(
            "attributes {:#x} (signed: {:#x})",
            e.attributes, p.attributes
        ));
    }
    if what.is_empty() {
        // The whole 72-byte field, NULs and all, escaped: a change after the name's end must be
        // visible too.
        what.push(format!(
            "name field {:?} (signed: {:?})",
            gpt::name_field(&e.raw),
            p.name
        ));
    }
    what.join(", ")
}

/// Compare the primary GPT with the manifest. Returns the failures.
pub fn check_gpt<D: Disk + ?Sized>(disk: &D, m: &Manifest) -> Vec<Finding> {
    let g = match gpt::read_primary(disk) {
        Ok(g) => g,
        Err(e) => return vec![Finding::new("GPT", e.to_string())],
    };
    let mut fails = Vec::new();
    let h = &g.header;
    let last_part = m.partitions.last().map_or(0, |p| p.last_lba);
    let disk_sectors = disk.size() / SECTOR;
    if !h.header_crc_ok {
        fails.push(Finding::new("GPT header", "CRC32 mismatch"));
    }
    if h.disk_guid != m.disk.guid {
        fails.push(Finding::new(
            "GPT header",
            format!(
                "disk GUID is {}, the signed manifest says {}",
                h.disk_guid, m.disk.guid
            ),
        ));
    }
    if h.current_lba != 1 || h.entries_lba != 2 || h.num_entries != m.disk.partition_entries {
        fails.push(Finding::new(
            "GPT header",
            format!(
                "entry array at LBA {} with {} entries, expected LBA 2 with {}",
                h.entries_lba, h.num_entries, m.disk.partition_entries
            ),
        ));
    }
    if h.first_usable_lba > m.partitions[0].first_lba
        || h.last_usable_lba < last_part
        || h.last_usable_lba >= disk_sectors
    {
        fails.push(Finding::new("GPT header", format!("usable range {}..={} does not fit the signed partitions (..={last_part}) and the disk", h.first_usable_lba, h.last_usable_lba)));
    }
    let mut entry_failed = false;
    for p in &m.partitions {
        let Some(e) = g.entries.get(p.number as usize - 1) else {
            fails.push(Finding::new(format!("GPT entry {}", p.label()), "missing"));
            entry_failed = true;
            continue;
        };
        if e.raw[..] != p.gpt_entry()[..] {
            entry_failed = true;
            fails.push(Finding::new(
                format!("GPT entry {}", p.label()),
                entry_differences(e, p),
            ));
        }
    }
    for e in g.entries.iter().skip(m.partitions.len()) {
        if e.raw.iter().any(|&b| b != 0) {
            entry_failed = true;
            fails.push(Finding::new(
                format!("GPT entry {}", e.number),
                format!(
                    "not in the signed manifest (type {}, LBA {}..={})",
                    e.type_guid, e.first_lba, e.last_lba
                ),
            ));
        }
    }
    if !entry_failed && !g.entries_crc_ok {
        fails.push(Finding::new(
            "GPT header",
            "partition entry array CRC32 mismatch",
        ));
    }
    fails
}

/// How much of the stick a check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth<'a> {
    /// Every byte: whole-partition hashes, the ESP's files, and every block of each dm-verity
    /// tree against its data.
    Full,
    /// What the boot verifier reads before its verdict: a dm-verity partition and its hash
    /// partition only by the superblock and the top of the tree (the kernel then checks every
    /// data and hash block as it is read); the partitions in `deferred` not at all (the caller
    /// hashes them itself, from memory).
    Boot {
        /// Partition numbers the caller checks.
        deferred: &'a [u32],
    },
    /// Signature, LBA 0, the GPT and the dm-verity superblocks and tree tops only.
    Quick,
}

/// Hash every whole-partition range and every ESP file named in `m`, and check every dm-verity
/// tree, in parallel. Returns (failures, warnings).
pub fn check_contents<D: Disk + ?Sized>(
    disk: &D,
    m: &Manifest,
    progress: &dyn Progress,
) -> (Vec<Finding>, Vec<Finding>) {
    check_contents_known(disk, m, &[], Depth::Full, progress)
}

/// The dm-verity tree of `p` (data) in `m`: fully (every block) or only its top.
fn check_verity<D: Disk + ?Sized>(
    disk: &D,
    m: &Manifest,
    p: &manifest::Partition,
    v: &manifest::Verity,
    full: bool,
    advance: &(dyn Fn(u64) + Sync),
) -> Option<Finding> {
    let hash = m.partitions.iter().find(|h| h.number == v.hash_partition)?;
    let params = v.params();
    let on = crate::verity::On {
        data: disk,
        data_offset: p.offset(),
        hash: disk,
        hash_offset: hash.offset(),
    };
    let r = if full {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        crate::verity::check_tree(on, &params, &v.root_hash.0, threads, advance)
    } else {
        crate::verity::check_top(on, &params, &v.root_hash.0)
    };
    r.err().map(|e| {
        Finding::new(
            format!(
                "partition {}, dm-verity tree in partition {}",
                p.label(),
                hash.number
            ),
            e.to_string(),
        )
    })
}

/// [`check_contents`] at `depth`, except that the partitions in `known` (number, SHA-256) are
/// compared by the hash the caller computed over the bytes it wrote, without reading them
/// again (for a dm-verity partition: its tree was built from the bytes written; only its top
/// is read).
fn check_contents_known<D: Disk + ?Sized>(
    disk: &D,
    m: &Manifest,
    known: &[(u32, [u8; 32])],
    depth: Depth<'_>,
    progress: &dyn Progress,
) -> (Vec<Finding>, Vec<Finding>) {
    let mut fails = known_mismatches(m, known);
    let work = Work::of(m, known, depth);
    progress.set_total(work.total());
    let advance = |n: u64| progress.advance(n);
    std::thread::scope(|s| {
        let part_jobs: Vec<_> = work
            .hashed
            .iter()
            .map(|&(p, want)| {
                let advance = &advance;
                s.spawn(move || hash_partition(disk, p, want, advance))
            })
            .chain(work.verity.iter().map(|&(p, v, full)| {
                let advance = &advance;
                s.spawn(move || check_verity(disk, m, p, v, full, advance))
            }))
            .collect();
        let esp_job = s.spawn(|| match work.esp_files {
            Some(_) => check_esp_files(disk, m, &advance),
            None => (vec![], vec![]),
        });
        let (esp_fails, warnings) = esp_job
            .join()
            .unwrap_or_else(|_| (vec![Finding::new("ESP", "checker crashed")], vec![]));
        for j in part_jobs {
            if let Some(f) = j
                .join()
                .unwrap_or_else(|_| Some(Finding::new("partition", "checker crashed")))
            {
                fails.push(f);
            }
        }
        fails.extend(esp_fails);
        (fails, warnings)
    })
}

/// The partitions whose hash the caller computed while writing (`known`) that differ from the
/// manifest or that it does not list.
fn known_mismatches(m: &Manifest, known: &[(u32, [u8; 32])]) -> Vec<Finding> {
    let mut fails = Vec::new();
    for (number, sha) in known {
        match m.partitions.iter().find(|p| p.number == *number) {
            Some(p) if p.verity.is_some() || p.sha256.is_some_and(|h| h == *sha) => {}
            Some(p) => fails.push(Finding::new(
                format!("partition {}", p.label()),
                format!(
                    "SHA-256 of the bytes written is {}, the signed manifest says {}",
                    hex(sha),
                    p.sha256.map_or("nothing".to_string(), |h| h.to_string())
                ),
            )),
            None => fails.push(Finding::new(
                format!("partition {number}"),
                "not in the manifest",
            )),
        }
    }
    fails
}

/// What a check at some depth reads: partitions hashed whole, dm-verity trees (checked in
/// full or at their top), and the ESP's files.
struct Work<'m> {
    hashed: Vec<(&'m manifest::Partition, manifest::Sha256Sum)>,
    verity: Vec<(&'m manifest::Partition, &'m manifest::Verity, bool)>,
    esp_files: Option<&'m Vec<manifest::FileEntry>>,
}

impl<'m> Work<'m> {
    fn of(m: &'m Manifest, known: &[(u32, [u8; 32])], depth: Depth<'_>) -> Work<'m> {
        let is_known = |n: u32| known.iter().any(|(k, _)| *k == n);
        // At boot a hash partition is not hashed whole: the kernel checks each of its blocks
        // against its parent, up to the top that check_top compares with the signed root hash.
        let trees: Vec<u32> = m
            .partitions
            .iter()
            .filter_map(|p| Some(p.verity.as_ref()?.hash_partition))
            .collect();
        let deferred: &[u32] = match depth {
            Depth::Boot { deferred } => deferred,
            _ => &[],
        };
        let boot = matches!(depth, Depth::Boot { .. });
        let hashed = m
            .partitions
            .iter()
            .filter(|p| {
                depth != Depth::Quick && !is_known(p.number) && !deferred.contains(&p.number)
            })
            .filter(|p| !(boot && trees.contains(&p.number)))
            .filter_map(|p| Some((p, p.sha256?)))
            .collect();
        let verity = m
            .partitions
            .iter()
            .filter_map(|p| Some((p, p.verity.as_ref()?)))
            .map(|(p, v)| (p, v, depth == Depth::Full && !is_known(p.number)))
            .collect();
        let esp_files = m
            .esp()
            .and_then(|p| p.files.as_ref())
            .filter(|_| depth != Depth::Quick);
        Work {
            hashed,
            verity,
            esp_files,
        }
    }

    /// The bytes it reads.
    fn total(&self) -> u64 {
        self.hashed.iter().map(|(p, _)| p.len()).sum::<u64>()
            + self
                .verity
                .iter()
                .filter(|v| v.2)
                .map(|(p, _, _)| p.len())
                .sum::<u64>()
            + self
                .esp_files
                .map_or(0, |f| f.iter().map(|f| f.size).sum::<u64>())
    }
}

/// Hash partition `p` whole and compare with `want`.
fn hash_partition<D: Disk + ?Sized>(
    disk: &D,
    p: &manifest::Partition,
    want: manifest::Sha256Sum,
    advance: &(dyn Fn(u64) + Sync),
) -> Option<Finding> {
    match hash_range(disk, p.offset(), p.len(), advance) {
        Ok(h) if want == h => None,
        Ok(h) => Some(Finding::new(
            format!("partition {}", p.label()),
            format!(
                "SHA-256 of sectors {}..={} is {}, the signed manifest says {}",
                p.first_lba,
                p.last_lba,
                hex(&h),
                want
            ),
        )),
        Err(e) => Some(Finding::new(
            format!("partition {}", p.label()),
            format!("cannot read: {e}"),
        )),
    }
}

/// Files on the ESP that the manifest does not list: a failure where the boot chain reads them,
/// a warning elsewhere. Returns the warnings.
fn check_unlisted<D: Disk + ?Sized>(
    fat: &FatReader<'_, D>,
    esp: &manifest::Partition,
    listed: &[manifest::FileEntry],
    fails: &mut Vec<Finding>,
) -> Vec<Finding> {
    let mut warnings = Vec::new();
    let known: std::collections::BTreeSet<String> = listed
        .iter()
        .map(|l| l.path.as_str())
        .chain([MANIFEST_PATH, SIGNATURE_PATH])
        .map(|p| p.to_lowercase())
        .collect();
    let all = match fat.list(ReadLimits::default()) {
        Ok(all) => all,
        Err(e) => {
            fails.push(Finding::new(
                format!("partition {}", esp.label()),
                format!("cannot list files: {e}"),
            ));
            return warnings;
        }
    };
    for f in all
        .iter()
        .filter(|f| !known.contains(&f.path.to_lowercase()))
    {
        match fat::read_by_boot_chain(&f.path).or(fat::read_by_boot_chain(&f.short_path)) {
            Some(why) => fails.push(Finding::new(
                format!("ESP file {}", f.path),
                format!("not listed in the signed manifest, and {why}"),
            )),
            None => warnings.push(Finding::new(
                format!("ESP file {}", f.path),
                format!("not listed in the signed manifest ({} bytes)", f.size),
            )),
        }
    }
    warnings
}

fn check_esp_files<D: Disk + ?Sized>(
    disk: &D,
    m: &Manifest,
    advance: &(dyn Fn(u64) + Sync),
) -> (Vec<Finding>, Vec<Finding>) {
    let Some(esp) = m.esp() else {
        return (vec![Finding::new("manifest", "no ESP entry")], vec![]);
    };
    // An ESP entry without files lists none.
    let listed = esp.files.as_deref().unwrap_or_default();
    let fat = match FatReader::open(disk, esp.offset(), esp.len(), fat::budget_for(esp.len())) {
        Ok(f) => f,
        Err(e) => {
            return (
                vec![Finding::new(
                    format!("partition {}", esp.label()),
                    format!("FAT unreadable: {e}"),
                )],
                vec![],
            )
        }
    };
    if let Err(e) = fat.check_fat_tables() {
        return (
            vec![Finding::new(
                format!("partition {}", esp.label()),
                e.to_string(),
            )],
            vec![],
        );
    }
    let mut fails = Vec::new();
    for f in listed {
        match fat.hash(&f.path, f.size) {
            Ok(Some((h, n))) if n == f.size && f.sha256 == h => {}
            Ok(Some((_, n))) if n != f.size => fails.push(Finding::new(
                format!("ESP file {}", f.path),
                format!("{n} bytes, the signed manifest says {}", f.size),
            )),
            Ok(Some((h, _))) => fails.push(Finding::new(
                format!("ESP file {}", f.path),
                format!(
                    "SHA-256 is {}, the signed manifest says {}",
                    hex(&h),
                    f.sha256
                ),
            )),
            Ok(None) => fails.push(Finding::new(format!("ESP file {}", f.path), "missing")),
            Err(e) => fails.push(Finding::new(format!("ESP file {}", f.path), e.to_string())),
        }
        advance(f.size);
    }
    let warnings = check_unlisted(&fat, esp, listed, &mut fails);
    (fails, warnings)
}

/// Verify `disk` against `keys`: the full check.
pub fn verify<D: Disk + ?Sized>(
    disk: &D,
    keys: &[TrustedKey],
    progress: &dyn Progress,
) -> Result<Verified, VerifyError> {
    verify_with(disk, keys, &Expectations::none(), progress)
}

/// Verify `disk` against `keys`, and require what `expect` says of the signed manifest (the
/// boot policy's checks: customer, minimum rollback index, disk GUID).
pub fn verify_with<D: Disk + ?Sized>(
    disk: &D,
    keys: &[TrustedKey],
    expect: &Expectations,
    progress: &dyn Progress,
) -> Result<Verified, VerifyError> {
    verify_inner(disk, keys, expect, &[], Depth::Full, progress)
}

/// [`verify_with`] at `depth`: [`Depth::Boot`] for the boot verifier's verdict,
/// [`Depth::Quick`] for `homestick verify --quick`.
pub fn verify_depth<D: Disk + ?Sized>(
    disk: &D,
    keys: &[TrustedKey],
    expect: &Expectations,
    depth: Depth<'_>,
    progress: &dyn Progress,
) -> Result<Verified, VerifyError> {
    verify_inner(disk, keys, expect, &[], depth, progress)
}

/// [`verify_with`], except that the partitions in `known` are not read whole: a partition with
/// a SHA-256 is compared by the one given (computed before from the same bytes), a dm-verity
/// partition is checked by its superblock and tree top only. For a stick set, whose users share
/// these partitions' bytes ([`crate::set::SetVerifier`]).
pub fn verify_known<D: Disk + ?Sized>(
    disk: &D,
    keys: &[TrustedKey],
    expect: &Expectations,
    known: &[(u32, [u8; 32])],
    progress: &dyn Progress,
) -> Result<Verified, VerifyError> {
    verify_inner(disk, keys, expect, known, Depth::Full, progress)
}

/// The builder's self-check: [`verify`], except that the partitions in `written` (number,
/// SHA-256 computed over the very buffers the builder wrote) are not read back; everything
/// else (LBA 0 and 1, signature, GPT, the other partitions, the ESP) is read from `disk`.
pub fn verify_built<D: Disk + ?Sized>(
    disk: &D,
    keys: &[TrustedKey],
    written: &[(u32, [u8; 32])],
    progress: &dyn Progress,
) -> Result<Verified, VerifyError> {
    verify_inner(
        disk,
        keys,
        &Expectations::none(),
        written,
        Depth::Full,
        progress,
    )
}

fn verify_inner<D: Disk + ?Sized>(
    disk: &D,
    keys: &[TrustedKey],
    expect: &Expectations,
    known: &[(u32, [u8; 32])],
    depth: Depth<'_>,
    progress: &dyn Progress,
) -> Result<Verified, VerifyError> {
    let st = read_statement(disk)?;
    let (m, key) = check_statement(&st, keys)?;
    if disk.size() < m.disk.min_size_bytes {
        return Err(VerifyError::Unusable(format!(
            "the target is {} bytes but the signed image needs {}: truncated?",
            disk.size(),
            m.disk.min_size_bytes
        )));
    }
    let mut failures: Vec<Finding> = key
        .outside_window(m.build_epoch)
        .map(|why| Finding::new("signature", why))
        .into_iter()
        .collect();
    if !key.roles.images {
        failures.push(Finding::new(
            "signature",
            format!(
                "key {} may not sign images (its roles in {} do not include \"images\")",
                key.name(),
                key.source.display()
            ),
        ));
    }
    failures.extend(expect.check(&m));
    failures.extend(check_boot_sectors(disk, &m));
    failures.extend(check_gpt(disk, &m));
    let (content_fails, mut warnings) = check_contents_known(disk, &m, known, depth, progress);
    failures.extend(content_fails);
    warnings.extend(expect.warnings(&m));
    if !failures.is_empty() {
        return Err(VerifyError::Untrusted {
            failures,
            manifest: Some(Box::new(m)),
        });
    }
    Ok(Verified {
        manifest: m,
        key_id: key.id.clone(),
        key_source: key.source.clone(),
        key_comment: key.comment.clone(),
        warnings,
    })
}
