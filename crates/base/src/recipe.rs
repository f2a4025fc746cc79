//! BASE.toml, the recipe: the suite, the kernel, the packages, the session, the command line
//! and an overlay, checked before anything runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{input, input_file, BaseError};

/// Largest recipe file.
const MAX_RECIPE: u64 = 64 << 10;

/// What runs on the stick once the system is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Session {
    /// VPN and softphone, no graphics (the console shows the session's lines).
    Headless,
    /// The same, plus cage with firefox-esr in kiosk mode on the screen.
    Kiosk,
}

/// BASE.toml: how to build a base.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Base name (goes into base.toml and the manifest).
    pub name: String,
    /// Base version.
    pub version: String,
    /// Debian suite, e.g. "bookworm".
    pub suite: String,
    /// The kernel package, e.g. "linux-image-amd64".
    pub kernel: String,
    /// Packages on top of what the session needs.
    #[serde(default)]
    pub packages: Vec<String>,
    /// The session.
    pub session: Session,
    /// Kernel command line (checked like every base's).
    #[serde(default)]
    pub cmdline: Option<String>,
    /// A directory whose files are copied into the root last (relative to the recipe).
    #[serde(default)]
    pub overlay: Option<PathBuf>,
    /// The boot path the base is for (base.toml's `[boot] path`): "db" (default) or "shim",
    /// for which the base also gets Debian's signed shim and MokManager (the files of
    /// [`SHIM_PACKAGES`], downloaded with the root's apt, not installed into the system).
    #[serde(default)]
    pub boot_path: Option<homestick_formats::base::BootPath>,
}

/// The packages whose signed files a shim-path base carries beside its kernel.
pub const SHIM_PACKAGES: &[&str] = &["shim-signed", "shim-helpers-amd64-signed"];

/// What the session needs whatever the recipe says.
const SESSION_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "systemd-resolved",
    "udev",
    "dbus",
    "kmod",
    "nftables",
    "iproute2",
    "iputils-ping",
    "systemd-boot-efi",
    "ca-certificates",
];

/// What the kiosk session needs on top.
/// cage gets the screen and the input devices from seatd (as the unprivileged session user in
/// group video): logind did not let it activate its session.
const KIOSK_PACKAGES: &[&str] = &[
    "cage",
    "xwayland",
    "seatd",
    "firefox-esr",
    "fonts-dejavu-core",
    "libpam-systemd",
];

/// The kernel command line of a recipe that gives none.
pub(crate) const DEFAULT_CMDLINE: &str = "console=tty0 console=ttyS0,115200 lockdown=integrity ro panic=-1 loglevel=4 ipv6.disable_ipv6=1 efi=noruntime systemd.show_status=error";

