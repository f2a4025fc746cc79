//! Where things are on the running stick: shared by the builder (rendered files refer to
//! them), the boot verifier (which mounts them) and the session (which reads them).

/// Where the boot verifier mounts the verified profile partition.
pub const PROFILE_MOUNT: &str = "/run/homestick/profile";

/// The profile partition's description of itself (see [`crate::profile`]).
pub const PROFILE_JSON: &str = "profile.json";

/// A file of the profile partition, as the session finds it.
pub fn in_profile(relative: &str) -> String {
    format!("{PROFILE_MOUNT}/{relative}")
}

/// Where baresip's control interface (`ctrl_tcp`: netstring-framed JSON) listens: loopback
/// only (baresip's own default is every address). The profile's baresip `config` says it; the
/// session connects to it.
pub const BARESIP_CTRL: &str = "127.0.0.1:4444";

/// The kiosk page's origin: the session serves the phone page and its API here, on loopback
/// only; the kiosk's browser may load this origin and the customer's intranet, nothing else.
pub const KIOSK_ADDR: &str = "127.0.0.1:8321";

/// The kiosk page's URL (its origin is `http://` + [`KIOSK_ADDR`]).
pub fn kiosk_url() -> String {
    format!("http://{KIOSK_ADDR}/")
}

/// Where the kernel shows the boot parameters its EFI stub filled in (x86 `boot_params`).
pub const BOOT_PARAMS: &str = "/sys/kernel/boot_params/data";

/// Whether the firmware had Secure Boot on, from [`BOOT_PARAMS`]' `secure_boot` byte at 0x1ec
/// (the stub writes 2 for disabled, 3 for enabled); `None`: not known.
pub fn secure_boot_enabled(boot_params: &[u8]) -> Option<bool> {
    match boot_params.get(0x1ec) {
        Some(3) => Some(true),
        Some(2) => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::secure_boot_enabled;

    #[test]
    fn the_stub_s_secure_boot_byte_is_read() {
        let mut p = vec![0u8; 4096];
        assert_eq!(secure_boot_enabled(&p), None);
        p[0x1ec] = 3;
        assert_eq!(secure_boot_enabled(&p), Some(true));
        p[0x1ec] = 2;
        assert_eq!(secure_boot_enabled(&p), Some(false));
        assert_eq!(secure_boot_enabled(&p[..0x1ec]), None);
    }
}
