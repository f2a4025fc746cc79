//! `homestick verify`: its arguments.

use super::*;

/// `homestick verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Image file, block device, or stick set (directory with set.json; with --user or --all).
    pub target: PathBuf,
    /// A trusted public key (.pub) or a directory of them.
    #[arg(long, value_name = "PATH")]
    pub keyring: PathBuf,
    /// In a stick set: verify this user's image.
    #[arg(long, value_name = "ID")]
    pub user: Option<String>,
    /// In a stick set: verify every user's image (the shared partitions are read once).
    #[arg(long, conflicts_with = "user")]
    pub all: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Require the image to be for this customer id (as the boot verifier does).
    #[arg(long, value_name = "ID")]
    pub customer: Option<String>,
    /// Require a rollback index of at least N (as the boot verifier does).
    #[arg(long, value_name = "N")]
    pub min_rollback: Option<u64>,
    /// Require this GPT disk GUID (as the boot verifier does).
    #[arg(long, value_name = "GUID", value_parser = parse_guid)]
    pub disk_guid: Option<uuid::Uuid>,
    /// The provider's signed revocation list (FILE and FILE.sig, signed by a key of
    /// --keyring): what it revokes is not trusted.
    #[arg(long, value_name = "FILE")]
    pub revocations: Option<PathBuf>,
    /// The lowest revocation-list version taken (the newest version this station or
    /// signing machine has seen): an older list, which misses later revocations, is refused.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "revocations")]
    pub min_revocation_version: u64,
    /// Apply a boot policy (policy.json, as in a UKI's initramfs): its customer, minimum
    /// rollback index, disk GUID and revocation list.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["customer", "min_rollback", "disk_guid"])]
    pub policy: Option<PathBuf>,
    /// Check only the signature, LBA 0, the GPT and each dm-verity superblock and tree top
    /// against the signed root hash (seconds, whatever the size); without it every byte is
    /// checked, every dm-verity data block against its leaf.
    #[arg(long)]
    pub quick: bool,
}
