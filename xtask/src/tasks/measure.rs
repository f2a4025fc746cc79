//! `cargo xtask measure`: the code measures the redesign is held to, over every non-test
//! source file (a file's `#[cfg(test)]` module, `tests/` directories and the test-support
//! crate `crates/testkit` left out): functions
//! over 80 lines, files over 800 lines of code, functions returning `Result<_, String>`
//! outside a binary's `main.rs`, and the counts of `let _ =` and `unwrap_or_default()`.

use std::fs;
use std::path::Path;

use anyhow::Result;

/// One function and its length in lines.
struct Long {
    lines: usize,
    file: String,
    name: String,
}

/// The code of a source file without its test module.
fn code_of(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

/// Each `fn` and its length: from its line to the closing brace at its indentation.
fn functions(code: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let indent = &l[..l.len() - t.len()];
        let rest = [
            "pub(crate) ",
            "pub(super) ",
            "pub ",
            "const ",
            "async ",
            "unsafe ",
        ]
        .iter()
        .fold(t, |acc, p| acc.strip_prefix(p).unwrap_or(acc));
        let Some(sig) = rest.strip_prefix("fn ") else {
            continue;
        };
        if l.trim_end().ends_with(';') {
            continue;
        }
        let name: String = sig
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{indent}}}");
        if let Some(end) = lines[i..].iter().position(|x| *x == close) {
            out.push((name, end + 1));
        }
    }
    out
}

/// The signatures (joined onto one line) of the functions that return `Result<_, String>`.
fn string_results(code: &str) -> Vec<String> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if !(t.starts_with("fn ") || t.starts_with("pub") && t.contains(" fn ")) {
            continue;
        }
        let mut sig = String::new();
        for s in &lines[i..] {
            sig.push_str(s.trim());
            sig.push(' ');
            if s.contains('{') || s.trim_end().ends_with(';') {
                break;
            }
        }
        let ret = sig.rsplit_once(") ->").map_or("", |(_, r)| r);
        if ret.contains("Result<") && ret.contains(", String>") {
            out.push(sig.trim().to_string());
        }
    }
    out
}

/// How many times `pat` occurs on a line that neither has a comment nor follows one: a
/// `let _ =` or `unwrap_or_default()` must say why the value or error may be dropped.
fn unexplained(code: &str, pat: &str) -> usize {
    let lines: Vec<&str> = code.lines().collect();
    let commented = |i: usize| {
        let t = lines[i].trim_start();
        t.starts_with("//") || lines[i].contains(" // ")
    };
    (0..lines.len())
        .filter(|&i| lines[i].contains(pat))
        .filter(|&i| {
            let above = (0..i)
                .rev()
                .map(|j| lines[j].trim_start())
                .take_while(|t| {
                    !t.is_empty() && !t.ends_with(';') && !t.ends_with('{') && !t.ends_with('}')
                        || t.starts_with("//")
                })
                .any(|t| t.starts_with("//"));
            !commented(i) && !above
        })
        .count()
}

/// Print the measures of the workspace at `root`.
pub fn measure(root: &Path) -> Result<()> {
    let mut long = Vec::new();
    let mut longest: Option<Long> = None;
    let mut largest = (0, String::new());
    let mut big = Vec::new();
    let mut string_errors = Vec::new();
    let (mut let_underscore, mut unwrap_default) = (0, 0);
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e?;
        let rel = e.path().strip_prefix(root)?.display().to_string();
        // Test code is not measured: tests/ and crates/testkit (test support, never shipped).
        let skip = ["target", ".git", "fuzz", "tests/", "crates/testkit"]
            .iter()
            .any(|p| rel.starts_with(p) || rel.contains("/tests/"));
        if skip || !rel.ends_with(".rs") {
            continue;
        }
        let text = fs::read_to_string(e.path())?;
        let code = code_of(&text);
        let loc = code
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//"))
            .count();
        if loc > largest.0 {
            largest = (loc, rel.clone());
        }
        if loc > 800 {
            big.push((loc, rel.clone()));
        }
        for (name, lines) in functions(code) {
            if longest.as_ref().map_or(true, |l: &Long| lines > l.lines) {
                longest = Some(Long {
                    lines,
                    file: rel.clone(),
                    name: name.clone(),
                });
            }
            if lines > 80 {
                long.push(Long {
                    lines,
                    file: rel.clone(),
                    name,
                });
            }
        }
        if !rel.ends_with("main.rs") {
            for sig in string_results(code) {
                string_errors.push(format!("{rel}: {sig}"));
            }
        }
        let_underscore += unexplained(code, "let _ =");
        unwrap_default += unexplained(code, "unwrap_or_default()");
    }
    long.sort_by_key(|f| std::cmp::Reverse(f.lines));
    if let Some(l) = &longest {
        println!("longest function: {} lines, {} {}", l.lines, l.file, l.name);
    }
    println!("largest file: {} lines of code, {}", largest.0, largest.1);
    println!("functions over 80 lines: {}", long.len());
    for f in &long {
        println!("  {:4}  {} {}", f.lines, f.file, f.name);
    }
    println!("files over 800 lines of code: {}", big.len());
    for (n, f) in &big {
        println!("  {n:4}  {f}");
    }
    println!(
        "functions returning Result<_, String> outside main.rs: {}",
        string_errors.len()
    );
    for s in &string_errors {
        println!("  {s}");
    }
    println!(
        "without a comment saying why: let _ = {let_underscore}, unwrap_or_default() {unwrap_default}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_are_measured_to_their_closing_brace() {
        let code = "fn a() {\n    1\n}\n\nimpl X {\n    pub(crate) fn b(&self) {\n        x\n    }\n    fn c();\n}\n";
        assert_eq!(
            functions(code),
            [("a".to_string(), 3), ("b".to_string(), 3)]
        );
        assert_eq!(code_of("fn a() {}\n#[cfg(test)]\nmod t {}"), "fn a() {}\n");
    }
}
