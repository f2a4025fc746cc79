//! The builder: base + profile + signing key -> one signed, reproducible image.
//!
//! Phases: read and check every input; copy the system partition while hashing it; build the
//! profile FAT; derive the image id and GUIDs from the input hashes; write the signed manifest
//! and the ESP last; write the GPT; verify the result with the public key; only then rename the
//! temporary file to the output name.

#![forbid(unsafe_code)]

pub mod authenticode;
pub mod cpio;
pub mod fixture;
pub mod uki;

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ed25519_dalek::SigningKey;
use homestick_image::disk::{FileDisk, SECTOR};
use homestick_image::fat::{self, FatFile, FatSpec};
use homestick_image::gpt::{self, NewPartition};
use homestick_image::hash::{hex, sha256_hex};
use homestick_image::keys::{self, TrustedKey};
use homestick_image::manifest::{self, Base, Customer, DiskInfo, FileEntry, Manifest, Partition};
use homestick_image::verify::{self, Progress};
use homestick_profile::Profile;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// 1 MiB in sectors: the alignment of every partition.
const ALIGN: u64 = 2048;
/// Smallest ESP (FAT32 wants at least 65525 clusters).
const MIN_ESP: u64 = 64 << 20;
/// Smallest profile partition.
const MIN_PROFILE: u64 = 4 << 20;
/// Largest file in a base's esp/ tree (a UKI with a large initramfs fits).
const MAX_ESP_FILE: u64 = 512 << 20;
/// Largest esp/ tree.
const MAX_ESP_TOTAL: u64 = 1 << 30;
/// Largest system.img accepted.
const MAX_SYSTEM: u64 = 64 << 30;
/// Largest base.toml.
const MAX_BASE_TOML: u64 = 64 << 10;

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Profile directory.
    pub profile: PathBuf,
    /// Base directory.
    pub base: PathBuf,
    /// Private signing key.
    pub key: PathBuf,
    /// Passphrase for an encrypted key.
    pub passphrase: Option<Vec<u8>>,
    /// Output image path.
    pub output: PathBuf,
    /// Image version; defaults to the base's version.
    pub version: Option<String>,
    /// Anti-rollback index.
    pub rollback_index: u64,
    /// Image file size; defaults to the smallest that holds the image.
    pub size: Option<u64>,
    /// Build time (SOURCE_DATE_EPOCH or now).
    pub epoch: i64,
    /// The static boot verifier binary (bases with a kernel).
    pub boot_verifier: Option<PathBuf>,
    /// Public keys the boot verifier trusts (default: the signing key's).
    pub boot_keyring: Option<PathBuf>,
    /// Seconds the refusal message stays before power-off.
    pub failure_delay_seconds: u32,
    /// Sign the UKI for Secure Boot with this RSA key and X.509 certificate.
    pub secure_boot: Option<SecureBootOptions>,
}

/// Secure Boot signing inputs.
#[derive(Debug, Clone)]
pub struct SecureBootOptions {
    /// RSA private key (PEM).
    pub key: PathBuf,
    /// X.509 certificate (PEM or DER).
    pub cert: PathBuf,
    /// Passphrase for an encrypted key.
    pub passphrase: Option<Vec<u8>>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An input is unusable: names the file (and field) and the reason.
    #[error("{0}")]
    Input(String),
    /// Reading or writing failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// The freshly built image did not verify: a bug, never the user's fault.
    #[error("self-check of the built image failed: {0}")]
    SelfCheck(String),
    /// The build was cancelled (Ctrl-C); the temporary file has been removed.
    #[error("interrupted; the temporary output file was removed")]
    Interrupted,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BuildError {
    let context = context.into();
    move |source| BuildError::Io { context, source }
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The output file.
    pub output: PathBuf,
    /// Image file size in bytes.
    pub size: u64,
    /// The signed manifest.
    pub manifest: Manifest,
    /// Seconds taken.
    pub seconds: f64,
    /// Warnings from the inputs (certificates close to expiry, ...).
    pub warnings: Vec<String>,
}

/// Progress of a build: stage messages and byte counts.
pub trait BuildProgress: Progress {
    /// A new stage begins.
    fn stage(&self, what: &str);
    /// Whether the user asked to stop (checked between blocks and stages).
    fn cancelled(&self) -> bool {
        false
    }
}

/// base.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseToml {
    /// Base name.
    pub name: String,
    /// Base version.
    pub version: String,
    /// `[boot]`: for bases with a kernel.
    #[serde(default)]
    pub boot: Option<BootToml>,
}

/// `[boot]` in base.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootToml {
    /// Kernel modules to load at boot, in order: paths inside the base's initrd.
    #[serde(default)]
    pub modules: Vec<String>,
    /// The system's init (default /sbin/init).
    #[serde(default)]
    pub init: Option<String>,
    /// Seconds the boot verifier may take from its start to a verdict before it refuses
    /// (default 300: enough to hash a large system from a slow stick).
    #[serde(default)]
    pub verdict_timeout_seconds: Option<u32>,
}

