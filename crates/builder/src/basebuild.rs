//! `homestick base build RECIPE --out DIR`: a base from Debian packages, declaratively.
//!
//! The recipe (BASE.toml) names the suite, the kernel, the packages and the session. mmdebstrap
//! makes the root (downloaded .debs are kept in a cache directory for the next build);
//! homestick then locks it down (read-only root, tmpfs for /var, /tmp and /home, no getty, no
//! shell for any user, SysRq and Ctrl-Alt-Del off, no EFI variables, the nftables kill switch
//! before any network), installs the session (`homestick-session` and its systemd units),
//! takes the kernel and the boot verifier's modules out of the root, and packs the system into
//! a squashfs. Under SOURCE_DATE_EPOCH the file times are that epoch.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::cpio::{archive, Entry};
use crate::error::{input, input_file, BuildError};

/// Largest recipe file.
const MAX_RECIPE: u64 = 64 << 10;

/// Kernel modules the boot verifier loads from the initrd: virtio, SATA (AHCI), NVMe and USB
/// storage, FAT, squashfs, code pages, and device-mapper with dm-verity.
pub const VERIFIER_MODULES: &[&str] = &[
    "dm_mod",
    "dm_verity",
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "ahci",
    "nvme",
    "xhci_pci",
    "ehci_pci",
    "usb_storage",
    "uas",
    "sd_mod",
    "squashfs",
    "vfat",
    "nls_cp437",
    "nls_iso8859_1",
    "nls_utf8",
    "nls_ascii",
];

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
}

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

/// Units no stick runs: text logins, rescue shells, Ctrl-Alt-Del, EFI variables (the PC's
/// flash), background downloads.
pub const MASKED_UNITS: &[&str] = &[
    "getty.target",
    "getty@.service",
    "serial-getty@.service",
    "console-getty.service",
    "container-getty@.service",
    "autovt@.service",
    "debug-shell.service",
    "emergency.service",
    "emergency.target",
    "rescue.service",
    "rescue.target",
    "ctrl-alt-del.target",
    "sys-firmware-efi-efivars.mount",
    "systemd-firstboot.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "fstrim.timer",
    "e2scrub_all.timer",
    "systemd-timesyncd.service",
];

const DEFAULT_CMDLINE: &str = "console=tty0 console=ttyS0,115200 lockdown=integrity ro panic=-1 loglevel=4 ipv6.disable_ipv6=1 efi=noruntime systemd.show_status=error";

