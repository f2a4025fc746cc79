//! The formats several parts of homestick read and write, each with one owner here: the
//! builder, the boot verifier, the session on the stick, the CLI, xtask and the tests all use
//! these types, so a change to a format is one edit the compiler carries everywhere.
//!
//! - [`profile`]: `profile.json`, the profile partition's description of itself;
//! - [`endpoint`]: `host:port` and `tcp/443`-style port ranges;
//! - [`slot`]: the names of per-user values (`vpn.buero.private_key`) and what each holds;
//! - [`base`]: a base's `base.toml`;
//! - [`html`]: text in HTML pages;
//! - [`paths`]: where things are on the running stick;
//! - [`shim`]: the shim boot path's files and the one-time enrolment's screens and keys.

pub mod base;
pub mod endpoint;
pub mod html;
pub mod paths;
pub mod profile;
pub mod shim;
pub mod slot;
pub mod text;
