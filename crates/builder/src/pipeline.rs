//! The build, as a list of named steps (in the style of coreos-installer's `write_disk`):
//! check every input; copy the system partition while hashing it; write the profile partition;
//! hash (or take from the cache) the system's dm-verity tree; derive the identities; compose the ESP (UKI, README) and sign the manifest; write the ESP and
//! the GPT; verify the result; rename it to the output name.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ed25519_dalek::VerifyingKey;
use homestick_image::disk::{FileDisk, SECTOR};
use homestick_image::fat::{self, FatFile, FatSpec};
use homestick_image::gpt::{self, NewPartition};
use homestick_image::hash::hex;
use homestick_image::keys::{self, TrustedKey};
use homestick_image::manifest::{self, Base, Customer, DiskInfo, FileEntry, Manifest, Partition};
use homestick_image::revocation::RevocationList;
use homestick_image::{verify, verity};
use homestick_profile::Profile;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use uuid::Uuid;

use crate::base::{self, BaseInput, LABEL_RULE};
use crate::boot::{self, BootFiles, UkiFor};
use crate::error::{input, io_err, BuildError};
use crate::layout::{self, derived_uuid, Layout, MIN_ESP, MIN_PROFILE};
use crate::plan::Plan;
use crate::{hashtree, readme, BuildOptions, BuildProgress, BuildReport};
use homestick_signing::authenticode;
use homestick_signing::signer::{SignError, Signer};

/// Everything the build needs, read and checked before the first byte is written.
pub(crate) struct Inputs {
    pub(crate) profile: Profile,
    pub(crate) base: BaseInput,
    pub(crate) key: Signer,
    /// Its public half and key id, derived once.
    pub(crate) public: VerifyingKey,
    pub(crate) key_id: manifest::Sha256Sum,
    sb_key: Option<authenticode::SbKey>,
    boot_files: Option<BootFiles>,
    /// shim and what goes with it, on the shim boot path.
    shim: Option<boot::ShimPlan>,
    pub(crate) version: String,
    pub(crate) out_dir: PathBuf,
    pub(crate) profile_fat: Vec<u8>,
    pub(crate) profile_sha: [u8; 32],
    pub(crate) esp_bytes: u64,
    pub(crate) layout: Layout,
    pub(crate) size: u64,
    /// The signed revocation list (`--revocations`), embedded into the boot policy.
    pub(crate) revocations: Option<RevocationList>,
    /// Warnings about the inputs: the profile's, and what the revocation list refuses.
    pub(crate) warnings: Vec<String>,
}

/// Build the image described by `opts`: the plan's `finish(None)`.
pub fn build(opts: &BuildOptions, progress: &dyn BuildProgress) -> Result<BuildReport, BuildError> {
    let started = Instant::now();
    progress.stage("checking inputs");
    let plan = Plan::check(opts, Profile::load(&opts.profile, opts.epoch)?, 0, &[])?;
    let inp = &plan.inp;
    progress.stage("writing the system partition");
    let mut tmp = create_output(opts, inp)?;
    let mut shared = plan.shared(&tmp, &[], "signing", progress)?;
    let image = plan.finish(&mut shared, None)?;
    cancelled(progress)?;
    progress.stage("writing the ESP and the GPT");
    write_at(tmp.as_file(), inp.layout.esp.0, &image.esp, "the ESP")?;
    write_gpt(inp, &shared.ids, &image.manifest, tmp.as_file_mut())?;
    cancelled(progress)?;
    progress.stage("verifying the image");
    let disk = FileDisk::open(tmp.path()).map_err(io_err("reopening the output"))?;
    self_check(
        opts,
        inp,
        &[(SYSTEM_PARTITION, shared.sys_sha)],
        &disk,
        progress,
    )?;
    cancelled(progress)?;
    persist(tmp, &opts.output, &inp.out_dir)?;
    Ok(BuildReport {
        output: opts.output.clone(),
        size: inp.size,
        manifest: image.manifest,
        seconds: started.elapsed().as_secs_f64(),
        warnings: plan.warnings().to_vec(),
    })
}