/// The boot files of a base with a kernel.
#[derive(Debug, Clone)]
pub struct BootInput {
    /// vmlinuz.
    pub kernel: Vec<u8>,
    /// The base's own initramfs (may be empty).
    pub initrd: Vec<u8>,
    /// Kernel command line (checked).
    pub cmdline: String,
    /// systemd's EFI stub.
    pub stub: Vec<u8>,
}

/// A loaded base.
#[derive(Debug, Clone)]
pub struct BaseInput {
    /// base.toml.
    pub meta: BaseToml,
    /// The esp/ tree.
    pub esp: Vec<FatFile>,
    /// system.img.
    pub system: PathBuf,
    /// Its size.
    pub system_len: u64,
    /// Kernel, initrd, command line and stub, when the base has a kernel.
    pub boot: Option<BootInput>,
}

fn label_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-~".contains(&b))
}

/// Load and check a base directory.
pub fn load_base(dir: &Path) -> Result<BaseInput, BuildError> {
    let md = fs::metadata(dir)
        .map_err(|e| BuildError::Input(format!("{}: base directory: {e}", dir.display())))?;
    if !md.is_dir() {
        return Err(BuildError::Input(format!(
            "{}: not a directory (give the base directory)",
            dir.display()
        )));
    }
    let tp = dir.join("base.toml");
    let meta = fs::metadata(&tp)
        .map_err(|e| BuildError::Input(format!("{}: cannot read: {e}", tp.display())))?;
    if meta.len() > MAX_BASE_TOML {
        return Err(BuildError::Input(format!("{}: too large", tp.display())));
    }
    let text = fs::read_to_string(&tp)
        .map_err(|e| BuildError::Input(format!("{}: cannot read: {e}", tp.display())))?;
    let bt: BaseToml = toml::from_str(&text)
        .map_err(|e| BuildError::Input(format!("{}: {}", tp.display(), e.message().trim())))?;
    for (field, v) in [("name", &bt.name), ("version", &bt.version)] {
        if !label_ok(v) {
            return Err(BuildError::Input(format!(
                "{}: {field}: {v:?} must be 1-64 characters of A-Z a-z 0-9 . _ + - ~",
                tp.display()
            )));
        }
    }
    let esp_dir = dir.join("esp");
    if !esp_dir.is_dir() {
        return Err(BuildError::Input(format!(
            "{}: missing (the tree copied into the ESP)",
            esp_dir.display()
        )));
    }
    let esp = collect_files(&esp_dir, MAX_ESP_FILE, MAX_ESP_TOTAL)?;
    for f in &esp {
        if f.path.to_ascii_lowercase().starts_with("homestick/") {
            return Err(BuildError::Input(format!(
                "{}: the ESP folder homestick/ is reserved for the manifest and README.txt",
                esp_dir.join(&f.path).display()
            )));
        }
    }
    let system = dir.join("system.img");
    let sm = fs::metadata(&system)
        .map_err(|e| BuildError::Input(format!("{}: cannot read: {e}", system.display())))?;
    if !sm.is_file() {
        return Err(BuildError::Input(format!(
            "{}: not a regular file",
            system.display()
        )));
    }
    if sm.len() == 0 {
        return Err(BuildError::Input(format!("{}: empty", system.display())));
    }
    if sm.len() > MAX_SYSTEM {
        return Err(BuildError::Input(format!(
            "{}: {} bytes, over the limit of {MAX_SYSTEM}",
            system.display(),
            sm.len()
        )));
    }
    let boot = load_boot(dir, &esp)?;
    if boot.is_none() && bt.boot.is_some() {
        return Err(BuildError::Input(format!(
            "{}: [boot] is set but the base has no kernel file",
            tp.display()
        )));
    }
    Ok(BaseInput {
        meta: bt,
        esp,
        system,
        system_len: sm.len(),
        boot,
    })
}

