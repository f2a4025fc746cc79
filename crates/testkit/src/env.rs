//! The `HOMESTICK_*` variables `cargo xtask test` sets for the tests, by name (xtask sets them
//! with these constants) and as typed accessors that fail the test with a message that says
//! what to run when one is missing.

use std::path::PathBuf;

/// The `homestick` binary to test (else the workspace's is built: [`crate::run::bin`]).
pub const BIN: &str = "HOMESTICK_BIN";
/// The session program (`homestick-session`) the bases get.
pub const SESSION_BIN: &str = "HOMESTICK_SESSION_BIN";
/// The demo base (`cargo xtask base`).
pub const DEMO_BASE: &str = "HOMESTICK_DEMO_BASE";
/// The static boot verifier (`cargo xtask boot-verifier`).
pub const BOOT_VERIFIER: &str = "HOMESTICK_BOOT_VERIFIER";
/// The .deb (`cargo xtask dist`).
pub const DEB: &str = "HOMESTICK_DEB";
/// A minimal Debian root to install the .deb into.
pub const STATION_ROOT: &str = "HOMESTICK_STATION_ROOT";
/// The headless example base with the test channel.
pub const HEADLESS_BASE: &str = "HOMESTICK_HEADLESS_BASE";
/// The desktop example base with the test channel.
pub const DESKTOP_BASE: &str = "HOMESTICK_DESKTOP_BASE";
/// A static busybox (from the demo base's packages).
pub const BUSYBOX: &str = "HOMESTICK_BUSYBOX";
/// Where screenshots go (default target/screenshots).
pub const SCREENSHOT_DIR: &str = "HOMESTICK_SCREENSHOT_DIR";

/// The path in `var`, which must exist; a missing one fails the test and says what to run.
pub fn path(var: &str) -> PathBuf {
    let p = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{var} is not set: run the tests through `cargo xtask test`, which builds the bases, the static programs and the .deb they need")
    });
    assert!(p.exists(), "{var}={} does not exist", p.display());
    p
}

/// [`DEMO_BASE`].
pub fn demo_base() -> PathBuf {
    path(DEMO_BASE)
}

/// [`BOOT_VERIFIER`].
pub fn boot_verifier() -> PathBuf {
    path(BOOT_VERIFIER)
}

/// [`DEB`].
pub fn deb() -> PathBuf {
    path(DEB)
}

/// [`STATION_ROOT`].
pub fn station_root() -> PathBuf {
    path(STATION_ROOT)
}

/// [`HEADLESS_BASE`].
pub fn headless_base() -> PathBuf {
    path(HEADLESS_BASE)
}

/// [`DESKTOP_BASE`].
pub fn desktop_base() -> PathBuf {
    path(DESKTOP_BASE)
}

/// [`BUSYBOX`].
pub fn busybox() -> PathBuf {
    path(BUSYBOX)
}

/// [`SCREENSHOT_DIR`], else target/screenshots in the repository.
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os(SCREENSHOT_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target/screenshots"))
}