/// Write what every image of these inputs shares: the system partition, the profile
/// partition (`inp.profile_fat`) and the system's dm-verity tree. Returns the system
/// partition's SHA-256 and its tree.
pub(crate) fn write_shared(
    opts: &BuildOptions,
    inp: &Inputs,
    tmp: &NamedTempFile,
    progress: &dyn BuildProgress,
) -> Result<([u8; 32], SystemTree), BuildError> {
    let sys_sha = crate::system::write_system(inp, tmp, progress)?;
    write_at(
        tmp.as_file(),
        inp.layout.profile.0,
        &inp.profile_fat,
        "the profile partition",
    )?;
    cancelled(progress)?;
    progress.stage("hashing the system's dm-verity tree");
    progress.set_total(inp.layout.system_bytes());
    let advance = |n: u64| progress.advance(n);
    let (params, tree) = hashtree::system_tree(
        tmp.path(),
        &inp.layout,
        &sys_sha,
        opts.cache.as_deref(),
        &advance,
    )?;
    write_at(
        tmp.as_file(),
        inp.layout.verity.0,
        &tree.area,
        "the dm-verity hash partition",
    )?;
    let mut vh = Sha256::new();
    vh.update(&tree.area);
    let zeros = vec![0u8; 1 << 20];
    let mut pad = inp.layout.verity_bytes() - tree.area.len() as u64;
    while pad > 0 {
        let n = pad.min(zeros.len() as u64) as usize;
        vh.update(&zeros[..n]);
        pad -= n as u64;
    }
    let sys_tree = SystemTree {
        params,
        root: tree.root,
        hash_partition_sha: vh.finalize().into(),
    };
    cancelled(progress)?;
    Ok((sys_sha, sys_tree))
}

pub(crate) fn cancelled(progress: &dyn BuildProgress) -> Result<(), BuildError> {
    if progress.cancelled() {
        return Err(BuildError::Interrupted);
    }
    Ok(())
}

/// Read and check every input: profile, base, keys, boot verifier, version, output, sizes.
/// The profile partition is at least `profile_min` bytes (a set's: room for every user's).
/// `profile`: the one at `opts.profile`, loaded by the caller (a set build reads it first, for
/// the roster). `users`: the ids of a set's users (none for one image), for the warnings.
pub(crate) fn check_inputs(
    opts: &BuildOptions,
    profile: Profile,
    profile_min: u64,
    users: &[&str],
) -> Result<Inputs, BuildError> {
    let base = base::load_base(&opts.base)?;
    base::check_packages(&opts.base, &profile)?;
    if opts.secure_boot.is_some() && base.boot.is_none() {
        return Err(input(
            "--secure-boot-key",
            format!(
                "{} has no kernel, so there is no UKI to sign",
                opts.base.display()
            ),
        ));
    }
    let key = open_key(opts)?;
    check_expiry(opts)?;
    let sb_key = secure_boot_key(opts)?;
    let shim = boot::shim_plan(opts, &base, sb_key.as_ref())?;
    let boot_files = match base.boot {
        Some(_) => Some(BootFiles::load(
            opts.boot_verifier.as_deref(),
            opts.boot_keyring.as_deref(),
        )?),
        None => None,
    };
    let public = key.public();
    let key_id = manifest::Sha256Sum(keys::key_digest(&public));
    let revocations = load_revocations(opts, boot_files.as_ref(), public)?;
    let warnings = Warnings {
        opts,
        profile: &profile,
        boot_files: boot_files.as_ref(),
        public: &public,
        key_id: &key_id,
        revocations: revocations.as_ref(),
        users,
    }
    .collect();
    let version = opts
        .version
        .clone()
        .unwrap_or_else(|| base.meta.version.clone());
    if !base::label_ok(&version) {
        return Err(input("--version", format!("{version:?} {LABEL_RULE}")));
    }
    let out_dir = check_output(&opts.output)?;
    let profile_size = profile_budget(&profile.files).max(profile_min);
    let profile_fat = profile_fat(&profile, &profile.files, profile_size, opts.epoch)?;
    let profile_sha: [u8; 32] = Sha256::digest(&profile_fat).into();
    let esp_bytes = esp_budget(&base, shim.as_ref());
    let layout = Layout::new(esp_bytes, base.system_len, profile_fat.len() as u64);
    let size = image_size(opts.size, layout.min_sectors * SECTOR)?;
    Ok(Inputs {
        profile,
        base,
        key,
        public,
        key_id,
        sb_key,
        boot_files,
        shim,
        version,
        out_dir,
        profile_fat,
        profile_sha,
        esp_bytes,
        layout,
        size,
        revocations,
        warnings,
    })
}

