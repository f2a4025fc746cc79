//! `homestick base build`: a base from Debian packages; where the boot verifier and
//! session programs are found.

use crate::output::out;
use crate::*;

/// The boot verifier `build` takes without --boot-verifier: homestick-boot beside this
/// program, else the one the .deb installs.
pub(crate) fn default_boot_verifier() -> Option<std::path::PathBuf> {
    beside_or_installed("homestick-boot", INSTALLED_BOOT_VERIFIER)
}

/// A helper program: `name` beside this program, else the installed one.
pub(crate) fn beside_or_installed(name: &str, installed: &str) -> Option<std::path::PathBuf> {
    let sibling = std::env::current_exe()
        .ok()
        .map(|e| e.with_file_name(name))
        .filter(|p| p.is_file());
    sibling.or_else(|| {
        let installed = Path::new(installed);
        installed.is_file().then(|| installed.to_path_buf())
    })
}

pub(crate) fn base_build(a: &cli::BaseBuildArgs) -> Result<(), Failure> {
    source_date_epoch()?;
    let session = match a.session.clone().or_else(|| beside_or_installed("homestick-session", INSTALLED_SESSION)) {
        Some(s) => s,
        None => {
            return Err(usage(format!(
                "--session: no homestick-session beside homestick nor at {INSTALLED_SESSION} (the .deb installs it there); in a source tree, `cargo xtask session` makes it (target/boot/x86_64-unknown-linux-gnu/release/homestick-session): pass that with --session"
            )))
        }
    };
    let opts = homestick_base::BaseBuildOptions {
        recipe: a.recipe.clone(),
        out: a.out.clone(),
        overlays: a.overlay.clone(),
        session,
        cache: a.cache.clone(),
        sources: a.sources.clone(),
    };
    let started = std::time::Instant::now();
    let report = homestick_base::build_base(&opts, &mut |step| {
        eprintln!(
            "homestick: base: {step} ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    })?;
    out!(
        "base {}: kernel {}, {} packages, system.img {} MiB, in {:.0} s",
        a.out.display(),
        report.kernel,
        report.packages,
        report.system_bytes >> 20,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

impl From<homestick_base::BaseError> for Failure {
    /// Exit 2 for every kind: a recipe, option or input file, or a tool or file of this
    /// machine (the message names which).
    fn from(e: homestick_base::BaseError) -> Failure {
        Failure::Usage(e.to_string())
    }
}
