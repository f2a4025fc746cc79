//! The bulk flasher: one image onto many sticks in parallel, each read back from the device and
//! verified against the signed manifest, never touching the station's own disks, with a
//! report line per stick.
//!
//! - [`claim`]: which user of a set the next stick gets, claimed in the ledger;
//! - [`devices`]: which disks may be written, and why not;
//! - [`open`]: opening a checked stick, checked again on the open descriptor;
//! - [`stick`]: writing one stick and reading it back;
//! - [`station`]: many sticks at once, with a stall watchdog;
//! - [`report`]: the record of which stick got which image.

pub mod claim;
pub mod devices;
pub mod open;
pub mod report;
pub mod station;
pub mod stick;
