//! Opening a stick to write it: as the device that was checked, checked again on the open
//! descriptor's device number, so what is written and read back is what the refusal rules
//! passed.

use std::io;

use crate::devices::{self, Device, Refusal, Roots};
use crate::stick::BlockTarget;

/// Why a checked stick is not written after all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// It cannot be opened exclusively (mounted, held by another program, gone).
    #[error("cannot open it exclusively for writing: {0}")]
    Open(#[source] io::Error),
    /// sysfs no longer describes it.
    #[error("cannot describe it again after opening: {0}")]
    Describe(#[source] io::Error),
    /// The mount table cannot be read.
    #[error("/proc/self/mountinfo: {0}")]
    Mounts(#[source] io::Error),
    /// A refusal rule holds now.
    #[error("refused when opened: {}", join(.0))]
    Refused(Vec<Refusal>),
    /// Another stick in its place (serial or size changed).
    #[error("it is not the stick that was checked (serial or size changed)")]
    Changed,
}

/// The refusals as one line.
pub fn join(r: &[Refusal]) -> String {
    r.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Open `d` for writing and check it again: the refusal rules (for an image of `need` bytes)
/// on the device as sysfs describes it now, and the same serial and size as when checked.
/// Returns the device as described now (under the path it was found at) and the target.
pub fn open_checked(
    roots: &Roots,
    d: &Device,
    need: u64,
    allow_non_removable: bool,
) -> Result<(Device, BlockTarget), OpenError> {
    let t = BlockTarget::open(&d.path, d.dev, d.size).map_err(OpenError::Open)?;
    let fresh = devices::describe_dev(roots, d.dev).map_err(OpenError::Describe)?;
    let used = devices::in_use(roots).map_err(OpenError::Mounts)?;
    let r = devices::refusals(&fresh, &used, need, allow_non_removable);
    if !r.is_empty() {
        return Err(OpenError::Refused(r));
    }
    if fresh.serial != d.serial || fresh.size != d.size {
        return Err(OpenError::Changed);
    }
    Ok((
        Device {
            path: d.path.clone(),
            ..fresh
        },
        t,
    ))
}
