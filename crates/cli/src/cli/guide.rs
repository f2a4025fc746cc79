//! `homestick guide`: its arguments.

use super::*;

/// `homestick guide`
#[derive(Debug, Args)]
pub struct GuideArgs {
    /// Customer profile directory (holds customer.toml): the name and hotline in the guide.
    #[arg(long, value_name = "DIR")]
    pub profile: PathBuf,
    /// Where to write the guide (HTML); written to a temporary file first, then renamed.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}