/// The ESP's size: the base's files and, on the shim path, shim, MokManager and the
/// certificate, with room for the UKI and README.txt (at least [`MIN_ESP`]).
fn esp_budget(base: &BaseInput, shim: Option<&boot::ShimPlan>) -> u64 {
    let shim_bytes = shim.into_iter().flat_map(|s| {
        let enrol = s
            .enrol
            .iter()
            .map(|(mm, cert)| (mm.len() + cert.len()) as u64);
        std::iter::once(s.shim.len() as u64).chain(enrol)
    });
    let files = base.esp.iter().map(|f| f.data.len() as u64);
    layout::fat_budget(files.chain(shim_bytes), MIN_ESP, 8 << 20)
}

/// The image signing key (a file or a PKCS#11 token).
fn open_key(opts: &BuildOptions) -> Result<Signer, BuildError> {
    Signer::open(
        &opts.key,
        opts.passphrase.as_ref(),
        opts.pkcs11_module.as_deref(),
    )
    .map_err(|e| match e {
        SignError::Key(source) => BuildError::Key { option: "", source },
        e => BuildError::Sign(e),
    })
}

/// An expiry must lie after the build time.
fn check_expiry(opts: &BuildOptions) -> Result<(), BuildError> {
    match opts.expires {
        Some(e) if e <= opts.epoch => Err(input(
            "--expires",
            format!(
                "{} is not after the build time {}",
                fat::rfc3339(e),
                fat::rfc3339(opts.epoch)
            ),
        )),
        _ => Ok(()),
    }
}

/// The Secure Boot db key and certificate, when the UKI is to be signed.
fn secure_boot_key(opts: &BuildOptions) -> Result<Option<authenticode::SbKey>, BuildError> {
    let Some(sb) = &opts.secure_boot else {
        return Ok(None);
    };
    authenticode::load_any(
        &sb.key,
        &sb.cert,
        sb.passphrase.as_ref().map(|p| p.as_bytes()),
        opts.pkcs11_module.as_deref(),
    )
    .map(Some)
    .map_err(BuildError::SecureBootKey)
}

/// The signed revocation list (`--revocations`), checked against a key the sticks will trust:
/// the boot keyring's, else the signing key.
fn load_revocations(
    opts: &BuildOptions,
    boot_files: Option<&BootFiles>,
    public: VerifyingKey,
) -> Result<Option<RevocationList>, BuildError> {
    let Some(path) = &opts.revocations else {
        return Ok(None);
    };
    let trust = boot_files
        .and_then(|b| b.ring.clone())
        .unwrap_or_else(|| vec![TrustedKey::new(public, PathBuf::from(&opts.key))]);
    let (list, _) = RevocationList::load_signed(
        path,
        &trust,
        homestick_image::time::now(),
        opts.min_revocation_version,
    )
    .map_err(|e| input("--revocations", e.to_string()))?;
    Ok(Some(list))
}

/// Every warning about a build's inputs, from one place for one image and a set alike.
struct Warnings<'a> {
    opts: &'a BuildOptions,
    profile: &'a Profile,
    boot_files: Option<&'a BootFiles>,
    public: &'a VerifyingKey,
    key_id: &'a manifest::Sha256Sum,
    revocations: Option<&'a RevocationList>,
    users: &'a [&'a str],
}

