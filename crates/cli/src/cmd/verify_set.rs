//! `homestick verify SET`: a stick set's signed index and every user's image (`--all`).

use super::verify::texts;
use crate::output;
use crate::output::out;
use crate::*;

/// Open a stick set; its signature must verify with `keyring` (else exit 1, said on stdout:
/// as JSON with `json`).
pub(crate) fn open_set(
    dir: &Path,
    keyring: &[keys::TrustedKey],
    json: bool,
) -> Result<homestick_image::set::StickSet, Failure> {
    homestick_image::set::StickSet::open(dir, keyring).map_err(|e| {
        if e.untrusted() {
            if json {
                out!(
                    "{}",
                    json!({"target": dir.display().to_string(), "trusted": false, "failures": [e.to_string()]})
                );
            } else {
                out!("NOT TRUSTED: {e}");
            }
            Failure::Untrusted
        } else {
            usage(e)
        }
    })
}

/// `verify SET --all`: every user, one line each; exit 1 if any is not trusted.
pub(crate) fn verify_all(
    a: &VerifyArgs,
    set: &homestick_image::set::StickSet,
    keyring: &[keys::TrustedKey],
    expect: &Expectations,
) -> Result<(), Failure> {
    let checker = homestick_image::set::SetVerifier::new();
    let mut bad = 0usize;
    let mut rows = Vec::new();
    let total = set.index.users.len();
    if let Err(why) = set.check_shared() {
        let why = why.to_string();
        bad += 1;
        if !a.json {
            out!("NOT TRUSTED  shared image: {why}");
        }
        rows.push(json!({"shared": false, "failures": [why]}));
    }
    for (i, u) in set.index.users.iter().enumerate() {
        match checker.verify(set, &u.id, keyring, expect, &verify::NoProgress) {
            Ok((v, _)) => {
                if !a.json {
                    out!(
                        "[{}/{total}] trusted      {}  image {}",
                        i + 1,
                        u.id,
                        v.manifest.image_id
                    );
                }
                rows.push(json!({"user": u.id, "trusted": true, "image_id": v.manifest.image_id.to_string()}));
            }
            Err(e) => {
                bad += 1;
                let failures = match &e {
                    VerifyError::Untrusted { failures, .. } => texts(failures),
                    e => vec![e.to_string()],
                };
                if !a.json {
                    out!("[{}/{total}] NOT TRUSTED  {}", i + 1, u.id);
                    for f in &failures {
                        out!("    - {f}");
                    }
                }
                rows.push(json!({"user": u.id, "trusted": false, "failures": failures}));
            }
        }
    }
    let t = a.target.display().to_string();
    if a.json {
        output::json_line(
            &json!({"target": t, "set_id": set.index.set_id.to_string(), "trusted": bad == 0, "users": rows}),
        )?;
    } else if bad == 0 {
        out!(
            "TRUSTED: {t}: all {total} user(s) of set {} for {} ({})",
            set.index.set_id,
            set.index.customer.id,
            set.index.customer.name
        );
    } else {
        out!("NOT TRUSTED: {t}: {bad} of {total} user(s) failed");
    }
    if bad == 0 {
        Ok(())
    } else {
        Err(Failure::Untrusted)
    }
}
