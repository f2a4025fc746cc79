//! Where the CLI's JSON documents go: one place that writes them to standard output, compact
//! (one document per line: `verify`, `sticks`, `ledger list --json`) or pretty (`inspect`),
//! and turns a write that fails (a full disk, a closed pipe) into a failure instead of a
//! panic or a silently shorter document.

use std::io::Write;

use crate::Failure;

/// A write to standard output failed.
pub(crate) fn stdout_failed(e: std::io::Error) -> Failure {
    Failure::Usage(format!("writing to standard output: {e}"))
}

/// `v` on one line.
pub(crate) fn json_line(v: &serde_json::Value) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}")
        .and_then(|()| out.flush())
        .map_err(stdout_failed)
}

/// `v`, pretty-printed.
pub(crate) fn json_pretty(v: &serde_json::Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Failure::Usage(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(stdout_failed)
}
