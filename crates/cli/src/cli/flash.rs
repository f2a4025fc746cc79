//! `homestick flash` and `homestick sticks`: its arguments.

use super::*;

/// Report file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// One JSON object per line.
    Json,
    /// CSV with a header line.
    Csv,
}

/// `homestick flash`
#[derive(Debug, Args)]
pub struct FlashArgs {
    /// The signed image, or a stick set (directory with set.json): then each stick gets the
    /// next user who has no good stick yet.
    pub image: PathBuf,
    /// A trusted public key (.pub) or a directory of them.
    #[arg(long, value_name = "PATH")]
    pub keyring: PathBuf,
    /// From a stick set: write this user's stick (one stick).
    #[arg(long, value_name = "ID")]
    pub user: Option<String>,
    /// The provider's signed revocation list (FILE and FILE.sig): a revoked, expired or
    /// otherwise refused image is not written.
    #[arg(long, value_name = "FILE")]
    pub revocations: Option<PathBuf>,
    /// The lowest revocation-list version taken (the newest version this station or
    /// signing machine has seen): an older list, which misses later revocations, is refused.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "revocations")]
    pub min_revocation_version: u64,
    /// The ledger every attempt is recorded in: an SQLite file, or postgres://USER@HOST/DB for
    /// a ledger several stations share. Default: $HOMESTICK_LEDGER, else
    /// $XDG_DATA_HOME/homestick/ledger.sqlite (~/.local/share/homestick/ledger.sqlite).
    #[arg(long, value_name = "FILE|URL")]
    pub ledger: Option<String>,
    /// CA certificates (PEM) that a PostgreSQL ledger's TLS certificate must chain to
    /// (default: the system's); the server's name must match its certificate.
    #[arg(long, value_name = "FILE")]
    pub ledger_ca: Option<PathBuf>,
    /// Connect to a PostgreSQL ledger without TLS: its password and every row travel in clear
    /// and any server may answer. Only on a network nobody else can reach.
    #[arg(long)]
    pub ledger_insecure_plaintext: bool,
    /// Write a printable label sheet (HTML) of this run's good sticks: user, serial, hotline.
    #[arg(long, value_name = "FILE.html")]
    pub labels: Option<PathBuf>,
    /// A stick to write (repeat for several); a whole disk such as /dev/sdc.
    #[arg(long = "target", value_name = "DEV")]
    pub targets: Vec<PathBuf>,
    /// Write every removable or USB disk that is not refused.
    #[arg(long, conflicts_with = "targets")]
    pub all_removable: bool,
    /// With --all-removable and --watch, a disk larger than this is not written (a USB backup
    /// disk is no stick): bytes, or with K, M, G, T. A disk named with --target is written
    /// whatever its size.
    #[arg(long, value_name = "SIZE", default_value = "256G", value_parser = parse_size)]
    pub max_size: u64,
    /// Station mode: wait for sticks and write each new one as it is plugged in (Ctrl-C ends).
    #[arg(long, conflicts_with_all = ["targets", "all_removable"])]
    pub watch: bool,
    /// Do not ask before writing.
    #[arg(long)]
    pub yes: bool,
    /// Append one record per stick to FILE as each one finishes.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Format of the report.
    #[arg(long, value_enum, default_value = "json")]
    pub report_format: ReportFormat,
    /// At most N sticks at a time (default: all at once).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Also write disks that are neither removable nor on USB (never mounted ones, still).
    #[arg(long)]
    pub allow_non_removable: bool,
    /// A stick with no progress for this many seconds fails.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_seconds: u64,
    /// In --watch mode, write a stick again when it is plugged in again although it was already
    /// verified in this run (a failed stick is always tried again when plugged in again).
    #[arg(long, requires = "watch")]
    pub again: bool,
}

/// `homestick sticks`
#[derive(Debug, Args)]
pub struct SticksArgs {
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Judge the sizes against this image (not verified here).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<PathBuf>,
    /// As `flash --allow-non-removable` would.
    #[arg(long)]
    pub allow_non_removable: bool,
}