fn read_base_file(path: &Path, max: u64) -> Result<Vec<u8>, BuildError> {
    let m = fs::metadata(path)
        .map_err(|e| BuildError::Input(format!("{}: cannot read: {e}", path.display())))?;
    if !m.is_file() {
        return Err(BuildError::Input(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    if m.len() > max {
        return Err(BuildError::Input(format!(
            "{}: {} bytes, over the limit of {max}",
            path.display(),
            m.len()
        )));
    }
    fs::read(path).map_err(|e| BuildError::Input(format!("{}: cannot read: {e}", path.display())))
}

/// Kernel command-line parameters that would hand out a shell or skip the verifier.
const FORBIDDEN_CMDLINE: &[&str] = &[
    "init",
    "rdinit",
    "rd.shell",
    "rd.break",
    "rd.emergency",
    "systemd.debug_shell",
    "single",
    "emergency",
    "s",
    "S",
    "-s",
    "1",
    "break",
    "systemd.unit",
    // Partition tables from the command line come before the GPT in the kernel's scan.
    "blkdevparts",
];

/// Check a kernel command line: no way around the verifier, lockdown on, root read-only.
pub fn lint_cmdline(cmdline: &str) -> Result<(), String> {
    let mut lockdown = false;
    let mut ro = false;
    for tok in cmdline.split_whitespace() {
        let key = tok.split_once('=').map_or(tok, |(k, _)| k);
        if FORBIDDEN_CMDLINE.contains(&key) {
            return Err(format!(
                "forbidden parameter {tok:?}: it could bypass the boot verifier or open a shell"
            ));
        }
        match tok {
            "lockdown=integrity" | "lockdown=confidentiality" => lockdown = true,
            "ro" => ro = true,
            "rw" => {
                return Err("\"rw\": the root file system must be read-only (use \"ro\")".into())
            }
            _ if key == "lockdown" => {
                return Err(format!(
                    "{tok:?}: use lockdown=integrity or lockdown=confidentiality"
                ))
            }
            _ => {}
        }
    }
    if !lockdown {
        return Err("lockdown=integrity (or lockdown=confidentiality) is required".into());
    }
    if !ro {
        return Err("\"ro\" is required: the root file system must be read-only".into());
    }
    Ok(())
}

fn load_boot(dir: &Path, esp: &[FatFile]) -> Result<Option<BootInput>, BuildError> {
    let kernel_path = dir.join("kernel");
    if !kernel_path.exists() {
        return Ok(None);
    }
    let kernel = read_base_file(&kernel_path, 256 << 20)?;
    if kernel.get(0..2) != Some(b"MZ") {
        return Err(BuildError::Input(format!(
            "{}: not an EFI-stub kernel (no MZ header)",
            kernel_path.display()
        )));
    }
    let initrd_path = dir.join("initrd");
    let initrd = if initrd_path.exists() {
        read_base_file(&initrd_path, 1 << 30)?
    } else {
        Vec::new()
    };
    let cmdline_path = dir.join("cmdline");
    let cmdline_raw = read_base_file(&cmdline_path, 4096)?;
    let cmdline = String::from_utf8(cmdline_raw)
        .map_err(|_| BuildError::Input(format!("{}: not UTF-8 text", cmdline_path.display())))?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    lint_cmdline(&cmdline)
        .map_err(|e| BuildError::Input(format!("{}: {e}", cmdline_path.display())))?;
    let stub_path = dir.join("linuxx64.efi.stub");
    let stub = read_base_file(&stub_path, 16 << 20)?;
    uki::layout(&stub).map_err(|e| BuildError::Input(format!("{}: {e}", stub_path.display())))?;
    if esp
        .iter()
        .any(|f| f.path.eq_ignore_ascii_case("EFI/BOOT/BOOTX64.EFI"))
    {
        return Err(BuildError::Input(format!(
            "{}: the base has a kernel, so homestick builds EFI/BOOT/BOOTX64.EFI itself; remove it from esp/",
            dir.join("esp/EFI/BOOT/BOOTX64.EFI").display()
        )));
    }
    Ok(Some(BootInput {
        kernel,
        initrd,
        cmdline,
        stub,
    }))
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// A UUID derived from a hash: version 4 and RFC 4122 variant bits set, as systemd-repart does.
fn derived_uuid(parts: &[&[u8]]) -> Uuid {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Uuid::from_bytes(b)
}

/// The README.txt on the ESP: for whoever plugs the stick into a Windows PC.
pub fn readme_txt(
    c: &homestick_profile::Customer,
    image_id: &str,
    version: &str,
    key_id: &str,
) -> String {
    let hotline = c.hotline.as_deref().unwrap_or("-");
    let email = c.email.as_deref().unwrap_or("-");
    let hours = c
        .hours
        .as_deref()
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    let text = format!(
        "HOMESTICK - {name}\n\
         \n\
         DEUTSCH\n\
         Dies ist ein Home-Office-Stick von {name}. Er startet ein abgesichertes System\n\
         mit dem VPN und dem Telefon Ihres Arbeitgebers - und sonst nichts.\n\
         \n\
         Bitte veraendern Sie nichts auf diesem Stick. Jede Aenderung wird beim Start\n\
         erkannt; der Stick startet dann nicht mehr.\n\
         \n\
         Starten: Stick einstecken, PC neu starten und im Startmenue (oft F12, F11, F8\n\
         oder Esc) den USB-Stick waehlen.\n\
         \n\
         Hilfe: {hotline}{hours}, {email}\n\
         \n\
         ENGLISH\n\
         This is a home-office stick from {name}. It starts a locked-down system with\n\
         your employer's VPN and phone - and nothing else.\n\
         \n\
         Please do not change anything on this stick. Any change is detected at start-up\n\
         and the stick will then refuse to start.\n\
         \n\
         To start: plug in the stick, restart the PC and choose the USB stick in the boot\n\
         menu (often F12, F11, F8 or Esc).\n\
         \n\
         Help: {hotline}{hours}, {email}\n\
         \n\
         Image {image_id}, version {version}\n\
         Signing key (SHA-256 of the public key) / Signaturschluessel:\n\
         {key_id}\n",
        name = c.name,
    );
    // CRLF so that every Windows editor shows the lines.
    text.replace('\n', "\r\n")
}

/// The positions of the partitions.
#[derive(Debug, Clone, Copy)]
struct Layout {
    esp: (u64, u64),
    system: (u64, u64),
    profile: (u64, u64),
    min_sectors: u64,
}

fn layout(esp_bytes: u64, system_len: u64, profile_bytes: u64) -> Layout {
    let esp_first = manifest::ESP_FIRST_LBA;
    let esp_last = esp_first + esp_bytes / SECTOR - 1;
    let sys_first = align_up(esp_last + 1, ALIGN);
    let sys_last = sys_first + align_up(system_len, ALIGN * SECTOR) / SECTOR - 1;
    let prof_first = align_up(sys_last + 1, ALIGN);
    let prof_last = prof_first + profile_bytes / SECTOR - 1;
    let min_sectors = align_up(prof_last + 1 + 1 + gpt::ENTRY_ARRAY_SECTORS, ALIGN);
    Layout {
        esp: (esp_first, esp_last),
        system: (sys_first, sys_last),
        profile: (prof_first, prof_last),
        min_sectors,
    }
}

fn fat_budget(files: impl Iterator<Item = u64>, min: u64, slack: u64) -> u64 {
    let content: u64 = files.map(|n| align_up(n.max(1), 4096)).sum();
    align_up((content + content / 4 + slack).max(min), ALIGN * SECTOR)
}

/// Copy `src` to `dst` at `offset`, padding with zeros to `padded_len`, hashing all of it.
fn copy_and_hash(
    src: &Path,
    dst: &mut File,
    offset: u64,
    len: u64,
    padded_len: u64,
    progress: &dyn BuildProgress,
) -> Result<String, BuildError> {
    let mut f = File::open(src).map_err(io_err(format!("opening {}", src.display())))?;
    dst.seek(SeekFrom::Start(offset))
        .map_err(io_err("seeking in the output"))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut done = 0u64;
    while done < len {
        if progress.cancelled() {
            return Err(BuildError::Interrupted);
        }
        let want = ((len - done) as usize).min(buf.len());
        f.read_exact(&mut buf[..want])
            .map_err(io_err(format!("reading {}", src.display())))?;
        h.update(&buf[..want]);
        dst.write_all(&buf[..want])
            .map_err(io_err("writing the system partition"))?;
        done += want as u64;
        progress.advance(want as u64);
    }
    // The file already holds zeros past the system image; only the hash needs the padding.
    let zeros = vec![0u8; 1 << 20];
    let mut pad = padded_len - len;
    while pad > 0 {
        let n = pad.min(zeros.len() as u64) as usize;
        h.update(&zeros[..n]);
        pad -= n as u64;
    }
    Ok(hex(&h.finalize()))
}

/// Refuse a verifier that is not statically linked: the initramfs has no dynamic loader.
fn check_static_elf(path: &Path, b: &[u8]) -> Result<(), BuildError> {
    let bad = |why: &str| BuildError::Input(format!("{}: {why}", path.display()));
    if b.get(0..4) != Some(b"\x7fELF") || b.get(4) != Some(&2) {
        return Err(bad("not a 64-bit ELF executable"));
    }
    let rd = |at: usize, n: usize| -> Option<u64> {
        let s = b.get(at..at + n)?;
        Some(
            s.iter()
                .rev()
                .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
        )
    };
    let (phoff, phentsize, phnum) = match (rd(0x20, 8), rd(0x36, 2), rd(0x38, 2)) {
        (Some(o), Some(s), Some(n)) => (o as usize, s as usize, n as usize),
        _ => return Err(bad("truncated ELF header")),
    };
    for i in 0..phnum {
        match rd(phoff + i * phentsize, 4) {
            Some(3) => return Err(bad("dynamically linked (has an ELF interpreter); build it with -C target-feature=+crt-static")),
            Some(_) => {}
            None => return Err(bad("truncated ELF program headers")),
        }
    }
    Ok(())
}

/// The boot-time initramfs addition and the UKI around it.
/// Who and what a UKI is for.
struct UkiFor<'a> {
    customer: &'a homestick_profile::Customer,
    version: &'a str,
    disk_guid: String,
    signing_public: &'a ed25519_dalek::VerifyingKey,
    sb: Option<&'a authenticode::SbKey>,
}

fn build_uki(
    opts: &BuildOptions,
    base: &BaseInput,
    boot: &BootInput,
    f: &UkiFor<'_>,
) -> Result<Vec<u8>, BuildError> {
    let (customer, version, disk_guid, signing_public, sb) = (
        f.customer,
        f.version,
        f.disk_guid.as_str(),
        f.signing_public,
        f.sb,
    );
    use homestick_image::policy::{BootPolicy, KEYS_DIR, POLICY_FORMAT, POLICY_PATH};
    let verifier_path = opts.boot_verifier.as_ref().ok_or_else(|| {
        BuildError::Input(
            "--boot-verifier: this base has a kernel; give the static homestick-boot binary".into(),
        )
    })?;
    let verifier = read_base_file(verifier_path, 64 << 20)
        .map_err(|e| BuildError::Input(format!("--boot-verifier: {e}")))?;
    check_static_elf(verifier_path, &verifier)?;
    let mut keys: Vec<(String, Vec<u8>)> = match &opts.boot_keyring {
        Some(ring) => keys::load_keyring(ring)
            .map_err(|e| BuildError::Input(format!("--boot-keyring: {e}")))?
            .into_iter()
            .map(|k| {
                use ed25519_dalek::pkcs8::EncodePublicKey;
                let pem = k
                    .key
                    .to_public_key_pem(Default::default())
                    .unwrap_or_default();
                (format!("{}.pub", &k.id[..16]), pem.into_bytes())
            })
            .collect(),
        None => {
            use ed25519_dalek::pkcs8::EncodePublicKey;
            let pem = signing_public
                .to_public_key_pem(Default::default())
                .unwrap_or_default();
            vec![(
                format!("{}.pub", &keys::key_id(signing_public)[..16]),
                pem.into_bytes(),
            )]
        }
    };
    keys.sort();
    let boot_toml = base.meta.boot.clone().unwrap_or(BootToml {
        modules: vec![],
        init: None,
        verdict_timeout_seconds: None,
    });
    let policy = BootPolicy {
        format: POLICY_FORMAT.into(),
        disk_guid: disk_guid.into(),
        customer_id: customer.id.clone(),
        customer_name: customer.name.clone(),
        hotline: customer.hotline.clone(),
        email: customer.email.clone(),
        hours: customer.hours.clone(),
        modules: boot_toml.modules.clone(),
        failure_delay_seconds: opts.failure_delay_seconds,
        min_rollback_index: opts.rollback_index,
        device_timeout_seconds: 30,
        verdict_timeout_seconds: boot_toml
            .verdict_timeout_seconds
            .unwrap_or(homestick_image::policy::DEFAULT_VERDICT_TIMEOUT),
        init: boot_toml
            .init
            .clone()
            .unwrap_or_else(|| "/sbin/init".into()),
        profile_mount: homestick_profile::MOUNT_POINT.into(),
    };
    let mut policy_json =
        serde_json::to_vec_pretty(&policy).map_err(|e| BuildError::SelfCheck(e.to_string()))?;
    policy_json.push(b'\n');
    use cpio::Entry;
    let dir = |p: &str| Entry::Dir {
        path: p.into(),
        mode: 0o755,
    };
    let mut entries = vec![
        dir("dev"),
        Entry::CharDev {
            path: "dev/console".into(),
            mode: 0o600,
            major: 5,
            minor: 1,
        },
        Entry::CharDev {
            path: "dev/null".into(),
            mode: 0o666,
            major: 1,
            minor: 3,
        },
        dir("etc"),
        dir("etc/homestick"),
        dir(KEYS_DIR),
    ];
    for (name, pem) in keys {
        entries.push(Entry::File {
            path: format!("{KEYS_DIR}/{name}"),
            mode: 0o644,
            data: pem,
        });
    }
    entries.push(Entry::File {
        path: POLICY_PATH.into(),
        mode: 0o644,
        data: policy_json,
    });
    entries.push(Entry::File {
        path: "init".into(),
        mode: 0o755,
        data: verifier,
    });
    for d in ["newroot", "proc", "run", "sys"] {
        entries.push(dir(d));
    }
    let mtime = opts.epoch.clamp(0, i64::from(u32::MAX)) as u32;
    let mut initrd = boot.initrd.clone();
    while initrd.len() % 4 != 0 {
        initrd.push(0);
    }
    initrd.extend(cpio::archive(&entries, mtime));
    let osrel = format!(
        "NAME=\"homestick\"\nID=homestick\nPRETTY_NAME=\"homestick {} {}\"\nIMAGE_ID={}\nIMAGE_VERSION={}\nVERSION_ID={}\n",
        customer.name, version, customer.id, version, base.meta.version
    );
    let sbat = format!(
        "homestick,1,homestick,homestick,{},https://example.invalid/homestick\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut cmdline = boot.cmdline.clone().into_bytes();
    cmdline.push(0);
    let uki = uki::assemble(
        &boot.stub,
        osrel.as_bytes(),
        &cmdline,
        &initrd,
        &boot.kernel,
        &sbat,
    )
    .map_err(|e| {
        BuildError::Input(format!(
            "{}: {e}",
            opts.base.join("linuxx64.efi.stub").display()
        ))
    })?;
    match sb {
        Some(k) => authenticode::sign(&uki, k).map_err(|e| BuildError::SelfCheck(e.to_string())),
        None => Ok(uki),
    }
}

/// Build the image described by `opts`.
pub fn build(opts: &BuildOptions, progress: &dyn BuildProgress) -> Result<BuildReport, BuildError> {
    let started = Instant::now();
    progress.stage("checking inputs");
    let profile =
        Profile::load(&opts.profile, opts.epoch).map_err(|e| BuildError::Input(e.to_string()))?;
    let base = load_base(&opts.base)?;
    if opts.secure_boot.is_some() && base.boot.is_none() {
        return Err(BuildError::Input(format!(
            "--secure-boot-key: {} has no kernel, so there is no UKI to sign",
            opts.base.display()
        )));
    }
    let key: SigningKey = keys::load_signing_key(&opts.key, opts.passphrase.as_deref())
        .map_err(|e| BuildError::Input(e.to_string()))?;
    let sb_key = match &opts.secure_boot {
        Some(sb) => Some(
            authenticode::load(&sb.key, &sb.cert, sb.passphrase.as_deref())
                .map_err(|e| BuildError::Input(e.to_string()))?,
        ),
        None => None,
    };
    let public = key.verifying_key();
    let key_id = keys::key_id(&public);
    let version = opts
        .version
        .clone()
        .unwrap_or_else(|| base.meta.version.clone());
    if !label_ok(&version) {
        return Err(BuildError::Input(format!(
            "--version: {version:?} must be 1-64 characters of A-Z a-z 0-9 . _ + - ~"
        )));
    }
    let out_dir = match opts.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !out_dir.is_dir() {
        return Err(BuildError::Input(format!(
            "--output: directory {} does not exist",
            out_dir.display()
        )));
    }
    if opts.output.is_dir() {
        return Err(BuildError::Input(format!(
            "--output: {} is a directory",
            opts.output.display()
        )));
    }

    // Profile partition: its own FAT, reproducible from the profile alone.
    let prof_files = &profile.files;
    let prof_bytes = fat_budget(
        prof_files.iter().map(|f| f.data.len() as u64),
        MIN_PROFILE,
        1 << 20,
    );
    let prof_id = derived_uuid(&[b"profile-volume", profile.customer.id.as_bytes()]);
    let prof_fat = fat::build(
        &FatSpec {
            size: prof_bytes,
            fat32: false,
            label: "HS-PROFILE".into(),
            volume_id: u32::from_le_bytes(prof_id.as_bytes()[..4].try_into().unwrap_or_default()),
            epoch: opts.epoch,
        },
        prof_files,
    )
    .map_err(io_err("building the profile FAT"))?;
    let prof_sha = sha256_hex(&prof_fat);

    let esp_sizes = base.esp.iter().map(|f| f.data.len() as u64);
    let esp_bytes = fat_budget(esp_sizes, MIN_ESP, 8 << 20);
    let lay = layout(esp_bytes, base.system_len, prof_bytes);
    let min_size = lay.min_sectors * SECTOR;
    let size = match opts.size {
        None => min_size,
        Some(s) if s % SECTOR != 0 => {
            return Err(BuildError::Input(format!(
                "--size: {s} is not a multiple of 512"
            )))
        }
        Some(s) if s < min_size => {
            return Err(BuildError::Input(format!(
                "--size: {s} bytes is too small; this image needs at least {min_size}"
            )))
        }
        Some(s) => s,
    };

    progress.stage("writing the system partition");
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.",
            opts.output
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        ))
        .suffix(".partial")
        .tempfile_in(&out_dir)
        .map_err(io_err(format!(
            "creating a temporary file in {}",
            out_dir.display()
        )))?;
    tmp.as_file()
        .set_len(size)
        .map_err(io_err("sizing the output"))?;
    let sys_len_padded = (lay.system.1 - lay.system.0 + 1) * SECTOR;
    progress.set_total(base.system_len);
    let sys_sha = copy_and_hash(
        &base.system,
        tmp.as_file_mut(),
        lay.system.0 * SECTOR,
        base.system_len,
        sys_len_padded,
        progress,
    )?;
    let f = tmp.as_file_mut();
    f.seek(SeekFrom::Start(lay.profile.0 * SECTOR))
        .map_err(io_err("seeking in the output"))?;
    f.write_all(&prof_fat)
        .map_err(io_err("writing the profile partition"))?;

    if progress.cancelled() {
        return Err(BuildError::Interrupted);
    }
    progress.stage("signing");
    let mut id_parts: Vec<Vec<u8>> = vec![
        b"homestick-image-id/1".to_vec(),
        profile.customer.id.clone().into_bytes(),
        version.clone().into_bytes(),
        opts.epoch.to_le_bytes().to_vec(),
        opts.rollback_index.to_le_bytes().to_vec(),
        base.meta.name.clone().into_bytes(),
        base.meta.version.clone().into_bytes(),
        key_id.clone().into_bytes(),
        sys_sha.clone().into_bytes(),
        prof_sha.clone().into_bytes(),
    ];
    // Disk and partition GUIDs come from everything but the ESP, because the ESP's UKI carries
    // the disk GUID in its boot policy; the image id then covers the ESP files too.
    let pre_refs: Vec<&[u8]> = id_parts.iter().map(Vec::as_slice).collect();
    let disk_id = derived_uuid(&pre_refs);
    let guid = |what: &str| derived_uuid(&[b"homestick-guid", disk_id.as_bytes(), what.as_bytes()]);
    let mut base_esp: Vec<FatFile> = base.esp.clone();
    if let Some(boot) = &base.boot {
        let target = UkiFor {
            customer: &profile.customer,
            version: &version,
            disk_guid: guid("disk").to_string(),
            signing_public: &public,
            sb: sb_key.as_ref(),
        };
        let uki = build_uki(opts, &base, boot, &target)?;
        base_esp.push(FatFile {
            path: "EFI/BOOT/BOOTX64.EFI".into(),
            data: uki,
        });
    }
    // Each ESP file is hashed once: for the image id here and for the manifest below.
    let mut file_entries: Vec<FileEntry> = base_esp
        .iter()
        .map(|f| FileEntry {
            path: f.path.clone(),
            size: f.data.len() as u64,
            sha256: sha256_hex(&f.data),
        })
        .collect();
    for e in &file_entries {
        id_parts.push(e.path.clone().into_bytes());
        id_parts.push(e.sha256.clone().into_bytes());
    }
    let id_refs: Vec<&[u8]> = id_parts.iter().map(Vec::as_slice).collect();
    let image_id = derived_uuid(&id_refs);

    let readme =
        readme_txt(&profile.customer, &image_id.to_string(), &version, &key_id).into_bytes();
    file_entries.push(FileEntry {
        path: "homestick/README.txt".into(),
        size: readme.len() as u64,
        sha256: sha256_hex(&readme),
    });
    file_entries.sort_by(|a, b| a.path.cmp(&b.path));
    // fat::build sorts the files itself.
    let mut esp_files: Vec<FatFile> = base_esp;
    esp_files.push(FatFile {
        path: "homestick/README.txt".into(),
        data: readme,
    });

    let parts = [
        (
            "esp",
            gpt::TYPE_ESP,
            lay.esp,
            0u64,
            None,
            Some(file_entries),
        ),
        (
            "system",
            gpt::TYPE_ROOT_X86_64,
            lay.system,
            gpt::ATTR_READ_ONLY,
            Some(sys_sha),
            None,
        ),
        (
            "profile",
            gpt::TYPE_HOMESTICK_PROFILE,
            lay.profile,
            gpt::ATTR_READ_ONLY,
            Some(prof_sha),
            None,
        ),
    ];
    let partitions: Vec<Partition> = parts
        .into_iter()
        .enumerate()
        .map(
            |(i, (name, ty, (first, last), attrs, sha, files))| Partition {
                number: i as u32 + 1,
                name: name.into(),
                type_guid: ty.to_string(),
                guid: guid(name).to_string(),
                first_lba: first,
                last_lba: last,
                attributes: attrs,
                sha256: sha,
                files,
            },
        )
        .collect();
    let disk_guid = guid("disk");
    let m = Manifest {
        format: manifest::FORMAT.into(),
        image_id: image_id.to_string(),
        customer: Customer {
            id: profile.customer.id.clone(),
            name: profile.customer.name.clone(),
        },
        version,
        build_time: fat::rfc3339(opts.epoch),
        build_epoch: opts.epoch,
        rollback_index: opts.rollback_index,
        key_id,
        base: Base {
            name: base.meta.name.clone(),
            version: base.meta.version.clone(),
        },
        disk: DiskInfo {
            guid: disk_guid.to_string(),
            sector_size: SECTOR,
            min_size_bytes: min_size,
            partition_entries: gpt::NUM_ENTRIES,
        },
        partitions,
    };
    m.validate()
        .map_err(|e| BuildError::SelfCheck(e.to_string()))?;
    let manifest_bytes = m.to_bytes();
    let sig = keys::sign(&key, &manifest_bytes);
    esp_files.push(FatFile {
        path: manifest::MANIFEST_PATH.into(),
        data: manifest_bytes,
    });
    esp_files.push(FatFile {
        path: manifest::SIGNATURE_PATH.into(),
        data: sig.to_vec(),
    });

    if progress.cancelled() {
        return Err(BuildError::Interrupted);
    }
    progress.stage("writing the ESP and the GPT");
    let esp_vol_id = derived_uuid(&[b"esp-volume", image_id.as_bytes()]);
    let esp_fat = fat::build(
        &FatSpec {
            size: esp_bytes,
            fat32: true,
            label: "HOMESTICK".into(),
            volume_id: u32::from_le_bytes(
                esp_vol_id.as_bytes()[..4].try_into().unwrap_or_default(),
            ),
            epoch: opts.epoch,
        },
        &esp_files,
    )
    .map_err(io_err("building the ESP (FAT32)"))?;
    let f = tmp.as_file_mut();
    f.seek(SeekFrom::Start(lay.esp.0 * SECTOR))
        .map_err(io_err("seeking in the output"))?;
    f.write_all(&esp_fat).map_err(io_err("writing the ESP"))?;
    let new_parts: Vec<NewPartition> = m
        .partitions
        .iter()
        .map(|p| NewPartition {
            type_guid: p.type_uuid(),
            guid: p.uuid(),
            first_lba: p.first_lba,
            last_lba: p.last_lba,
            attributes: p.attributes,
            name: p.name.clone(),
        })
        .collect();
    gpt::write(&mut *f, size / SECTOR, disk_guid, &new_parts).map_err(BuildError::SelfCheck)?;
    f.sync_all().map_err(io_err("flushing the output"))?;

    if progress.cancelled() {
        return Err(BuildError::Interrupted);
    }
    progress.stage("verifying the image");
    let disk = FileDisk::open(tmp.path()).map_err(io_err("reopening the output"))?;
    let trusted = [TrustedKey {
        id: keys::key_id(&public),
        key: public,
        source: opts.key.clone(),
    }];
    verify::verify(&disk, &trusted, progress).map_err(|e| BuildError::SelfCheck(e.to_string()))?;
    if progress.cancelled() {
        return Err(BuildError::Interrupted);
    }
    tmp.persist(&opts.output).map_err(|e| BuildError::Io {
        context: format!("renaming to {}", opts.output.display()),
        source: e.error,
    })?;
    if let Ok(d) = File::open(&out_dir) {
        let _ = d.sync_all();
    }
    Ok(BuildReport {
        output: opts.output.clone(),
        size,
        manifest: m,
        seconds: started.elapsed().as_secs_f64(),
        warnings: profile.warnings.clone(),
    })
}

/// Most files collected from a tree.
const MAX_TREE_FILES: usize = 1000;

fn tree_err(path: &Path, reason: impl Into<String>) -> BuildError {
    BuildError::Input(format!("{}: {}", path.display(), reason.into()))
}

/// Read every file below `dir` for an image partition: sorted, regular files only, symlinks
/// only if they stay inside `dir`, hidden entries (`.name`) skipped, FAT-safe names, bounded
/// sizes. Used for a base's `esp/` tree.
fn collect_files(dir: &Path, max_file: u64, max_total: u64) -> Result<Vec<FatFile>, BuildError> {
    let root =
        fs::canonicalize(dir).map_err(|e| tree_err(dir, format!("cannot open directory: {e}")))?;
    let mut out = Vec::new();
    let mut total = 0u64;
    let mut lower_seen = std::collections::BTreeMap::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = entry.map_err(|e| {
            let p = e.path().unwrap_or(dir).to_path_buf();
            tree_err(&p, format!("cannot read: {e}"))
        })?;
        if entry.depth() == 0 {
            continue;
        }
        let path = entry.path();
        let rel = path.strip_prefix(dir).unwrap_or(path);
        let rel_str = rel
            .to_str()
            .ok_or_else(|| tree_err(path, "file name is not valid UTF-8"))?
            .to_string();
        let ft = entry.file_type();
        let meta = if ft.is_symlink() {
            let target = fs::canonicalize(path)
                .map_err(|e| tree_err(path, format!("broken symlink: {e}")))?;
            if !target.starts_with(&root) {
                return Err(tree_err(
                    path,
                    format!(
                        "symlink leaves the directory (points to {})",
                        target.display()
                    ),
                ));
            }
            fs::metadata(&target).map_err(|e| tree_err(path, format!("cannot read: {e}")))?
        } else {
            entry
                .metadata()
                .map_err(|e| tree_err(path, format!("cannot read: {e}")))?
        };
        if meta.is_dir() {
            if ft.is_symlink() {
                return Err(tree_err(
                    path,
                    "symlinks to directories are not followed; copy the files",
                ));
            }
            continue;
        }
        if !meta.is_file() {
            return Err(tree_err(path, "not a regular file"));
        }
        if let Some(why) = fat::path_problem(&rel_str) {
            return Err(tree_err(path, why));
        }
        if let Some(other) = lower_seen.insert(rel_str.to_lowercase(), rel_str.clone()) {
            return Err(tree_err(
                path,
                format!("differs from {other:?} only in case; FAT cannot hold both"),
            ));
        }
        if meta.len() > max_file {
            return Err(tree_err(
                path,
                format!("{} bytes, over the limit of {max_file}", meta.len()),
            ));
        }
        total += meta.len();
        if total > max_total {
            return Err(tree_err(
                dir,
                format!("files total more than {max_total} bytes"),
            ));
        }
        if out.len() >= MAX_TREE_FILES {
            return Err(tree_err(dir, format!("more than {MAX_TREE_FILES} files")));
        }
        let data = fs::read(path).map_err(|e| tree_err(path, format!("cannot read: {e}")))?;
        out.push(FatFile {
            path: rel_str,
            data,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
