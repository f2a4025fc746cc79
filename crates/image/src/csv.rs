//! The one CSV writer of every export and report homestick writes (the flash report, `ledger
//! export --csv`, the PBX's and the VPN servers' user lists): RFC 4180 quoting, and no cell
//! that a spreadsheet would take as a formula.
//!
//! A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is written with a
//! leading `'` (OWASP's advice for CSV injection): a display name or a USB serial string such
//! as `=HYPERLINK(…)` then shows as text. Values that a machine reads back (passwords, keys)
//! are made and checked never to begin so, and so pass unchanged.

/// Whether a spreadsheet would read a cell beginning so as a formula.
pub fn formula_like(s: &str) -> bool {
    s.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// One cell: neutralised if it looks like a formula, quoted where CSV needs it.
pub fn field(s: &str) -> String {
    let s = if formula_like(s) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One record, its cells joined by commas, ending with a newline.
pub fn record<S: AsRef<str>>(cells: &[S]) -> String {
    let mut line = cells
        .iter()
        .map(|c| field(c.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_that_look_like_formulas_are_neutralised_each_case() {
        let cases = [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"",
            ),
            ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\r=1", "\"'\r=1\""),
            ("a,b", "\"a,b\""),
            ("plain", "plain"),
            ("4C530001230907115172", "4C530001230907115172"),
            ("", ""),
            ("x\ny", "\"x\ny\""),
        ];
        let mut failed = Vec::new();
        for (input, want) in cases {
            let got = field(input);
            if got == want {
                println!("case {input:?}: ok");
            } else {
                println!("case {input:?}: got {got:?}, want {want:?}");
                failed.push(input);
            }
        }
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(record(&["a", "=b", "c d"]), "a,'=b,c d\n");
    }
}
