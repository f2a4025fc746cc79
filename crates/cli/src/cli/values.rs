//! Values several commands take: sizes, expiry times, GUIDs, where a secret comes from.

use super::*;

/// Where a passphrase or PIN comes from. Never from an argument: those are visible to every
/// user of the machine. Without either option, a terminal is asked.
#[derive(Debug, Clone, Default, Args)]
pub struct SecretArgs {
    /// Read the key's passphrase (or the token's PIN) from the first line of this file.
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_fd")]
    pub passphrase_file: Option<PathBuf>,
    /// Read the key's passphrase (or the token's PIN) from this open file descriptor, e.g.
    /// `--passphrase-fd 3 3<secret`.
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<u32>,
}

/// A command-line value that does not parse; clap prints it after the option's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadValue(String);

/// Parse a GUID into its lowercase hyphenated form.
pub fn parse_guid(s: &str) -> Result<uuid::Uuid, BadValue> {
    uuid::Uuid::parse_str(s.trim()).map_err(|e| BadValue(format!("{s:?} is not a GUID: {e}")))
}

/// When an image expires: at a time, or some days after its build time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expires {
    /// At this Unix time.
    At(i64),
    /// This many days after the build time.
    Days(u32),
}

impl Expires {
    /// The Unix time, for a build at `epoch`.
    pub fn at(self, epoch: i64) -> i64 {
        match self {
            Expires::At(t) => t,
            Expires::Days(d) => epoch.saturating_add(i64::from(d) * 86_400),
        }
    }
}

/// Parse `2027-06-30`, `2027-06-30T12:00:00Z` or `+365`.
pub fn parse_expires(s: &str) -> Result<Expires, BadValue> {
    if let Some(d) = s.strip_prefix('+') {
        return d
            .parse::<u32>()
            .ok()
            .filter(|&d| (1..=36_500).contains(&d))
            .map(Expires::Days)
            .ok_or_else(|| BadValue(format!("{s:?}: +DAYS takes 1 to 36500 days")));
    }
    homestick_image::time::parse(s)
        .map(Expires::At)
        .map_err(|e| BadValue(e.to_string()))
}

/// Parse `1073741824`, `1024M`, `1G`, `64MiB`.
pub fn parse_size(s: &str) -> Result<u64, BadValue> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        BadValue(format!(
            "{s:?} is not a size (bytes, or a number with K, M or G)"
        ))
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        other => {
            return Err(BadValue(format!(
                "unknown size unit {other:?} (use K, M or G)"
            )))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| BadValue(format!("{s:?} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert!(parse_size("1T").is_err());
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn expiry_values() {
        assert_eq!(parse_expires("+30").unwrap().at(100), 100 + 30 * 86_400);
        assert_eq!(parse_expires("1970-01-02").unwrap(), Expires::At(86_400));
        for bad in ["+0", "+x", "+-3", "2027-02-30", "soon"] {
            assert!(parse_expires(bad).is_err(), "{bad}");
        }
    }
}
