//! `homestick profile`: check and render a customer's profile.

use crate::output::out;
use crate::*;

pub(crate) fn load_profile(dir: &Path) -> Result<homestick_profile::Profile, Failure> {
    let now = source_date_epoch()?;
    let p = homestick_profile::Profile::load(dir, now).map_err(usage)?;
    for w in &p.warnings {
        eprintln!(
            "homestick: warning: {}: {w}",
            dir.join("customer.toml").display()
        );
    }
    Ok(p)
}

pub(crate) fn profile_check(dir: &Path) -> Result<(), Failure> {
    let p = load_profile(dir)?;
    out!("profile {}: OK", dir.display());
    for line in p.doc.summary() {
        out!("  {line}");
    }
    Ok(())
}

pub(crate) fn profile_render(dir: &Path, out: &Path) -> Result<(), Failure> {
    let p = load_profile(dir)?;
    if out.exists() {
        let mut entries =
            fs::read_dir(out).map_err(|e| usage(format!("--out: {}: {e}", out.display())))?;
        if entries.next().is_some() {
            return Err(usage(format!(
                "--out: {} is not empty; give a new or empty directory",
                out.display()
            )));
        }
    }
    for f in &p.files {
        let target = out.join(&f.path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| usage(format!("creating {}: {e}", parent.display())))?;
        }
        fs::write(&target, &f.data)
            .map_err(|e| usage(format!("writing {}: {e}", target.display())))?;
    }
    out!("rendered {} files to {}", p.files.len(), out.display());
    for f in &p.files {
        out!("  {}", f.path);
    }
    Ok(())
}
