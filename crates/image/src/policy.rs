//! The boot policy: what the builder tells the boot-time verifier inside the signed UKI.
//!
//! It travels in the initramfs as /etc/homestick/policy.json, beside the trusted public keys
//! in /etc/homestick/keys/. Because it is inside the Secure-Boot-signed UKI, it is as trusted
//! as the verifier itself.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::manifest::Manifest;
use crate::verify::Finding;

/// Format id of policy.json.
pub const POLICY_FORMAT: &str = "homestick-boot-policy/1";
/// Where the policy lives in the initramfs.
pub const POLICY_PATH: &str = "etc/homestick/policy.json";
/// Where the trusted keys live in the initramfs.
pub const KEYS_DIR: &str = "etc/homestick/keys";

/// What the verifier needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootPolicy {
    /// [`POLICY_FORMAT`].
    pub format: String,
    /// GPT disk GUID of the stick to look for.
    #[serde(with = "crate::manifest::guid")]
    pub disk_guid: Uuid,
    /// Customer id.
    pub customer_id: String,
    /// Customer name, for the refusal message.
    pub customer_name: String,
    /// Hotline, for the refusal message.
    pub hotline: Option<String>,
    /// Support e-mail, for the refusal message.
    pub email: Option<String>,
    /// Support hours, for the refusal message.
    pub hours: Option<String>,
    /// Kernel modules to load, in order (paths inside the initramfs).
    pub modules: Vec<String>,
    /// Seconds the refusal stays on screen before power-off.
    pub failure_delay_seconds: u32,
    /// Images with a lower rollback index are refused.
    pub min_rollback_index: u64,
    /// Seconds to wait for the stick to appear.
    pub device_timeout_seconds: u32,
    /// Seconds from the verifier's start to its verdict after which it refuses anyway: a
    /// hostile stick must never keep the PC waiting without a message.
    #[serde(default = "default_verdict_timeout")]
    pub verdict_timeout_seconds: u32,
    /// The system's init, run after switch_root.
    pub init: String,
    /// Where the profile partition is mounted in the system.
    pub profile_mount: String,
    /// What a block of the system that does not match its dm-verity hash does.
    #[serde(default)]
    pub verity_on_corruption: OnCorruption,
}

/// What the kernel does when a block of the system does not match its dm-verity hash.
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

/// Why a policy.json is not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Not JSON of this schema.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// Another format.
    #[error("format {0:?} is not {POLICY_FORMAT:?}")]
    Format(String),
}

/// The verdict timeout when the base names none: the device wait plus time to hash a large
/// system partition from a slow USB 2 stick.
pub const DEFAULT_VERDICT_TIMEOUT: u32 = 300;

fn default_verdict_timeout() -> u32 {
    DEFAULT_VERDICT_TIMEOUT
}

/// What a verifier requires of a signed manifest beyond the signature and the hashes: the
/// boot policy's checks, which an auditor or the flasher can apply offline as well.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectations {
    /// The image must be for this customer.
    pub customer_id: Option<String>,
    /// The image's rollback index must be at least this.
    pub min_rollback_index: Option<u64>,
    /// The image's GPT disk GUID must be this.
    pub disk_guid: Option<Uuid>,
}

impl Expectations {
    /// Nothing required.
    pub fn none() -> Self {
        Self::default()
    }

    /// What each requirement finds wrong with `m`, in a fixed order.
    pub fn check(&self, m: &Manifest) -> Vec<Finding> {
        let mut fails = Vec::new();
        if let Some(c) = &self.customer_id {
            if &m.customer.id != c {
                fails.push(Finding::new(
                    "policy",
                    format!(
                        "the image is for customer {:?}, required is {c:?}",
                        m.customer.id
                    ),
                ));
            }
        }
        if let Some(min) = self.min_rollback_index {
            if m.rollback_index < min {
                fails.push(Finding::new(
                    "policy",
                    format!(
                        "rollback index {} is below the required minimum {min}",
                        m.rollback_index
                    ),
                ));
            }
        }
        if let Some(g) = &self.disk_guid {
            if m.disk.guid != *g {
                fails.push(Finding::new(
                    "policy",
                    format!("disk GUID {} is not the required {g}", m.disk.guid),
                ));
            }
        }
        fails
    }
}

impl From<&BootPolicy> for Expectations {
    fn from(p: &BootPolicy) -> Self {
        Expectations {
            customer_id: Some(p.customer_id.clone()),
            min_rollback_index: Some(p.min_rollback_index),
            disk_guid: Some(p.disk_guid),
        }
    }
}

impl BootPolicy {
    /// Parse and check a policy.json.
    pub fn from_json(bytes: &[u8]) -> Result<BootPolicy, PolicyError> {
        let p: BootPolicy = serde_json::from_slice(bytes)?;
        if p.format != POLICY_FORMAT {
            return Err(PolicyError::Format(p.format));
        }
        Ok(p)
    }

    /// The message for the person at home, German and English, with the customer's hotline.
    pub fn refusal_message(&self) -> String {
        let help_de = match (&self.hotline, &self.hours) {
            (Some(h), Some(t)) => format!("Bitte rufen Sie die IT-Hotline an: {h} ({t})."),
            (Some(h), None) => format!("Bitte rufen Sie die IT-Hotline an: {h}."),
            _ => "Bitte wenden Sie sich an Ihre IT-Abteilung.".into(),
        };
        let help_en = match (&self.hotline, &self.hours) {
            (Some(h), Some(t)) => format!("Please call the IT hotline: {h} ({t})."),
            (Some(h), None) => format!("Please call the IT hotline: {h}."),
            _ => "Please contact your IT department.".into(),
        };
        let mail = self
            .email
            .as_deref()
            .map(|m| format!("\n  E-Mail: {m}"))
            .unwrap_or_default();
        format!(
            "\n  DEUTSCH\n  Dieser Home-Office-Stick von {name} wurde veraendert oder ist beschaedigt.\n  \
             Er wird aus Sicherheitsgruenden nicht gestartet. Ihre Daten sind nicht betroffen.\n  \
             {help_de}{mail}\n\n  ENGLISH\n  This home-office stick from {name} has been changed or is damaged.\n  \
             For your security it will not start. Your data is not affected.\n  {help_en}{mail}\n\n  \
             Der PC schaltet sich in {d} Sekunden aus. / The PC will power off in {d} seconds.\n",
            name = self.customer_name,
            d = self.failure_delay_seconds
        )
    }
}