impl Warnings<'_> {
    fn collect(&self) -> Vec<String> {
        let customer_toml = self.opts.profile.join("customer.toml");
        let mut warnings: Vec<String> = self
            .profile
            .warnings
            .iter()
            .map(|w| format!("{}: {w}", customer_toml.display()))
            .collect();
        if let Some(k) = self
            .boot_files
            .and_then(|b| b.ring.as_ref())
            .and_then(|ring| ring.iter().find(|k| k.key == *self.public))
        {
            if let Some(why) = k.outside_window(self.opts.epoch) {
                warnings.push(format!(
                    "--boot-keyring: {why}: the boot verifier and verify with this keyring refuse this image"
                ));
            }
        }
        let (Some(list), Some(path)) = (self.revocations, &self.opts.revocations) else {
            return warnings;
        };
        if list.key_ids.contains(&self.key_id.to_string()) {
            warnings.push(format!(
                "the revocation list {} (version {}) revokes the signing key {}: verify and the boot verifier refuse this image; sign with a key it does not revoke",
                path.display(),
                list.version,
                self.key_id
            ));
        }
        let customer = &self.profile.customer.id;
        let revoked: Vec<&str> = self
            .users
            .iter()
            .copied()
            .filter(|u| list.revokes_user(customer, u))
            .collect();
        if !revoked.is_empty() {
            warnings.push(format!(
                "the revocation list {} (version {}) revokes user(s) {} of this roster: their sticks will be refused; take them out of the roster",
                path.display(),
                list.version,
                revoked.join(", ")
            ));
        }
        warnings
    }
}

/// The output's directory, which must exist; the output must not be a directory.
fn check_output(output: &Path) -> Result<PathBuf, BuildError> {
    let out_dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !out_dir.is_dir() {
        return Err(input(
            "--output",
            format!("directory {} does not exist", out_dir.display()),
        ));
    }
    if output.is_dir() {
        return Err(input(
            "--output",
            format!("{} is a directory", output.display()),
        ));
    }
    Ok(out_dir)
}

fn image_size(requested: Option<u64>, min_size: u64) -> Result<u64, BuildError> {
    match requested {
        None => Ok(min_size),
        Some(s) if s % SECTOR != 0 => Err(input("--size", format!("{s} is not a multiple of 512"))),
        Some(s) if s < min_size => Err(input(
            "--size",
            format!("{s} bytes is too small; this image needs at least {min_size}"),
        )),
        Some(s) => Ok(s),
    }
}

/// Bytes of a profile partition for these files.
pub(crate) fn profile_budget(files: &[FatFile]) -> u64 {
    layout::fat_budget(
        files.iter().map(|f| f.data.len() as u64),
        MIN_PROFILE,
        1 << 20,
    )
}

/// The profile partition of `size` bytes holding `files` (the profile's, or a user's): its own
/// FAT, reproducible from the files alone.
pub(crate) fn profile_fat(
    profile: &Profile,
    files: &[FatFile],
    size: u64,
    epoch: i64,
) -> Result<Vec<u8>, BuildError> {
    let spec = FatSpec {
        size,
        fat32: false,
        label: "HS-PROFILE".into(),
        volume_id: layout::volume_id(b"profile-volume", profile.customer.id.as_bytes()),
        epoch,
    };
    fat::build(&spec, files).map_err(io_err("building the profile FAT"))
}

/// A hidden temporary file beside the output, of the image's size.
pub(crate) fn create_output(
    opts: &BuildOptions,
    inp: &Inputs,
) -> Result<NamedTempFile, BuildError> {
    // Only names the temporary file; an output without a file name fails when published.
    let name = opts
        .output
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(&inp.out_dir)
        .map_err(io_err(format!(
            "creating a temporary file in {}",
            inp.out_dir.display()
        )))?;
    tmp.as_file()
        .set_len(inp.size)
        .map_err(io_err("sizing the output"))?;
    Ok(tmp)
}

