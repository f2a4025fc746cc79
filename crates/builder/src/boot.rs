//! The boot side of an image: what homestick adds to a base's initramfs (the static boot
//! verifier as /init, the trusted keys, the boot policy) and the UKI around it.
//!
//! [`BootFiles::load`] reads and checks the verifier and the keyring before the builder
//! writes anything; [`compose_uki`] then needs only what the pipeline derived.

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::VerifyingKey;
use homestick_image::bytes::{le, le16, le64};
use homestick_image::files::read_bounded;
use homestick_image::keys::{self, key_id};
use homestick_image::policy::{BootPolicy, KEYS_DIR, POLICY_FORMAT, POLICY_PATH};

use crate::base::{BaseInput, BootInput};
use crate::error::{input, input_file, read_err, BuildError};
use homestick_base::cpio::{self, Entry};
use homestick_image::fat::FatFile;
use homestick_signing::{authenticode, uki};

/// Largest boot verifier accepted.
const MAX_VERIFIER: u64 = 64 << 20;
/// Seconds the verifier waits for the stick to appear.
const DEVICE_TIMEOUT_SECONDS: u32 = 30;

/// The verifier binary and the public keys it will trust, read and checked.
#[derive(Debug, Clone)]
pub struct BootFiles {
    /// The static homestick-boot binary.
    pub verifier: Vec<u8>,
    /// (file name, contents) of each trusted key's PEM, sorted, and of a keyring.toml when a
    /// key has a comment or a validity window; `None`: the signing key's alone.
    pub keys: Option<Vec<(String, Vec<u8>)>>,
    /// The `--boot-keyring` keys as loaded.
    pub ring: Option<Vec<keys::TrustedKey>>,
}

impl BootFiles {
    /// Read `--boot-verifier` (required) and `--boot-keyring` (optional).
    pub fn load(verifier: Option<&Path>, keyring: Option<&Path>) -> Result<BootFiles, BuildError> {
        let path = verifier.ok_or_else(|| {
            input(
                "--boot-verifier",
                "this base has a kernel, so the image needs the static boot verifier, and there is none beside homestick nor at /usr/lib/homestick/homestick-boot (the .deb installs it there); in a source tree, `cargo xtask boot-verifier` makes it (target/boot/x86_64-unknown-linux-gnu/release/homestick-boot): pass that with --boot-verifier",
            )
        })?;
        let bytes = read_bounded(path, MAX_VERIFIER)
            .map_err(read_err(path))
            .map_err(|e| input("--boot-verifier", e.to_string()))?;
        check_static_elf(&bytes).map_err(|why| input_file(path, why))?;
        let (keys, ring) = match keyring {
            None => (None, None),
            Some(ring) => {
                let loaded = keys::load_keyring(ring).map_err(|source| BuildError::Key {
                    option: "--boot-keyring",
                    source,
                })?;
                let mut pems = loaded
                    .iter()
                    .map(|k| public_pem(&k.key))
                    .collect::<Result<Vec<_>, _>>()?;
                pems.sort();
                let described = loaded.iter().any(|k| {
                    k.comment.is_some() || k.not_before.is_some() || k.not_after.is_some()
                });
                if described {
                    let named: Vec<(String, &keys::TrustedKey)> = loaded
                        .iter()
                        .map(|k| (format!("{}.pub", &k.id[..16]), k))
                        .collect();
                    pems.push((
                        keys::KEYRING_FILE.to_string(),
                        keys::keyring_toml(&named).into_bytes(),
                    ));
                }
                (Some(pems), Some(loaded))
            }
        };
        Ok(BootFiles {
            verifier: bytes,
            keys,
            ring,
        })
    }
}

/// `(<first 16 hex digits of the key id>.pub, PEM)` for a public key.
fn public_pem(key: &VerifyingKey) -> Result<(String, Vec<u8>), BuildError> {
    let pem = key
        .to_public_key_pem(Default::default())
        .map_err(|e| BuildError::Internal {
            context: "encoding a public key",
            detail: e.to_string(),
        })?;
    Ok((format!("{}.pub", &key_id(key)[..16]), pem.into_bytes()))
}

