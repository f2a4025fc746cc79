//! homestick-boot: PID 1 of the initramfs in the signed UKI.
//!
//! Mounts the kernel's file systems, loads the modules the policy names, finds the stick by
//! its disk GUID, verifies it before anything on it is used (the system by its dm-verity tree's
//! top against the signed root hash, the profile by reading it into memory once and hashing
//! it), then removes the kernel's own partitions of the stick, maps exactly the verified sector
//! ranges with device-mapper, puts dm-verity with the signed root hash over the system, mounts
//! that read-only, writes the profile's files to a read-only tmpfs from the bytes it hashed,
//! and switches to the system's init. On any failure, or when no verdict comes
//! within the policy's time, it prints the reason and the message for the person at home,
//! waits, and powers off. There is no shell, and no path that leads to one. Console lines
//! (`homestick: ...`) are a contract tests rely on.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use homestick_boot::{
    candidate_disks, disk_device, disk_guid, kernel_partitions, load_keys, load_policy, one_line,
    system_mapping, verify_stick, Mapping, Verdict, Watchdog, SYSTEM_MAP,
};
use homestick_image::manifest::Manifest;
use homestick_image::policy::{BootPolicy, Refusal, KEYS_DIR, POLICY_PATH};
use homestick_image::verify::VerifyError;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{Mode, SFlag};

fn say(msg: &str) {
    let mut out = std::io::stdout().lock();
    // The console is all the verifier can speak through: nowhere to report its failure.
    let _ = writeln!(out, "{msg}");
    // As above: a console that cannot be written cannot be told so.
    let _ = out.flush();
}

fn mount_fs(
    src: &str,
    target: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    // Exists in the initramfs already, or mount() below names the failure.
    let _ = fs::create_dir_all(target);
    mount(Some(src), target, Some(fstype), flags, data)
        .map_err(|e| format!("mounting {src} ({fstype}) on {target}: {e}"))
}

fn early_mounts() {
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    // The kernel may have mounted it (devtmpfs.mount=1); finding the stick fails with its own
    // message if /dev is missing.
    let _ = mount_fs("devtmpfs", "/dev", "devtmpfs", MsFlags::MS_NOSUID, None);
    // A missing /proc shows as the failure of what reads it (the stick search).
    let _ = mount_fs("proc", "/proc", "proc", nodev | MsFlags::MS_NODEV, None);
    // A missing /sys shows as the failure of what reads it (the stick search).
    let _ = mount_fs("sysfs", "/sys", "sysfs", nodev | MsFlags::MS_NODEV, None);
    // If the kernel could not give us a console (no /dev/console in the archive), take it now.
    if let Ok(c) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // Best effort: without a console there is no one to tell.
            let _ = nix::unistd::dup2(c.as_raw_fd(), fd);
        }
    }
}

fn load_modules(policy: &BootPolicy) {
    for m in &policy.modules {
        let path = Path::new("/").join(m);
        let res = fs::File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                nix::kmod::finit_module(
                    &f,
                    &CString::default(),
                    nix::kmod::ModuleInitFlags::empty(),
                )
                .map_err(|e| e.to_string())
            });
        match res {
            Ok(()) => {}
            Err(e) if e.contains("EEXIST") => {}
            Err(e) => say(&format!("homestick: note: module {m}: {e}")),
        }
    }
}

