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
use std::sync::Arc;
use std::time::Instant;

use homestick_image::disk::{Disk, FileDisk, SECTOR};
use homestick_image::fat::FatFile;
use homestick_image::manifest::{self, Sha256Sum};
use homestick_image::set::{self, Credential, SetIndex, SetUser, StickSet, UserImage};
use homestick_image::{files, keys};
use homestick_profile::roster::{self, Roster};
use homestick_profile::Profile;
use sha2::{Digest, Sha256};

use crate::error::{input, io_err, BuildError};
use crate::pipeline;
use crate::plan::{Plan, Shared};
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
/// secret. Every slot of the profile is walked; the slot's name says whether it is such a
/// credential or a secret that goes with one (`SlotName::on_loss`).
pub fn credentials(profile: &Profile, u: &roster::User) -> Vec<Credential> {
    profile
        .slots()
        .iter()
        .filter_map(|slot| {
            let roster::OnLoss::Drop(kind) = slot.name.on_loss() else {
                return None;
            };
            let value = roster::credential_value(&slot.name, u.values.get(&slot.name)?)?;
            Some(Credential {
                kind: kind.into(),
                server: slot.name.server().into(),
                value,
            })
        })
        .collect()
}

/// A user of the set with their filled profile files and the credentials to revoke.
struct SetMember {
    user: manifest::User,
    files: Vec<FatFile>,
    credentials: Vec<Credential>,
}

/// The shared image as written, and what each user's image is compared against.
struct Template {
    /// The shared ESP without any user's README, manifest or signature.
    esp: Vec<u8>,
    path: PathBuf,
    sha256: [u8; 32],
    disk: Arc<FileDisk>,
}

impl Template {
    /// Write the template ([`write_template`]) and open it for the users' images.
    fn write(
        plan: &Plan,
        shared: &Shared,
        image: tempfile::NamedTempFile,
    ) -> Result<Template, BuildError> {
        let (path, esp) = write_template(plan, shared, image)?;
        Ok(Template {
            disk: Arc::new(FileDisk::open(&path).map_err(io_err("reopening the shared image"))?),
            sha256: hash_file(&path)?,
            path,
            esp,
        })
    }
}

/// What the users' parts add up to.
#[derive(Default)]
struct Parts {
    users: Vec<SetUser>,
    bytes: u64,
    largest: u64,
}

/// Build the set of `roster`'s users into the new directory `opts.output`: the image plan's
/// `finish(Some(user))` for each user.
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
    let members = personalize_all(&profile, &roster, roster_path)?;
    let profile_min = members
        .iter()
        .map(|m| pipeline::profile_budget(&m.files))
        .max()
        .unwrap_or(0);
    let ids: Vec<&str> = members.iter().map(|m| m.user.id.as_str()).collect();
    let plan = Plan::check(opts, profile, profile_min, &ids)?;
    let work = work_dir(&opts.output, &plan.inp.out_dir)?;
    progress.stage("writing the system partition");
    let image = shared_file(work.path(), plan.inp.size)?;
    let csv = roster.to_csv().map_err(|e| BuildError::Internal {
        context: "writing the roster as CSV",
        detail: e.to_string(),
    })?;
    let roster_sha = Sha256::digest(csv.as_bytes());
    let stage = "composing the shared ESP and the GPT";
    let mut shared = plan.shared(&image, &[b"stick-set", &roster_sha], stage, progress)?;
    let template = Template::write(&plan, &shared, image)?;
    progress.stage("signing one image per user");
    progress.set_total(members.len() as u64);
    let parts = sign_members(
        &plan,
        &mut shared,
        &template,
        members,
        work.path(),
        progress,
    )?;
    let index = SetIndex {
        format: set::SET_FORMAT.into(),
        set_id: shared.ids.base,
        customer: manifest::Customer {
            id: plan.inp.profile.customer.id.clone(),
            name: plan.inp.profile.customer.name.clone(),
        },
        hotline: plan.inp.profile.customer.hotline.clone(),
        version: plan.inp.version.clone(),
        key_id: plan.inp.key_id,
        image_size: template.disk.size(),
        shared_sha256: Sha256Sum(template.sha256),
        users: parts.users,
    };
    write_index(&plan, &index, work.path())?;
    pipeline::cancelled(progress)?;
    progress.stage("checking the set");
    reopen(opts, &plan, work.path())?;
    let shared_bytes = allocated(&template.path);
    publish(work, &opts.output, &plan.inp.out_dir)?;
    Ok(SetReport {
        output: opts.output.clone(),
        index,
        shared_bytes,
        parts_bytes: parts.bytes,
        largest_part: parts.largest,
        seconds: started.elapsed().as_secs_f64(),
        warnings: plan.warnings().to_vec(),
    })
}

