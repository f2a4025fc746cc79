//! `homestick build`: one signed image, or a signed stick set from a roster.

use crate::output::out;
use crate::*;

pub(crate) fn build(a: &BuildArgs) -> Result<(), Failure> {
    let opts = build_options(a)?;
    let rep = Reporter::new(false);
    rep.cancel_on_interrupt();
    if let Some(roster) = &a.roster {
        let res = homestick_build::build_set(&opts, roster, &rep);
        rep.finish();
        let r = res?;
        report_warnings(&r.warnings);
        print_set(&r);
        return Ok(());
    }
    let res = homestick_build::build(&opts, &rep);
    rep.finish();
    let r = res?;
    report_warnings(&r.warnings);
    let m = &r.manifest;
    out!(
        "built {} ({} MiB) in {:.1} s",
        r.output.display(),
        r.size >> 20,
        r.seconds
    );
    out!("  image id  {}", m.image_id);
    out!("  customer  {} ({})", m.customer.id, m.customer.name);
    out!(
        "  version   {}, rollback index {}",
        m.version,
        m.rollback_index
    );
    out!("  key id    {}", m.key_id);
    Ok(())
}

/// The builder's options from the command line (passphrases read here).
fn build_options(a: &BuildArgs) -> Result<homestick_build::BuildOptions, Failure> {
    let epoch = source_date_epoch()?;
    let passphrase = secret_for(&a.key, &a.secret)?;
    let sb_secret = SecretArgs {
        passphrase_file: a.secure_boot_passphrase_file.clone(),
        passphrase_fd: a.secure_boot_passphrase_fd,
    };
    Ok(homestick_build::BuildOptions {
        profile: a.profile.clone(),
        base: a.base.clone(),
        key: a.key.clone(),
        passphrase,
        pkcs11_module: a.pkcs11_module.clone(),
        output: a.output.clone(),
        version: a.version.clone(),
        rollback_index: a.rollback_index,
        expires: a.expires.map(|e| e.at(epoch)),
        expiry_warning_days: a.expiry_warning_days,
        revocations: a.revocations.clone(),
        min_revocation_version: a.min_revocation_version,
        size: a.size,
        epoch,
        boot_verifier: a.boot_verifier.clone().or_else(default_boot_verifier),
        boot_keyring: a.boot_keyring.clone(),
        failure_delay_seconds: a.failure_delay,
        secure_boot: match (&a.secure_boot_key, &a.secure_boot_cert) {
            (Some(key), Some(cert)) => Some(homestick_build::SecureBootOptions {
                key: key.clone(),
                cert: cert.clone(),
                passphrase: secret_for(key, &sb_secret)?,
            }),
            _ => None,
        },
        boot_path: a.boot_path,
        shim: a.shim.clone(),
        cache: match (&a.cache_dir, a.no_cache) {
            (_, true) => None,
            (Some(d), false) => Some(d.clone()),
            (None, false) => homestick_build::hashtree::default_cache_dir(),
        },
    })
}

/// What a set build made.
fn print_set(r: &homestick_build::SetReport) {
    let n = r.index.users.len().max(1) as u64;
    out!(
        "built stick set {} for {} user(s) in {:.1} s",
        r.output.display(),
        r.index.users.len(),
        r.seconds
    );
    out!(
        "  on disk   {:.1} MiB: shared image {:.1} MiB (of {} MiB), users' parts {:.1} MiB ({:.1} KiB per user, largest {:.1} KiB)",
        (r.shared_bytes + r.parts_bytes) as f64 / 1048576.0,
        r.shared_bytes as f64 / 1048576.0,
        r.index.image_size >> 20,
        r.parts_bytes as f64 / 1048576.0,
        r.parts_bytes as f64 / n as f64 / 1024.0,
        r.largest_part as f64 / 1024.0
    );
    out!("  set id    {}", r.index.set_id);
    out!(
        "  customer  {} ({})",
        r.index.customer.id,
        r.index.customer.name
    );
    out!("  version   {}", r.index.version);
    out!("  key id    {}", r.index.key_id);
}

pub(crate) fn report_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("homestick: warning: {w}");
    }
}

impl From<homestick_build::BuildError> for Failure {
    /// Exit codes from the error's kind: not trusted 1, interrupted 130, the rest 2.
    fn from(e: homestick_build::BuildError) -> Failure {
        match e.kind() {
            homestick_build::ErrorKind::Untrusted => {
                eprintln!("homestick: error: {e}");
                Failure::Untrusted
            }
            homestick_build::ErrorKind::Interrupted => Failure::Interrupted(e.to_string()),
            _ => Failure::Usage(e.to_string()),
        }
    }
}
