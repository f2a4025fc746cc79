//! The writers of the formats a profile renders into: one rule per format, applied here and
//! never at the call sites.
//!
//! Nothing a roster, a customer's PEM file or customer.toml holds is pasted into a rendered
//! file. Values are parsed first (a certificate to DER, a key to bytes, a user name against its
//! allow-list), and then written by the writer of the format they go into: PEM is written anew
//! from DER, a swanctl string is quoted, a baresip account parameter and an OpenVPN inline line
//! are checked to stay what they are. A writer refuses what its format cannot hold rather than
//! pass it on: [`Unwritable`] names the format and the reason.

/// A value a format cannot hold as one value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot be written into {format}: {reason}")]
pub struct Unwritable {
    /// The format, e.g. "swanctl.conf".
    pub format: &'static str,
    /// Why, e.g. "it holds a double quote".
    pub reason: String,
}

fn unwritable(format: &'static str, reason: impl Into<String>) -> Unwritable {
    Unwritable {
        format,
        reason: reason.into(),
    }
}

/// Characters that end a line somewhere: control characters (ASCII and C1, NUL included) and
/// Unicode's line and paragraph separators.
pub fn breaks_line(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// The first character of `v` that breaks a line, as the reason a writer gives.
fn line_break_reason(v: &str) -> Option<String> {
    v.chars().find(|&c| breaks_line(c)).map(|c| {
        format!(
            "it holds the control or line-separator character U+{:04X}",
            c as u32
        )
    })
}

/// A comment line's text for the `#` comments of wg-quick, OpenVPN, swanctl and baresip files:
/// what would end the line is replaced by a space, so a display name stays a comment.
pub fn comment(text: &str) -> String {
    text.chars()
        .map(|c| if breaks_line(c) { ' ' } else { c })
        .collect()
}

/// PEM, written anew from DER: the label, base64 in lines of 64, LF line ends. Whatever stood
/// around or between blocks in the file it was read from is gone.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // Base64 is ASCII: every chunk is UTF-8.
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// OpenVPN's static key file (tls-crypt, tls-auth) written anew from its 256 bytes.
pub fn openvpn_static_key(key: &[u8; 256]) -> String {
    let mut s = String::from("-----BEGIN OpenVPN Static key V1-----\n");
    for chunk in key.chunks(16) {
        for b in chunk {
            s.push_str(&format!("{b:02x}"));
        }
        s.push('\n');
    }
    s.push_str("-----END OpenVPN Static key V1-----\n");
    s
}

/// One line of an OpenVPN inline block (`<auth-user-pass>`'s user name and password): one
/// line, and nothing OpenVPN would read as the end of the block or a tag.
pub fn ovpn_inline_line(v: &str) -> Result<&str, Unwritable> {
    const F: &str = "an OpenVPN inline block";
    if let Some(r) = line_break_reason(v) {
        return Err(unwritable(F, r));
    }
    if v.contains('<') || v.contains('>') {
        return Err(unwritable(F, "it holds < or >"));
    }
    if v.is_empty() || v.trim() != v {
        return Err(unwritable(F, "it is empty or begins or ends with a space"));
    }
    Ok(v)
}

/// A double-quoted swanctl.conf string. strongSwan's settings parser ends a quoted string at
/// the next `"`; backslash sequences are not relied on: such values are refused.
pub fn swanctl_quoted(v: &str) -> Result<String, Unwritable> {
    const F: &str = "swanctl.conf";
    if let Some(r) = line_break_reason(v) {
        return Err(unwritable(F, r));
    }
    if v.contains(['"', '\\']) {
        return Err(unwritable(F, "it holds a double quote or a backslash"));
    }
    Ok(format!("\"{v}\""))
}

/// The value of a baresip account parameter (`;auth_user=VALUE`): baresip splits the account
/// line at `;` and `=`, ends the address at `>` and a quoted value at `"`, so none may appear.
pub fn baresip_param(v: &str) -> Result<&str, Unwritable> {
    const F: &str = "a baresip account parameter";
    if let Some(r) = line_break_reason(v) {
        return Err(unwritable(F, r));
    }
    if let Some(c) = v
        .chars()
        .find(|c| c.is_whitespace() || ";=\"<>,".contains(*c))
    {
        return Err(unwritable(F, format!("it holds {c:?}")));
    }
    if v.is_empty() {
        return Err(unwritable(F, "it is empty"));
    }
    Ok(v)
}

/// A double-quoted baresip account parameter (`;outbound="sip:…"`). baresip finds an account
/// parameter by searching the whole line for `;name=`, inside quotes too: a URI in quotes may
/// carry only the URI parameters baresip does not read as its own (`transport=udp|tcp|tls`,
/// `lr`), or `;answermode=auto` there would turn the phone into a remote microphone.
pub fn baresip_quoted_param(v: &str) -> Result<String, Unwritable> {
    const F: &str = "a baresip account parameter";
    if let Some(r) = line_break_reason(v) {
        return Err(unwritable(F, r));
    }
    if v.contains(['"', '<', '>', '\\']) || v.contains(char::is_whitespace) {
        return Err(unwritable(
            F,
            "it holds a quote, a backslash, < or > or a space",
        ));
    }
    for param in v.split(';').skip(1) {
        if !matches!(
            param,
            "transport=udp" | "transport=tcp" | "transport=tls" | "lr"
        ) {
            return Err(unwritable(
                F,
                format!("the URI parameter {param:?} (only transport=udp|tcp|tls and lr; baresip would read others as its own)"),
            ));
        }
    }
    Ok(format!("\"{v}\""))
}

/// The value of a `key = value` line of a wg-quick file: one line, no `#` (a comment there).
pub fn wg_value(v: &str) -> Result<&str, Unwritable> {
    const F: &str = "a wg-quick file";
    if let Some(r) = line_break_reason(v) {
        return Err(unwritable(F, r));
    }
    if v.contains('#') {
        return Err(unwritable(F, "it holds #"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile values every writer meets: each must be refused, or written so that it stays
    /// one value of its format (`harmful` says, per format, what would not).
    const HOSTILE: [(&str, &str); 11] = [
        ("newline", "a\nscript-security 2"),
        ("carriage return", "a\rb"),
        ("quote", "a\"b"),
        ("angle", "a</key>b"),
        ("semicolon", "u;answermode=auto"),
        ("nul", "a\0b"),
        ("line separator", "a\u{2028}b"),
        ("paragraph separator", "a\u{2029}b"),
        ("next line", "a\u{85}b"),
        ("second pem block", "x\n-----BEGIN PRIVATE KEY-----"),
        ("hash", "a#b"),
    ];

    fn breaks(out: &str) -> bool {
        out.chars().any(breaks_line)
    }

    fn table(
        name: &str,
        write: impl Fn(&str) -> Result<String, Unwritable>,
        harmful: impl Fn(&str) -> bool,
    ) {
        let mut passed_on = Vec::new();
        for (case, v) in HOSTILE {
            match write(v) {
                Err(e) => println!("{name}: {case}: refused ({e})"),
                Ok(out) if !harmful(&out) => println!("{name}: {case}: written as {out:?}"),
                Ok(out) => {
                    println!("{name}: {case}: PASSED ON as {out:?}");
                    passed_on.push(case);
                }
            }
        }
        assert!(passed_on.is_empty(), "{name}: {passed_on:?}");
    }

    #[test]
    fn openvpn_inline_lines_refuse_every_hostile_value() {
        table(
            "openvpn",
            |v| ovpn_inline_line(v).map(str::to_string),
            |o| breaks(o) || o.contains(['<', '>']),
        );
        assert_eq!(ovpn_inline_line("anna.beispiel"), Ok("anna.beispiel"));
    }

    #[test]
    fn swanctl_strings_refuse_every_hostile_value() {
        table("swanctl", swanctl_quoted, |o| {
            breaks(o) || o.matches('"').count() != 2 || o.contains('\\')
        });
        assert_eq!(
            swanctl_quoted("anna@waldbach").unwrap(),
            "\"anna@waldbach\""
        );
        assert!(swanctl_quoted("a\\b").is_err());
    }

    #[test]
    fn baresip_parameters_refuse_every_hostile_value() {
        table(
            "baresip",
            |v| baresip_param(v).map(str::to_string),
            |o| breaks(o) || o.contains([';', '=', '"', '<', '>', ',']),
        );
        table("baresip quoted", baresip_quoted_param, |o| {
            breaks(o) || o.matches('"').count() != 2 || o.contains(';')
        });
        assert_eq!(baresip_param("ben"), Ok("ben"));
        assert!(baresip_param("a=b").is_err());
        assert_eq!(
            baresip_quoted_param("sip:sbc.example:5061;transport=tls").unwrap(),
            "\"sip:sbc.example:5061;transport=tls\""
        );
        assert!(baresip_quoted_param("sip:sbc.example:5061;answermode=auto").is_err());
        assert!(baresip_quoted_param("sip:sbc.example;transport=tls;auth_pass=x").is_err());
    }

    #[test]
    fn wg_quick_values_refuse_every_hostile_value() {
        table(
            "wg-quick",
            |v| wg_value(v).map(str::to_string),
            |o| breaks(o) || o.contains('#'),
        );
    }

    #[test]
    fn comments_stay_one_line_for_every_hostile_value() {
        table("comment", |v| Ok(comment(v)), breaks);
    }

    #[test]
    fn pem_is_written_anew_in_lines_of_64() {
        let der: Vec<u8> = (0..=255u8).collect();
        let p = pem("CERTIFICATE", &der);
        assert!(p.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(p.ends_with("-----END CERTIFICATE-----\n"));
        assert!(p.lines().all(|l| l.len() <= 64));
        let k = openvpn_static_key(&[0xab; 256]);
        assert_eq!(k.lines().count(), 18);
    }
}
