//! Every example in `--help` and every `homestick …` line of the README's shell blocks is a
//! command the parser takes: an example that the parser refuses is a broken promise to
//! whoever copies it.

use clap::{CommandFactory, Parser};
use homestick::cli::Cli;
use homestick_testkit::shell::{command_lines, readme_command_lines};

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
    let lines: Vec<String> = readme_command_lines()
        .iter()
        .map(|w| w.join("\u{1f}"))
        .collect();
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
