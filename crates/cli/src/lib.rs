//! The `homestick` command: argument handling, output and exit codes around the libraries.
//!
//! Exit codes: 0 success or trusted; 1 not trusted; 2 unusable input or arguments.

#![forbid(unsafe_code)]

pub mod cli;
mod flash;
mod ledger;
mod progress;
mod terminal;

use std::fs;
use std::path::Path;
use std::process::ExitCode;

use cli::{
    BaseCommand, BuildArgs, Cli, Command, InspectArgs, KeysCommand, ProfileCommand,
    RevocationsCommand, RosterCommand, SecretArgs, VerifyArgs,
};
use homestick_image::disk::FileDisk;
use homestick_image::keys;
use homestick_image::keys::Passphrase;
use homestick_image::manifest::Manifest;
use homestick_image::policy::{BootPolicy, Expectations};
use homestick_image::revocation::RevocationList;
use homestick_image::verify::{self, VerifyError};
use progress::Reporter;
use serde_json::json;

/// How a command failed.
#[derive(Debug)]
enum Failure {
    /// Unusable input or arguments: exit 2.
    Usage(String),
    /// Not trusted: exit 1 (details already printed).
    Untrusted,
    /// Stopped by Ctrl-C: exit 130, like a shell.
    Interrupted(String),
    /// Some sticks failed: exit 1 (details already printed).
    SticksFailed,
}

impl Failure {
    /// The message, for --json output.
    fn message(&self) -> String {
        match self {
            Failure::Usage(m) | Failure::Interrupted(m) => m.clone(),
            Failure::Untrusted => "not trusted".into(),
            Failure::SticksFailed => "a stick failed".into(),
        }
    }
}

/// Unusable input or arguments, with the message that names the file, field or option.
fn usage(msg: impl std::fmt::Display) -> Failure {
    Failure::Usage(msg.to_string())
}

/// Run a parsed command line and return the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Keys(KeysCommand::Generate {
            out,
            passphrase_file,
            passphrase_fd,
            ask_passphrase,
            pkcs11,
            module,
            pin_file,
            pin_fd,
        }) => match pkcs11 {
            Some(uri) => keys_generate_pkcs11(
                &out,
                &uri,
                module.as_deref(),
                &SecretArgs {
                    passphrase_file: pin_file,
                    passphrase_fd: pin_fd,
                },
            ),
            None => keys_generate(
                &out,
                &SecretArgs {
                    passphrase_file,
                    passphrase_fd,
                },
                ask_passphrase,
            ),
        },
        Command::Keys(KeysCommand::SecureBoot { out, name }) => keys_secure_boot(&out, &name),
        Command::Build(args) => build(&args),
        Command::Verify(args) => verify_cmd(&args),
        Command::Inspect(args) => inspect(&args),
        Command::Base(BaseCommand::Build(args)) => base_build(&args),
        Command::Profile(ProfileCommand::Check { dir }) => profile_check(&dir),
        Command::Profile(ProfileCommand::Render { dir, out }) => profile_render(&dir, &out),
        Command::Roster(RosterCommand::Check { profile, roster }) => {
            roster_check(&profile, &roster)
        }
        Command::Roster(RosterCommand::Fill {
            profile,
            roster,
            out,
        }) => roster_fill(&profile, &roster, &out),
        Command::Roster(RosterCommand::Export {
            profile,
            roster,
            out,
            ha1,
        }) => roster_export(&profile, &roster, &out, ha1.as_deref()),
        Command::Flash(args) => flash::flash(&args),
        Command::Sticks(args) => flash::sticks(&args),
        Command::Ledger(args) => ledger::run(&args),
        Command::Revocations(c) => revocations(&c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Untrusted | Failure::SticksFailed) => ExitCode::from(1),
        Err(Failure::Usage(msg)) => {
            eprintln!("homestick: error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Interrupted(msg)) => {
            eprintln!("homestick: {msg}");
            ExitCode::from(130)
        }
    }
}

