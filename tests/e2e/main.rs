//! End-to-end tests of the real `homestick` binary, with real external checkers as oracles:
//! sgdisk, fsck.fat, mtools, openssl, dd and sha256sum, and loop devices.
//!
//! A missing tool fails the test loudly: `cargo xtask test` installs them (see README).

// A failed unwrap in a test is a failed test with a backtrace: exactly what is wanted here.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod boot;
mod common;
mod deb;
mod flash;
mod flash_usb;
mod guide;
mod hostile;
mod hostile_inputs;
mod kiosk;
mod kiosk_phone;
mod oracles;
mod phone;
mod profiles;
mod readme;
mod roster;
mod session;
mod sets;
mod shim;
mod signing;
mod stick_gaps;
mod tamper;
mod verity;
mod warnings;