/// Write `data` at `lba` of the new output, skipping the blocks that are all zeros: the output
/// was created empty and sized, so it reads as zeros there already, and a file system image is
/// mostly empty (a 64 MiB ESP holds a few MiB of data).
pub(crate) fn write_at(f: &File, lba: u64, data: &[u8], what: &str) -> Result<(), BuildError> {
    use std::os::unix::fs::FileExt;
    const BLOCK: usize = 64 << 10;
    let start = lba * SECTOR;
    let mut run: Option<usize> = None;
    let flush = |from: usize, to: usize| {
        f.write_all_at(&data[from..to], start + from as u64)
            .map_err(io_err(format!("writing {what}")))
    };
    for (i, block) in data.chunks(BLOCK).enumerate() {
        let zero = block.iter().all(|&b| b == 0);
        match (zero, run) {
            (false, None) => run = Some(i * BLOCK),
            (true, Some(from)) => {
                flush(from, i * BLOCK)?;
                run = None;
            }
            _ => {}
        }
    }
    if let Some(from) = run {
        flush(from, data.len())?;
    }
    Ok(())
}

/// The identities derived from the inputs.
pub(crate) struct Ids {
    /// Inputs of the image id so far (the ESP files are added to them).
    pub(crate) parts: Vec<Vec<u8>>,
    /// Hash of everything but the ESP: the disk and partition GUIDs derive from it.
    pub(crate) base: Uuid,
    /// Disk GUID.
    disk: Uuid,
}

impl Ids {
    /// `extra`: more inputs (a set's roster).
    pub(crate) fn derive(
        opts: &BuildOptions,
        inp: &Inputs,
        sys_sha: &[u8; 32],
        extra: &[&[u8]],
    ) -> Ids {
        let mut parts: Vec<Vec<u8>> = vec![
            b"homestick-image-id/1".to_vec(),
            inp.profile.customer.id.clone().into_bytes(),
            inp.version.clone().into_bytes(),
            opts.epoch.to_le_bytes().to_vec(),
            opts.rollback_index.to_le_bytes().to_vec(),
            inp.base.meta.name.clone().into_bytes(),
            inp.base.meta.version.clone().into_bytes(),
            inp.key_id.to_string().into_bytes(),
            hex(sys_sha).into_bytes(),
            hex(&inp.profile_sha).into_bytes(),
        ];
        if let Some(e) = opts.expires {
            parts.push(b"expires".to_vec());
            parts.push(e.to_le_bytes().to_vec());
        }
        parts.extend(extra.iter().map(|e| e.to_vec()));
        // Disk and partition GUIDs come from everything but the ESP, because the ESP's UKI
        // carries the disk GUID in its boot policy; the image id then covers the ESP files too.
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let base = derived_uuid(&refs);
        let disk = guid(base, "disk");
        Ids { parts, base, disk }
    }

    /// The GUID of partition `what`.
    fn guid(&self, what: &str) -> Uuid {
        guid(self.base, what)
    }
}

fn guid(base: Uuid, what: &str) -> Uuid {
    derived_uuid(&[b"homestick-guid", base.as_bytes(), what.as_bytes()])
}

/// README.txt, the manifest entries of every ESP file (sorted), and the image id, which covers
/// them.
pub(crate) struct EspContents {
    pub(crate) readme: FatFile,
    pub(crate) entries: Vec<FileEntry>,
    pub(crate) image_id: Uuid,
}