/// The shared image's temporary file in `dir`, `size` bytes of zeros.
fn shared_file(dir: &Path, size: u64) -> Result<tempfile::NamedTempFile, BuildError> {
    let image = tempfile::Builder::new()
        .prefix(".shared.")
        .tempfile_in(dir)
        .map_err(io_err("creating the shared image"))?;
    image
        .as_file()
        .set_len(size)
        .map_err(io_err("sizing the shared image"))?;
    Ok(image)
}

/// Open the set written to `dir` as `verify` and `flash` will, trusting the build's key.
fn reopen(opts: &BuildOptions, plan: &Plan, dir: &Path) -> Result<(), BuildError> {
    let trusted = [keys::TrustedKey::new(
        plan.inp.public,
        PathBuf::from(&opts.key),
    )];
    StickSet::open(dir, &trusted).map_err(|e| BuildError::Internal {
        context: "reopening the set",
        detail: e.to_string(),
    })?;
    Ok(())
}

/// Every user's filled profile files and credentials, in roster order.
fn personalize_all(
    profile: &Profile,
    roster: &Roster,
    roster_path: &Path,
) -> Result<Vec<SetMember>, BuildError> {
    roster
        .users
        .iter()
        .map(|u| {
            let files = roster::personalize(profile, u)
                .map_err(|e| input(roster_path.display().to_string(), e.to_string()))?;
            Ok(SetMember {
                user: manifest::User {
                    id: u.id.clone(),
                    name: u.name.clone(),
                },
                files,
                credentials: credentials(profile, u),
            })
        })
        .collect()
}

/// A hidden temporary directory beside the output, with `users/`.
fn work_dir(output: &Path, out_dir: &Path) -> Result<tempfile::TempDir, BuildError> {
    // Only names the temporary directory; an output without a file name fails when published.
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let work = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempdir_in(out_dir)
        .map_err(io_err(format!(
            "creating a temporary directory in {}",
            out_dir.display()
        )))?;
    fs::create_dir(work.path().join(set::USERS)).map_err(io_err("creating users/"))?;
    Ok(work)
}

/// Write the shared ESP (no user's files) and the GPT into the shared image and give it its
/// name. Returns the path and the ESP.
fn write_template(
    plan: &Plan,
    shared: &Shared,
    mut image: tempfile::NamedTempFile,
) -> Result<(PathBuf, Vec<u8>), BuildError> {
    let (opts, inp) = (plan.opts, &plan.inp);
    let set_id = shared.ids.base;
    let tmpl = pipeline::esp_finish(inp, &shared.ids, &shared.entries, None);
    let tmpl_m = pipeline::manifest(
        opts,
        inp,
        &shared.ids,
        tmpl.entries,
        set_id,
        &shared.tree,
        None,
    )?;
    let esp = pipeline::esp_volume(opts, inp, set_id, &shared.esp_files)?;
    pipeline::write_at(image.as_file(), inp.layout.esp.0, &esp, "the ESP")?;
    pipeline::write_gpt(inp, &shared.ids, &tmpl_m, image.as_file_mut())?;
    let dir = image
        .path()
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let path = dir.join(set::SHARED);
    image.persist(&path).map_err(|e| BuildError::Io {
        context: "naming the shared image".into(),
        source: e.error,
    })?;
    Ok((path, esp))
}

