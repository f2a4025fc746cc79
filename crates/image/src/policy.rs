//! The boot policy: what the builder tells the boot-time verifier inside the signed UKI.
//!
//! It travels in the initramfs as /etc/homestick/policy.json, beside the trusted public keys
//! in /etc/homestick/keys/. Because it is inside the Secure-Boot-signed UKI, it is as trusted
//! as the verifier itself.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::manifest::Manifest;
use crate::revocation::RevocationList;
use crate::time::rfc3339;
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
    /// The provider's revocation list the build embedded: keys, images and users refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocations: Option<RevocationList>,
    /// During this many days before an image expires, the person at home is warned.
    #[serde(default = "default_warning_days")]
    pub expiry_warning_days: u32,
}

/// Days before expiry from which `verify` and the boot verifier warn, unless the build says.
pub const DEFAULT_EXPIRY_WARNING_DAYS: u32 = 14;

fn default_warning_days() -> u32 {
    DEFAULT_EXPIRY_WARNING_DAYS
}

pub use homestick_formats::base::OnCorruption;

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
    /// Nothing this list revokes is trusted.
    pub revoked: Option<RevocationList>,
    /// The time (Unix seconds) an image's `expires` is compared with; `None`: not checked.
    pub now: Option<i64>,
    /// Warn this many days before an image expires.
    pub expiry_warning_days: u32,
}

impl Expectations {
    /// Nothing required.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether the customer, rollback index or disk GUID is required (the checks an offline
    /// `verify` leaves out unless asked).
    pub fn binds_image(&self) -> bool {
        self.customer_id.is_some() || self.min_rollback_index.is_some() || self.disk_guid.is_some()
    }

    /// What does not break trust but someone should hear: an image that expires soon.
    pub fn warnings(&self, m: &Manifest) -> Vec<Finding> {
        let (Some(now), Some(exp)) = (self.now, m.expires_at()) else {
            return vec![];
        };
        let left = exp - now;
        if left > 0 && left <= i64::from(self.expiry_warning_days) * 86_400 {
            let days = (left + 86_399) / 86_400;
            return vec![Finding::expiry(format!(
                "the image expires at {} (in {days} day(s)): replace the stick before then",
                rfc3339(exp)
            ))];
        }
        vec![]
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
        if let (Some(now), Some(exp)) = (self.now, m.expires_at()) {
            if now >= exp {
                fails.push(Finding::expiry(format!(
                    "the image expired at {} (this computer's clock says {})",
                    rfc3339(exp),
                    rfc3339(now)
                )));
            }
        }
        if let Some(r) = &self.revoked {
            fails.extend(r.check(m));
        }
        fails
    }
}