fn package_ok(p: &str) -> bool {
    p.len() >= 2
        && p.len() <= 100
        && p.as_bytes()[0].is_ascii_alphanumeric()
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

/// Read and check a recipe; relative paths become relative to its directory.
pub fn load_recipe(path: &Path) -> Result<Recipe, BaseError> {
    let raw = homestick_image::files::read_bounded(path, MAX_RECIPE).map_err(|source| {
        BaseError::Recipe {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let text = String::from_utf8(raw).map_err(|_| input_file(path, "not UTF-8 text"))?;
    parse_recipe(&text, path)
}

/// Check a recipe's text (`path` names it in messages and anchors relative paths).
pub fn parse_recipe(text: &str, path: &Path) -> Result<Recipe, BaseError> {
    let mut r: Recipe =
        toml::from_str(text).map_err(|e| input_file(path, e.message().trim().to_string()))?;
    let field = |f: &str| format!("{}: {f}", path.display());
    for (f, v) in [("name", &r.name), ("version", &r.version)] {
        if !homestick_formats::base::label_ok(v) {
            return Err(input(
                field(f),
                format!("{v:?} {}", homestick_formats::base::LABEL_RULE),
            ));
        }
    }
    if !package_ok(&r.suite) {
        return Err(input(
            field("suite"),
            format!(
                "{:?} is not a Debian suite name (e.g. \"bookworm\")",
                r.suite
            ),
        ));
    }
    if !package_ok(&r.kernel) || !r.kernel.starts_with("linux-image-") {
        return Err(input(
            field("kernel"),
            format!(
                "{:?} is not a kernel package (e.g. \"linux-image-amd64\")",
                r.kernel
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, p) in r.packages.iter().enumerate() {
        if !package_ok(p) {
            return Err(input(
                field(&format!("packages[{i}]")),
                format!("{p:?} is not a Debian package name"),
            ));
        }
        if !seen.insert(p) {
            return Err(input(
                field(&format!("packages[{i}]")),
                format!("{p:?} is listed twice"),
            ));
        }
    }
    if r.packages.len() > 500 {
        return Err(input(field("packages"), "more than 500 packages"));
    }
    if let Some(c) = &r.cmdline {
        crate::cmdline::lint(c).map_err(|e| input(field("cmdline"), e.to_string()))?;
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    if let Some(o) = &r.overlay {
        if o.is_absolute() || o.components().any(|c| c.as_os_str() == "..") {
            return Err(input(
                field("overlay"),
                format!(
                    "{} must be a directory inside the recipe's directory",
                    o.display()
                ),
            ));
        }
        let full = dir.join(o);
        if !full.is_dir() {
            return Err(input(
                field("overlay"),
                format!("{} is not a directory", full.display()),
            ));
        }
        r.overlay = Some(full);
    }
    Ok(r)
}

/// The packages mmdebstrap installs for a recipe, sorted.
pub fn package_list(r: &Recipe) -> Vec<String> {
    let mut all: BTreeSet<String> = SESSION_PACKAGES.iter().map(|s| s.to_string()).collect();
    if r.session == Session::Kiosk {
        all.extend(KIOSK_PACKAGES.iter().map(|s| s.to_string()));
    }
    all.insert(r.kernel.clone());
    all.extend(r.packages.iter().cloned());
    all.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipe_may_choose_the_shim_path() {
        let text = format!("{GOOD}boot_path = \"shim\"\n");
        let r = parse_recipe(&text, Path::new("/x/BASE.toml")).unwrap();
        assert_eq!(r.boot_path, Some(homestick_formats::base::BootPath::Shim));
        let e = parse_recipe(
            &format!("{GOOD}boot_path = \"grub\"\n"),
            Path::new("/x/BASE.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown variant `grub`"), "{e}");
    }

    const GOOD: &str = r#"
name = "homestick-headless"
version = "2026.11"
suite = "bookworm"
kernel = "linux-image-amd64"
packages = ["wireguard-tools", "openvpn", "baresip-core"]
session = "headless"
"#;

    #[test]
    fn a_good_recipe_and_its_packages() {
        let r = parse_recipe(GOOD, Path::new("base.toml")).expect("good");
        let p = package_list(&r);
        for want in [
            "linux-image-amd64",
            "nftables",
            "systemd",
            "wireguard-tools",
        ] {
            assert!(p.iter().any(|x| x == want), "{want} in {p:?}");
        }
        assert!(!p.iter().any(|x| x == "cage"));
        let k = parse_recipe(
            &GOOD.replace("\"headless\"", "\"kiosk\""),
            Path::new("b.toml"),
        )
        .expect("kiosk");
        assert!(package_list(&k).iter().any(|x| x == "firefox-esr"));
    }

    #[test]
    fn each_bad_recipe_is_named() {
        let cases: &[(&str, &str, &str)] = &[
            ("name", "name = \"a b\"", "name"),
            ("suite", "suite = \"book worm\"", "suite"),
            ("kernel", "kernel = \"linux\"", "kernel"),
            ("session", "session = \"gnome\"", "unknown variant"),
            ("unknown", "flavour = \"x\"", "unknown field"),
            (
                "cmdline",
                "cmdline = \"ro init=/bin/sh lockdown=integrity\"",
                "cmdline",
            ),
            ("overlay", "overlay = \"../etc\"", "overlay"),
            ("overlay-missing", "overlay = \"nope\"", "not a directory"),
        ];
        for (name, line, want) in cases {
            let key = line.split(' ').next().unwrap_or_default();
            let mut text: String = GOOD
                .lines()
                .filter(|l| !l.starts_with(&format!("{key} ")))
                .collect::<Vec<_>>()
                .join("\n");
            text.push('\n');
            text.push_str(line);
            let e = parse_recipe(&text, Path::new("/nonexistent/base.toml"))
                .expect_err(name)
                .to_string();
            assert!(e.contains(want) && e.contains("base.toml"), "{name}: {e}");
        }
        let dup = GOOD.replace("\"openvpn\", \"baresip-core\"", "\"openvpn\", \"openvpn\"");
        let e = parse_recipe(&dup, Path::new("base.toml"))
            .expect_err("dup")
            .to_string();
        assert!(e.contains("packages[2]") && e.contains("twice"), "{e}");
        let bad = GOOD.replace("\"openvpn\"", "\"Open VPN\"");
        let e = parse_recipe(&bad, Path::new("base.toml"))
            .expect_err("bad")
            .to_string();
        assert!(e.contains("packages[1]"), "{e}");
    }
}
