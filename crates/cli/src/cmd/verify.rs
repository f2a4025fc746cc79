//! `homestick verify`: an image, a stick or a stick set against the trusted keys, with the
//! expectations (revocation list, policy, expiry) given.

use crate::cmd::verify_set::verify_all;
use crate::output;
use crate::output::out;
use crate::*;

/// What `verify` requires besides the signature: from --policy, or from the single options;
/// the revocation list of --revocations (besides a policy's own); expiry, always.
pub(crate) fn expectations(
    a: &VerifyArgs,
    keys: &[keys::TrustedKey],
) -> Result<Expectations, Failure> {
    let mut e = offline_expectations(a.revocations.as_deref(), a.min_revocation_version, keys)?;
    if let Some(path) = &a.policy {
        let b = homestick_image::files::read_bounded(path, 1 << 20)
            .map_err(|e| usage(format!("{}: {e}", path.display())))?;
        let p = BootPolicy::from_json(&b).map_err(|e| usage(format!("{}: {e}", path.display())))?;
        let from_policy = Expectations::from(&p);
        // Both lists apply: a key, image or user either one revokes is refused.
        let revoked = homestick_image::revocation::RevocationList::merge_opt(
            e.revoked.take(),
            from_policy.revoked.clone(),
        );
        return Ok(Expectations {
            revoked,
            now: e.now,
            ..from_policy
        });
    }
    e.customer_id = a.customer.clone();
    e.min_rollback_index = a.min_rollback;
    e.disk_guid = a.disk_guid;
    Ok(e)
}

pub(crate) fn describe_expectations(e: &Expectations) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &e.customer_id {
        parts.push(format!("customer {c}"));
    }
    if let Some(n) = e.min_rollback_index {
        parts.push(format!("rollback index >= {n}"));
    }
    if let Some(g) = &e.disk_guid {
        parts.push(format!("disk GUID {g}"));
    }
    parts.join(", ")
}

pub(crate) fn texts(findings: &[verify::Finding]) -> Vec<String> {
    findings.iter().map(ToString::to_string).collect()
}

/// Every finding as `{region, what, severity}`: the JSON made from the same values as the text.
pub(crate) fn findings_json(
    failures: &[verify::Finding],
    warnings: &[verify::Finding],
) -> serde_json::Value {
    let tagged = |f: &verify::Finding, severity: &str| json!({"region": f.region, "what": f.what, "severity": severity});
    failures
        .iter()
        .map(|f| tagged(f, "failure"))
        .chain(warnings.iter().map(|f| tagged(f, "warning")))
        .collect()
}

pub(crate) fn report_trusted(
    a: &VerifyArgs,
    t: &str,
    v: &verify::Verified,
    expect: &Expectations,
) -> Result<(), Failure> {
    let m = &v.manifest;
    let esp_files = || esp_paths(m);
    if a.json {
        return output::json_line(
            &json!({"target": t, "trusted": true, "image_id": m.image_id.to_string(), "customer": m.customer.id,
                   "boot_path": homestick_formats::shim::boot_path_of(esp_files()).map(|p| p.as_str()),
                   "version": m.version, "rollback_index": m.rollback_index, "key_id": v.key_id,
                   "key_comment": v.key_comment, "expires": m.expires,
                   "failures": [], "warnings": texts(&v.warnings), "findings": findings_json(&[], &v.warnings)}),
        );
    }
    for w in &v.warnings {
        out!("warning: {w}");
    }
    out!("TRUSTED: {t}");
    out!(
        "  image {} for {} ({}), version {}, rollback index {}",
        m.image_id,
        m.customer.id,
        m.customer.name,
        m.version,
        m.rollback_index
    );
    out!(
        "  signed by key {}{} ({})",
        v.key_id,
        // A key without a comment: nothing after its id.
        v.key_comment
            .as_deref()
            .map(|c| format!(" \"{c}\""))
            .unwrap_or_default(),
        v.key_source.display()
    );
    let trees = m.partitions.iter().filter(|p| p.verity.is_some()).count();
    if a.quick {
        out!(
            "  checked (--quick): LBA 0 and 1, signature, GPT entries, {trees} dm-verity superblock(s) and tree top(s) against the signed root hash"
        );
        out!("  not checked (--quick): partition contents, ESP files");
    } else {
        out!(
            "  checked: LBA 0 and 1, signature, GPT entries, {} partition hashes, {trees} dm-verity tree(s) block by block, {} ESP files, no unlisted file the boot chain reads",
            m.partitions.iter().filter(|p| p.sha256.is_some()).count(),
            m.esp().and_then(|p| p.files.as_ref()).map_or(0, Vec::len)
        );
    }
    out!(
        "  boot path: {}",
        homestick_formats::shim::describe_boot_path(esp_files())
    );
    if let Some(r) = &expect.revoked {
        out!(
            "  revocation list version {}: {} key(s), {} image(s), {} user(s) revoked; none of them is this one",
            r.version,
            r.key_ids.len(),
            r.image_ids.len(),
            r.users.len()
        );
    }
    match m.expires.as_deref() {
        Some(x) => out!("  expires {x}"),
        None => out!("  expires never"),
    }
    if !expect.binds_image() {
        out!("  not checked: customer, minimum rollback index, disk GUID (use --policy or --customer, --min-rollback, --disk-guid)");
    } else {
        out!("  policy: {}", describe_expectations(expect));
    }
    Ok(())
}

