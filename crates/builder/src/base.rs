//! Loading a base: base.toml, the esp/ tree, system.img, and for bases with a kernel the
//! kernel, initrd, command line and EFI stub. Everything is read and checked here, before the
//! builder writes a byte.

use std::fs;
use std::path::{Path, PathBuf};

use homestick_image::fat::FatFile;
use homestick_image::files::read_bounded;

use crate::error::{input, input_file, read_err, BuildError};
use crate::tree;
use homestick_base::cmdline;
use homestick_signing::uki;

/// Largest file in a base's esp/ tree (a UKI with a large initramfs fits).
const MAX_ESP_FILE: u64 = 512 << 20;
/// Largest esp/ tree.
const MAX_ESP_TOTAL: u64 = 1 << 30;
/// Largest system.img accepted.
const MAX_SYSTEM: u64 = 64 << 30;
pub use homestick_formats::base::{BaseToml, BootPath, BootToml};

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
    /// `[boot]` of base.toml.
    pub config: BootToml,
    /// Debian's shim and MokManager, when the base brings them (the shim boot path).
    pub shim: Option<ShimFiles>,
}

/// A base's `shimx64.efi` (Debian's, signed by Microsoft) and `mmx64.efi` (MokManager, signed
/// by Debian), read and checked.
#[derive(Debug, Clone)]
pub struct ShimFiles {
    /// shim.
    pub shim: Vec<u8>,
    /// MokManager.
    pub mok_manager: Vec<u8>,
}

/// Largest shim or MokManager accepted (Debian's are about 1 MiB).
pub const MAX_SHIM: u64 = 16 << 20;

/// Read a shim (a PE program with a `.vendor_cert` section) from `path`.
pub fn read_shim(path: &Path) -> Result<Vec<u8>, BuildError> {
    let b = read_bounded(path, MAX_SHIM).map_err(read_err(path))?;
    match homestick_image::shim::vendor_certs(&b) {
        Ok(Some(_)) => Ok(b),
        Ok(None) => Err(input_file(
            path,
            "not shim: the program has no .vendor_cert section",
        )),
        Err(e) => Err(input_file(path, format!("not a usable EFI program: {e}"))),
    }
}