/// A passphrase from --passphrase-file or --passphrase-fd, if one was given.
fn given_secret(s: &SecretArgs) -> Result<Option<Passphrase>, Failure> {
    match (&s.passphrase_file, s.passphrase_fd) {
        (Some(f), _) => keys::read_passphrase_file(f).map(Some).map_err(usage),
        (None, Some(fd)) => keys::read_passphrase_fd(fd).map(Some).map_err(usage),
        (None, None) => Ok(None),
    }
}

/// Ask on the terminal (without echo); `None` if there is no terminal.
fn ask(prompt: &str) -> Result<Option<Passphrase>, Failure> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let pw = rpassword::prompt_password(prompt)
        .map_err(|e| usage(format!("reading the passphrase from the terminal: {e}")))?;
    if pw.is_empty() {
        return Err(usage("the passphrase is empty"));
    }
    Ok(Some(Passphrase::new(pw.into_bytes())))
}

/// The passphrase for the private key file `key`: given, else asked on a terminal when the
/// key is encrypted, else none (an encrypted key then fails with the options that give one).
fn key_passphrase(s: &SecretArgs, key: &Path) -> Result<Option<Passphrase>, Failure> {
    if let Some(p) = given_secret(s)? {
        return Ok(Some(p));
    }
    if keys::is_encrypted(key) {
        return ask(&format!("Passphrase for {}: ", key.display()));
    }
    Ok(None)
}

/// `--out DIR/NAME`: DIR must exist (checked before a key is made, in a token or not).
fn out_dir_exists(out: &Path) -> Result<(), Failure> {
    match out.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) if !parent.is_dir() => Err(usage(format!(
            "--out: directory {} does not exist",
            parent.display()
        ))),
        _ => Ok(()),
    }
}

fn keys_generate(out: &Path, secret: &SecretArgs, ask_twice: bool) -> Result<(), Failure> {
    let pw = match given_secret(secret)? {
        Some(p) => Some(p),
        None if ask_twice => {
            let first = ask(&format!("New passphrase for {}.key: ", out.display()))?
                .ok_or_else(|| usage("--ask-passphrase needs a terminal; use --passphrase-file or --passphrase-fd"))?;
            let again = ask("The same passphrase again: ")?
                .ok_or_else(|| usage("--ask-passphrase needs a terminal"))?;
            if first != again {
                return Err(usage("the two passphrases differ; nothing was written"));
            }
            Some(first)
        }
        None => None,
    };
    out_dir_exists(out)?;
    let g = homestick_build::keygen::ed25519(out, pw.as_ref().map(Passphrase::as_bytes))
        .map_err(usage)?;
    println!(
        "private key: {} (mode 0600{})",
        g.private.display(),
        if pw.is_some() { ", encrypted" } else { "" }
    );
    println!("public key:  {}", g.public.display());
    println!("key id:      {}", g.id);
    Ok(())
}

fn keys_generate_pkcs11(
    out: &Path,
    uri: &str,
    module: Option<&Path>,
    pin: &SecretArgs,
) -> Result<(), Failure> {
    use ed25519_dalek::pkcs8::EncodePublicKey;
    out_dir_exists(out)?;
    let public_path = homestick_build::keygen::new_key_files(out, &["pub"]).map_err(usage)?;
    let pin = secret_for(uri, pin)?;
    let public = homestick_build::pkcs11::generate_ed25519(uri, module, pin.as_ref())
        .map_err(|e| usage(format!("--pkcs11 {e}")))?;
    let pem = public
        .to_public_key_pem(Default::default())
        .map_err(|e| usage(format!("encoding the public key: {e}")))?;
    homestick_build::keygen::write_public(&public_path[0], pem.as_bytes()).map_err(usage)?;
    println!("private key: in the token, not extractable: {uri}");
    println!("public key:  {}", public_path[0].display());
    println!("key id:      {}", keys::key_id(&public));
    Ok(())
}

