//! The image plan: what one image and a stick set have in common, in one order.
//!
//! [`Plan::check`] reads and checks every input once (and collects every warning);
//! [`Plan::shared`] writes what all images of the plan share (system partition, profile
//! partition, dm-verity tree) and composes the shared ESP files (the UKI); [`Plan::finish`]
//! makes one image's manifest, signature and ESP. `build` is `finish(None)`; a set calls
//! `finish(Some(user))` once per user.

use homestick_image::fat::FatFile;
use homestick_image::manifest::{self, FileEntry, Manifest};
use homestick_profile::Profile;
use tempfile::NamedTempFile;

use crate::error::BuildError;
use crate::pipeline::{self, Ids, Inputs, SystemTree};
use crate::{BuildOptions, BuildProgress};

/// Checked inputs and the options they came from.
pub(crate) struct Plan<'a> {
    pub(crate) opts: &'a BuildOptions,
    pub(crate) inp: Inputs,
}

/// What every image of a plan shares, written or composed once.
pub(crate) struct Shared {
    /// SHA-256 of the system partition.
    pub(crate) sys_sha: [u8; 32],
    /// The system's dm-verity tree.
    pub(crate) tree: SystemTree,
    /// Identities derived from the inputs.
    pub(crate) ids: Ids,
    /// The ESP's files every image has (the base's and the UKI).
    pub(crate) esp_files: Vec<FatFile>,
    /// Their manifest entries, each file hashed once.
    pub(crate) entries: Vec<FileEntry>,
}

/// One finished image: its signed statement and its ESP.
pub(crate) struct Finished {
    pub(crate) manifest: Manifest,
    /// The ESP volume (FAT32) with the shared files, README, manifest and signature.
    pub(crate) esp: Vec<u8>,
}

/// A user of a set: who, and the SHA-256 of their profile partition.
pub(crate) type UserPart<'a> = (&'a manifest::User, &'a [u8; 32]);

impl<'a> Plan<'a> {
    /// Check every input. `profile_min`: the least profile partition (a set's: room for every
    /// user's); `users`: a set's user ids (for the warnings), none for one image.
    pub(crate) fn check(
        opts: &'a BuildOptions,
        profile: Profile,
        profile_min: u64,
        users: &[&str],
    ) -> Result<Plan<'a>, BuildError> {
        let inp = pipeline::check_inputs(opts, profile, profile_min, users)?;
        Ok(Plan { opts, inp })
    }

    /// Every warning about the inputs.
    pub(crate) fn warnings(&self) -> &[String] {
        &self.inp.warnings
    }

    /// Write the shared partitions into `tmp` and compose the shared ESP files. `salt`: more
    /// inputs of the identities (a set's roster); `esp_stage`: the progress stage shown while
    /// the ESP is composed.
    pub(crate) fn shared(
        &self,
        tmp: &NamedTempFile,
        salt: &[&[u8]],
        esp_stage: &str,
        progress: &dyn BuildProgress,
    ) -> Result<Shared, BuildError> {
        let (sys_sha, tree) = pipeline::write_shared(self.opts, &self.inp, tmp, progress)?;
        progress.stage(esp_stage);
        let ids = Ids::derive(self.opts, &self.inp, &sys_sha, salt);
        let esp_files = pipeline::esp_shared(self.opts, &self.inp, &ids)?;
        let entries = esp_files.iter().map(pipeline::file_entry).collect();
        Ok(Shared {
            sys_sha,
            tree,
            ids,
            esp_files,
            entries,
        })
    }

    /// The manifest and ESP of one image: the plan's own (`None`) or a set user's.
    pub(crate) fn finish(
        &self,
        s: &mut Shared,
        user: Option<UserPart<'_>>,
    ) -> Result<Finished, BuildError> {
        let esp = pipeline::esp_finish(&self.inp, &s.ids, &s.entries, user);
        let m = pipeline::manifest(
            self.opts,
            &self.inp,
            &s.ids,
            esp.entries,
            esp.image_id,
            &s.tree,
            user.map(|(u, sha)| (u.clone(), *sha)),
        )?;
        // The shared files and this image's three, without copying the shared ones (the UKI
        // is tens of MiB): taken out, extended, built, and given back.
        let n_shared = s.esp_files.len();
        let mut all = std::mem::take(&mut s.esp_files);
        all.push(esp.readme);
        let vol = pipeline::sign_into(&self.inp.key, &m, &mut all)
            .and_then(|()| pipeline::esp_volume(self.opts, &self.inp, m.image_id, &all));
        all.truncate(n_shared);
        s.esp_files = all;
        Ok(Finished {
            manifest: m,
            esp: vol?,
        })
    }
}
