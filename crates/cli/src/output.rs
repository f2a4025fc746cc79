//! Everything the CLI writes to standard output goes through here: text lines ([`out!`]) and
//! JSON documents, compact (one document per line: `verify`, `sticks`, `ledger list --json`)
//! or pretty (`inspect`).
//!
//! A write never panics (as `println!` does on a closed pipe). A JSON document that cannot be
//! written is the command's failure. A text line that cannot be written is remembered: a
//! closed pipe (`homestick ledger list | head -1`) ends the output quietly and the command keeps
//! its exit code (a verdict stays a verdict); any other write error turns success into exit 2
//! with the reason ([`unwritten`]).

use std::io::Write;
use std::sync::Mutex;

/// The first error writing a text line, other than a closed pipe.
static LOST: Mutex<Option<String>> = Mutex::new(None);

/// `println!` for the CLI: one line to standard output through [`line`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use out;

/// Write one line to standard output; a failure is remembered, never a panic.
pub(crate) fn line(args: std::fmt::Arguments<'_>) {
    let mut o = std::io::stdout().lock();
    let r = o
        .write_fmt(args)
        .and_then(|()| o.write_all(b"\n"))
        .and_then(|()| o.flush());
    if let Err(e) = r {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let mut lost = LOST.lock().unwrap_or_else(|p| p.into_inner());
            lost.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Why text output was lost, if it was (a closed pipe is not a loss).
pub(crate) fn unwritten() -> Option<String> {
    LOST.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

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