/// What an offline check requires besides the signature: the signed revocation list (its
/// signature checked against `keys`), and expiry against this computer's clock.
pub(crate) fn offline_expectations(
    revocations: Option<&Path>,
    min_version: u64,
    keys: &[keys::TrustedKey],
) -> Result<Expectations, Failure> {
    let now = homestick_image::time::now();
    let revoked = match revocations {
        Some(p) => Some(
            RevocationList::load_signed(p, keys, now, min_version)
                .map_err(usage)?
                .0,
        ),
        None => None,
    };
    Ok(Expectations {
        revoked,
        now: Some(homestick_image::time::now()),
        expiry_warning_days: homestick_image::policy::DEFAULT_EXPIRY_WARNING_DAYS,
        ..Expectations::none()
    })
}

fn revocations(c: &RevocationsCommand) -> Result<(), Failure> {
    match c {
        RevocationsCommand::Add {
            list,
            key_ids,
            image_ids,
            users,
            keyring,
        } => {
            let mut l = list_to_extend(list, keyring.as_deref())?;
            let before = l.len();
            l.key_ids
                .extend(key_ids.iter().map(|k| k.trim().to_ascii_lowercase()));
            l.image_ids
                .extend(image_ids.iter().map(|k| k.trim().to_ascii_lowercase()));
            for u in users {
                let (customer, id) = u.split_once('/').ok_or_else(|| {
                    usage(format!(
                        "--user {u:?}: give CUSTOMER/USER, e.g. stadt-musterhausen/anna.schmidt"
                    ))
                })?;
                l.users.insert(homestick_image::revocation::RevokedUser {
                    customer: customer.into(),
                    id: id.into(),
                });
            }
            if l.len() == before {
                return Err(usage("nothing new to revoke: give --key-id, --image-id or --user (each not listed yet)"));
            }
            l.version += 1;
            // What was added must be well-formed, like every list read.
            let l = RevocationList::parse(&l.to_bytes())
                .map_err(|e| usage(format!("{}: {e}", list.display())))?;
            write_list(list, &l)?;
            println!(
                "revocation list {}: version {}, {} key(s), {} image(s), {} user(s)",
                list.display(),
                l.version,
                l.key_ids.len(),
                l.image_ids.len(),
                l.users.len()
            );
            println!(
                "sign it: homestick revocations sign {} --key PROVIDER.key",
                list.display()
            );
            Ok(())
        }
        RevocationsCommand::Sign {
            list,
            key,
            secret,
            pkcs11_module,
        } => {
            let bytes =
                homestick_image::files::read_bounded(list, homestick_image::revocation::MAX_BYTES)
                    .map_err(|e| usage(format!("{}: {e}", list.display())))?;
            let l = RevocationList::parse(&bytes)
                .map_err(|e| usage(format!("{}: {e}", list.display())))?;
            let signer = open_signer(key, secret, pkcs11_module.as_deref())?;
            let sig = signer.sign(&bytes).map_err(usage)?;
            let sp = homestick_image::revocation::sig_path(list);
            homestick_image::files::write_atomic(&sp, &sig)
                .map_err(|e| usage(format!("{}: {e}", sp.display())))?;
            println!(
                "signed {} (version {}) with key {}: {}",
                list.display(),
                l.version,
                keys::key_id(&signer.public()),
                sp.display()
            );
            Ok(())
        }
        RevocationsCommand::Show { list, keyring } => {
            let ring = keys::load_keyring(keyring).map_err(usage)?;
            let (l, by) = RevocationList::load_signed(list, &ring, homestick_image::time::now(), 0)
                .map_err(usage)?;
            println!(
                "revocation list {}: version {}, signed by key {by}",
                list.display(),
                l.version
            );
            for k in &l.key_ids {
                println!("  key    {k}");
            }
            for i in &l.image_ids {
                println!("  image  {i}");
            }
            for u in &l.users {
                println!("  user   {}/{}", u.customer, u.id);
            }
            Ok(())
        }
    }
}

