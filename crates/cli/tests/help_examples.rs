//! Every example in `--help` and every `homestick …` line of the README's shell blocks is a
//! command the parser takes: an example that the parser refuses is a broken promise to
//! whoever copies it.

use clap::{CommandFactory, Parser};
use homestick::cli::Cli;

/// Split a shell line into words: single and double quotes, `\` before a character; a `#`
/// at a word's start begins a comment; a redirection, pipe or `;` ends the command.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                cur.extend(chars.next());
                in_word = true;
            }
            (None, '#') if !in_word => break,
            // A redirection, pipe or next command ends this one.
            (None, '>' | '<' | '|' | ';' | '&') => break,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// The `homestick …` command lines of a help text or a README shell block (`$ ` and `# `
/// prompts, `sudo` and environment assignments before the command dropped; a line ending in
/// `\` continues).
fn command_lines(text: &str) -> Vec<String> {
    let mut joined = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(head) = line.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(line);
        joined.push(std::mem::take(&mut cur));
    }
    joined
        .into_iter()
        .filter_map(|l| {
            let l = l.trim_start_matches("$ ").trim_start_matches("sudo ");
            let w = words(l);
            let at = w
                .iter()
                .position(|x| !x.contains('=') || x.starts_with('-'))?;
            (w.get(at).map(String::as_str) == Some("homestick")).then(|| w[at..].join("\u{1f}"))
        })
        .collect()
}

fn parses(line: &str) -> Result<(), String> {
    let argv: Vec<&str> = line.split('\u{1f}').collect();
    Cli::try_parse_from(&argv)
        .map(|_| ())
        .map_err(|e| format!("{}: {}", argv.join(" "), e.render()))
}

/// Every subcommand's after-help text, by its path (`homestick revocations add`).
fn help_texts(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
    let path = format!("{path} {}", cmd.get_name()).trim().to_string();
    if let Some(h) = cmd.get_after_help() {
        out.push((path.clone(), h.to_string()));
    }
    for sub in cmd.get_subcommands() {
        help_texts(sub, &path, out);
    }
}

#[test]
fn the_word_splitter_handles_quotes_escapes_and_comments() {
    assert_eq!(
        words(r#"homestick a 'b c' "d e" f\ g # comment"#),
        ["homestick", "a", "b c", "d e", "f g"]
    );
    assert_eq!(
        words("homestick x 'a;b' > out | less"),
        ["homestick", "x", "a;b"]
    );
    assert_eq!(
        command_lines("  SOURCE_DATE_EPOCH=1 homestick build \\\n  --profile p\nls"),
        ["homestick\u{1f}build\u{1f}--profile\u{1f}p"]
    );
}

#[test]
fn every_help_example_parses() {
    let mut texts = Vec::new();
    help_texts(&Cli::command(), "", &mut texts);
    let mut examples = 0;
    let mut failures = Vec::new();
    for (path, text) in &texts {
        for line in command_lines(text) {
            examples += 1;
            match parses(&line) {
                Ok(()) => println!("case {path}: {}", line.replace('\u{1f}', " ")),
                Err(e) => failures.push(format!("{path}: {e}")),
            }
        }
    }
    println!("{examples} examples in {} help texts", texts.len());
    assert!(examples >= 40, "only {examples} examples found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_readme_command_line_parses() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in readme.lines() {
        let fence = line.trim_start();
        match (&mut cur, fence.strip_prefix("```")) {
            (None, Some("sh")) => cur = Some(String::new()),
            (Some(_), Some(_)) => blocks.extend(cur.take()),
            (Some(b), None) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    let lines: Vec<String> = blocks.iter().flat_map(|b| command_lines(b)).collect();
    let failures: Vec<String> = lines.iter().filter_map(|l| parses(l).err()).collect();
    for l in &lines {
        println!("case {}", l.replace('\u{1f}', " "));
    }
    assert!(
        lines.len() >= 20,
        "only {} README command lines",
        lines.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
