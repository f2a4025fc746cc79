//! Text from a device, a ledger or a file, made safe to print on a terminal: a USB stick's
//! serial string or model could carry escape sequences that move the cursor, recolour a line
//! or fake a "verified" line. One rule for every such string the CLI prints.

/// `s` with every control character (C0, DEL, C1), line and paragraph separator and
/// bidirectional override written as `\u{XXXX}`, and backslashes doubled: what a terminal
/// shows is what the string holds.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let unsafe_char = c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c);
        if unsafe_char {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_strings_cannot_move_the_cursor_or_fake_a_line_each_case() {
        let cases = [
            (
                "ESC sequence",
                "SER\u{1b}[2K\u{1b}[1Ghomestick: verified",
                "SER\\u{001b}[2K\\u{001b}[1Ghomestick: verified",
            ),
            (
                "newline",
                "A\nhomestick: /dev/sdz: verified",
                "A\\u{000a}homestick: /dev/sdz: verified",
            ),
            ("carriage return", "A\rB", "A\\u{000d}B"),
            ("C1 CSI", "A\u{9b}2J", "A\\u{009b}2J"),
            ("bidi override", "A\u{202e}B", "A\\u{202e}B"),
            ("backslash", "A\\u{1b}", "A\\\\u{1b}"),
            ("plain", "4C530001230907115172", "4C530001230907115172"),
        ];
        for (name, input, want) in cases {
            let got = text(input);
            println!("case {name}: {got}");
            assert_eq!(got, want, "{name}");
            assert!(!got.chars().any(char::is_control), "{name}");
        }
    }
}