/// Wait for a block device whose GPT carries the policy's disk GUID.
fn find_stick(policy: &BootPolicy) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(u64::from(policy.device_timeout_seconds));
    loop {
        for name in candidate_disks(Path::new("/sys/block")) {
            if disk_guid(&Path::new("/dev").join(&name)) == Some(policy.disk_guid) {
                return Ok(name);
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no stick with disk GUID {} found within {} s",
                policy.disk_guid, policy.device_timeout_seconds
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Remove the kernel's partitions of the stick: what it found by its own scan (of LBA 0, the
/// GPT, or any other format it knows) is never used, and no node of it is left for anyone else.
fn drop_kernel_partitions(disk: &str) -> Result<(), String> {
    let dev = disk_device(Path::new("/dev"), disk);
    let f = fs::File::open(&dev).map_err(|e| format!("{}: {e}", dev.display()))?;
    let parts = kernel_partitions(Path::new("/sys/block"), disk)
        .map_err(|e| format!("the kernel's partitions of {disk}: {e}"))?;
    for pno in parts {
        homestick_sys::delete_partition(&f, pno).map_err(|e| format!("{}: {e}", dev.display()))?;
    }
    Ok(())
}

/// Make the node /dev/NAME for device `dev`.
fn node(name: &str, dev: u64) -> Result<String, String> {
    let node = format!("/dev/{name}");
    // A node of an earlier attempt, if any; mknod below fails if it stays.
    let _ = fs::remove_file(&node);
    nix::sys::stat::mknod(node.as_str(), SFlag::S_IFBLK, Mode::S_IRUSR, dev)
        .map_err(|e| format!("creating {node}: {e}"))?;
    Ok(node)
}

/// Map `m` of the whole disk `disk` read-only; returns the new device's `dev_t`.
fn map_range(disk: &str, m: &Mapping) -> Result<u64, String> {
    let dev = disk_device(Path::new("/dev"), disk);
    let rdev = fs::metadata(&dev)
        .map_err(|e| format!("{}: {e}", dev.display()))?
        .rdev();
    homestick_sys::create_linear(
        Path::new("/dev/mapper/control"),
        &homestick_sys::LinearMap {
            name: m.name,
            disk: rdev,
            start: m.start,
            sectors: m.sectors,
        },
    )
    .map_err(|e| {
        format!(
            "mapping sectors {}+{} of {}: {e}",
            m.start,
            m.sectors,
            dev.display()
        )
    })
}

fn dev_text(dev: u64) -> String {
    let (major, minor) = homestick_sys::split_dev(dev);
    format!("{major}:{minor}")
}

/// The system through dm-verity over the verified ranges of the system and hash partitions.
fn map_system(policy: &BootPolicy, disk: &str, m: &Manifest) -> Result<String, String> {
    let vm = system_mapping(m).map_err(|e| e.to_string())?;
    let data = map_range(disk, &vm.data)?;
    let hash = map_range(disk, &vm.hash)?;
    let table = vm.table(
        &dev_text(data),
        &dev_text(hash),
        policy.verity_on_corruption,
    );
    let dev = homestick_sys::create_device(
        Path::new("/dev/mapper/control"),
        SYSTEM_MAP,
        "verity",
        vm.sectors(),
        &table,
    )
    .map_err(|e| format!("setting up dm-verity ({table}): {e}"))?;
    say(&format!(
        "homestick: system through dm-verity, root hash {}",
        vm.root_hash
    ));
    node(SYSTEM_MAP, dev)
}

/// Write the profile's files to a tmpfs at `target` and make it read-only.
fn write_profile(target: &str, files: &[(String, Vec<u8>)]) -> Result<(), String> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("tmpfs", target, "tmpfs", flags, Some("mode=0755"))?;
    for (path, data) in files {
        let at = Path::new(target).join(path);
        if let Some(dir) = at.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        fs::write(&at, data).map_err(|e| format!("{}: {e}", at.display()))?;
    }
    mount(
        None::<&str>,
        target,
        None::<&str>,
        flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|e| format!("making {target} read-only: {e}"))
}

fn mount_system(policy: &BootPolicy, disk: &str, v: &Verdict) -> Result<(), String> {
    drop_kernel_partitions(disk)?;
    let sys = map_system(policy, disk, &v.manifest)?;
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NODEV;
    mount_fs(&sys, "/newroot", "squashfs", ro, None)?;
    mount_fs(
        "tmpfs",
        "/newroot/run",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )?;
    write_profile(&format!("/newroot{}", policy.profile_mount), &v.profile)
}

fn switch_root(policy: &BootPolicy) -> String {
    for d in ["/dev", "/proc", "/sys"] {
        let target = format!("/newroot{d}");
        // Exists in the system already, or the move below names the failure.
        let _ = fs::create_dir_all(&target);
        if let Err(e) = mount(
            Some(d),
            target.as_str(),
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        ) {
            return format!("moving {d}: {e}");
        }
    }
    if let Err(e) = nix::unistd::chdir("/newroot") {
        return format!("chdir /newroot: {e}");
    }
    if let Err(e) = mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>) {
        return format!("moving the new root: {e}");
    }
    if let Err(e) = nix::unistd::chroot(".") {
        return format!("chroot: {e}");
    }
    // After chroot(".") the working directory is "/" already; this only makes it explicit.
    let _ = nix::unistd::chdir("/");
    let Ok(init) = CString::new(policy.init.clone()) else {
        return "bad init path".into();
    };
    match nix::unistd::execv(&init, std::slice::from_ref(&init)) {
        Ok(never) => match never {},
        Err(e) => format!("starting {}: {e}", policy.init),
    }
}

fn refuse(reason: &str, why: Refusal, policy: Option<&BootPolicy>, started: Instant) -> ! {
    // The watchdog and the main thread may both get here: the first one speaks and powers off.
    static REFUSING: AtomicBool = AtomicBool::new(false);
    if REFUSING.swap(true, Ordering::SeqCst) {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    say(&format!(
        "homestick: VERIFICATION FAILED: {}",
        one_line(reason)
    ));
    say(&format!(
        "homestick: verdict after {} ms",
        started.elapsed().as_millis()
    ));
    let delay = match policy {
        Some(p) => {
            say(&p.refusal_message(why));
            p.failure_delay_seconds
        }
        None => {
            say("\n  Dieser Stick kann nicht gestartet werden. / This stick cannot be started.\n");
            30
        }
    };
    std::thread::sleep(Duration::from_secs(u64::from(delay)));
    say("homestick: powering off");
    nix::unistd::sync();
    // Returns only on failure; then the loop below keeps the refusal on screen, starting nothing.
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Find the stick, verify it with the boot keyring and the policy, and say the verdict (and
/// an expiry notice). Returns the stick's device name and the verdict, or the reason and kind
/// of refusal.
fn verify(policy: &BootPolicy, started: Instant) -> Result<(String, Verdict), (String, Refusal)> {
    let changed = |e: String| (e, Refusal::Changed);
    let keys = load_keys(&Path::new("/").join(KEYS_DIR)).map_err(|e| changed(e.to_string()))?;
    load_modules(policy);
    let disk = find_stick(policy).map_err(changed)?;
    // The PC's clock decides expiry: the person at home can set it back, which the
    // threat model says; the revocation list and the rollback index do not depend on it.
    let now = homestick_image::time::now();
    let v = verify_stick(&Path::new("/dev").join(&disk), &keys, policy, now).map_err(|e| {
        let why = match &e {
            homestick_boot::BootError::Verify(VerifyError::Untrusted { failures, .. }) => {
                Refusal::of(failures)
            }
            _ => Refusal::Changed,
        };
        (e.to_string(), why)
    })?;
    let m = &v.manifest;
    // An image without a user (one for the whole customer) names none.
    let user = m
        .user
        .as_ref()
        .map(|u| format!(" user {}", u.id))
        .unwrap_or_default();
    say(&format!(
        "homestick: image verified: {} {} {}{user}",
        m.image_id, m.customer.id, m.version,
    ));
    say(&format!(
        "homestick: verdict after {} ms",
        started.elapsed().as_millis()
    ));
    secure_boot_notice(policy);
    if let Some(notice) = policy.expiry_notice(m, now) {
        // A notice is only given for an image that expires.
        let expires = m.expires.as_deref().unwrap_or_default();
        say(&format!("homestick: expires {expires}"));
        say(&notice);
        std::thread::sleep(Duration::from_secs(u64::from(
            policy.failure_delay_seconds.min(15),
        )));
    }
    Ok((disk, v))
}

/// With Secure Boot off the stick still checked itself, but the person at home is told, with
/// the hotline, and the notice stays a while.
fn secure_boot_notice(policy: &BootPolicy) {
    use homestick_formats::paths::{secure_boot_enabled, BOOT_PARAMS};
    let params = homestick_image::files::read_bounded(Path::new(BOOT_PARAMS), 8192);
    match params.ok().and_then(|p| secure_boot_enabled(&p)) {
        Some(false) => {
            say("homestick: Secure Boot is off");
            say(&policy.secure_boot_off_notice());
            std::thread::sleep(Duration::from_secs(u64::from(
                policy.failure_delay_seconds.min(15),
            )));
        }
        Some(true) => say("homestick: Secure Boot is on"),
        None => say("homestick: Secure Boot state unknown"),
    }
}

fn main() {
    let started = Instant::now();
    early_mounts();
    say(&format!(
        "homestick: boot verifier {} starting",
        env!("CARGO_PKG_VERSION")
    ));
    let policy = match load_policy(&Path::new("/").join(POLICY_PATH)) {
        Ok(p) => p,
        Err(e) => refuse(&e.to_string(), Refusal::Changed, None, started),
    };
    // No verdict (and no start of the system) in time is a refusal, whatever the stick does.
    let limit =
        u64::from(policy.device_timeout_seconds) + u64::from(policy.verdict_timeout_seconds);
    let watchdog = {
        let policy = policy.clone();
        Watchdog::start(Duration::from_secs(limit), move || {
            refuse(
                &format!("no verdict within {limit} s: the stick is too slow, damaged or changed"),
                Refusal::Changed,
                Some(&policy),
                started,
            )
        })
    };
    let outcome = std::panic::catch_unwind(|| verify(&policy, started));
    let (disk, verdict) = match outcome {
        Ok(Ok(d)) => d,
        Ok(Err((reason, why))) => refuse(&reason, why, Some(&policy), started),
        Err(_) => refuse(
            "internal error in the verifier",
            Refusal::Changed,
            Some(&policy),
            started,
        ),
    };
    if let Err(e) = mount_system(&policy, &disk, &verdict) {
        refuse(&e, Refusal::Changed, Some(&policy), started);
    }
    if !watchdog.disarm() {
        // Too late: the watchdog is refusing and will power off; start nothing.
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let err = switch_root(&policy);
    refuse(&err, Refusal::Changed, Some(&policy), started);
}