fn package_ok(p: &str) -> bool {
    p.len() >= 2
        && p.len() <= 100
        && p.as_bytes()[0].is_ascii_alphanumeric()
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

/// Read and check a recipe; relative paths become relative to its directory.
pub fn load_recipe(path: &Path) -> Result<Recipe, BuildError> {
    let raw = homestick_image::files::read_bounded(path, MAX_RECIPE)
        .map_err(crate::error::read_err(path))?;
    let text = String::from_utf8(raw).map_err(|_| input_file(path, "not UTF-8 text"))?;
    parse_recipe(&text, path)
}

/// Check a recipe's text (`path` names it in messages and anchors relative paths).
pub fn parse_recipe(text: &str, path: &Path) -> Result<Recipe, BuildError> {
    let mut r: Recipe =
        toml::from_str(text).map_err(|e| input_file(path, e.message().trim().to_string()))?;
    let field = |f: &str| format!("{}: {f}", path.display());
    for (f, v) in [("name", &r.name), ("version", &r.version)] {
        if !crate::base::label_ok(v) {
            return Err(input(
                field(f),
                format!("{v:?} {}", crate::base::LABEL_RULE),
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

/// What `base build` needs besides the recipe.
#[derive(Debug, Clone)]
pub struct BaseBuildOptions {
    /// BASE.toml.
    pub recipe: PathBuf,
    /// The base directory to write (replaced only when the build succeeded).
    pub out: PathBuf,
    /// More overlay directories, copied after the recipe's (a test channel, a customer's extras).
    pub overlays: Vec<PathBuf>,
    /// The session program to install (`homestick-session`).
    pub session: PathBuf,
    /// Where downloaded .debs are kept between builds.
    pub cache: PathBuf,
    /// The apt sources file for mmdebstrap (default: this machine's).
    pub sources: Option<PathBuf>,
}

/// What a base build produced.
#[derive(Debug, Clone)]
pub struct BaseReport {
    /// The kernel version.
    pub kernel: String,
    /// Packages installed.
    pub packages: usize,
    /// system.img's size.
    pub system_bytes: u64,
}

fn tool_err(what: &str, e: impl std::fmt::Display) -> BuildError {
    BuildError::Tool {
        tool: what.to_string(),
        reason: e.to_string(),
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<(), BuildError> {
    let out = cmd
        .output()
        .map_err(|e| tool_err(what, format!("cannot start: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(tool_err(
            what,
            format!("failed ({}):\n{}", out.status, tail.join("\n")),
        ));
    }
    Ok(())
}

fn default_sources() -> Option<PathBuf> {
    [
        "/etc/apt/sources.list.d/debian.sources",
        "/etc/apt/sources.list",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Check everything before mmdebstrap runs.
fn preflight(o: &BaseBuildOptions) -> Result<Recipe, BuildError> {
    let recipe = load_recipe(&o.recipe)?;
    for ov in &o.overlays {
        if !ov.is_dir() {
            return Err(input(
                "--overlay",
                format!("{} is not a directory", ov.display()),
            ));
        }
    }
    let md = fs::metadata(&o.session)
        .map_err(|e| input_file(&o.session, format!("the session program: {e}")))?;
    if !md.is_file()
        || fs::read(&o.session)
            .map(|b| !b.starts_with(b"\x7fELF"))
            .unwrap_or(true)
    {
        return Err(input_file(
            &o.session,
            "the session program is not an ELF executable",
        ));
    }
    if let Some(s) = &o.sources {
        if !s.is_file() {
            return Err(input_file(s, "apt sources: not a file"));
        }
    } else if default_sources().is_none() {
        return Err(input(
            "--sources",
            "this machine has no /etc/apt/sources.list(.d/debian.sources); name an apt sources file",
        ));
    }
    for (tool, pkg) in [
        ("mmdebstrap", "mmdebstrap"),
        ("mksquashfs", "squashfs-tools"),
    ] {
        if Command::new(tool).arg("--version").output().is_err()
            && Command::new(tool).arg("-version").output().is_err()
        {
            return Err(input(
                tool,
                format!("not installed (apt-get install {pkg})"),
            ));
        }
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(input(
            "base build",
            "needs root (mmdebstrap in root mode keeps file owners and capabilities)",
        ));
    }
    let parent = o
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(input(
            "--out",
            format!("{}: its directory does not exist", o.out.display()),
        ));
    }
    Ok(recipe)
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

/// Build a base.
pub fn build_base(
    o: &BaseBuildOptions,
    say: &mut dyn FnMut(&str),
) -> Result<BaseReport, BuildError> {
    let recipe = preflight(o)?;
    let parent = o
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let work = tempfile::Builder::new()
        .prefix(".homestick-base-")
        .tempdir_in(parent)
        .map_err(|e| input("--out", format!("{}: {e}", parent.display())))?;
    let root = work.path().join("root");
    let staged = work.path().join("base");
    fs::create_dir_all(staged.join("esp")).map_err(|e| input_file(&staged, e.to_string()))?;
    fs::create_dir_all(&o.cache).map_err(|e| input_file(&o.cache, e.to_string()))?;
    let epoch = crate::build_epoch().map_err(|e| input("SOURCE_DATE_EPOCH", e.to_string()))?;

    let packages = package_list(&recipe);
    say(&format!(
        "mmdebstrap {} with {} packages (cache {})",
        recipe.suite,
        packages.len(),
        o.cache.display()
    ));
    let sources = o
        .sources
        .clone()
        .or_else(default_sources)
        .unwrap_or_default();
    let cache = o.cache.display().to_string();
    let mut mm = Command::new("mmdebstrap");
    mm.args(["--variant=minbase", "--mode=root", "--format=directory"])
        .arg(format!("--include={}", packages.join(",")))
        .args([
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-include=/usr/share/locale/de/*",
            "--dpkgopt=path-include=/usr/share/locale/locale.alias",
            "--skip=download/empty",
            "--skip=essential/unlink",
            "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
        ])
        .arg(format!(
            "--setup-hook=sync-in {cache} /var/cache/apt/archives/"
        ))
        .arg(format!(
            "--customize-hook=sync-out /var/cache/apt/archives {cache}"
        ))
        .arg("--customize-hook=rm -f \"$1\"/var/cache/apt/archives/*.deb")
        .arg(&recipe.suite)
        .arg(&root)
        .arg(&sources)
        .env("SOURCE_DATE_EPOCH", epoch.to_string());
    run(&mut mm, "mmdebstrap")?;

    say("locking the system down and installing the session");
    let kv = lock_down(&root, &recipe, o)?;

    say(&format!(
        "kernel {kv}: taking the kernel and the verifier's modules out"
    ));
    let boot = root.join("boot");
    copy(&boot.join(format!("vmlinuz-{kv}")), &staged.join("kernel"))?;
    copy(
        &root.join("usr/lib/systemd/boot/efi/linuxx64.efi.stub"),
        &staged.join("linuxx64.efi.stub"),
    )?;
    let modules = resolve_modules(&root, &kv)?;
    fs::write(staged.join("initrd"), initrd(&root, &modules)?)
        .map_err(|e| input_file(&staged, e.to_string()))?;
    for e in fs::read_dir(&boot).map_err(|e| input_file(&boot, e.to_string()))? {
        let p = e.map_err(|e| input_file(&boot, e.to_string()))?.path();
        let _ = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
    }
    let cmdline = crate::cmdline::normalize(recipe.cmdline.as_deref().unwrap_or(DEFAULT_CMDLINE));
    fs::write(staged.join("cmdline"), format!("{cmdline}\n"))
        .map_err(|e| input_file(&staged, e.to_string()))?;
    let installed = installed_packages(&root)?;
    fs::write(staged.join("packages.txt"), &installed)
        .map_err(|e| input_file(&staged, e.to_string()))?;
    let base_toml = homestick_formats::base::BaseToml {
        name: recipe.name.clone(),
        version: recipe.version.clone(),
        boot: Some(homestick_formats::base::BootToml {
            init: Some("/sbin/init".into()),
            modules: modules
                .iter()
                .map(|rel| rel.display().to_string())
                .collect(),
            ..Default::default()
        }),
    }
    .to_toml(&format!(
        "Built by `homestick base build {}` ({} {}, {} packages: packages.txt).",
        o.recipe.display(),
        recipe.suite,
        kv,
        installed.lines().count(),
    ))
    .map_err(|e| input_file(&o.recipe, e.0))?;
    fs::write(staged.join("base.toml"), base_toml)
        .map_err(|e| input_file(&staged, e.to_string()))?;

    say("mksquashfs (zstd)");
    let system = staged.join("system.img");
    run(
        Command::new("mksquashfs")
            .arg(&root)
            .arg(&system)
            .args(["-noappend", "-comp", "zstd", "-quiet", "-no-progress"])
            .args([
                "-mkfs-time",
                &epoch.to_string(),
                "-all-time",
                &epoch.to_string(),
            ])
            .args(["-e", "boot"])
            // mksquashfs refuses the variable beside the explicit times.
            .env_remove("SOURCE_DATE_EPOCH"),
        "mksquashfs",
    )?;
    let system_bytes = fs::metadata(&system)
        .map_err(|e| input_file(&system, e.to_string()))?
        .len();
    // Only a whole base goes under the final name.
    if o.out.exists() {
        fs::remove_dir_all(&o.out).map_err(|e| input_file(&o.out, e.to_string()))?;
    }
    fs::rename(&staged, &o.out).map_err(|e| input_file(&o.out, e.to_string()))?;
    Ok(BaseReport {
        kernel: kv,
        packages: installed.lines().count(),
        system_bytes,
    })
}

fn copy(from: &Path, to: &Path) -> Result<(), BuildError> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| input_file(from, format!("copying to {}: {e}", to.display())))
}

fn write(root: &Path, rel: &str, text: &str) -> Result<(), BuildError> {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).map_err(|e| input_file(d, e.to_string()))?;
    }
    let _ = fs::remove_file(&p);
    fs::write(&p, text).map_err(|e| input_file(&p, e.to_string()))
}

fn symlink(target: &str, root: &Path, rel: &str) -> Result<(), BuildError> {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).map_err(|e| input_file(d, e.to_string()))?;
    }
    let _ = fs::remove_file(&p);
    std::os::unix::fs::symlink(target, &p).map_err(|e| input_file(&p, e.to_string()))
}

fn chroot(root: &Path, args: &[&str]) -> Result<(), BuildError> {
    run(
        Command::new("chroot").arg(root).args(args),
        &format!("chroot {}", args.join(" ")),
    )
}

/// Copy a directory tree into the root, keeping symlinks and modes.
fn overlay(from: &Path, root: &Path) -> Result<(), BuildError> {
    for e in walkdir::WalkDir::new(from).min_depth(1).sort_by_file_name() {
        let e = e.map_err(|e| input_file(from, e.to_string()))?;
        let rel = e.path().strip_prefix(from).unwrap_or(e.path());
        let to = root.join(rel);
        let ft = e.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&to).map_err(|e| input_file(&to, e.to_string()))?;
        } else if ft.is_symlink() {
            let t = fs::read_link(e.path()).map_err(|e| input_file(from, e.to_string()))?;
            let _ = fs::remove_file(&to);
            std::os::unix::fs::symlink(&t, &to).map_err(|e| input_file(&to, e.to_string()))?;
        } else {
            let _ = fs::remove_file(&to);
            fs::copy(e.path(), &to).map_err(|e| input_file(&to, e.to_string()))?;
        }
    }
    Ok(())
}

/// The kiosk on top of the session: cage with firefox-esr on tty1, the browser's lock
/// (AutoConfig, run at every start of firefox-esr) and its policy from the verified profile.
fn install_kiosk(root: &Path, enable: &mut Vec<&str>) -> Result<(), BuildError> {
    write(
        root,
        "etc/systemd/system/homestick-kiosk.service",
        include_str!("../system/homestick-kiosk.service"),
    )?;
    enable.push("seatd.service");
    enable.push("homestick-kiosk.service");
    // The kiosk's lock: firefox-esr runs it at every start (docs in the file).
    write(
        root,
        "usr/lib/firefox-esr/defaults/pref/homestick-autoconfig.js",
        include_str!("../system/firefox-autoconfig.js"),
    )?;
    write(
        root,
        "usr/lib/firefox-esr/homestick-kiosk.cfg",
        include_str!("../system/homestick-kiosk.cfg"),
    )?;
    // The kiosk browser's policy comes from the verified profile at boot (the session's
    // kiosk-env step writes it before the kiosk starts).
    symlink(
        "/run/homestick-session/firefox-policies.json",
        root,
        "etc/firefox/policies/policies.json",
    )?;
    symlink(
        "/lib/systemd/system/graphical.target",
        root,
        "etc/systemd/system/default.target",
    )?;
    Ok(())
}

fn lock_down(root: &Path, recipe: &Recipe, o: &BaseBuildOptions) -> Result<String, BuildError> {
    const SYS: &[(&str, &str)] = &[
        ("etc/fstab", include_str!("../system/fstab")),
        (
            "etc/sysctl.d/90-homestick.conf",
            include_str!("../system/sysctl.conf"),
        ),
        (
            "etc/systemd/logind.conf.d/homestick.conf",
            include_str!("../system/logind.conf"),
        ),
        (
            "etc/systemd/journald.conf.d/homestick.conf",
            include_str!("../system/journald.conf"),
        ),
        (
            "etc/systemd/resolved.conf.d/homestick.conf",
            include_str!("../system/resolved.conf"),
        ),
        (
            "etc/systemd/network/80-wired.network",
            include_str!("../system/wired.network"),
        ),
        (
            "etc/systemd/system/homestick-firewall.service",
            include_str!("../system/homestick-firewall.service"),
        ),
        (
            "etc/systemd/system/homestick-session.service",
            include_str!("../system/homestick-session.service"),
        ),
        (
            "etc/systemd/system/systemd-networkd.service.d/homestick.conf",
            include_str!("../system/networkd-needs-firewall.conf"),
        ),
        (
            "usr/lib/tmpfiles.d/homestick.conf",
            include_str!("../system/tmpfiles.conf"),
        ),
        ("etc/hostname", "homestick\n"),
        ("etc/hosts", "127.0.0.1 localhost\n127.0.1.1 homestick\n"),
        // Empty: systemd puts a new machine id in RAM at every boot.
        ("etc/machine-id", ""),
    ];
    for (rel, text) in SYS {
        write(root, rel, text)?;
    }
    let _ = fs::remove_file(root.join("var/lib/dbus/machine-id"));
    symlink("/etc/machine-id", root, "var/lib/dbus/machine-id")?;
    let session = root.join("usr/lib/homestick/homestick-session");
    fs::create_dir_all(session.parent().unwrap_or(root))
        .map_err(|e| input_file(root, e.to_string()))?;
    fs::copy(&o.session, &session).map_err(|e| input_file(&o.session, e.to_string()))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&session, fs::Permissions::from_mode(0o755))
        .map_err(|e| input_file(&session, e.to_string()))?;
    // The session user: no password, no shell. root: no password, no shell.
    chroot(
        root,
        &[
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/home/homestick",
            "--shell",
            "/usr/sbin/nologin",
            "--groups",
            "audio,video",
            "homestick",
        ],
    )?;
    chroot(root, &["usermod", "--shell", "/usr/sbin/nologin", "root"])?;
    chroot(root, &["passwd", "--lock", "root"])?;
    for unit in MASKED_UNITS {
        symlink("/dev/null", root, &format!("etc/systemd/system/{unit}"))?;
    }
    let mut enable = vec![
        "systemd-networkd.service",
        "systemd-resolved.service",
        "homestick-firewall.service",
        "homestick-session.service",
    ];
    if recipe.session == Session::Kiosk {
        install_kiosk(root, &mut enable)?;
    } else {
        symlink(
            "/lib/systemd/system/multi-user.target",
            root,
            "etc/systemd/system/default.target",
        )?;
    }
    let mut args = vec!["--root", root.to_str().unwrap_or_default(), "enable"];
    args.extend(enable.iter().copied());
    run(Command::new("systemctl").args(&args), "systemctl enable")?;
    // Nothing of apt's state is of use on a read-only system.
    for d in ["var/lib/apt/lists", "var/cache/apt", "var/cache/debconf"] {
        let p = root.join(d);
        if p.is_dir() {
            let _ = fs::remove_dir_all(&p);
            let _ = fs::create_dir_all(&p);
        }
    }
    for d in [&recipe.overlay]
        .into_iter()
        .flatten()
        .chain(o.overlays.iter())
    {
        overlay(d, root)?;
    }
    write(
        root,
        "etc/homestick-base",
        &format!(
            "name={}\nversion={}\nsuite={}\nsession={:?}\noverlays={}\n",
            recipe.name,
            recipe.version,
            recipe.suite,
            recipe.session,
            o.overlays.len() + usize::from(recipe.overlay.is_some())
        ),
    )?;
    let mods = root.join("lib/modules");
    let kv = fs::read_dir(&mods)
        .map_err(|e| input_file(&mods, e.to_string()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|v| root.join("boot").join(format!("vmlinuz-{v}")).is_file())
        .ok_or_else(|| input_file(&mods, format!("{} installed no kernel", recipe.kernel)))?;
    Ok(kv)
}

fn installed_packages(root: &Path) -> Result<String, BuildError> {
    let out = Command::new("chroot")
        .arg(root)
        .args(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n"])
        .output()
        .map_err(|e| tool_err("dpkg-query", e))?;
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    Ok(lines.join("\n") + "\n")
}

/// `depends=` from a module's .modinfo strings.
pub fn module_depends(ko: &[u8]) -> Vec<String> {
    ko.windows(8)
        .position(|w| w == b"depends=")
        .map(|i| {
            let rest = &ko[i + 8..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(0);
            String::from_utf8_lossy(&rest[..end])
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The verifier's modules in load order (dependencies first), as paths relative to `root`
/// (a root with `lib/modules/<kv>/kernel`).
pub fn resolve_modules(root: &Path, kv: &str) -> Result<Vec<PathBuf>, BuildError> {
    let dir = root.join("lib/modules").join(kv).join("kernel");
    let mut all = BTreeMap::new();
    for e in walkdir::WalkDir::new(&dir) {
        let e = e.map_err(|e| input_file(&dir, e.to_string()))?;
        if let Some(name) = e.file_name().to_str().and_then(|n| n.strip_suffix(".ko")) {
            all.insert(name.replace('-', "_"), e.path().to_path_buf());
        }
    }
    fn visit(
        name: &str,
        all: &BTreeMap<String, PathBuf>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<PathBuf>,
    ) -> Result<(), BuildError> {
        if !seen.insert(name.to_string()) {
            return Ok(());
        }
        let Some(p) = all.get(name) else {
            return Ok(()); // built into the kernel
        };
        let ko = fs::read(p).map_err(|e| input_file(p, e.to_string()))?;
        for d in module_depends(&ko) {
            visit(&d.replace('-', "_"), all, seen, order)?;
        }
        order.push(p.clone());
        Ok(())
    }
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for w in VERIFIER_MODULES {
        visit(w, &all, &mut seen, &mut order)?;
    }
    Ok(order
        .into_iter()
        .filter_map(|p| p.strip_prefix(root).ok().map(Path::to_path_buf))
        .collect())
}

/// An initrd (newc cpio) holding the given files of `root`, with their directories.
pub fn initrd(root: &Path, files: &[PathBuf]) -> Result<Vec<u8>, BuildError> {
    let mut dirs = BTreeSet::new();
    for rel in files {
        let mut acc = PathBuf::new();
        for c in rel.parent().into_iter().flat_map(|p| p.components()) {
            acc.push(c);
            dirs.insert(acc.clone());
        }
    }
    let mut entries: Vec<Entry> = dirs
        .iter()
        .map(|d| Entry::Dir {
            path: d.to_string_lossy().into_owned(),
            mode: 0o755,
        })
        .collect();
    for rel in files {
        let p = root.join(rel);
        entries.push(Entry::File {
            path: rel.to_string_lossy().into_owned(),
            mode: 0o644,
            data: fs::read(&p).map_err(|e| input_file(&p, e.to_string()))?,
        });
    }
    Ok(archive(&entries, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn module_dependencies_come_first() {
        let d = tempfile::tempdir().expect("tmp");
        let k = d.path().join("lib/modules/6.1/kernel/drivers");
        fs::create_dir_all(&k).expect("mkdir");
        fs::write(k.join("dm-verity.ko"), b"x\0depends=dm-bufio,dm-mod\0").expect("w");
        fs::write(k.join("dm-bufio.ko"), b"depends=\0").expect("w");
        fs::write(k.join("dm-mod.ko"), b"depends=\0").expect("w");
        let m = resolve_modules(d.path(), "6.1").expect("resolve");
        let names: Vec<String> = m
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["dm-mod.ko", "dm-bufio.ko", "dm-verity.ko"]);
        let cpio = initrd(d.path(), &m).expect("initrd");
        assert!(cpio.windows(12).any(|w| w == b"dm-verity.ko"));
    }
}