/// The ESP's files that do not depend on the image id: the base's and the UKI.
pub(crate) fn esp_shared(
    opts: &BuildOptions,
    inp: &Inputs,
    ids: &Ids,
) -> Result<Vec<FatFile>, BuildError> {
    let mut files: Vec<FatFile> = inp.base.esp.clone();
    if let (Some(boot), Some(boot_files)) = (&inp.base.boot, &inp.boot_files) {
        let target = UkiFor {
            customer: &inp.profile.customer,
            version: &inp.version,
            disk_guid: ids.disk,
            signing_public: &inp.public,
            min_rollback_index: opts.rollback_index,
            revocations: inp.revocations.as_ref(),
            expiry_warning_days: opts.expiry_warning_days,
            failure_delay_seconds: opts.failure_delay_seconds,
            epoch: opts.epoch,
        };
        let uki = boot::compose_uki(
            &inp.base,
            boot,
            boot_files,
            &target,
            inp.sb_key.as_ref(),
            opts.base.join("linuxx64.efi.stub"),
        )?;
        match &inp.shim {
            Some(shim) => files.extend(shim.esp_files(uki)),
            None => files.push(FatFile {
                path: homestick_formats::shim::ESP_LOADER.into(),
                data: uki,
            }),
        }
    }
    Ok(files)
}

/// Derive the image id from the inputs and the entries of the shared ESP files (each hashed
/// once, by the caller), and make README.txt, which names it. `user`: the employee of a
/// per-user image and the SHA-256 of their profile partition, both covered by the id.
pub(crate) fn esp_finish(
    inp: &Inputs,
    ids: &Ids,
    shared_entries: &[FileEntry],
    user: Option<(&manifest::User, &[u8; 32])>,
) -> EspContents {
    let mut entries: Vec<FileEntry> = shared_entries.to_vec();
    let mut id_parts = ids.parts.clone();
    if let Some((u, sha)) = user {
        id_parts.push(b"user".to_vec());
        id_parts.push(u.id.clone().into_bytes());
        id_parts.push(hex(sha).into_bytes());
    }
    for e in &entries {
        id_parts.push(e.path.clone().into_bytes());
        id_parts.push(e.sha256.to_string().into_bytes());
    }
    let refs: Vec<&[u8]> = id_parts.iter().map(Vec::as_slice).collect();
    let image_id = derived_uuid(&refs);
    let readme = readme::readme_txt(
        &inp.profile.customer,
        &image_id.to_string(),
        &inp.version,
        &inp.key_id.to_string(),
        user.map(|(u, _)| u),
    );
    let readme = FatFile {
        path: "homestick/README.txt".into(),
        data: readme.into_bytes(),
    };
    entries.push(file_entry(&readme));
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    EspContents {
        readme,
        entries,
        image_id,
    }
}

pub(crate) fn file_entry(f: &FatFile) -> FileEntry {
    FileEntry {
        path: f.path.clone(),
        size: f.data.len() as u64,
        sha256: manifest::Sha256Sum(Sha256::digest(&f.data).into()),
    }
}

/// The system partition's dm-verity tree, as the manifest records it.
pub(crate) struct SystemTree {
    params: verity::Params,
    root: [u8; 32],
    /// SHA-256 of the whole hash partition (the tree and its zero padding).
    pub(crate) hash_partition_sha: [u8; 32],
}

/// The hash partition's number (after the ESP, the system and the profile).
pub(crate) const VERITY_PARTITION: u32 = 4;

