//! `homestick profile …`: its arguments.

use super::*;

/// `homestick profile ...`
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Validate a profile and summarize what a stick for this customer will contain.
    #[command(
        after_help = "Example:\n  homestick profile check profiles/stadt-musterhausen\n\n\
Certificates are checked against SOURCE_DATE_EPOCH if set, else the current time."
    )]
    Check {
        /// Profile directory (holds customer.toml).
        dir: PathBuf,
    },
    /// Write the rendered configuration files (what the profile partition holds).
    #[command(
        after_help = "Example:\n  homestick profile render profiles/stadt-musterhausen --out /tmp/rendered"
    )]
    Render {
        /// Profile directory (holds customer.toml).
        dir: PathBuf,
        /// Output directory (created; must be empty if it exists).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}
