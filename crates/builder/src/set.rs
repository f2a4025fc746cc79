//! A stick set: one signed image per user of a roster, in one run with one key load, stored
//! as the shared image and per user only the blocks that differ (see
//! [`homestick_image::set`]).
//!
//! Every user's image has the layout, system partition, dm-verity tree, UKI and GPT of the
//! set; what differs is the profile partition (the user's filled files) and the ESP's
//! manifest, signature and README, each user's own. The shared image holds the ESP without
//! them and the profile with its placeholders: it is not an image anyone can boot or verify.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use homestick_image::disk::{Disk, FileDisk, SECTOR};
use homestick_image::fat::FatFile;
use homestick_image::manifest::{self, FileEntry, Sha256Sum};
use homestick_image::set::{self, Credential, SetIndex, SetUser, StickSet, UserImage};
use homestick_image::{files, keys};
use homestick_profile::roster::{self, Roster};
use homestick_profile::Profile;
use sha2::{Digest, Sha256};

use crate::error::{input, io_err, BuildError};
use crate::pipeline::{self, Ids};
use crate::{BuildOptions, BuildProgress};

/// Most bytes of a roster file.
pub const MAX_ROSTER_BYTES: u64 = 64 << 20;

/// What a set build produced.
#[derive(Debug, Clone)]
pub struct SetReport {
    /// The set's directory.
    pub output: PathBuf,
    /// The set's index.
    pub index: SetIndex,
    /// Bytes of shared.img on disk (allocated: the file is sparse where the image is zeros).
    pub shared_bytes: u64,
    /// Bytes of all users' parts together.
    pub parts_bytes: u64,
    /// Largest part.
    pub largest_part: u64,
    /// Seconds taken.
    pub seconds: f64,
    /// Warnings from the inputs.
    pub warnings: Vec<String>,
}

/// Read and check a filled roster against the profile: every problem by line and column.
pub fn load_roster(path: &Path, profile: &Profile) -> Result<Roster, BuildError> {
    let bytes = files::read_bounded(path, MAX_ROSTER_BYTES)
        .map_err(|e| input(path.display().to_string(), e.to_string()))?;
    let lines = |errors: Vec<roster::RosterError>| {
        input(
            path.display().to_string(),
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(&format!("\n{}: ", path.display())),
        )
    };
    let mut r = Roster::parse(&bytes, profile).map_err(lines)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let errors = r.read_files(dir);
    if !errors.is_empty() {
        return Err(lines(errors));
    }
    let errors = r.check(profile, false);
    if !errors.is_empty() {
        return Err(lines(errors));
    }
    Ok(r)
}

/// The credentials of `u` that servers know and must drop when the stick is lost: never a
/// secret. Every slot of the profile is walked; the slot's metadata ([`roster::on_loss`]) says
/// whether it is such a credential or a secret that goes with one.
pub fn credentials(profile: &Profile, u: &roster::User) -> Vec<Credential> {
    profile
        .slots
        .iter()
        .filter_map(|slot| {
            let roster::OnLoss::Drop(kind) = roster::on_loss(&slot.name) else {
                return None;
            };
            let value = roster::credential_value(&slot.name, u.values.get(&slot.name)?)?;
            Some(Credential {
                kind: kind.into(),
                server: roster::server_of(&slot.name).into(),
                value,
            })
        })
        .collect()
}

