//! `homestick base build RECIPE --out DIR`: a base from Debian packages, declaratively.
//!
//! The recipe (BASE.toml) names the suite, the kernel, the packages and the session. mmdebstrap
//! makes the root (downloaded .debs are kept in a cache directory for the next build);
//! homestick then locks it down (read-only root, tmpfs for /var, /tmp and /home, no getty, no
//! shell for any user, SysRq and Ctrl-Alt-Del off, no EFI variables, the nftables kill switch
//! before any network), installs the session (`homestick-session` and its systemd units),
//! takes the kernel and the boot verifier's modules out of the root, and packs the system into
//! a squashfs. Under SOURCE_DATE_EPOCH the file times are that epoch.

pub mod cmdline;
pub mod cpio;
mod error;
pub mod initrd;
mod lockdown;
pub mod recipe;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use error::{BaseError, ErrorKind};
pub use initrd::{initrd, module_depends, resolve_modules, VERIFIER_MODULES};
pub use lockdown::MASKED_UNITS;
pub use recipe::{load_recipe, package_list, parse_recipe, Recipe, Session};

use error::{input, input_file, output, tool};

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

/// Run a tool; its failure names it with its exit status and the end of what it said.
fn run(cmd: &mut Command, what: &str) -> Result<(), BaseError> {
    run_output(cmd, what).map(|_| ())
}