/// Why `b` is not a statically linked 64-bit ELF executable (the initramfs has no loader).
pub fn check_static_elf(b: &[u8]) -> Result<(), &'static str> {
    if b.get(0..4) != Some(b"\x7fELF") || b.get(4) != Some(&2) {
        return Err("not a 64-bit ELF executable");
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (le64(b, 0x20), le16(b, 0x36), le16(b, 0x38))
    else {
        return Err("truncated ELF header");
    };
    for i in 0..u64::from(phnum) {
        let at = phoff.saturating_add(i * u64::from(phentsize));
        match usize::try_from(at).ok().and_then(|at| le(b, at, 4)) {
            Some(3) => return Err("dynamically linked (has an ELF interpreter), which the initramfs cannot run; `cargo xtask boot-verifier` makes the static one (target/boot/x86_64-unknown-linux-gnu/release/homestick-boot): pass it with --boot-verifier"),
            Some(_) => {}
            None => return Err("truncated ELF program headers"),
        }
    }
    Ok(())
}

/// The shim path's programs beside the UKI: shim, and for Debian's shim MokManager with the
/// provider's certificate to enrol.
#[derive(Debug, Clone)]
pub struct ShimPlan {
    /// shim, at `EFI/BOOT/BOOTX64.EFI`.
    pub shim: Vec<u8>,
    /// MokManager and the certificate (DER), when shim does not trust the provider by itself.
    pub enrol: Option<(Vec<u8>, Vec<u8>)>,
}

impl ShimPlan {
    /// The ESP's boot programs: shim as the loader, the UKI as its second stage, MokManager and
    /// the certificate.
    pub fn esp_files(&self, uki: Vec<u8>) -> Vec<FatFile> {
        use homestick_formats::shim::{ESP_CERT, ESP_LOADER, ESP_MOK_MANAGER, ESP_SECOND_STAGE};
        let file = |path: &str, data: Vec<u8>| FatFile {
            path: path.into(),
            data,
        };
        let mut v = vec![
            file(ESP_LOADER, self.shim.clone()),
            file(ESP_SECOND_STAGE, uki),
        ];
        if let Some((mm, cert)) = &self.enrol {
            v.push(file(ESP_MOK_MANAGER, mm.clone()));
            v.push(file(ESP_CERT, cert.clone()));
        }
        v
    }
}

/// The boot path of a build: `--shim` implies shim; else `--boot-path`, else the base's
/// `[boot] path`, else db. On the shim path: the provider's shim (its built-in certificate must
/// be the Secure Boot certificate) or the base's Debian shim with MokManager.
pub fn shim_plan(
    opts: &crate::BuildOptions,
    base: &BaseInput,
    sb: Option<&authenticode::SbKey>,
) -> Result<Option<ShimPlan>, BuildError> {
    use homestick_formats::base::BootPath;
    if opts.shim.is_some() && opts.boot_path == Some(BootPath::Db) {
        return Err(input("--shim", "--boot-path db puts no shim on the stick"));
    }
    let config = base.boot.as_ref().and_then(|b| b.config.path);
    let path = match opts.shim {
        Some(_) => BootPath::Shim,
        // Neither the command line nor the base says: db, the path of every older base.
        None => opts.boot_path.or(config).unwrap_or_default(),
    };
    if path == BootPath::Db {
        return Ok(None);
    }
    let Some(boot) = &base.boot else {
        return Err(input(
            "--boot-path",
            format!(
                "{} has no kernel, so there is nothing for shim to start",
                opts.base.display()
            ),
        ));
    };
    let Some(sb) = sb else {
        return Err(input("--secure-boot-key", "the shim boot path (--boot-path shim, --shim or the base's [boot] path) starts only a UKI signed for Secure Boot: give --secure-boot-key and --secure-boot-cert"));
    };
    let cert = sb.cert_der().map_err(|e| BuildError::Internal {
        context: "encoding the Secure Boot certificate",
        detail: e.to_string(),
    })?;
    if let Some(own) = &opts.shim {
        let shim = crate::base::read_shim(own)?;
        check_vendor_cert(own, &shim, &cert, sb)?;
        return Ok(Some(ShimPlan { shim, enrol: None }));
    }
    let Some(files) = &boot.shim else {
        return Err(input_file(
            &opts.base,
            format!(
                "the shim boot path needs {} and {} in the base (Debian's shim-signed and shim-helpers-amd64-signed; `homestick base build` puts them there when the recipe says boot_path = \"shim\"), or the provider's own shim with --shim",
                homestick_formats::shim::BASE_SHIM,
                homestick_formats::shim::BASE_MOK_MANAGER
            ),
        ));
    };
    Ok(Some(ShimPlan {
        shim: files.shim.clone(),
        enrol: Some((files.mok_manager.clone(), cert)),
    }))
}