/// Build the set of `roster`'s users into the new directory `opts.output`.
pub fn build_set(
    opts: &BuildOptions,
    roster_path: &Path,
    progress: &dyn BuildProgress,
) -> Result<SetReport, BuildError> {
    let started = Instant::now();
    progress.stage("checking inputs");
    if opts.output.exists() {
        return Err(input(
            "--output",
            format!(
                "{} exists; a set is written to a new directory",
                opts.output.display()
            ),
        ));
    }
    let profile = Profile::load(&opts.profile, opts.epoch)?;
    let roster = load_roster(roster_path, &profile)?;
    let mut users: Vec<(manifest::User, Vec<FatFile>, Vec<Credential>)> = Vec::new();
    for u in &roster.users {
        let files = roster::personalize(&profile, u)
            .map_err(|e| input(roster_path.display().to_string(), e.to_string()))?;
        let mu = manifest::User {
            id: u.id.clone(),
            name: u.name.clone(),
        };
        users.push((mu, files, credentials(&profile, u)));
    }
    let profile_min = users
        .iter()
        .map(|(_, f, _)| pipeline::profile_budget(f))
        .max()
        .unwrap_or(0);
    let mut inp = pipeline::check_inputs(opts, profile, profile_min)?;
    if let Some(list) = &inp.revocations {
        let revoked: Vec<&str> = users
            .iter()
            .filter(|(u, ..)| {
                list.users
                    .iter()
                    .any(|r| r.customer == inp.profile.customer.id && r.id == u.id)
            })
            .map(|(u, ..)| u.id.as_str())
            .collect();
        if !revoked.is_empty() {
            inp.warnings.push(format!(
                "the revocation list (version {}) revokes user(s) {} of this roster: their sticks will be refused; take them out of the roster",
                list.version,
                revoked.join(", ")
            ));
        }
    }
    let out_dir = inp.out_dir.clone();
    let name = opts
        .output
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let work = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempdir_in(&out_dir)
        .map_err(io_err(format!(
            "creating a temporary directory in {}",
            out_dir.display()
        )))?;
    fs::create_dir(work.path().join(set::USERS)).map_err(io_err("creating users/"))?;

    progress.stage("writing the system partition");
    let mut shared = tempfile::Builder::new()
        .prefix(".shared.")
        .tempfile_in(work.path())
        .map_err(io_err("creating the shared image"))?;
    shared
        .as_file()
        .set_len(inp.size)
        .map_err(io_err("sizing the shared image"))?;
    let (sys_sha, tree) = pipeline::write_shared(opts, &inp, &shared, progress)?;

    progress.stage("composing the shared ESP and the GPT");
    let roster_sha = Sha256::digest(roster.to_csv().as_bytes());
    let ids = Ids::derive(opts, &inp, &sys_sha, &[b"stick-set", &roster_sha]);
    let set_id = ids.base;
    let mut esp_files = pipeline::esp_shared(opts, &inp, &ids)?;
    let shared_entries: Vec<FileEntry> = esp_files.iter().map(pipeline::file_entry).collect();
    let tmpl = pipeline::esp_finish(&inp, &ids, &shared_entries, None);
    let tmpl_m = pipeline::manifest(opts, &inp, &ids, tmpl.entries, set_id, &tree, None)?;
    let esp_tmpl = pipeline::esp_volume(opts, &inp, set_id, &esp_files)?;
    let esp_at = inp.layout.esp.0 * SECTOR;
    let profile_at = inp.layout.profile.0 * SECTOR;
    pipeline::write_at(shared.as_file(), inp.layout.esp.0, &esp_tmpl, "the ESP")?;
    pipeline::write_gpt(&inp, &ids, &tmpl_m, shared.as_file_mut())?;
    let shared_path = work.path().join(set::SHARED);
    shared.persist(&shared_path).map_err(|e| BuildError::Io {
        context: "naming the shared image".into(),
        source: e.error,
    })?;
    let shared_sha = hash_file(&shared_path)?;
    let shared_disk = std::sync::Arc::new(
        FileDisk::open(&shared_path).map_err(io_err("reopening the shared image"))?,
    );

    progress.stage("signing one image per user");
    progress.set_total(users.len() as u64);
    let n_shared = esp_files.len();
    let profile_bytes = inp.profile_fat.len() as u64;
    let mut entries = Vec::new();
    let mut parts_bytes = 0u64;
    let mut largest_part = 0u64;
    let mut ids_seen = BTreeMap::new();
    for (user, files, creds) in users {
        pipeline::cancelled(progress)?;
        let pfat = pipeline::profile_fat(&inp.profile, &files, profile_bytes, opts.epoch)?;
        let psha: [u8; 32] = Sha256::digest(&pfat).into();
        let esp = pipeline::esp_finish(&inp, &ids, &shared_entries, Some((&user, &psha)));
        let m = pipeline::manifest(
            opts,
            &inp,
            &ids,
            esp.entries,
            esp.image_id,
            &tree,
            Some((user.clone(), psha)),
        )?;
        if let Some(other) = ids_seen.insert(m.image_id, user.id.clone()) {
            return Err(BuildError::Internal {
                context: "deriving the users' image ids",
                detail: format!("{} and {other} got the same image id", user.id),
            });
        }
        let mbytes = m.to_bytes().map_err(|e| BuildError::Internal {
            context: "writing the manifest",
            detail: e.to_string(),
        })?;
        let manifest_sha256 = Sha256Sum(Sha256::digest(&mbytes).into());
        // The shared files and this user's three, without copying the shared ones (the UKI
        // is tens of MiB): taken out, extended, built, and given back.
        let mut all = std::mem::take(&mut esp_files);
        all.push(esp.readme);
        let mut all = pipeline::sign_into(&inp.key, &m, all)?;
        let vol = pipeline::esp_volume(opts, &inp, m.image_id, &all);
        all.truncate(n_shared);
        esp_files = all;
        let vol = vol?;
        let mut extents = set::diff(&esp_tmpl, &vol, 4096, esp_at);
        extents.extend(set::diff(&inp.profile_fat, &pfat, 4096, profile_at));
        let part = set::encode_part(&extents);
        let image = UserImage::new(shared_disk.clone(), extents);
        pipeline::self_check(
            opts,
            &inp,
            &[
                (pipeline::SYSTEM_PARTITION, sys_sha),
                (pipeline::VERITY_PARTITION, tree.hash_partition_sha),
            ],
            &image,
            &homestick_image::verify::NoProgress,
        )?;
        let path = work
            .path()
            .join(set::USERS)
            .join(format!("{}.part", user.id));
        write_private(&path, &part)?;
        parts_bytes += part.len() as u64;
        largest_part = largest_part.max(part.len() as u64);
        entries.push(SetUser {
            id: user.id,
            name: user.name,
            image_id: m.image_id,
            manifest_sha256,
            part_sha256: Sha256Sum(Sha256::digest(&part).into()),
            part_bytes: part.len() as u64,
            credentials: creds,
        });
        progress.advance(1);
    }
    let index = SetIndex {
        format: set::SET_FORMAT.into(),
        set_id,
        customer: manifest::Customer {
            id: inp.profile.customer.id.clone(),
            name: inp.profile.customer.name.clone(),
        },
        hotline: inp.profile.customer.hotline.clone(),
        version: inp.version.clone(),
        key_id: inp.key_id,
        image_size: shared_disk.size(),
        shared_sha256: Sha256Sum(shared_sha),
        users: entries,
    };
    let bytes = index.to_bytes();
    let sig = inp.key.sign(&bytes)?;
    write_private(&work.path().join(set::INDEX), &bytes)?;
    write_private(&work.path().join(set::INDEX_SIG), &sig)?;
    pipeline::cancelled(progress)?;
    progress.stage("checking the set");
    let trusted = [keys::TrustedKey::new(
        inp.public,
        std::path::PathBuf::from(&opts.key),
    )];
    StickSet::open(work.path(), &trusted).map_err(|e| BuildError::Internal {
        context: "reopening the set",
        detail: e.to_string(),
    })?;
    let shared_bytes = allocated(&shared_path);
    let dir = work.keep();
    fs::rename(&dir, &opts.output).map_err(|source| {
        let _ = fs::remove_dir_all(&dir);
        BuildError::Io {
            context: format!("renaming to {}", opts.output.display()),
            source,
        }
    })?;
    if let Ok(d) = fs::File::open(&out_dir) {
        let _ = d.sync_all();
    }
    Ok(SetReport {
        output: opts.output.clone(),
        index,
        shared_bytes,
        parts_bytes,
        largest_part,
        seconds: started.elapsed().as_secs_f64(),
        warnings: inp.profile.warnings.clone(),
    })
}

/// Create `path` with mode 0600 (it holds a user's secrets) and write `data` to it, flushed.
fn write_private(path: &Path, data: &[u8]) -> Result<(), BuildError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(format!("creating {}", path.display())))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(io_err(format!("writing {}", path.display())))
}

fn hash_file(path: &Path) -> Result<[u8; 32], BuildError> {
    let mut f = fs::File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(io_err(format!("reading {}", path.display())))?;
    Ok(h.finalize().into())
}

/// Bytes a file takes on disk.
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).map_or(0, |m| m.blocks() * 512)
}
