//! PE32+ headers: the image crate's reader (shared with `verify`), re-exported for the
//! UKI and Authenticode code here.

pub use homestick_image::pe::*;
