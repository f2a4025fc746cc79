//! Table tests: every case run and reported on its own.

/// Run `cases`, collecting every failure instead of stopping at the first.
pub fn table<T>(
    cases: &[T],
    name: impl Fn(&T) -> String,
    check: impl Fn(&T) -> Result<(), String>,
) {
    let mut failed = Vec::new();
    for c in cases {
        match check(c) {
            Ok(()) => eprintln!("case {}: ok", name(c)),
            Err(e) => {
                eprintln!("case {}: FAILED: {e}", name(c));
                failed.push(format!("{}: {e}", name(c)));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}
