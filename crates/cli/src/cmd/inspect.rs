//! `homestick inspect`: what an image or a stick set says about itself (not verified).

use crate::output::out;
use crate::*;

pub(crate) fn inspect(a: &InspectArgs) -> Result<(), Failure> {
    let t = a.target.display().to_string();
    let is_set = homestick_image::set::is_set(&a.target);
    if !is_set && a.user.is_some() {
        return Err(usage(format!(
            "{t}: --user is for a stick set (a directory with set.json); this is not one"
        )));
    }
    let disk: Box<dyn homestick_image::disk::Disk> = if is_set {
        let set = homestick_image::set::StickSet::open_unchecked(&a.target).map_err(usage)?;
        match &a.user {
            Some(u) => Box::new(set.image(u).map_err(usage)?),
            None => return inspect_set(a, &set),
        }
    } else {
        Box::new(open_target(&a.target)?)
    };
    let t = match &a.user {
        Some(u) => format!("{t} (user {u})"),
        None => t,
    };
    let (st, m) = read_manifest(&*disk, &t)?;
    let sig_note = if st.signature.len() == 64 {
        "present, not checked (use homestick verify)"
    } else {
        "MALFORMED"
    };
    if a.json {
        let mut v = serde_json::to_value(&m).map_err(usage)?;
        v["signature"] = json!(sig_note);
        v["target"] = json!(t);
        v["target_size"] = json!(disk.size());
        return crate::output::json_pretty(&v);
    }
    print_manifest(&t, &m, sig_note);
    match homestick_profile::read_profile_json(&*disk, &m) {
        Ok(doc) => {
            out!("  profile (not verified)");
            for line in doc.summary() {
                out!("    {line}");
            }
        }
        Err(e) => out!("  profile      unreadable: {e}"),
    }
    Ok(())
}

/// `inspect SET`: what set.json says (signature not checked).
pub(crate) fn inspect_set(
    a: &InspectArgs,
    set: &homestick_image::set::StickSet,
) -> Result<(), Failure> {
    let idx = &set.index;
    if a.json {
        let mut v = serde_json::to_value(idx).map_err(usage)?;
        v["signature"] = json!("not checked (use homestick verify --all)");
        return crate::output::json_pretty(&v);
    }
    let parts: u64 = idx.users.iter().map(|u| u.part_bytes).sum();
    out!("{} (stick set)", a.target.display());
    out!("  customer     {} ({})", idx.customer.id, idx.customer.name);
    out!("  version      {}", idx.version);
    out!("  set id       {}", idx.set_id);
    out!("  key id       {}", idx.key_id);
    out!("  signature    not checked (use homestick verify --all)");
    out!(
        "  image size   {} bytes ({} MiB); users' parts {} KiB together",
        idx.image_size,
        idx.image_size >> 20,
        parts >> 10
    );
    out!("  users        {}", idx.users.len());
    for u in &idx.users {
        out!(
            "    {:24} {:32} image {}  part {} KiB",
            u.id,
            u.name,
            u.image_id,
            u.part_bytes.div_ceil(1024)
        );
    }
    Ok(())
}

/// The manifest of `t` as text: who and what it is for, its partitions and ESP files.
fn print_manifest(t: &str, m: &Manifest, sig_note: &str) {
    out!("{t}");
    out!("  customer     {} ({})", m.customer.id, m.customer.name);
    if let Some(u) = &m.user {
        out!("  user         {} ({})", u.id, u.name);
    }
    out!(
        "  version      {} (rollback index {})",
        m.version,
        m.rollback_index
    );
    out!("  image id     {}", m.image_id);
    out!("  built        {}", m.build_time);
    if let Some(x) = &m.expires {
        out!("  expires      {x}");
    }
    out!("  base         {} {}", m.base.name, m.base.version);
    out!("  key id       {}", m.key_id);
    out!("  signature    {sig_note}");
    out!(
        "  disk GUID    {}, needs {} bytes ({} MiB)",
        m.disk.guid,
        m.disk.min_size_bytes,
        m.disk.min_size_bytes >> 20
    );
    out!("  partitions");
    for p in &m.partitions {
        out!(
            "    {} {:8} LBA {:>8}..={:<8} {:>6} MiB  {}",
            p.number,
            p.name,
            p.first_lba,
            p.last_lba,
            p.len() >> 20,
            match (&p.sha256, &p.verity) {
                (Some(h), _) => format!("sha256 {h}"),
                (None, Some(v)) => format!(
                    "dm-verity, tree in partition {}, root hash {}",
                    v.hash_partition, v.root_hash
                ),
                (None, None) => "files below".into(),
            }
        );
    }
    out!(
        "  boot path    {}",
        homestick_formats::shim::describe_boot_path(super::verify::esp_paths(m))
    );
    if let Some(files) = m.esp().and_then(|p| p.files.as_ref()) {
        out!("  ESP files");
        for f in files {
            out!(
                "    {:>10}  {}  {}",
                f.size,
                &f.sha256.to_string()[..16],
                f.path
            );
        }
    }
}
