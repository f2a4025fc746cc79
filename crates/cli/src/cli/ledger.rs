//! `homestick ledger …`: its arguments.

use super::*;

/// `homestick ledger`
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  homestick ledger list\n  homestick ledger show 4C530001230907115172\n  homestick ledger user anna.schmidt\n  \
homestick ledger export --csv > sticks.csv\n  homestick ledger revoke --serial 4C530001230907115172 --revocation-list revoked.json\n  \
homestick ledger --ledger postgres://homestick@db.example/homestick list\n\n\
The default ledger is $HOMESTICK_LEDGER, else $XDG_DATA_HOME/homestick/ledger.sqlite\n\
(~/.local/share/homestick/ledger.sqlite); `homestick flash` records into the same one."
)]
pub struct LedgerArgs {
    /// The ledger: an SQLite file or a postgres:// URL (default: see below).
    #[arg(long, value_name = "FILE|URL", global = true)]
    pub ledger: Option<String>,
    /// CA certificates (PEM) that a PostgreSQL ledger's TLS certificate must chain to
    /// (default: the system's); the server's name must match its certificate.
    #[arg(long, value_name = "FILE", global = true)]
    pub ledger_ca: Option<PathBuf>,
    /// Connect to a PostgreSQL ledger without TLS: its password and every row travel in clear
    /// and any server may answer. Only on a network nobody else can reach.
    #[arg(long, global = true)]
    pub ledger_insecure_plaintext: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: LedgerCommand,
}

/// `homestick ledger ...`
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Every flash attempt, oldest first.
    List {
        /// Only this stick set.
        #[arg(long, value_name = "SET_ID")]
        set: Option<String>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Every attempt on the stick with this serial number.
    Show {
        /// The stick's serial number.
        serial: String,
    },
    /// Every stick of this user.
    User {
        /// The user id.
        id: String,
    },
    /// Everything, as CSV or JSON lines on stdout.
    Export {
        /// CSV with a header line.
        #[arg(long, conflicts_with = "json", required_unless_present = "json")]
        csv: bool,
        /// JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// A stick is lost: mark it revoked, print what the VPN server and the PBX must drop, and
    /// add its image id to a revocation list. A stick of a customer-wide image (no user) shares
    /// its image id and its credentials with every stick of that image: revoking it takes
    /// --all-sticks-of-image.
    Revoke {
        /// The lost stick's serial number (several rows with one serial: give --id).
        #[arg(
            long,
            value_name = "SERIAL",
            required_unless_present_any = ["user", "id"],
            conflicts_with = "user"
        )]
        serial: Option<String>,
        /// The ledger row of the lost stick (`homestick ledger list` shows it).
        #[arg(long, value_name = "ROW", conflicts_with = "user")]
        id: Option<i64>,
        /// Revoke a customer-wide image, and with it every stick written with it.
        #[arg(long)]
        all_sticks_of_image: bool,
        /// Every good stick of this user.
        #[arg(long, value_name = "ID")]
        user: Option<String>,
        /// Why (recorded in the ledger).
        #[arg(long, default_value = "lost")]
        reason: String,
        /// The revocation list (JSON) to add the image ids to; created if missing.
        #[arg(long, value_name = "FILE", default_value = "revocations.json")]
        revocation_list: PathBuf,
        /// The keyring the existing list's signature is checked against before it is extended.
        #[arg(long, value_name = "PATH")]
        keyring: Option<PathBuf>,
    },
    /// Resolve a stick whose state is unknown (`needs-check`: its flasher died or it stalled
    /// and could not be wiped): read it and verify it. Holding the user's image, the row becomes
    /// good; anything else, failed, and the user is free for another stick.
    #[command(
        after_help = "Example:\n  homestick ledger check 412 /dev/sdc --keyring provider.pub\n\n\
A stick that cannot be found may be in someone's hands: revoke it instead (homestick ledger revoke --id 412)."
    )]
    Check {
        /// The ledger row (`homestick ledger list` shows rows that need a check).
        row: i64,
        /// The stick (or an image of it).
        stick: PathBuf,
        /// The trusted public keys.
        #[arg(long, value_name = "PATH")]
        keyring: PathBuf,
    },
}
