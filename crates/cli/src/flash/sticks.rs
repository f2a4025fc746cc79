//! `homestick sticks`: the removable disks a station sees, and which may be written.

use super::*;
use crate::output::out;

/// `homestick sticks`
pub(crate) fn sticks(a: &SticksArgs) -> Result<(), Failure> {
    let roots = Roots::default();
    let need = match &a.image {
        Some(p) => image_min_size(p)?,
        None => 0,
    };
    let all = devices::scan(&roots).map_err(|e| usage(format!("/sys/block: {e}")))?;
    let used = devices::in_use(&roots).map_err(|e| usage(format!("/proc/self/mountinfo: {e}")))?;
    let rows: Vec<(Device, Vec<String>)> = all
        .into_iter()
        .map(|d| {
            let r = devices::refusals(&d, &used, need, a.allow_non_removable);
            (d, r.iter().map(ToString::to_string).collect())
        })
        .collect();
    if a.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(d, r)| json!({"device": d, "would_flash": r.is_empty(), "refused": r}))
            .collect();
        return crate::output::json_line(&serde_json::Value::Array(v));
    }
    if rows.is_empty() {
        out!("no disks found under /sys/block");
    }
    for (d, r) in &rows {
        out!("{}", describe(d));
        if r.is_empty() {
            out!("    would be flashed");
        }
        for why in r {
            out!("    refused: {why}");
        }
    }
    Ok(())
}

/// The image's minimum target size, from its manifest (not verified: for listing only).
pub(crate) fn image_min_size(p: &Path) -> Result<u64, Failure> {
    let disk = open_target(p)?;
    let (_, m) = read_manifest(&disk, &p.display().to_string())?;
    Ok(m.disk.min_size_bytes)
}
