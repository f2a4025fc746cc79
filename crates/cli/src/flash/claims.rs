//! Which image the next stick gets: the one image, or the next user of the set the ledger
//! lets this station have ([`claim::claim_next`] over the station's ledger).

use super::*;

impl Run {
    /// The image for stick `d` and its ledger row: the image, or the next user of the set
    /// that the ledger lets this station have ([`claim::claim_next`]: its unique index decides
    /// a race with another station). `None`: no user left.
    pub(crate) fn claim(&mut self, d: &Device) -> Result<Option<(Arc<Image>, i64)>, LedgerError> {
        let attempt = NewAttempt {
            device: d.path.display().to_string(),
            device_number: format!("{}:{}", d.dev.0, d.dev.1),
            // A stick without a serial number is recorded with an empty one (the device number
            // still tells it apart).
            serial: d.serial.clone().unwrap_or_default(),
            ..NewAttempt::default()
        };
        let Source::Set {
            set,
            checker,
            keys,
            expect,
            users,
            ..
        } = &mut self.source
        else {
            let image = self.source.first();
            let attempt = attempt_for(attempt, &image, None);
            let id = self.ledger.begin(&attempt)?;
            return Ok(id.map(|id| (image, id)));
        };
        let mut claims = LedgerClaims {
            ledger: &mut self.ledger,
            set,
            attempt,
        };
        let prepare = |user: &str| {
            let expect = (**expect).clone();
            let progress = &homestick_image::verify::NoProgress;
            Image::from_set(set, user, checker, keys.clone(), expect, progress).map(Arc::new)
        };
        let ui = &self.ui;
        let on_bad = |user: &str, e: &ImageError| {
            let why = match e {
                ImageError::Verify {
                    source: VerifyError::Untrusted { failures, .. },
                    ..
                } => homestick_image::verify::join(failures),
                e => e.to_string(),
            };
            ui.line(&format!(
                "homestick: user {user}: NOT TRUSTED, never handed out in this run: {why}"
            ));
        };
        let claimed = claim::claim_next(users, &mut claims, prepare, on_bad)?;
        Ok(claimed.map(|c| (c.image, c.row)))
    }
}

/// The ledger row of a stick that gets `image` (of `user` in a set).
pub(crate) fn attempt_for(
    mut a: NewAttempt,
    image: &Image,
    user: Option<&homestick_image::set::SetUser>,
) -> NewAttempt {
    let m = &image.manifest;
    a.customer = m.customer.id.clone();
    a.image_id = m.image_id.to_string();
    a.manifest_sha256 = hex(&image.manifest_sha256);
    if let Some(u) = user {
        a.user_id = Some(u.id.clone());
        a.user_name = Some(u.name.clone());
        // Names and strings only: serializing cannot fail (`ok()` never drops an error here).
        a.credentials = serde_json::to_string(&u.credentials).ok();
    }
    a
}

/// The station's ledger, as [`claim::claim_next`] claims users of `set` in it.
pub(crate) struct LedgerClaims<'a> {
    pub(crate) ledger: &'a mut Ledger,
    pub(crate) set: &'a StickSet,
    pub(crate) attempt: NewAttempt,
}

impl claim::Claims<Arc<Image>> for LedgerClaims<'_> {
    type Error = LedgerError;

    fn taken(&mut self) -> Result<BTreeSet<String>, LedgerError> {
        let set_id = self.set.index.set_id.to_string();
        Ok(self.ledger.taken(&set_id)?.into_iter().collect())
    }

    fn claim(&mut self, user: &str, image: &Arc<Image>) -> Result<Option<i64>, LedgerError> {
        let mut a = attempt_for(self.attempt.clone(), image, self.set.index.user(user));
        a.set_id = Some(self.set.index.set_id.to_string());
        a.user_id = Some(user.to_string());
        self.ledger.begin(&a)
    }
}