/// A provider's own shim must trust the certificate the UKI is signed for.
fn check_vendor_cert(
    path: &Path,
    shim: &[u8],
    cert: &[u8],
    sb: &authenticode::SbKey,
) -> Result<(), BuildError> {
    let built_in = homestick_image::shim::vendor_certs(shim)
        .map_err(|e| input_file(path, e.to_string()))?
        // read_shim made sure there is a .vendor_cert; none would be "no certificate" anyway.
        .unwrap_or_default();
    if built_in.iter().any(|c| c == cert) {
        return Ok(());
    }
    let names: Vec<String> = built_in
        .iter()
        .map(|c| authenticode::subject_of(c))
        .collect();
    Err(input_file(
        path,
        format!(
            "shim's built-in certificate ({}) is not the --secure-boot-cert ({}): it would refuse the UKI",
            if names.is_empty() { "none".to_string() } else { names.join("; ") },
            sb.subject()
        ),
    ))
}

/// Who and what a UKI is for.
#[derive(Debug)]
pub struct UkiFor<'a> {
    /// The customer.
    pub customer: &'a homestick_profile::Customer,
    /// Image version.
    pub version: &'a str,
    /// GPT disk GUID the verifier looks for.
    pub disk_guid: uuid::Uuid,
    /// The signing key (trusted when no keyring was given).
    pub signing_public: &'a VerifyingKey,
    /// Minimum rollback index.
    pub min_rollback_index: u64,
    /// The revocation list the verifier enforces.
    pub revocations: Option<&'a homestick_image::revocation::RevocationList>,
    /// Days before expiry from which the verifier warns.
    pub expiry_warning_days: u32,
    /// Seconds the refusal stays on screen.
    pub failure_delay_seconds: u32,
    /// Build time (cpio mtimes).
    pub epoch: i64,
}

/// The boot policy for `f` on a base whose `[boot]` is `boot`.
pub fn policy(f: &UkiFor<'_>, boot: &BootInput) -> BootPolicy {
    let c = f.customer;
    BootPolicy {
        format: POLICY_FORMAT.into(),
        disk_guid: f.disk_guid,
        customer_id: c.id.clone(),
        customer_name: c.name.clone(),
        hotline: c.hotline.clone(),
        email: c.email.clone(),
        hours: c.hours.clone(),
        modules: boot.config.modules.clone(),
        failure_delay_seconds: f.failure_delay_seconds,
        min_rollback_index: f.min_rollback_index,
        device_timeout_seconds: DEVICE_TIMEOUT_SECONDS,
        verdict_timeout_seconds: boot
            .config
            .verdict_timeout_seconds
            .unwrap_or(homestick_image::policy::DEFAULT_VERDICT_TIMEOUT),
        init: boot
            .config
            .init
            .clone()
            .unwrap_or_else(|| "/sbin/init".into()),
        profile_mount: homestick_formats::paths::PROFILE_MOUNT.into(),
        // Not set in base.toml: the default reaction.
        verity_on_corruption: boot.config.verity_on_corruption.unwrap_or_default(),
        revocations: f.revocations.cloned(),
        expiry_warning_days: f.expiry_warning_days,
    }
}

