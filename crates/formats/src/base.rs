//! A base's `base.toml`: its name and version, and for a base with a kernel the `[boot]`
//! table. `homestick base build`, `cargo xtask base` and the test fixtures write it with
//! [`BaseToml::to_toml`]; `homestick build` reads it with [`BaseToml::parse`].

use serde::{Deserialize, Serialize};

/// Most bytes of a base.toml anyone reads.
pub const MAX_BYTES: u64 = 64 << 10;

/// base.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseToml {
    /// Base name.
    pub name: String,
    /// Base version.
    pub version: String,
    /// `[boot]`: for bases with a kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<BootToml>,
}

/// `[boot]` in base.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootToml {
    /// The system's init (default /sbin/init).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
    /// Kernel modules to load at boot, in order: paths inside the base's initrd.
    #[serde(default)]
    pub modules: Vec<String>,
    /// Seconds the boot verifier may take from its start to a verdict before it refuses
    /// (default 300: enough to hash a large system from a slow stick).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict_timeout_seconds: Option<u32>,
    /// What reading a system block that does not match its dm-verity hash does: "eio" (the
    /// default: the read fails), "restart" or "panic".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verity_on_corruption: Option<OnCorruption>,
    /// How the firmware reaches the UKI: "db" (the default: the UKI is the removable-media
    /// loader, for PCs whose db holds the provider's certificate) or "shim" (Debian's
    /// Microsoft-signed shim first, with MokManager and the provider's certificate for a
    /// one-time enrolment: for PCs that trust only Microsoft's keys). `homestick build
    /// --boot-path` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<BootPath>,
}

/// How the firmware reaches the UKI (see [`crate::shim`] for the shim path's files).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootPath {
    /// The UKI is `EFI/BOOT/BOOTX64.EFI`; the firmware's db must trust its signer.
    #[default]
    Db,
    /// shim is `EFI/BOOT/BOOTX64.EFI` and starts the UKI (`grubx64.efi`) once the provider's
    /// certificate is in the PC's MOK list (or shim's own vendor certificate is the provider's).
    Shim,
}

impl BootPath {
    /// The word in base.toml and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BootPath::Db => "db",
            BootPath::Shim => "shim",
        }
    }
}

impl std::fmt::Display for BootPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not a boot path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a boot path (db or shim)")]
pub struct BootPathError(pub String);

impl std::str::FromStr for BootPath {
    type Err = BootPathError;
    fn from_str(s: &str) -> Result<Self, BootPathError> {
        match s {
            "db" => Ok(BootPath::Db),
            "shim" => Ok(BootPath::Shim),
            _ => Err(BootPathError(s.to_string())),
        }
    }
}

/// What the kernel does when a block of the system does not match its dm-verity hash (the
/// boot policy carries the base's choice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnCorruption {
    /// The read fails with an I/O error (the kernel logs the block).
    #[default]
    Eio,
    /// The PC restarts.
    Restart,
    /// The kernel panics (and, with panic=-1 on the command line, restarts).
    Panic,
}

impl OnCorruption {
    /// The dm-verity table's optional arguments for this choice.
    pub fn table_args(self) -> &'static str {
        match self {
            OnCorruption::Eio => "",
            OnCorruption::Restart => " 1 restart_on_corruption",
            OnCorruption::Panic => " 1 panic_on_corruption",
        }
    }
}

/// Whether `s` is a valid base name or version (and image version).
pub fn label_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-~".contains(&b))
}

/// The rule [`label_ok`] checks, for messages.
pub const LABEL_RULE: &str = "must be 1-64 characters of A-Z a-z 0-9 . _ + - ~";

/// Why a base.toml cannot be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BaseTomlError(pub String);

impl BaseToml {
    /// Read base.toml's text (unknown fields refused).
    pub fn parse(text: &str) -> Result<BaseToml, BaseTomlError> {
        toml::from_str(text).map_err(|e| BaseTomlError(e.message().trim().to_string()))
    }

    /// The file's text: each line of `comment` as a `#` comment, then the fields.
    pub fn to_toml(&self, comment: &str) -> Result<String, BaseTomlError> {
        let body = toml::to_string(self).map_err(|e| BaseTomlError(e.to_string()))?;
        let mut out: String = comment
            .lines()
            .map(|l| format!("# {}\n", l.replace(['\r', '\u{2028}', '\u{2029}'], " ")))
            .collect();
        out.push_str(&body);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_reads_back() {
        let b = BaseToml {
            name: "homestick-demo".into(),
            version: "6.1.0-40-amd64".into(),
            boot: Some(BootToml {
                init: Some("/sbin/init".into()),
                modules: vec!["kernel/drivers/usb/storage/usb-storage.ko".into()],
                verdict_timeout_seconds: None,
                verity_on_corruption: Some(OnCorruption::Restart),
                path: Some(BootPath::Shim),
            }),
        };
        let text = b.to_toml("Built by a test.\nSecond line").expect("write");
        assert!(
            text.starts_with("# Built by a test.\n# Second line\n"),
            "{text}"
        );
        assert_eq!(BaseToml::parse(&text), Ok(b));
        let plain = BaseToml {
            name: "f".into(),
            version: "1".into(),
            boot: None,
        };
        let text = plain.to_toml("").expect("write");
        assert_eq!(text, "name = \"f\"\nversion = \"1\"\n");
        assert_eq!(BaseToml::parse(&text), Ok(plain));
    }

    #[test]
    fn a_comment_cannot_add_a_field() {
        let b = BaseToml {
            name: "f".into(),
            version: "1".into(),
            boot: None,
        };
        let text = b.to_toml("x\rversion = \"2\"").expect("write");
        assert_eq!(BaseToml::parse(&text).expect("parse").version, "1");
    }

    #[test]
    fn unknown_fields_and_values_are_refused() {
        for (text, want) in [
            (
                "name = \"a\"\nversion = \"1\"\nextra = 1\n",
                "unknown field `extra`",
            ),
            ("name = \"a\"\n", "missing field `version`"),
            (
                "name = \"a\"\nversion = \"1\"\n[boot]\nverity_on_corruption = \"reboot\"\n",
                "unknown variant `reboot`",
            ),
            (
                "name = \"a\"\nversion = \"1\"\n[boot]\npath = \"grub\"\n",
                "unknown variant `grub`",
            ),
        ] {
            let e = BaseToml::parse(text).expect_err(text);
            assert!(e.0.contains(want), "{text}: {e}");
        }
    }
}