impl From<&BootPolicy> for Expectations {
    /// The policy's checks; `now` stays unset: the boot verifier sets it from its clock.
    fn from(p: &BootPolicy) -> Self {
        Expectations {
            customer_id: Some(p.customer_id.clone()),
            min_rollback_index: Some(p.min_rollback_index),
            disk_guid: Some(p.disk_guid),
            revoked: p.revocations.clone(),
            now: None,
            expiry_warning_days: p.expiry_warning_days,
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

    /// How the person at home reaches help, German and English, and the e-mail line.
    fn help(&self) -> (String, String, String) {
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
        // No e-mail: no line for it.
        let mail = self
            .email
            .as_deref()
            .map(|m| format!("\n  E-Mail: {m}"))
            .unwrap_or_default();
        (help_de, help_en, mail)
    }

    /// The notice for a PC that started the stick with Secure Boot off (German and English, with
    /// the hotline): the stick checked itself, but nothing protected the start.
    pub fn secure_boot_off_notice(&self) -> String {
        let (help_de, help_en, mail) = self.help();
        format!(
            "\n  DEUTSCH\n  Secure Boot ist aus. Der Home-Office-Stick von {name} hat sich geprueft, aber dieser PC\n  \
             schuetzt den Start nicht. Bitte schalten Sie Secure Boot in der Firmware-Einstellung ein.\n  {help_de}{mail}\n\n  \
             ENGLISH\n  Secure Boot is off. The home-office stick from {name} checked itself, but this PC does\n  \
             not protect the start. Please switch Secure Boot on in the firmware setup.\n  {help_en}{mail}\n",
            name = self.customer_name,
        )
    }

    /// The message for the person at home, German and English, with the customer's hotline.
    pub fn refusal_message(&self, why: Refusal) -> String {
        let (help_de, help_en, mail) = self.help();
        let (de, en) = match why {
            Refusal::Changed => (
                "wurde veraendert oder ist beschaedigt",
                "has been changed or is damaged",
            ),
            Refusal::Expired => ("ist abgelaufen", "has expired"),
            Refusal::Revoked => ("wurde gesperrt", "has been revoked"),
        };
        format!(
            "\n  DEUTSCH\n  Dieser Home-Office-Stick von {name} {de}.\n  \
             Er wird aus Sicherheitsgruenden nicht gestartet. Ihre Daten sind nicht betroffen.\n  \
             {help_de}{mail}\n\n  ENGLISH\n  This home-office stick from {name} {en}.\n  \
             For your security it will not start. Your data is not affected.\n  {help_en}{mail}\n\n  \
             Der PC schaltet sich in {d} Sekunden aus. / The PC will power off in {d} seconds.\n",
            name = self.customer_name,
            d = self.failure_delay_seconds
        )
    }

    /// The notice for the person at home when the image `m` expires within the policy's
    /// warning days of `now`: German and English, with the hotline.
    pub fn expiry_notice(&self, m: &Manifest, now: i64) -> Option<String> {
        let exp = m.expires_at()?;
        let left = exp - now;
        if left <= 0 || left > i64::from(self.expiry_warning_days) * 86_400 {
            return None;
        }
        let days = (left + 86_399) / 86_400;
        let date = crate::time::date(exp);
        let (help_de, help_en, mail) = self.help();
        Some(format!(
            "\n  DEUTSCH\n  Dieser Home-Office-Stick von {name} laeuft am {date} ab (in {days} Tag(en)).\n  \
             Danach startet er nicht mehr. Bitte fordern Sie rechtzeitig einen neuen an.\n  {help_de}{mail}\n\n  \
             ENGLISH\n  This home-office stick from {name} expires on {date} (in {days} day(s)).\n  \
             After that it will not start. Please ask for a new one in time.\n  {help_en}{mail}\n",
            name = self.customer_name,
        ))
    }
}

/// Why a stick is refused, in the words the person at home gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Changed, damaged, or not signed by a trusted key.
    Changed,
    /// Signed and intact, but past its `expires`.
    Expired,
    /// Signed and intact, but its key, image or user is revoked.
    Revoked,
}

impl Refusal {
    /// The refusal for `failures`: expired or revoked only if nothing else is wrong.
    pub fn of(failures: &[Finding]) -> Refusal {
        use crate::verify::FindingKind;
        let revoked = |f: &Finding| f.kind == FindingKind::Revoked;
        let at_home = |f: &Finding| f.kind != FindingKind::Integrity;
        if !failures.is_empty() && failures.iter().all(at_home) {
            if failures.iter().any(revoked) {
                Refusal::Revoked
            } else {
                Refusal::Expired
            }
        } else {
            Refusal::Changed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::sample;
    use crate::revocation::RevokedUser;

    #[test]
    fn expiry_is_refused_from_its_second_on_and_warned_about_before() {
        let mut m = sample();
        let exp = m.build_epoch + 30 * 86_400;
        m.expires = Some(crate::time::rfc3339(exp));
        assert_eq!(m.validate().map_err(|e| e.to_string()), Ok(()));
        let at = |now: i64| Expectations {
            now: Some(now),
            expiry_warning_days: 14,
            ..Expectations::none()
        };
        // (now, failure expected, warning expected)
        let cases = [
            (exp - 15 * 86_400, false, false),
            (exp - 14 * 86_400, false, true),
            (exp - 1, false, true),
            (exp, true, false),
            (exp + 86_400 * 365, true, false),
        ];
        for (now, fails, warns) in cases {
            let e = at(now);
            assert_eq!(!e.check(&m).is_empty(), fails, "now {now}");
            assert_eq!(!e.warnings(&m).is_empty(), warns, "now {now}");
        }
        // Without a clock nothing is judged; without `expires` nothing expires.
        assert!(Expectations::none().check(&m).is_empty());
        m.expires = None;
        assert!(at(i64::MAX / 2).check(&m).is_empty());
        // An expiry not after the build time is not a valid manifest.
        m.expires = Some(m.build_time.clone());
        assert!(m.validate().is_err());
    }

    #[test]
    fn revocations_name_what_they_refuse_and_the_refusal_for_the_person_at_home() {
        let mut m = sample();
        m.user = Some(crate::manifest::User {
            id: "anna".into(),
            name: "Anna".into(),
        });
        let mut l = RevocationList {
            version: 7,
            ..RevocationList::default()
        };
        let e = |l: &RevocationList| Expectations {
            revoked: Some(l.clone()),
            ..Expectations::none()
        };
        assert!(e(&l).check(&m).is_empty());
        l.users.insert(RevokedUser {
            customer: "other".into(),
            id: "anna".into(),
        });
        assert!(e(&l).check(&m).is_empty(), "another customer's anna");
        l.users.insert(RevokedUser {
            customer: "stadt-a".into(),
            id: "anna".into(),
        });
        l.image_ids.insert(m.image_id.to_string());
        l.key_ids.insert(m.key_id.to_string());
        let f = e(&l).check(&m);
        let text: Vec<String> = f.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(
            text[0].starts_with("revocation list version 7: the signing key abab"),
            "{text:?}"
        );
        assert!(text[1].contains("image 0b6a7f0e-1a2b-4c3d-8e4f-0123456789ab is revoked"));
        assert!(text[2].contains("user anna of customer stadt-a is revoked"));
        assert_eq!(Refusal::of(&f), Refusal::Revoked);
        let expired = Finding::expiry("x");
        let tampered = Finding::new("partition 3 (profile)", "x");
        // The kind decides, not the words of the region: a finding that merely names the list
        // (or the expiry) is a changed stick.
        for named in [
            Finding::new("revocation list version 7", "x"),
            Finding::new("expiry", "x"),
        ] {
            assert_eq!(Refusal::of(&[named]), Refusal::Changed);
        }
        assert_eq!(
            Refusal::of(std::slice::from_ref(&expired)),
            Refusal::Expired
        );
        assert_eq!(
            Refusal::of(&[expired.clone(), f[0].clone()]),
            Refusal::Revoked
        );
        assert_eq!(Refusal::of(&[expired, tampered]), Refusal::Changed);
        assert_eq!(Refusal::of(&[]), Refusal::Changed);
    }
}