/// homestick's own cpio: device nodes, trusted keys, the policy, the verifier as /init.
pub fn initramfs_entries(
    files: &BootFiles,
    policy: &BootPolicy,
    signing_public: &VerifyingKey,
) -> Result<Vec<Entry>, BuildError> {
    let keys = match &files.keys {
        Some(k) => k.clone(),
        None => vec![public_pem(signing_public)?],
    };
    let mut policy_json = serde_json::to_vec_pretty(policy).map_err(|e| BuildError::Internal {
        context: "writing the boot policy",
        detail: e.to_string(),
    })?;
    policy_json.push(b'\n');
    let dir = |p: &str| Entry::Dir {
        path: p.into(),
        mode: 0o755,
    };
    let dev = |path: &str, mode, major, minor| Entry::CharDev {
        path: path.into(),
        mode,
        major,
        minor,
    };
    let file = |path: String, mode, data| Entry::File { path, mode, data };
    let mut entries = vec![
        dir("dev"),
        dev("dev/console", 0o600, 5, 1),
        dev("dev/null", 0o666, 1, 3),
        dir("etc"),
        dir("etc/homestick"),
        dir(KEYS_DIR),
    ];
    for (name, pem) in keys {
        entries.push(file(format!("{KEYS_DIR}/{name}"), 0o644, pem));
    }
    entries.push(file(POLICY_PATH.into(), 0o644, policy_json));
    entries.push(file("init".into(), 0o755, files.verifier.clone()));
    entries.extend(["newroot", "proc", "run", "sys"].map(dir));
    Ok(entries)
}

/// The signed (or unsigned) UKI for `f`: the base's stub and kernel, its initrd with our cpio
/// appended, the locked command line, os-release and SBAT.
pub fn compose_uki(
    base: &BaseInput,
    boot: &BootInput,
    files: &BootFiles,
    f: &UkiFor<'_>,
    sb: Option<&authenticode::SbKey>,
    stub_path: PathBuf,
) -> Result<Vec<u8>, BuildError> {
    let entries = initramfs_entries(files, &policy(f, boot), f.signing_public)?;
    let mtime = f.epoch.clamp(0, i64::from(u32::MAX)) as u32;
    let mut initrd = boot.initrd.clone();
    initrd.resize(initrd.len().div_ceil(4) * 4, 0);
    initrd.extend(cpio::archive(&entries, mtime));
    let osrel = format!(
        "NAME=\"homestick\"\nID=homestick\nPRETTY_NAME=\"homestick {} {}\"\nIMAGE_ID={}\nIMAGE_VERSION={}\nVERSION_ID={}\n",
        f.customer.name, f.version, f.customer.id, f.version, base.meta.version
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
    .map_err(|e| input_file(&stub_path, e.to_string()))?;
    match sb {
        Some(k) => authenticode::sign(&uki, k).map_err(|e| BuildError::Internal {
            context: "signing the UKI for Secure Boot",
            detail: e.to_string(),
        }),
        None => Ok(uki),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(interp: bool) -> Vec<u8> {
        let mut b = vec![0u8; 0x40 + 2 * 56];
        b[0..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        b[0x40] = 1; // PT_LOAD
        b[0x40 + 56] = if interp { 3 } else { 6 }; // PT_INTERP or PT_PHDR
        b
    }

    #[test]
    fn static_elf_check() {
        assert_eq!(check_static_elf(&elf(false)), Ok(()));
        assert!(check_static_elf(&elf(true))
            .unwrap_err()
            .contains("dynamically linked"));
        assert!(check_static_elf(&elf(true))
            .unwrap_err()
            .contains("cargo xtask boot-verifier"));
        assert_eq!(
            check_static_elf(b"#!/bin/sh"),
            Err("not a 64-bit ELF executable")
        );
        let mut short = elf(false);
        short.truncate(0x40 + 58);
        assert_eq!(
            check_static_elf(&short),
            Err("truncated ELF program headers")
        );
        let mut far = elf(false);
        far[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(check_static_elf(&far), Err("truncated ELF program headers"));
    }
}
