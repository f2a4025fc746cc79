//! `homestick roster …`: its arguments.

use super::*;

/// `homestick roster ...`
#[derive(Debug, Subcommand)]
pub enum RosterCommand {
    /// Check every row: each slot filled and well-formed, users, addresses, extensions unique.
    #[command(
        after_help = "Example:\n  homestick roster check --profile profiles/stadt-musterhausen roster-filled.csv\n\n\
Format: CSV, UTF-8, header user_id,display_name,<each slot the profile declares>; a value or\n\
`generate`. Errors name the line and the column, never the value. Exit 2 if any."
    )]
    Check {
        /// Profile directory (its slots are the roster's columns).
        #[arg(long, value_name = "DIR")]
        profile: PathBuf,
        /// The roster (CSV).
        roster: PathBuf,
    },
    /// Make every `generate` value (WireGuard keys, SIP, TURN, OpenVPN and EAP passwords, tunnel addresses from the
    /// VPN's address_pool) and write the filled roster, mode 0600, to a new file.
    #[command(
        after_help = "Example:\n  homestick roster fill --profile profiles/stadt-musterhausen roster.csv --out roster-filled.csv\n\n\
The filled roster holds the users' secrets: keep it on the signing machine. Rebuilds use it, so\n\
the same user keeps the same keys and address."
    )]
    Fill {
        /// Profile directory.
        #[arg(long, value_name = "DIR")]
        profile: PathBuf,
        /// The roster (CSV) with `generate` values.
        roster: PathBuf,
        /// Where the filled roster goes (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write what the servers need from a filled roster: the WireGuard server's [Peer]
    /// sections, the PBX's users, the IPsec EAP secrets and the OpenVPN users. Never a user's
    /// private key.
    #[command(
        after_help = "Example:\n  homestick roster export --profile profiles/stadt-musterhausen roster-filled.csv --out server-config\n  \
homestick roster export --profile profiles/stadt-musterhausen roster-filled.csv --out server-config --ha1\n\n\
Files: wireguard-<vpn>-peers.conf (append to the server's wg config; `wg addconf` takes it),\n\
pbx-users.csv (extension,user,display_name,password or ha1), ipsec-<vpn>-secrets.conf,\n\
openvpn-<vpn>-users.csv. Files with passwords or preshared keys get mode 0600."
    )]
    Export {
        /// Profile directory.
        #[arg(long, value_name = "DIR")]
        profile: PathBuf,
        /// The filled roster (CSV).
        roster: PathBuf,
        /// A new directory for the files.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// In pbx-users.csv, the SIP digest HA1 = MD5(user:realm:password) instead of the
        /// password; the realm defaults to the registrar's host.
        #[arg(long, value_name = "REALM", num_args = 0..=1, default_missing_value = "")]
        ha1: Option<String>,
    },
}
