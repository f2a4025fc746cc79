//! `cargo xtask measure`: the code measures the redesign is held to, over every non-test
//! source file (a file's `#[cfg(test)]` module and `tests/` directories left out): functions
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

/// Print the measures of the workspace at `root`.
pub fn measure(root: &Path) -> Result<()> {
    let mut long = Vec::new();
    let mut big = Vec::new();
    let mut string_errors = Vec::new();
    let (mut let_underscore, mut unwrap_default) = (0, 0);
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e?;
        let rel = e.path().strip_prefix(root)?.display().to_string();
        let skip = ["target", ".git", "fuzz", "tests/"]
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
        if loc > 800 {
            big.push((loc, rel.clone()));
        }
        for (name, lines) in functions(code) {
            if lines > 80 {
                long.push(Long {
                    lines,
                    file: rel.clone(),
                    name,
                });
            }
        }
        if !rel.ends_with("main.rs") {
            for l in code.lines() {
                if l.contains("fn ") && l.contains(", String>") && l.contains("Result<") {
                    string_errors.push(format!("{rel}: {}", l.trim()));
                }
            }
        }
        let_underscore += code.matches("let _ =").count();
        unwrap_default += code.matches("unwrap_or_default()").count();
    }
    long.sort_by_key(|f| std::cmp::Reverse(f.lines));
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
    println!("let _ = {let_underscore}, unwrap_or_default() {unwrap_default}");
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