/// The four partitions: the ESP with its files, the system under dm-verity (tree `t`), the
/// profile (`profile_sha`) and the hash partition, where `l` puts them, with the GUIDs of `ids`.
fn partitions(
    ids: &Ids,
    l: &Layout,
    file_entries: Vec<FileEntry>,
    t: &SystemTree,
    profile_sha: [u8; 32],
) -> Vec<Partition> {
    let ro = gpt::ATTR_READ_ONLY;
    let part = |number: u32, name: &str, type_guid, (first_lba, last_lba), attributes| Partition {
        number,
        name: name.into(),
        type_guid,
        guid: ids.guid(name),
        first_lba,
        last_lba,
        attributes,
        sha256: None,
        files: None,
        verity: None,
    };
    // The Discoverable Partitions Specification: the root partition's UUID is the root hash's
    // first 16 bytes, the verity partition's its last 16.
    // Always 16 bytes of a 32-byte hash: from_slice cannot fail.
    let uuid = |b: &[u8]| Uuid::from_slice(b).unwrap_or_default();
    vec![
        Partition {
            files: Some(file_entries),
            ..part(1, "esp", gpt::TYPE_ESP, l.esp, 0)
        },
        Partition {
            guid: uuid(&t.root[..16]),
            verity: Some(manifest::Verity {
                hash_partition: VERITY_PARTITION,
                root_hash: manifest::Sha256Sum(t.root),
                salt: hex(&t.params.salt),
                algorithm: verity::ALGORITHM.into(),
                data_block_size: verity::BLOCK as u32,
                hash_block_size: verity::BLOCK as u32,
                data_blocks: t.params.data_blocks,
            }),
            ..part(2, "system", gpt::TYPE_ROOT_X86_64, l.system, ro)
        },
        Partition {
            sha256: Some(manifest::Sha256Sum(profile_sha)),
            ..part(3, "profile", gpt::TYPE_HOMESTICK_PROFILE, l.profile, ro)
        },
        Partition {
            guid: uuid(&t.root[16..]),
            sha256: Some(manifest::Sha256Sum(t.hash_partition_sha)),
            ..part(
                VERITY_PARTITION,
                "system-verity",
                gpt::TYPE_ROOT_X86_64_VERITY,
                l.verity,
                ro,
            )
        },
    ]
}

/// The signed statement. `profile_sha`: the profile partition's (a user's in a set).
pub(crate) fn manifest(
    opts: &BuildOptions,
    inp: &Inputs,
    ids: &Ids,
    file_entries: Vec<FileEntry>,
    image_id: Uuid,
    t: &SystemTree,
    user: Option<(manifest::User, [u8; 32])>,
) -> Result<Manifest, BuildError> {
    let profile_sha = user.as_ref().map_or(inp.profile_sha, |(_, s)| *s);
    let l = &inp.layout;
    let partitions = partitions(ids, l, file_entries, t, profile_sha);
    let m = Manifest {
        format: manifest::FORMAT.into(),
        image_id,
        customer: Customer {
            id: inp.profile.customer.id.clone(),
            name: inp.profile.customer.name.clone(),
        },
        user: user.map(|(u, _)| u),
        version: inp.version.clone(),
        build_time: fat::rfc3339(opts.epoch),
        build_epoch: opts.epoch,
        rollback_index: opts.rollback_index,
        expires: opts.expires.map(fat::rfc3339),
        key_id: inp.key_id,
        base: Base {
            name: inp.base.meta.name.clone(),
            version: inp.base.meta.version.clone(),
        },
        disk: DiskInfo {
            guid: ids.disk,
            sector_size: SECTOR,
            min_size_bytes: l.min_sectors * SECTOR,
            partition_entries: gpt::NUM_ENTRIES,
        },
        partitions,
    };
    m.validate().map_err(|e| BuildError::Internal {
        context: "the manifest the builder made",
        detail: e.to_string(),
    })?;
    Ok(m)
}

/// Add manifest.json and its signature to the ESP's files.
pub(crate) fn sign_into(
    key: &Signer,
    m: &Manifest,
    esp_files: &mut Vec<FatFile>,
) -> Result<(), BuildError> {
    let bytes = m.to_bytes().map_err(|e| BuildError::Internal {
        context: "writing the manifest",
        detail: e.to_string(),
    })?;
    let sig = key.sign(&bytes)?;
    esp_files.push(FatFile {
        path: manifest::MANIFEST_PATH.into(),
        data: bytes,
    });
    esp_files.push(FatFile {
        path: manifest::SIGNATURE_PATH.into(),
        data: sig.to_vec(),
    });
    Ok(())
}

/// The ESP (FAT32) holding `esp_files`, its volume id derived from `image_id`.
pub(crate) fn esp_volume(
    opts: &BuildOptions,
    inp: &Inputs,
    image_id: Uuid,
    esp_files: &[FatFile],
) -> Result<Vec<u8>, BuildError> {
    let spec = FatSpec {
        size: inp.esp_bytes,
        fat32: true,
        label: "HOMESTICK".into(),
        volume_id: layout::volume_id(b"esp-volume", image_id.as_bytes()),
        epoch: opts.epoch,
    };
    fat::build(&spec, esp_files).map_err(io_err("building the ESP (FAT32)"))
}