/// The paths of the ESP files a manifest lists.
pub(crate) fn esp_paths(
    m: &homestick_image::manifest::Manifest,
) -> impl Iterator<Item = &str> + Clone {
    m.esp()
        .and_then(|p| p.files.as_ref())
        .into_iter()
        .flatten()
        .map(|f| f.path.as_str())
}

pub(crate) fn verify_cmd(a: &VerifyArgs) -> Result<(), Failure> {
    let t = a.target.display().to_string();
    let fail_json = |msg: &str| {
        if a.json {
            // The command fails with `msg` whatever this write does.
            let _ = output::json_line(&json!({"target": t, "trusted": false, "error": msg}));
        }
    };
    let keyring = keys::load_keyring(&a.keyring).map_err(|e| {
        let m = e.to_string();
        fail_json(&m);
        Failure::Usage(m)
    })?;
    let expect = expectations(a, &keyring).inspect_err(|f| fail_json(&f.message()))?;
    let is_set = homestick_image::set::is_set(&a.target);
    if !is_set && (a.user.is_some() || a.all) {
        let m = format!(
            "{t}: --user and --all are for a stick set (a directory with set.json); this is not one"
        );
        fail_json(&m);
        return Err(Failure::Usage(m));
    }
    let rep = Reporter::new(a.json);
    let depth = if a.quick {
        verify::Depth::Quick
    } else {
        verify::Depth::Full
    };
    let (res, t) = if is_set {
        let set = open_set(&a.target, &keyring, a.json).inspect_err(|f| {
            if matches!(f, Failure::Usage(_)) {
                fail_json(&f.message())
            }
        })?;
        if a.all {
            rep.finish();
            return verify_all(a, &set, &keyring, &expect);
        }
        let Some(user) = &a.user else {
            let m = format!("{t}: a stick set: give --user ID or --all");
            fail_json(&m);
            return Err(Failure::Usage(m));
        };
        let t = format!("{t} (user {user})");
        let res = if a.quick {
            set.image(user)
                .map_err(|e| VerifyError::Unusable(e.to_string()))
                .and_then(|img| verify::verify_depth(&img, &keyring, &expect, depth, &rep))
        } else {
            homestick_image::set::SetVerifier::new()
                .verify(&set, user, &keyring, &expect, &rep)
                .map(|(v, _)| v)
        };
        (res, t)
    } else {
        let disk = open_target(&a.target).inspect_err(|f| fail_json(&f.message()))?;
        (
            verify::verify_depth(&disk, &keyring, &expect, depth, &rep),
            t.clone(),
        )
    };
    rep.finish();
    verdict(a, &t, res, &expect)
}

/// The verdict on `t`, as text or JSON; its exit code.
fn verdict(
    a: &VerifyArgs,
    t: &str,
    res: Result<verify::Verified, VerifyError>,
    expect: &Expectations,
) -> Result<(), Failure> {
    let fail_json = |msg: &str| {
        if a.json {
            // The command fails with `msg` whatever this write does.
            let _ = output::json_line(&json!({"target": t, "trusted": false, "error": msg}));
        }
    };
    match res {
        Ok(v) => report_trusted(a, t, &v, expect),
        Err(VerifyError::Untrusted { failures, manifest }) => {
            if a.json {
                output::json_line(
                    &json!({"target": t, "trusted": false, "image_id": manifest.as_ref().map(|m| m.image_id.to_string()),
                           "failures": texts(&failures), "warnings": [], "findings": findings_json(&failures, &[])}),
                )?;
            } else {
                out!("NOT TRUSTED: {t}");
                for f in &failures {
                    out!("  - {f}");
                }
            }
            Err(Failure::Untrusted)
        }
        Err(VerifyError::Unusable(m)) => {
            let m = format!("{t}: {m}");
            fail_json(&m);
            Err(Failure::Usage(m))
        }
        Err(e) => {
            let m = format!("{t}: {e}");
            fail_json(&m);
            Err(Failure::Usage(m))
        }
    }
}