/// The list `path` to add entries to: a new one if there is none; an existing one only if
/// its signature verifies with `keyring` (a list planted or changed on disk, unsigned, is
/// never extended and signed again).
pub(crate) fn list_to_extend(
    path: &Path,
    keyring: Option<&Path>,
) -> Result<RevocationList, Failure> {
    if !path.exists() {
        return Ok(RevocationList::default());
    }
    let ring = keyring.ok_or_else(|| {
        usage(format!(
            "{} exists: give --keyring, against which its signature is checked before it is extended",
            path.display()
        ))
    })?;
    let ring = keys::load_keyring(ring).map_err(usage)?;
    RevocationList::load_signed(path, &ring, homestick_image::time::now(), 0)
        .map(|(l, _)| l)
        .map_err(|e| {
            usage(format!(
                "{e}; a list is only extended from its signed version (restore it, or start a new list)"
            ))
        })
}

/// Write a revocation list whole, and remove its signature, which no longer matches.
pub(crate) fn write_list(path: &Path, l: &RevocationList) -> Result<(), Failure> {
    homestick_image::files::write_atomic(path, &l.to_bytes())
        .map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let sp = homestick_image::revocation::sig_path(path);
    match fs::remove_file(&sp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(usage(format!(
            "{}: cannot remove the old signature: {e}",
            sp.display()
        ))),
    }
}

/// The image-signing key named by `--key`: a PEM file, or a `pkcs11:` URI.
fn open_signer(
    key: &str,
    secret: &SecretArgs,
    module: Option<&Path>,
) -> Result<homestick_build::signer::Signer, Failure> {
    let pw = secret_for(key, secret)?;
    homestick_build::signer::Signer::open(key, pw.as_ref(), module).map_err(usage)
}

fn keys_secure_boot(out: &Path, name: &str) -> Result<(), Failure> {
    out_dir_exists(out)?;
    let g = homestick_build::keygen::secure_boot(out, name).map_err(usage)?;
    println!("private key: {} (RSA 2048, mode 0600)", g.key.display());
    println!(
        "certificate: {} (PEM), {} (DER, for firmware setup menus)",
        g.crt.display(),
        g.cer.display()
    );
    Ok(())
}

fn source_date_epoch() -> Result<i64, Failure> {
    homestick_build::build_epoch().map_err(usage)
}