/// The base's shim and MokManager, when it has `shimx64.efi`; MokManager must then be there.
fn load_shim(dir: &Path) -> Result<Option<ShimFiles>, BuildError> {
    use homestick_formats::shim::{BASE_MOK_MANAGER, BASE_SHIM};
    let shim_path = dir.join(BASE_SHIM);
    if !shim_path.exists() {
        return Ok(None);
    }
    let shim = read_shim(&shim_path)?;
    let mm_path = dir.join(BASE_MOK_MANAGER);
    let mok_manager = read_bounded(&mm_path, MAX_SHIM).map_err(read_err(&mm_path))?;
    homestick_image::pe::layout(&mok_manager)
        .map_err(|e| input_file(&mm_path, format!("not an EFI program: {e}")))?;
    Ok(Some(ShimFiles { shim, mok_manager }))
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

pub use homestick_formats::base::{label_ok, LABEL_RULE};

/// Load and check a base directory.
pub fn load_base(dir: &Path) -> Result<BaseInput, BuildError> {
    let md = fs::metadata(dir).map_err(|e| input_file(dir, format!("base directory: {e}")))?;
    if !md.is_dir() {
        return Err(input_file(dir, "not a directory (give the base directory)"));
    }
    let meta = read_base_toml(&dir.join("base.toml"))?;
    let esp = load_esp_tree(&dir.join("esp"))?;
    let (system, system_len) = check_system(&dir.join("system.img"))?;
    let boot = load_boot(dir, &esp, meta.boot.clone())?;
    if boot.is_none() && meta.boot.is_some() {
        return Err(input_file(
            &dir.join("base.toml"),
            "[boot] is set but the base has no kernel file",
        ));
    }
    Ok(BaseInput {
        meta,
        esp,
        system,
        system_len,
        boot,
    })
}

fn read_base_toml(tp: &Path) -> Result<BaseToml, BuildError> {
    let raw = read_bounded(tp, homestick_formats::base::MAX_BYTES).map_err(read_err(tp))?;
    let text = String::from_utf8(raw).map_err(|_| input_file(tp, "not UTF-8 text"))?;
    let bt = BaseToml::parse(&text).map_err(|e| input_file(tp, e.0))?;
    for (field, v) in [("name", &bt.name), ("version", &bt.version)] {
        if !label_ok(v) {
            return Err(input(
                format!("{}: {field}", tp.display()),
                format!("{v:?} {LABEL_RULE}"),
            ));
        }
    }
    Ok(bt)
}

fn load_esp_tree(esp_dir: &Path) -> Result<Vec<FatFile>, BuildError> {
    if !esp_dir.is_dir() {
        return Err(input_file(
            esp_dir,
            "missing (the tree copied into the ESP)",
        ));
    }
    let esp = tree::collect_files(esp_dir, MAX_ESP_FILE, MAX_ESP_TOTAL)?;
    if let Some(f) = esp
        .iter()
        .find(|f| f.path.to_ascii_lowercase().starts_with("homestick/"))
    {
        return Err(input_file(
            &esp_dir.join(&f.path),
            "the ESP folder homestick/ is reserved for the manifest and README.txt",
        ));
    }
    Ok(esp)
}

fn check_system(system: &Path) -> Result<(PathBuf, u64), BuildError> {
    let sm = fs::metadata(system).map_err(|e| input_file(system, format!("cannot read: {e}")))?;
    if !sm.is_file() {
        return Err(input_file(system, "not a regular file"));
    }
    if sm.len() == 0 {
        return Err(input_file(system, "empty"));
    }
    if sm.len() > MAX_SYSTEM {
        return Err(input_file(
            system,
            format!("{} bytes, over the limit of {MAX_SYSTEM}", sm.len()),
        ));
    }
    Ok((system.to_path_buf(), sm.len()))
}

fn load_boot(
    dir: &Path,
    esp: &[FatFile],
    config: Option<BootToml>,
) -> Result<Option<BootInput>, BuildError> {
    let kernel_path = dir.join("kernel");
    if !kernel_path.exists() {
        return Ok(None);
    }
    let kernel = read_bounded(&kernel_path, 256 << 20).map_err(read_err(&kernel_path))?;
    if kernel.get(0..2) != Some(b"MZ") {
        return Err(input_file(
            &kernel_path,
            "not an EFI-stub kernel (no MZ header)",
        ));
    }
    let initrd_path = dir.join("initrd");
    let initrd = if initrd_path.exists() {
        read_bounded(&initrd_path, 1 << 30).map_err(read_err(&initrd_path))?
    } else {
        Vec::new()
    };
    let cmdline_path = dir.join("cmdline");
    let raw = read_bounded(&cmdline_path, 4096).map_err(read_err(&cmdline_path))?;
    let text = String::from_utf8(raw).map_err(|_| input_file(&cmdline_path, "not UTF-8 text"))?;
    let cmdline = cmdline::normalize(&text);
    cmdline::lint(&cmdline).map_err(|e| input_file(&cmdline_path, e.to_string()))?;
    let stub_path = dir.join("linuxx64.efi.stub");
    let stub = read_bounded(&stub_path, 16 << 20).map_err(read_err(&stub_path))?;
    uki::check_stub(&stub).map_err(|e| input_file(&stub_path, e.to_string()))?;
    use homestick_formats::shim::{ESP_CERT, ESP_LOADER, ESP_MOK_MANAGER, ESP_SECOND_STAGE};
    for own in [ESP_LOADER, ESP_SECOND_STAGE, ESP_MOK_MANAGER, ESP_CERT] {
        if esp.iter().any(|f| f.path.eq_ignore_ascii_case(own)) {
            return Err(input_file(
                &dir.join("esp").join(own),
                format!(
                    "the base has a kernel, so homestick places {own} itself; remove it from esp/"
                ),
            ));
        }
    }
    Ok(Some(BootInput {
        kernel,
        initrd,
        cmdline,
        stub,
        // A base.toml without [boot]: its defaults.
        config: config.unwrap_or_default(),
        shim: load_shim(dir)?,
    }))
}

/// The Debian packages a base must hold for `profile`'s connections and softphone to start on
/// the stick: `(package, what needs it)`.
pub fn needed_packages(profile: &homestick_profile::Profile) -> Vec<(&'static str, String)> {
    use homestick_profile::{schema::IpsecAuth, VpnKind};
    let mut out = Vec::new();
    for v in &profile.vpn {
        let what = format!("vpn {} ({})", v.toml.name, v.kind.name());
        let need: &[&'static str] = match &v.kind {
            VpnKind::WireGuard(_) => &["wireguard-tools"],
            VpnKind::OpenVpn(_) => &["openvpn"],
            // The openssl plugin has the ECP groups and AES-GCM of IKE proposals.
            VpnKind::Ipsec(i) if i.auth == IpsecAuth::Certificate => &[
                "strongswan-swanctl",
                "charon-systemd",
                "libstrongswan-standard-plugins",
            ],
            VpnKind::Ipsec(_) => &[
                "strongswan-swanctl",
                "charon-systemd",
                "libstrongswan-standard-plugins",
                "libcharon-extra-plugins",
            ],
        };
        out.extend(need.iter().map(|p| (*p, what.clone())));
    }
    if profile.softphone.is_some() {
        out.push(("baresip-core", "the softphone".into()));
    }
    out
}

/// A base made by `homestick base build` lists its packages in `packages.txt` (`name version`
/// per line): every package the profile needs must be there, or the stick would fail at home.
/// Bases without the list (the fixture bases of the tests) are not checked.
pub fn check_packages(dir: &Path, profile: &homestick_profile::Profile) -> Result<(), BuildError> {
    let path = dir.join("packages.txt");
    if !path.exists() {
        return Ok(());
    }
    let raw = read_bounded(&path, 1 << 20).map_err(read_err(&path))?;
    let text = String::from_utf8_lossy(&raw);
    let have: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let missing: Vec<String> = needed_packages(profile)
        .into_iter()
        .filter(|(p, _)| !have.contains(p))
        .map(|(p, what)| format!("{p} (for {what})"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(input_file(
        &path,
        format!(
            "the base lacks {}: add the package(s) to its base.toml and build it again",
            missing.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_must_hold_what_the_profile_needs() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let waldbach = homestick_profile::Profile::load(
            &root.join("profiles/gemeinde-waldbach"),
            1_796_000_000,
        )
        .unwrap();
        let muster = homestick_profile::Profile::load(
            &root.join("profiles/stadt-musterhausen"),
            1_796_000_000,
        )
        .unwrap();
        let full = "openvpn 2.6\nwireguard-tools 1\nstrongswan-swanctl 5\ncharon-systemd 5\n\
                    libstrongswan-standard-plugins 5\nlibcharon-extra-plugins 5\nbaresip-core 1\n";
        for (name, profile, packages, missing) in [
            (
                "everything there",
                &waldbach,
                Some(full.to_string()),
                vec![],
            ),
            ("no list: not checked", &waldbach, None, vec![]),
            (
                "no EAP plugin",
                &waldbach,
                Some(full.replace("libcharon-extra-plugins 5\n", "")),
                vec!["libcharon-extra-plugins (for vpn ikev2 (ipsec))"],
            ),
            (
                "no OpenVPN, no baresip",
                &waldbach,
                Some(
                    full.replace("openvpn 2.6\n", "")
                        .replace("baresip-core 1\n", ""),
                ),
                vec![
                    "openvpn (for vpn rathaus (openvpn))",
                    "baresip-core (for the softphone)",
                ],
            ),
            (
                "WireGuard needs only its tools",
                &muster,
                Some("wireguard-tools 1\nbaresip-core 1\n".into()),
                vec![],
            ),
            (
                "empty list",
                &muster,
                Some(String::new()),
                vec!["wireguard-tools", "baresip-core"],
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            if let Some(p) = &packages {
                fs::write(dir.path().join("packages.txt"), p).unwrap();
            }
            let r = check_packages(dir.path(), profile);
            if missing.is_empty() {
                assert!(r.is_ok(), "{name}: {r:?}");
                continue;
            }
            let e = r.expect_err(name).to_string();
            assert!(e.contains("packages.txt"), "{name}: {e}");
            for m in &missing {
                assert!(e.contains(m), "{name}: {m} not in {e}");
            }
        }
    }

    #[test]
    fn labels() {
        for ok in ["1.0", "2026.11.1", "a-b_c+d~e", &"x".repeat(64)] {
            assert!(label_ok(ok), "{ok}");
        }
        for bad in ["", "a b", "ä", "a/b", &"x".repeat(65)] {
            assert!(!label_ok(bad), "{bad}");
        }
    }
}
