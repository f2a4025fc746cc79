//! `homestick inspect`: its arguments.

use super::*;

/// `homestick inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Image file, block device, or stick set (directory with set.json).
    pub target: PathBuf,
    /// In a stick set: show this user's image (without it: the set's users).
    #[arg(long, value_name = "ID")]
    pub user: Option<String>,
    /// Print the manifest and findings as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}