/// Write the GPT of `m`'s partitions, and flush.
pub(crate) fn write_gpt(
    inp: &Inputs,
    ids: &Ids,
    m: &Manifest,
    f: &mut File,
) -> Result<(), BuildError> {
    let parts: Vec<NewPartition> = m.partitions.iter().map(|p| p.new_partition()).collect();
    gpt::write(&mut *f, inp.size / SECTOR, ids.disk, &parts).map_err(|e| BuildError::Internal {
        context: "writing the GPT",
        detail: e.to_string(),
    })?;
    f.sync_all().map_err(io_err("flushing the output"))
}

/// Verify the written file with the public key, reading it back from the file system: LBA 0
/// and 1, the signature, the GPT, the ESP's files and tables and the profile partition. The
/// system partition alone is not read again, on purpose: its hash was computed over the very
/// buffers written (a later change on the disk is what `homestick verify` finds).
pub(crate) fn self_check<D: homestick_image::disk::Disk + ?Sized>(
    opts: &BuildOptions,
    inp: &Inputs,
    known: &[(u32, [u8; 32])],
    disk: &D,
    progress: &dyn homestick_image::verify::Progress,
) -> Result<(), BuildError> {
    let trusted = [TrustedKey::new(inp.public, PathBuf::from(&opts.key))];
    verify::verify_built(disk, &trusted, known, progress).map_err(BuildError::SelfCheck)?;
    Ok(())
}

/// The system partition's number.
pub(crate) const SYSTEM_PARTITION: u32 = 2;

/// Rename the temporary file to the output name and flush the directory.
pub(crate) fn persist(tmp: NamedTempFile, output: &Path, out_dir: &Path) -> Result<(), BuildError> {
    tmp.persist(output).map_err(|e| BuildError::Io {
        context: format!("renaming to {}", output.display()),
        source: e.error,
    })?;
    // Best effort: the rename is durable once the directory is flushed.
    if let Ok(d) = File::open(out_dir) {
        // The output is complete under its final name; syncing its directory only hastens
        // durability, which some filesystems do not offer for directories.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_at_puts_every_byte_where_the_data_says() {
        // Zero runs at the start, middle and end, a non-zero byte at a block's last position,
        // and a partial last block.
        let mut data = vec![0u8; (64 << 10) * 5 + 1000];
        data[(64 << 10) - 1] = 1;
        data[3 * (64 << 10) + 7] = 2;
        data[5 * (64 << 10) + 999] = 3;
        for prefill in [0u8, 0xee] {
            let f = tempfile::tempfile().unwrap();
            let lba = 3;
            f.set_len(lba * SECTOR + data.len() as u64 + 512).unwrap();
            if prefill != 0 {
                // What write_at relies on: a fresh output reads as zeros. With junk in the
                // file the skipped blocks show, which proves they were skipped.
                use std::os::unix::fs::FileExt;
                f.write_all_at(&vec![prefill; data.len()], lba * SECTOR)
                    .unwrap();
            }
            write_at(&f, lba, &data, "test").unwrap();
            let mut back = Vec::new();
            std::io::Read::read_to_end(&mut &f, &mut back).unwrap();
            let got = &back[(lba * SECTOR) as usize..][..data.len()];
            if prefill == 0 {
                assert_eq!(got, &data[..]);
                assert!(back[..(lba * SECTOR) as usize].iter().all(|&b| b == 0));
            } else {
                assert_eq!(got[64 << 10], prefill, "an all-zero block is not written");
                assert_eq!(got[(64 << 10) - 1], 1);
                assert_eq!(got[3 * (64 << 10) + 7], 2);
                assert_eq!(got[5 * (64 << 10) + 999], 3);
            }
        }
    }
}