/// Run a tool and take its standard output.
fn run_output(cmd: &mut Command, what: &str) -> Result<Vec<u8>, BaseError> {
    let out = cmd
        .output()
        .map_err(|e| tool(what, format!("cannot start: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(tool(
            what,
            format!("failed ({}):\n{}", out.status, tail.join("\n")),
        ));
    }
    Ok(out.stdout)
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
fn preflight(o: &BaseBuildOptions) -> Result<Recipe, BaseError> {
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

/// The directory the base goes into (where the work directory is made, to rename at the end).
fn out_parent(o: &BaseBuildOptions) -> &Path {
    o.out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Build a base: check everything, mmdebstrap, lock down, take the boot files out, squash,
/// and only then put the whole base under its final name.
pub fn build_base(
    o: &BaseBuildOptions,
    say: &mut dyn FnMut(&str),
) -> Result<BaseReport, BaseError> {
    let recipe = preflight(o)?;
    let parent = out_parent(o);
    let work = tempfile::Builder::new()
        .prefix(".homestick-base-")
        .tempdir_in(parent)
        .map_err(|e| input("--out", format!("{}: {e}", parent.display())))?;
    let root = work.path().join("root");
    let staged = work.path().join("base");
    fs::create_dir_all(staged.join("esp")).map_err(output(&staged))?;
    fs::create_dir_all(&o.cache).map_err(|e| input_file(&o.cache, e.to_string()))?;
    let epoch = homestick_image::time::build_epoch()
        .map_err(|e| input("SOURCE_DATE_EPOCH", e.to_string()))?;
    mmdebstrap(o, &recipe, &root, epoch, say)?;
    say("locking the system down and installing the session");
    let kv = lockdown::lock_down(&root, &recipe, o)?;
    say(&format!(
        "kernel {kv}: taking the kernel and the verifier's modules out"
    ));
    let modules = boot_files(&root, &staged, &kv, &recipe)?;
    shim_files(&root, &staged, &recipe)?;
    let installed = installed_packages(&root)?;
    let packages_txt = staged.join("packages.txt");
    fs::write(&packages_txt, &installed).map_err(output(&packages_txt))?;
    write_base_toml(
        o,
        &recipe,
        &staged,
        &kv,
        &modules,
        installed.lines().count(),
    )?;
    say("mksquashfs (zstd)");
    let system_bytes = squash(&root, &staged.join("system.img"), epoch)?;
    // Only a whole base goes under the final name.
    if o.out.exists() {
        fs::remove_dir_all(&o.out).map_err(output(&o.out))?;
    }
    fs::rename(&staged, &o.out).map_err(output(&o.out))?;
    Ok(BaseReport {
        kernel: kv,
        packages: installed.lines().count(),
        system_bytes,
    })
}

/// The root from Debian packages, with the .deb cache synced in and out.
fn mmdebstrap(
    o: &BaseBuildOptions,
    recipe: &Recipe,
    root: &Path,
    epoch: i64,
    say: &mut dyn FnMut(&str),
) -> Result<(), BaseError> {
    let packages = package_list(recipe);
    say(&format!(
        "mmdebstrap {} with {} packages (cache {})",
        recipe.suite,
        packages.len(),
        o.cache.display()
    ));
    // preflight made sure there is one.
    let sources = o
        .sources
        .clone()
        .or_else(default_sources)
        .ok_or_else(|| input("--sources", "no apt sources file"))?;
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
        .args(shim_hook(recipe, root))
        .arg("--customize-hook=rm -f \"$1\"/var/cache/apt/archives/*.deb")
        .arg(&recipe.suite)
        .arg(root)
        .arg(&sources)
        .env("SOURCE_DATE_EPOCH", epoch.to_string());
    run(&mut mm, "mmdebstrap")
}

/// Where a shim-path recipe's signed shim files are unpacked: beside the root in the work
/// directory, never inside the system.
fn shim_staging(root: &Path) -> PathBuf {
    root.with_file_name("shim")
}

/// On the shim path: a customize hook that downloads [`recipe::SHIM_PACKAGES`] with the root's
/// apt (mmdebstrap sets APT_CONFIG for hooks) and unpacks them to [`shim_staging`].
fn shim_hook(recipe: &Recipe, root: &Path) -> Vec<String> {
    if recipe.boot_path != Some(homestick_formats::base::BootPath::Shim) {
        return Vec::new();
    }
    let pkgs = recipe::SHIM_PACKAGES.join(" ");
    let d = shim_staging(root);
    vec![format!(
        "--customize-hook=set -e; d='{}'; mkdir -p \"$d/debs\"; cd \"$d/debs\"; apt-get download {pkgs}; for f in *.deb; do dpkg-deb -x \"$f\" \"$d\"; done",
        d.display()
    )]
}

/// On the shim path: Debian's signed shim and MokManager from the staging directory to the
/// base (`shimx64.efi`, `mmx64.efi`).
fn shim_files(root: &Path, staged: &Path, recipe: &Recipe) -> Result<(), BaseError> {
    if recipe.boot_path != Some(homestick_formats::base::BootPath::Shim) {
        return Ok(());
    }
    let lib = shim_staging(root).join("usr/lib/shim");
    for (from, to) in [
        ("shimx64.efi.signed", homestick_formats::shim::BASE_SHIM),
        (
            "mmx64.efi.signed",
            homestick_formats::shim::BASE_MOK_MANAGER,
        ),
    ] {
        let from = lib.join(from);
        if !from.is_file() {
            return Err(BaseError::Tool {
                tool: "apt-get download".into(),
                reason: format!(
                    "{} gave no {}",
                    recipe::SHIM_PACKAGES.join(" and "),
                    from.display()
                ),
            });
        }
        copy(&from, &staged.join(to))?;
    }
    Ok(())
}

/// The kernel, the EFI stub, the initrd with the verifier's modules and the command line go
/// to the staged base; /boot of the root is emptied. The modules, relative to the root.
fn boot_files(
    root: &Path,
    staged: &Path,
    kv: &str,
    recipe: &Recipe,
) -> Result<Vec<PathBuf>, BaseError> {
    let boot = root.join("boot");
    copy(&boot.join(format!("vmlinuz-{kv}")), &staged.join("kernel"))?;
    copy(
        &root.join("usr/lib/systemd/boot/efi/linuxx64.efi.stub"),
        &staged.join("linuxx64.efi.stub"),
    )?;
    let modules = resolve_modules(root, kv)?;
    let initrd_path = staged.join("initrd");
    fs::write(&initrd_path, initrd(root, &modules)?).map_err(output(&initrd_path))?;
    for e in fs::read_dir(&boot).map_err(output(&boot))? {
        let p = e.map_err(output(&boot))?.path();
        let removed = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        removed.map_err(output(&p))?;
    }
    let cmdline = cmdline::normalize(recipe.cmdline.as_deref().unwrap_or(recipe::DEFAULT_CMDLINE));
    let cmdline_path = staged.join("cmdline");
    fs::write(&cmdline_path, format!("{cmdline}\n")).map_err(output(&cmdline_path))?;
    Ok(modules)
}

/// base.toml of the staged base, written by its one owner.
fn write_base_toml(
    o: &BaseBuildOptions,
    recipe: &Recipe,
    staged: &Path,
    kv: &str,
    modules: &[PathBuf],
    packages: usize,
) -> Result<(), BaseError> {
    let text = homestick_formats::base::BaseToml {
        name: recipe.name.clone(),
        version: recipe.version.clone(),
        boot: Some(homestick_formats::base::BootToml {
            init: Some("/sbin/init".into()),
            modules: modules
                .iter()
                .map(|rel| rel.display().to_string())
                .collect(),
            path: recipe.boot_path,
            ..Default::default()
        }),
    }
    .to_toml(&format!(
        "Built by `homestick base build {}` ({} {}, {} packages: packages.txt).",
        o.recipe.display(),
        recipe.suite,
        kv,
        packages,
    ))
    .map_err(|e| input_file(&o.recipe, e.0))?;
    let path = staged.join("base.toml");
    fs::write(&path, text).map_err(output(&path))
}

/// system.img: the root as squashfs (zstd), every time the epoch, /boot left out; its size.
fn squash(root: &Path, system: &Path, epoch: i64) -> Result<u64, BaseError> {
    run(
        Command::new("mksquashfs")
            .arg(root)
            .arg(system)
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
    Ok(fs::metadata(system).map_err(output(system))?.len())
}

fn copy(from: &Path, to: &Path) -> Result<(), BaseError> {
    fs::copy(from, to).map(|_| ()).map_err(output(to))
}

/// `package version` of every installed package, sorted (dpkg-query's exit status checked).
fn installed_packages(root: &Path) -> Result<String, BaseError> {
    let out = run_output(
        Command::new("chroot").arg(root).args([
            "dpkg-query",
            "-W",
            "-f",
            "${Package} ${Version}\\n",
        ]),
        "dpkg-query",
    )?;
    let mut lines: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    Ok(lines.join("\n") + "\n")
}
