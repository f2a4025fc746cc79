//! The lock-down: what makes a Debian root a stick's system. A table of files every base gets,
//! the session program and its user, masked and enabled units, the kiosk, the overlays; one
//! runner applies them in order ([`lock_down`]).

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::error::{input_file, output, BaseError};
use crate::recipe::{Recipe, Session};
use crate::{run, BaseBuildOptions};

/// The files every base gets, as (path in the root, contents).
const SYSTEM_FILES: &[(&str, &str)] = &[
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

/// Lock `root` down and install the session; the kernel version the root holds.
pub(crate) fn lock_down(
    root: &Path,
    recipe: &Recipe,
    o: &BaseBuildOptions,
) -> Result<String, BaseError> {
    for (rel, text) in SYSTEM_FILES {
        write(root, rel, text)?;
    }
    // The file may be absent; the link below is what counts.
    let _ = fs::remove_file(root.join("var/lib/dbus/machine-id"));
    symlink("/etc/machine-id", root, "var/lib/dbus/machine-id")?;
    install_session(root, o)?;
    accounts(root)?;
    for unit in MASKED_UNITS {
        symlink("/dev/null", root, &format!("etc/systemd/system/{unit}"))?;
    }
    enable_units(root, recipe)?;
    clear_apt_state(root)?;
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
    installed_kernel(root, recipe)
}

/// `homestick-session`, mode 0755.
fn install_session(root: &Path, o: &BaseBuildOptions) -> Result<(), BaseError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = root.join("usr/lib/homestick");
    let session = dir.join("homestick-session");
    fs::create_dir_all(&dir).map_err(output(&dir))?;
    fs::copy(&o.session, &session).map_err(|e| input_file(&o.session, e.to_string()))?;
    fs::set_permissions(&session, fs::Permissions::from_mode(0o755)).map_err(output(&session))
}

/// The session user: no password, no shell. root: no password, no shell.
fn accounts(root: &Path) -> Result<(), BaseError> {
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
    chroot(root, &["passwd", "--lock", "root"])
}

/// The network, the firewall, the session (and the kiosk), and the default target.
fn enable_units(root: &Path, recipe: &Recipe) -> Result<(), BaseError> {
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
    run(
        Command::new("systemctl")
            .arg("--root")
            .arg(root)
            .arg("enable")
            .args(&enable),
        "systemctl enable",
    )
}

/// Nothing of apt's state is of use on a read-only system: emptied (what cannot be removed
/// only takes room).
fn clear_apt_state(root: &Path) -> Result<(), BaseError> {
    for d in ["var/lib/apt/lists", "var/cache/apt", "var/cache/debconf"] {
        let p = root.join(d);
        if p.is_dir() {
            // What cannot be removed only takes room: apt never runs on the read-only system.
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).map_err(crate::error::output(&p))?;
        }
    }
    Ok(())
}

/// The version of the kernel the root holds (the one with a vmlinuz in /boot).
fn installed_kernel(root: &Path, recipe: &Recipe) -> Result<String, BaseError> {
    let mods = root.join("lib/modules");
    fs::read_dir(&mods)
        .map_err(output(&mods))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|v| root.join("boot").join(format!("vmlinuz-{v}")).is_file())
        .ok_or_else(|| input_file(&mods, format!("{} installed no kernel", recipe.kernel)))
}

/// Write `text` to `rel` in the root (replacing what is there).
fn write(root: &Path, rel: &str, text: &str) -> Result<(), BaseError> {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).map_err(output(d))?;
    }
    // What was there is replaced; a missing file is fine.
    let _ = fs::remove_file(&p);
    fs::write(&p, text).map_err(output(&p))
}

/// A symbolic link `rel` in the root to `target`.
fn symlink(target: &str, root: &Path, rel: &str) -> Result<(), BaseError> {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).map_err(output(d))?;
    }
    // What was there is replaced; a missing file is fine.
    let _ = fs::remove_file(&p);
    std::os::unix::fs::symlink(target, &p).map_err(output(&p))
}

fn chroot(root: &Path, args: &[&str]) -> Result<(), BaseError> {
    run(
        Command::new("chroot").arg(root).args(args),
        &format!("chroot {}", args.join(" ")),
    )
}

/// Copy a directory tree into the root, keeping symlinks and modes.
fn overlay(from: &Path, root: &Path) -> Result<(), BaseError> {
    for e in walkdir::WalkDir::new(from).min_depth(1).sort_by_file_name() {
        let e = e.map_err(|e| input_file(from, e.to_string()))?;
        let rel = e.path().strip_prefix(from).unwrap_or(e.path());
        let to = root.join(rel);
        let ft = e.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&to).map_err(output(&to))?;
        } else if ft.is_symlink() {
            let t = fs::read_link(e.path()).map_err(|e| input_file(from, e.to_string()))?;
            // Replaced; a missing file is fine.
            let _ = fs::remove_file(&to);
            std::os::unix::fs::symlink(&t, &to).map_err(output(&to))?;
        } else {
            // Replaced; a missing file is fine.
            let _ = fs::remove_file(&to);
            fs::copy(e.path(), &to).map_err(output(&to))?;
        }
    }
    Ok(())
}

/// The kiosk on top of the session: cage with firefox-esr on tty1, the browser's lock
/// (AutoConfig, run at every start of firefox-esr) and its policy from the verified profile.
fn install_kiosk(root: &Path, enable: &mut Vec<&str>) -> Result<(), BaseError> {
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
