//! What the sticks of a run get: one image, verified once, or a stick set opened and its
//! first user verified in full.

use super::*;
use crate::output::out;

/// What the sticks get: one image, or a user's image of a set per stick.
pub(crate) enum Source {
    Image(Arc<Image>),
    Set {
        set: Box<StickSet>,
        checker: SetVerifier,
        keys: Vec<keys::TrustedKey>,
        /// What every user's image must also satisfy (revocation list, expiry).
        expect: Box<Expectations>,
        /// The user verified first (in full), for sizes and the confirmation.
        first: Arc<Image>,
        /// Who may be handed a stick (--user, revoked, did not verify in this run).
        users: claim::Users,
    },
}

impl Source {
    pub(crate) fn first(&self) -> Arc<Image> {
        match self {
            Source::Image(i) | Source::Set { first: i, .. } => Arc::clone(i),
        }
    }
}

/// Open a stick set: its signature, then the first user to hand out (or --user) in full,
/// which also checks the partitions every user shares.
pub(crate) fn open_set_source(
    a: &FlashArgs,
    keys: Vec<keys::TrustedKey>,
    expect: Expectations,
    ledger: &mut Ledger,
) -> Result<Source, Failure> {
    let set = crate::open_set(&a.image, &keys, false)?;
    let set_id = set.index.set_id.to_string();
    let taken: BTreeSet<String> = ledger.taken(&set_id).map_err(usage)?.into_iter().collect();
    let users = set_users(&set, a.user.clone(), &expect);
    if let Some(u) = &a.user {
        set.user(u).map_err(usage)?;
        if users.unavailable(u, &taken) == Some(claim::Unavailable::Taken) {
            return Err(usage(format!(
                "--user {u}: already has a stick being written, a good or a revoked one in the ledger (`homestick ledger user {u}`)"
            )));
        }
    }
    let first_user = match (&a.user, users.candidates(&taken).next()) {
        // A revoked --user is verified, and refused as NOT TRUSTED with the list's reason.
        (Some(u), _) => u.clone(),
        (None, Some(u)) => u.to_string(),
        (None, None) => {
            return Err(usage(format!(
                "{}: every user of this set already has a stick (see `homestick ledger list`)",
                a.image.display()
            )))
        }
    };
    let checker = SetVerifier::new();
    let progress = Reporter::new(false);
    eprintln!(
        "homestick: verifying stick set {} ({} users, {} without a stick yet)",
        a.image.display(),
        set.index.users.len(),
        set.index.users.len() - taken.len().min(set.index.users.len())
    );
    let r = Image::from_set(
        &set,
        &first_user,
        &checker,
        keys.clone(),
        expect.clone(),
        &progress,
    );
    progress.finish();
    let first = match r {
        Ok(i) => i,
        Err(ImageError::Verify {
            source: VerifyError::Untrusted { failures, .. },
            ..
        }) => {
            out!("NOT TRUSTED: {} (user {first_user})", a.image.display());
            for f in &failures {
                out!("  - {f}");
            }
            out!("nothing was written");
            return Err(Failure::Untrusted);
        }
        Err(e) => return Err(usage(e)),
    };
    eprintln!(
        "homestick: stick set {} for {} ({}), version {}: trusted",
        set.index.set_id, set.index.customer.id, set.index.customer.name, set.index.version
    );
    Ok(Source::Set {
        set: Box::new(set),
        checker,
        keys,
        expect: Box::new(expect),
        first: Arc::new(first),
        users,
    })
}

/// Verify the image before anything is written: exit 1 if not trusted, 2 if unusable.
pub(crate) fn open_image(
    path: &Path,
    keys: Vec<keys::TrustedKey>,
    expect: Expectations,
) -> Result<Image, Failure> {
    let progress = Reporter::new(false);
    eprintln!("homestick: verifying {}", path.display());
    let r = Image::open(path, keys, expect, &progress);
    progress.finish();
    match r {
        Ok(i) => {
            let m = &i.manifest;
            eprintln!(
                "homestick: image {} for {} ({}), version {}: trusted",
                m.image_id, m.customer.id, m.customer.name, m.version
            );
            Ok(i)
        }
        Err(ImageError::Verify {
            source: VerifyError::Untrusted { failures, .. },
            ..
        }) => {
            out!("NOT TRUSTED: {}", path.display());
            for f in &failures {
                out!("  - {f}");
            }
            out!("nothing was written");
            Err(Failure::Untrusted)
        }
        Err(e) => Err(usage(e)),
    }
}

/// The users of `set` this run may hand out: --user, and the ones the revocation list
/// revokes left out.
fn set_users(set: &StickSet, only: Option<String>, expect: &Expectations) -> claim::Users {
    let customer = &set.index.customer.id;
    let revoked =
        |id: &str| (expect.revoked.as_ref()).is_some_and(|r| r.revokes_user(customer, id));
    claim::Users {
        order: set.index.users.iter().map(|u| u.id.clone()).collect(),
        only,
        // A user the revocation list revokes is never handed a stick.
        revoked: (set.index.users.iter())
            .filter(|u| revoked(&u.id))
            .map(|u| u.id.clone())
            .collect(),
        bad: BTreeSet::new(),
    }
}