fn load_profile(dir: &Path) -> Result<homestick_profile::Profile, Failure> {
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

fn profile_check(dir: &Path) -> Result<(), Failure> {
    let p = load_profile(dir)?;
    println!("profile {}: OK", dir.display());
    for line in p.doc.summary() {
        println!("  {line}");
    }
    Ok(())
}

/// Most bytes of a roster file.
const MAX_ROSTER_BYTES: u64 = 64 << 20;

/// The profile and the parsed roster; every problem as one line each, exit 2.
fn load_roster(
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
fn with_files(
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

fn roster_errors(roster: &Path, errors: &[homestick_profile::roster::RosterError]) -> Failure {
    let lines: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {e}", roster.display()))
        .collect();
    usage(lines.join("\n"))
}

fn roster_check(profile: &Path, roster: &Path) -> Result<(), Failure> {
    let (p, r) = load_roster(profile, roster)?;
    let errors = with_files(roster, &r)?.check(&p, false);
    if !errors.is_empty() {
        return Err(roster_errors(roster, &errors));
    }
    println!(
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

fn roster_fill(profile: &Path, roster: &Path, out: &Path) -> Result<(), Failure> {
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
        tmp.write_all(r.to_csv().as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist_noclobber(out).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| usage(format!("--out {}: {e}", out.display())))?;
    println!(
        "roster {}: {made} value(s) generated for {} user(s), written to {} (mode 0600; it holds the users' secrets)",
        roster.display(),
        r.users.len(),
        out.display()
    );
    Ok(())
}

fn roster_export(
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
    println!(
        "roster {}: {} file(s) for the servers of {} user(s) in {}",
        roster.display(),
        files.len(),
        r.users.len(),
        out.display()
    );
    for f in &files {
        println!(
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

fn profile_render(dir: &Path, out: &Path) -> Result<(), Failure> {
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
    println!("rendered {} files to {}", p.files.len(), out.display());
    for f in &p.files {
        println!("  {}", f.path);
    }
    Ok(())
}

/// Where the .deb installs the static boot verifier; `build` takes it when none is given and
/// none lies beside the program.
pub const INSTALLED_BOOT_VERIFIER: &str = "/usr/lib/homestick/homestick-boot";

/// The boot verifier `build` takes without --boot-verifier: homestick-boot beside this
/// program, else the one the .deb installs.
fn default_boot_verifier() -> Option<std::path::PathBuf> {
    beside_or_installed("homestick-boot", INSTALLED_BOOT_VERIFIER)
}

/// Where the .deb installs the session program that `base build` puts into bases.
pub const INSTALLED_SESSION: &str = "/usr/lib/homestick/homestick-session";

/// A helper program: `name` beside this program, else the installed one.
fn beside_or_installed(name: &str, installed: &str) -> Option<std::path::PathBuf> {
    let sibling = std::env::current_exe()
        .ok()
        .map(|e| e.with_file_name(name))
        .filter(|p| p.is_file());
    sibling.or_else(|| {
        let installed = Path::new(installed);
        installed.is_file().then(|| installed.to_path_buf())
    })
}

fn base_build(a: &cli::BaseBuildArgs) -> Result<(), Failure> {
    source_date_epoch()?;
    let session = match a.session.clone().or_else(|| beside_or_installed("homestick-session", INSTALLED_SESSION)) {
        Some(s) => s,
        None => {
            return Err(usage(format!(
                "--session: no homestick-session beside homestick nor at {INSTALLED_SESSION} (the .deb installs it there); in a source tree, `cargo xtask session` makes it (target/boot/x86_64-unknown-linux-gnu/release/homestick-session): pass that with --session"
            )))
        }
    };
    let opts = homestick_build::basebuild::BaseBuildOptions {
        recipe: a.recipe.clone(),
        out: a.out.clone(),
        overlays: a.overlay.clone(),
        session,
        cache: a.cache.clone(),
        sources: a.sources.clone(),
    };
    let started = std::time::Instant::now();
    let report = homestick_build::basebuild::build_base(&opts, &mut |step| {
        eprintln!(
            "homestick: base: {step} ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    })
    .map_err(build_failure)?;
    println!(
        "base {}: kernel {}, {} packages, system.img {} MiB, in {:.0} s",
        a.out.display(),
        report.kernel,
        report.packages,
        report.system_bytes >> 20,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The passphrase or PIN for `--key`: given, else asked on a terminal when the key file is
/// encrypted or the key is in a token.
fn secret_for(key: &str, s: &SecretArgs) -> Result<Option<Passphrase>, Failure> {
    if key.starts_with("pkcs11:") {
        if let Some(p) = given_secret(s)? {
            return Ok(Some(p));
        }
        if key.contains("pin-source=") {
            return Ok(None);
        }
        return ask(&format!("User PIN for {key}: "));
    }
    key_passphrase(s, Path::new(key))
}

fn build(a: &BuildArgs) -> Result<(), Failure> {
    let epoch = source_date_epoch()?;
    let passphrase = secret_for(&a.key, &a.secret)?;
    let sb_secret = SecretArgs {
        passphrase_file: a.secure_boot_passphrase_file.clone(),
        passphrase_fd: a.secure_boot_passphrase_fd,
    };
    let opts = homestick_build::BuildOptions {
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
        cache: match (&a.cache_dir, a.no_cache) {
            (_, true) => None,
            (Some(d), false) => Some(d.clone()),
            (None, false) => homestick_build::hashtree::default_cache_dir(),
        },
    };
    let rep = Reporter::new(false);
    rep.cancel_on_interrupt();
    if let Some(roster) = &a.roster {
        let res = homestick_build::build_set(&opts, roster, &rep);
        rep.finish();
        return match res {
            Ok(r) => {
                report_warnings(&r.warnings);
                let n = r.index.users.len().max(1) as u64;
                println!(
                    "built stick set {} for {} user(s) in {:.1} s",
                    r.output.display(),
                    r.index.users.len(),
                    r.seconds
                );
                println!(
                    "  on disk   {:.1} MiB: shared image {:.1} MiB (of {} MiB), users' parts {:.1} MiB ({:.1} KiB per user, largest {:.1} KiB)",
                    (r.shared_bytes + r.parts_bytes) as f64 / 1048576.0,
                    r.shared_bytes as f64 / 1048576.0,
                    r.index.image_size >> 20,
                    r.parts_bytes as f64 / 1048576.0,
                    r.parts_bytes as f64 / n as f64 / 1024.0,
                    r.largest_part as f64 / 1024.0
                );
                println!("  set id    {}", r.index.set_id);
                println!(
                    "  customer  {} ({})",
                    r.index.customer.id, r.index.customer.name
                );
                println!("  version   {}", r.index.version);
                println!("  key id    {}", r.index.key_id);
                Ok(())
            }
            Err(e) => Err(build_failure(e)),
        };
    }
    let res = homestick_build::build(&opts, &rep);
    rep.finish();
    match res {
        Ok(r) => {
            report_warnings(&r.warnings);
            let m = &r.manifest;
            println!(
                "built {} ({} MiB) in {:.1} s",
                r.output.display(),
                r.size >> 20,
                r.seconds
            );
            println!("  image id  {}", m.image_id);
            println!("  customer  {} ({})", m.customer.id, m.customer.name);
            println!(
                "  version   {}, rollback index {}",
                m.version, m.rollback_index
            );
            println!("  key id    {}", m.key_id);
            Ok(())
        }
        Err(e) => Err(build_failure(e)),
    }
}

fn report_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("homestick: warning: {w}");
    }
}

fn build_failure(e: homestick_build::BuildError) -> Failure {
    match e.kind() {
        homestick_build::ErrorKind::Untrusted => {
            eprintln!("homestick: error: {e}");
            Failure::Untrusted
        }
        homestick_build::ErrorKind::Interrupted => Failure::Interrupted(e.to_string()),
        _ => Failure::Usage(e.to_string()),
    }
}

fn open_target(path: &Path) -> Result<FileDisk, Failure> {
    FileDisk::open(path).map_err(|e| usage(format!("{}: cannot open: {e}", path.display())))
}

/// The signed statement and its parsed manifest, signature not checked (`t` names the target
/// in messages).
fn read_manifest(
    disk: &dyn homestick_image::disk::Disk,
    t: &str,
) -> Result<(verify::Statement, Manifest), Failure> {
    let st = verify::read_statement(disk).map_err(|e| usage(format!("{t}: {e}")))?;
    let m = Manifest::parse(&st.manifest).map_err(|e| usage(format!("{t}: {e}")))?;
    Ok((st, m))
}

/// What `verify` requires besides the signature: from --policy, or from the single options;
/// the revocation list of --revocations (besides a policy's own); expiry, always.
fn expectations(a: &VerifyArgs, keys: &[keys::TrustedKey]) -> Result<Expectations, Failure> {
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

fn describe_expectations(e: &Expectations) -> String {
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

fn texts(findings: &[verify::Finding]) -> Vec<String> {
    findings.iter().map(ToString::to_string).collect()
}

/// Every finding as `{region, what, severity}`: the JSON made from the same values as the text.
fn findings_json(failures: &[verify::Finding], warnings: &[verify::Finding]) -> serde_json::Value {
    let tagged = |f: &verify::Finding, severity: &str| json!({"region": f.region, "what": f.what, "severity": severity});
    failures
        .iter()
        .map(|f| tagged(f, "failure"))
        .chain(warnings.iter().map(|f| tagged(f, "warning")))
        .collect()
}

fn report_trusted(a: &VerifyArgs, t: &str, v: &verify::Verified, expect: &Expectations) {
    let m = &v.manifest;
    if a.json {
        println!(
            "{}",
            json!({"target": t, "trusted": true, "image_id": m.image_id.to_string(), "customer": m.customer.id,
                   "version": m.version, "rollback_index": m.rollback_index, "key_id": v.key_id,
                   "key_comment": v.key_comment, "expires": m.expires,
                   "failures": [], "warnings": texts(&v.warnings), "findings": findings_json(&[], &v.warnings)})
        );
        return;
    }
    for w in &v.warnings {
        println!("warning: {w}");
    }
    println!("TRUSTED: {t}");
    println!(
        "  image {} for {} ({}), version {}, rollback index {}",
        m.image_id, m.customer.id, m.customer.name, m.version, m.rollback_index
    );
    println!(
        "  signed by key {}{} ({})",
        v.key_id,
        v.key_comment
            .as_deref()
            .map(|c| format!(" \"{c}\""))
            .unwrap_or_default(),
        v.key_source.display()
    );
    let trees = m.partitions.iter().filter(|p| p.verity.is_some()).count();
    if a.quick {
        println!(
            "  checked (--quick): LBA 0 and 1, signature, GPT entries, {trees} dm-verity superblock(s) and tree top(s) against the signed root hash"
        );
        println!("  not checked (--quick): partition contents, ESP files");
    } else {
        println!(
            "  checked: LBA 0 and 1, signature, GPT entries, {} partition hashes, {trees} dm-verity tree(s) block by block, {} ESP files, no unlisted file the boot chain reads",
            m.partitions.iter().filter(|p| p.sha256.is_some()).count(),
            m.esp().and_then(|p| p.files.as_ref()).map_or(0, Vec::len)
        );
    }
    if let Some(r) = &expect.revoked {
        println!(
            "  revocation list version {}: {} key(s), {} image(s), {} user(s) revoked; none of them is this one",
            r.version,
            r.key_ids.len(),
            r.image_ids.len(),
            r.users.len()
        );
    }
    match m.expires.as_deref() {
        Some(x) => println!("  expires {x}"),
        None => println!("  expires never"),
    }
    if !expect.binds_image() {
        println!("  not checked: customer, minimum rollback index, disk GUID (use --policy or --customer, --min-rollback, --disk-guid)");
    } else {
        println!("  policy: {}", describe_expectations(expect));
    }
}

fn verify_cmd(a: &VerifyArgs) -> Result<(), Failure> {
    let t = a.target.display().to_string();
    let fail_json = |msg: &str| {
        if a.json {
            println!("{}", json!({"target": t, "trusted": false, "error": msg}));
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
    match res {
        Ok(v) => {
            report_trusted(a, &t, &v, &expect);
            Ok(())
        }
        Err(VerifyError::Untrusted { failures, manifest }) => {
            if a.json {
                println!(
                    "{}",
                    json!({"target": t, "trusted": false, "image_id": manifest.as_ref().map(|m| m.image_id.to_string()),
                           "failures": texts(&failures), "warnings": [], "findings": findings_json(&failures, &[])})
                );
            } else {
                println!("NOT TRUSTED: {t}");
                for f in &failures {
                    println!("  - {f}");
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

/// Open a stick set; its signature must verify with `keyring` (else exit 1, said on stdout:
/// as JSON with `json`).
fn open_set(
    dir: &Path,
    keyring: &[keys::TrustedKey],
    json: bool,
) -> Result<homestick_image::set::StickSet, Failure> {
    homestick_image::set::StickSet::open(dir, keyring).map_err(|e| {
        if e.untrusted() {
            if json {
                println!(
                    "{}",
                    json!({"target": dir.display().to_string(), "trusted": false, "failures": [e.to_string()]})
                );
            } else {
                println!("NOT TRUSTED: {e}");
            }
            Failure::Untrusted
        } else {
            usage(e)
        }
    })
}

/// `verify SET --all`: every user, one line each; exit 1 if any is not trusted.
fn verify_all(
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
        bad += 1;
        if !a.json {
            println!("NOT TRUSTED  shared image: {why}");
        }
        rows.push(json!({"shared": false, "failures": [why]}));
    }
    for (i, u) in set.index.users.iter().enumerate() {
        match checker.verify(set, &u.id, keyring, expect, &verify::NoProgress) {
            Ok((v, _)) => {
                if !a.json {
                    println!(
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
                    println!("[{}/{total}] NOT TRUSTED  {}", i + 1, u.id);
                    for f in &failures {
                        println!("    - {f}");
                    }
                }
                rows.push(json!({"user": u.id, "trusted": false, "failures": failures}));
            }
        }
    }
    let t = a.target.display().to_string();
    if a.json {
        println!(
            "{}",
            json!({"target": t, "set_id": set.index.set_id.to_string(), "trusted": bad == 0, "users": rows})
        );
    } else if bad == 0 {
        println!(
            "TRUSTED: {t}: all {total} user(s) of set {} for {} ({})",
            set.index.set_id, set.index.customer.id, set.index.customer.name
        );
    } else {
        println!("NOT TRUSTED: {t}: {bad} of {total} user(s) failed");
    }
    if bad == 0 {
        Ok(())
    } else {
        Err(Failure::Untrusted)
    }
}

fn inspect(a: &InspectArgs) -> Result<(), Failure> {
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
        println!("{}", serde_json::to_string_pretty(&v).map_err(usage)?);
        return Ok(());
    }
    println!("{t}");
    println!("  customer     {} ({})", m.customer.id, m.customer.name);
    if let Some(u) = &m.user {
        println!("  user         {} ({})", u.id, u.name);
    }
    println!(
        "  version      {} (rollback index {})",
        m.version, m.rollback_index
    );
    println!("  image id     {}", m.image_id);
    println!("  built        {}", m.build_time);
    if let Some(x) = &m.expires {
        println!("  expires      {x}");
    }
    println!("  base         {} {}", m.base.name, m.base.version);
    println!("  key id       {}", m.key_id);
    println!("  signature    {sig_note}");
    println!(
        "  disk GUID    {}, needs {} bytes ({} MiB)",
        m.disk.guid,
        m.disk.min_size_bytes,
        m.disk.min_size_bytes >> 20
    );
    println!("  partitions");
    for p in &m.partitions {
        println!(
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
    if let Some(files) = m.esp().and_then(|p| p.files.as_ref()) {
        println!("  ESP files");
        for f in files {
            println!(
                "    {:>10}  {}  {}",
                f.size,
                &f.sha256.to_string()[..16],
                f.path
            );
        }
    }
    match homestick_profile::read_profile_json(&*disk, &m) {
        Ok(doc) => {
            println!("  profile (not verified)");
            for line in doc.summary() {
                println!("    {line}");
            }
        }
        Err(e) => println!("  profile      unreadable: {e}"),
    }
    Ok(())
}

/// `inspect SET`: what set.json says (signature not checked).
fn inspect_set(a: &InspectArgs, set: &homestick_image::set::StickSet) -> Result<(), Failure> {
    let idx = &set.index;
    if a.json {
        let mut v = serde_json::to_value(idx).map_err(usage)?;
        v["signature"] = json!("not checked (use homestick verify --all)");
        println!("{}", serde_json::to_string_pretty(&v).map_err(usage)?);
        return Ok(());
    }
    let parts: u64 = idx.users.iter().map(|u| u.part_bytes).sum();
    println!("{} (stick set)", a.target.display());
    println!("  customer     {} ({})", idx.customer.id, idx.customer.name);
    println!("  version      {}", idx.version);
    println!("  set id       {}", idx.set_id);
    println!("  key id       {}", idx.key_id);
    println!("  signature    not checked (use homestick verify --all)");
    println!(
        "  image size   {} bytes ({} MiB); users' parts {} KiB together",
        idx.image_size,
        idx.image_size >> 20,
        parts >> 10
    );
    println!("  users        {}", idx.users.len());
    for u in &idx.users {
        println!(
            "    {:24} {:32} image {}  part {} KiB",
            u.id,
            u.name,
            u.image_id,
            u.part_bytes.div_ceil(1024)
        );
    }
    Ok(())
}
