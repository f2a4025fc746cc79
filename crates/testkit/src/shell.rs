//! The command lines of help texts and of the README's shell blocks, split into words as a
//! shell would: the tests that check every documented example parse (and run) use this.

/// Split a shell line into words: single and double quotes, `\` before a character; a `#`
/// at a word's start begins a comment; a redirection, pipe or `;` ends the command.
pub fn words(line: &str) -> Vec<String> {
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
pub fn command_lines(text: &str) -> Vec<String> {
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

/// The text of every ```` ```sh ```` block of a Markdown document.
pub fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in markdown.lines() {
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
    blocks
}

/// The `homestick …` command lines of the README, each as its words.
pub fn readme_command_lines() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(crate::repo_root().join("README.md"))
        .unwrap_or_else(|e| panic!("README.md: {e}"));
    sh_blocks(&readme)
        .iter()
        .flat_map(|b| command_lines(b))
        .map(|l| l.split('\u{1f}').map(String::from).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(sh_blocks("x\n```sh\na\n```\n```\nb\n```\n"), ["a\n"]);
    }
}
