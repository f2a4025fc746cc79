//! `homestick base …`: its arguments.

use super::*;

/// `homestick base ...`
#[derive(Debug, Subcommand)]
pub enum BaseCommand {
    /// Build a base from a recipe (BASE.toml): mmdebstrap, lock-down, session, squashfs.
    #[command(
        after_help = "Examples:\n  homestick base build bases/headless/base.toml --out out/headless\n  \
homestick base build bases/desktop/base.toml --out out/desktop --cache /var/cache/homestick/debs\n\n\
Needs root, mmdebstrap and squashfs-tools, and the Debian package sources (this machine's apt\n\
sources unless --sources names a file). Downloaded packages are kept in --cache for the next build.\n\
With SOURCE_DATE_EPOCH set, file times are that epoch (reproducible as far as the packages allow).\n\
The base is written beside DIR and renamed to DIR only when it is complete."
    )]
    Build(BaseBuildArgs),
}

/// `homestick base build`.
#[derive(Debug, Args)]
pub struct BaseBuildArgs {
    /// The recipe (BASE.toml): suite, kernel, packages, session.
    pub recipe: PathBuf,
    /// The base directory to write (replaced when the build succeeds).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// A directory copied into the system after the recipe's own overlay (repeatable).
    #[arg(long, value_name = "DIR")]
    pub overlay: Vec<PathBuf>,
    /// The session program (default: homestick-session beside homestick, else
    /// /usr/lib/homestick/homestick-session).
    #[arg(long, value_name = "FILE")]
    pub session: Option<PathBuf>,
    /// Where downloaded .debs are kept between builds.
    #[arg(long, value_name = "DIR", default_value = "/var/cache/homestick/debs")]
    pub cache: PathBuf,
    /// apt sources file for mmdebstrap (default: this machine's).
    #[arg(long, value_name = "FILE")]
    pub sources: Option<PathBuf>,
}