/// Finish, check and store each user's image as the blocks that differ from the template.
fn sign_members(
    plan: &Plan,
    shared: &mut Shared,
    template: &Template,
    members: Vec<SetMember>,
    work: &Path,
    progress: &dyn BuildProgress,
) -> Result<Parts, BuildError> {
    let inp = &plan.inp;
    let esp_at = inp.layout.esp.0 * SECTOR;
    let profile_at = inp.layout.profile.0 * SECTOR;
    let profile_bytes = inp.profile_fat.len() as u64;
    let mut parts = Parts::default();
    let mut ids_seen = BTreeMap::new();
    for m in members {
        pipeline::cancelled(progress)?;
        let pfat = pipeline::profile_fat(&inp.profile, &m.files, profile_bytes, plan.opts.epoch)?;
        let psha: [u8; 32] = Sha256::digest(&pfat).into();
        let image = plan.finish(shared, Some((&m.user, &psha)))?;
        if let Some(other) = ids_seen.insert(image.manifest.image_id, m.user.id.clone()) {
            return Err(BuildError::Internal {
                context: "deriving the users' image ids",
                detail: format!("{} and {other} got the same image id", m.user.id),
            });
        }
        let mbytes = image
            .manifest
            .to_bytes()
            .map_err(|e| BuildError::Internal {
                context: "writing the manifest",
                detail: e.to_string(),
            })?;
        let mut extents = set::diff(&template.esp, &image.esp, 4096, esp_at);
        extents.extend(set::diff(&inp.profile_fat, &pfat, 4096, profile_at));
        let part = set::encode_part(&extents);
        let user_image = UserImage::new(template.disk.clone(), extents);
        let known = [
            (pipeline::SYSTEM_PARTITION, shared.sys_sha),
            (pipeline::VERITY_PARTITION, shared.tree.hash_partition_sha),
        ];
        let quiet = &homestick_image::verify::NoProgress;
        pipeline::self_check(plan.opts, inp, &known, &user_image, quiet)?;
        let path = work.join(set::USERS).join(format!("{}.part", m.user.id));
        write_private(&path, &part)?;
        parts.bytes += part.len() as u64;
        parts.largest = parts.largest.max(part.len() as u64);
        parts.users.push(SetUser {
            id: m.user.id,
            name: m.user.name,
            image_id: image.manifest.image_id,
            manifest_sha256: Sha256Sum(Sha256::digest(&mbytes).into()),
            part_sha256: Sha256Sum(Sha256::digest(&part).into()),
            part_bytes: part.len() as u64,
            credentials: m.credentials,
        });
        progress.advance(1);
    }
    Ok(parts)
}

/// set.json and its signature by the image key.
fn write_index(plan: &Plan, index: &SetIndex, work: &Path) -> Result<(), BuildError> {
    let bytes = index.to_bytes();
    let sig = plan.inp.key.sign(&bytes)?;
    write_private(&work.join(set::INDEX), &bytes)?;
    write_private(&work.join(set::INDEX_SIG), &sig)
}

/// Rename the finished set to its name and flush the directory; on failure nothing stays.
fn publish(work: tempfile::TempDir, output: &Path, out_dir: &Path) -> Result<(), BuildError> {
    let dir = work.keep();
    if let Err(source) = fs::rename(&dir, output) {
        // Best effort: the set was not published, and a partial one must not stay.
        let _ = fs::remove_dir_all(&dir);
        return Err(BuildError::Io {
            context: format!("renaming to {}", output.display()),
            source,
        });
    }
    // Best effort: the rename is durable once the directory is flushed.
    if let Ok(d) = fs::File::open(out_dir) {
        // The set is complete under its final name; syncing its directory only hastens durability,
        // which some filesystems do not offer for directories.
        let _ = d.sync_all();
    }
    Ok(())
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
