//! `homestick roster`: check, fill and export a customer's roster.

use crate::output::out;
use crate::*;

/// Most bytes of a roster file.
pub(crate) const MAX_ROSTER_BYTES: u64 = 64 << 20;

/// The profile and the parsed roster; every problem as one line each, exit 2.
pub(crate) fn load_roster(
    profile: &Path,
    roster: &Path,
) -> Result<
    (
        homestick_profile::Profile,
        homestick_profile::roster::Roster,
    ),
    Failure,
> {
    let p = load_profile(profile)?;
    let bytes = homestick_image::files::read_bounded(roster, MAX_ROSTER_BYTES)
        .map_err(|e| usage(format!("{}: {e}", roster.display())))?;
    let r = homestick_profile::roster::Roster::parse(&bytes, &p)
        .map_err(|errors| roster_errors(roster, &errors))?;
    Ok((p, r))
}

/// `r` with the PEM files its certificate and key slots name read in (paths relative to the
/// roster's directory), for checking and exporting; a filled roster keeps the paths.
pub(crate) fn with_files(
    roster: &Path,
    r: &homestick_profile::roster::Roster,
) -> Result<homestick_profile::roster::Roster, Failure> {
    let mut r = r.clone();
    let errors = r.read_files(roster.parent().unwrap_or(Path::new(".")));
    if !errors.is_empty() {
        return Err(roster_errors(roster, &errors));
    }
    Ok(r)
}

pub(crate) fn roster_errors(
    roster: &Path,
    errors: &[homestick_profile::roster::RosterError],
) -> Failure {
    let lines: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {e}", roster.display()))
        .collect();
    usage(lines.join("\n"))
}

pub(crate) fn roster_check(profile: &Path, roster: &Path) -> Result<(), Failure> {
    let (p, r) = load_roster(profile, roster)?;
    let errors = with_files(roster, &r)?.check(&p, false);
    if !errors.is_empty() {
        return Err(roster_errors(roster, &errors));
    }
    out!(
        "roster {}: OK, {} user(s), every slot filled ({})",
        roster.display(),
        r.users.len(),
        r.slots
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

pub(crate) fn roster_fill(profile: &Path, roster: &Path, out: &Path) -> Result<(), Failure> {
    if out.exists() {
        return Err(usage(format!(
            "--out {}: exists; give a new file (a filled roster is never overwritten)",
            out.display()
        )));
    }
    let (p, mut r) = load_roster(profile, roster)?;
    let errors = with_files(roster, &r)?.check(&p, true);
    if !errors.is_empty() {
        return Err(roster_errors(roster, &errors));
    }
    let before = r.clone();
    r.fill(&p)
        .map_err(|errors| roster_errors(roster, &errors))?;
    let errors = with_files(roster, &r)?.check(&p, false);
    if !errors.is_empty() {
        return Err(roster_errors(roster, &errors));
    }
    let made: usize = r
        .users
        .iter()
        .zip(&before.users)
        .map(|(a, b)| {
            a.values
                .iter()
                .filter(|(k, v)| b.values.get(*k) != Some(v))
                .count()
        })
        .sum();
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let mut tmp = tempfile::Builder::new()
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(&dir)?;
        tmp.write_all(r.to_csv()?.as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist_noclobber(out).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| usage(format!("--out {}: {e}", out.display())))?;
    out!(
        "roster {}: {made} value(s) generated for {} user(s), written to {} (mode 0600; it holds the users' secrets)",
        roster.display(),
        r.users.len(),
        out.display()
    );
    Ok(())
}

pub(crate) fn roster_export(
    profile: &Path,
    roster: &Path,
    out: &Path,
    ha1: Option<&str>,
) -> Result<(), Failure> {
    if out.exists() {
        return Err(usage(format!(
            "--out {}: exists; give a new directory",
            out.display()
        )));
    }
    let (p, r) = load_roster(profile, roster)?;
    let r = with_files(roster, &r)?;
    let errors = r.check(&p, false);
    if !errors.is_empty() {
        return Err(roster_errors(roster, &errors));
    }
    let files =
        homestick_profile::roster::exports(&p, &r, ha1).map_err(|e| roster_errors(roster, &[e]))?;
    let parent = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    // Into a temporary directory beside it, renamed when complete: never a partial --out.
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = tempfile::Builder::new()
            .prefix(".homestick-export.")
            .tempdir_in(&parent)?;
        for f in &files {
            let mut w = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(if f.secret { 0o600 } else { 0o644 })
                .open(tmp.path().join(&f.name))?;
            w.write_all(f.data.as_bytes())?;
            w.sync_all()?;
        }
        fs::rename(tmp.keep(), out)
    };
    write().map_err(|e| usage(format!("--out {}: {e}", out.display())))?;
    out!(
        "roster {}: {} file(s) for the servers of {} user(s) in {}",
        roster.display(),
        files.len(),
        r.users.len(),
        out.display()
    );
    for f in &files {
        out!(
            "  {}{}",
            f.name,
            if f.secret {
                " (mode 0600: passwords or preshared keys)"
            } else {
                ""
            }
        );
    }
    Ok(())
}
