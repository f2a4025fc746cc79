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
