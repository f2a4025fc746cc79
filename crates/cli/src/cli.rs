//! Command-line definition.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Build, check and inspect signed home-office USB stick images.
#[derive(Debug, Parser)]
#[command(name = "homestick", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 success/trusted, 1 not trusted, 2 unusable input or arguments.\n\
Documentation: README.md and docs/ in the homestick repository."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Build one signed image for a customer.
    #[command(
        after_help = "Example:\n  homestick build --profile profiles/stadt-musterhausen --base out/base \\\n    --key keys/test/homestick-test.key --output out/stadt-musterhausen.img --version 2026.11.1\n\n\
Set SOURCE_DATE_EPOCH for reproducible builds: same inputs, same key, same epoch -> same bytes."
    )]
    Build(Box<BuildArgs>),
    /// Check an image file or a stick against trusted public keys.
    #[command(
        after_help = "Examples:\n  homestick verify out/stadt-musterhausen.img --keyring keys/test/homestick-test.pub\n  homestick verify /dev/sdc --keyring /etc/homestick/trusted/ --json\n  \
homestick verify /dev/sdc --keyring provider.pub --customer stadt-musterhausen --min-rollback 3\n  \
homestick verify stick.img --keyring provider.pub --policy policy.json\n  \
homestick verify stick.img --keyring /etc/homestick/trusted/ --revocations revocations.json\n\n\
The keyring directory may hold a keyring.toml with each key's comment and validity window\n\
(docs/format.md); verify names the key that signed. An image past its `expires` is not trusted.\n\n\
With --customer, --min-rollback, --disk-guid or --policy, verify applies the boot verifier's checks\n\
too: without them any image signed by a trusted key is trusted, for whichever customer.\n\n\
Exit codes: 0 trusted, 1 NOT trusted (the message names the partition, file or check), 2 unusable input."
    )]
    Verify(VerifyArgs),
    /// Check and render customer profiles.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Build bases (the system every stick runs) from Debian packages.
    #[command(subcommand)]
    Base(BaseCommand),
    /// Check and fill a customer's roster of employees (per-user credentials).
    #[command(subcommand)]
    Roster(RosterCommand),
    /// Show what an image or stick says about itself (signature not checked).
    #[command(
        after_help = "Example:\n  homestick inspect out/stadt-musterhausen.img\n\nUse `homestick verify` to check the signature."
    )]
    Inspect(InspectArgs),
    /// Write a verified image to many sticks at once, read each back and check it.
    #[command(
        after_help = "Examples:\n  homestick sticks\n  homestick flash out/stadt-musterhausen.img --keyring provider.pub --all-removable --report flash-report.jsonl\n  \
homestick flash out/stadt-musterhausen.img --keyring provider.pub --watch --yes --report weekend.jsonl\n  \
homestick flash stick.img --keyring provider.pub --target /dev/sdc --target /dev/sdd\n  \
homestick flash out/set --keyring provider.pub --revocations revocations.json --watch --yes\n\n\
The image is verified before a byte is written. Mounted disks, swap, the running system, read-only\n\
and too small disks are refused, and so is any disk that is neither removable nor on USB unless\n\
--allow-non-removable is given. A stick counts as good only after it was read back from the device\n\
and verified against the signed manifest.\n\n\
Ctrl-C once: no new sticks, those in progress finish and are verified. Twice: those stop too;\n\
they are wiped and reported failed. The report is complete either way.\n\n\
Exit codes: 0 every stick verified, 1 the image is not trusted or a stick failed, 2 unusable input,\n\
130 stopped by Ctrl-C before every named stick was written."
    )]
    Flash(Box<FlashArgs>),
    /// The ledger of flashed sticks: who got which stick, and what to revoke when one is lost.
    Ledger(LedgerArgs),
    /// The provider's signed revocation list: keys, images and users no longer trusted.
    #[command(subcommand)]
    Revocations(RevocationsCommand),
    /// List the disks `flash` would consider, and why it would refuse each one.
    #[command(
        after_help = "Example:\n  homestick sticks\n  homestick sticks --image out/stadt-musterhausen.img --json"
    )]
    Sticks(SticksArgs),
}

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

/// `homestick revocations ...`
#[derive(Debug, Subcommand)]
pub enum RevocationsCommand {
    /// Add entries to a revocation list (created if missing); its version goes up by one and
    /// its old signature is removed: sign it again.
    #[command(
        after_help = "Examples:\n  homestick revocations add revocations.json --key-id 3f5c0d2a9b8e7f6a5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b --keyring provider.pub\n  \
homestick revocations add revocations.json --image-id 0b1f6a8e-7d6e-4c1b-9a55-2f9e3c1d7b10\n  \
homestick revocations add revocations.json --user stadt-musterhausen/anna.schmidt\n  \
homestick revocations sign revocations.json --key /secure/keys/provider-2026.key\n\n\
`homestick ledger revoke` adds the image ids of lost sticks to the same list."
    )]
    Add {
        /// The revocation list (JSON).
        list: PathBuf,
        /// Revoke a signing key: every image it signed (its 64-digit key id).
        #[arg(long = "key-id", value_name = "ID")]
        key_ids: Vec<String>,
        /// Revoke one image (its image id).
        #[arg(long = "image-id", value_name = "ID")]
        image_ids: Vec<String>,
        /// Revoke every image of a user: CUSTOMER/USER.
        #[arg(long = "user", value_name = "CUSTOMER/USER")]
        users: Vec<String>,
        /// The keyring the existing list's signature is checked against: a list is only
        /// extended when it verifies (an unsigned or changed list on disk is never re-signed).
        #[arg(long, value_name = "PATH")]
        keyring: Option<PathBuf>,
    },
    /// Sign a revocation list: writes LIST.sig (raw Ed25519, as manifest.sig).
    #[command(
        after_help = "Example:\n  homestick revocations sign revocations.json --key /secure/keys/provider-2026.key\n  \
homestick revocations sign revocations.json --key 'pkcs11:token=homestick;object=provider-2026'\n\n\
Check without homestick:\n  openssl pkeyutl -verify -pubin -inkey provider-2026.pub -rawin -in revocations.json -sigfile revocations.json.sig"
    )]
    Sign {
        /// The revocation list (JSON).
        list: PathBuf,
        /// The provider's signing key: a PEM file or a pkcs11: URI.
        #[arg(long, value_name = "FILE|URI")]
        key: String,
        #[command(flatten)]
        secret: SecretArgs,
        /// The PKCS#11 module for a pkcs11: key (default: $HOMESTICK_PKCS11_MODULE).
        #[arg(long, value_name = "FILE.so")]
        pkcs11_module: Option<PathBuf>,
    },
    /// Check a revocation list's signature and print what it revokes.
    #[command(
        after_help = "Example:\n  homestick revocations show revocations.json --keyring /etc/homestick/trusted/"
    )]
    Show {
        /// The revocation list (JSON).
        list: PathBuf,
        /// The trusted public keys.
        #[arg(long, value_name = "PATH")]
        keyring: PathBuf,
    },
}

/// Where a passphrase or PIN comes from. Never from an argument: those are visible to every
/// user of the machine. Without either option, a terminal is asked.
#[derive(Debug, Clone, Default, Args)]
pub struct SecretArgs {
    /// Read the key's passphrase (or the token's PIN) from the first line of this file.
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_fd")]
    pub passphrase_file: Option<PathBuf>,
    /// Read the key's passphrase (or the token's PIN) from this open file descriptor, e.g.
    /// `--passphrase-fd 3 3<secret`.
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<u32>,
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

/// `homestick keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate an Ed25519 signing key pair: NAME.key (PKCS#8, mode 0600) and NAME.pub.
    #[command(
        after_help = "Examples:\n  homestick keys generate --out /secure/keys/provider-2026 --ask-passphrase\n  homestick keys generate --out /secure/keys/provider-2026 --passphrase-file /run/secrets/pw\n  \
homestick keys generate --out keys/provider-2026 --pkcs11 'pkcs11:token=homestick;object=provider-2026' \\\n    --module /usr/lib/softhsm/libsofthsm2.so --pin-file /run/secrets/pin\n\n\
Both files are PEM that `openssl pkey` reads. The printed key id is the SHA-256 of the public key's DER.\n\
With --pkcs11 the private key never leaves the token; sign with --key 'pkcs11:...'."
    )]
    Generate {
        /// Output path without extension: DIR/NAME gives DIR/NAME.key and DIR/NAME.pub.
        #[arg(long, value_name = "DIR/NAME")]
        out: PathBuf,
        /// Encrypt the private key with the passphrase in this file (first line).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["passphrase_fd", "ask_passphrase", "pkcs11"])]
        passphrase_file: Option<PathBuf>,
        /// Encrypt the private key with the passphrase read from this file descriptor.
        #[arg(long, value_name = "N", conflicts_with_all = ["ask_passphrase", "pkcs11"])]
        passphrase_fd: Option<u32>,
        /// Encrypt the private key with a passphrase asked for on the terminal (twice).
        #[arg(long, conflicts_with = "pkcs11")]
        ask_passphrase: bool,
        /// Create the key inside a PKCS#11 token instead (non-extractable); only NAME.pub is
        /// written. The token's PIN: --pin-file, --pin-fd or the terminal.
        #[arg(long, value_name = "URI")]
        pkcs11: Option<String>,
        /// The PKCS#11 module (default: $HOMESTICK_PKCS11_MODULE).
        #[arg(long, value_name = "FILE.so", requires = "pkcs11")]
        module: Option<PathBuf>,
        /// The token's user PIN, first line of this file.
        #[arg(
            long,
            value_name = "FILE",
            requires = "pkcs11",
            conflicts_with = "pin_fd"
        )]
        pin_file: Option<PathBuf>,
        /// The token's user PIN, from this file descriptor.
        #[arg(long, value_name = "N", requires = "pkcs11")]
        pin_fd: Option<u32>,
    },
    /// Create a Secure Boot db key: NAME.key (RSA, PKCS#8, mode 0600), NAME.crt (PEM), NAME.cer (DER).
    #[command(
        after_help = "Example:\n  homestick keys secure-boot --out /secure/keys/provider-db-2026\n\n\
Enroll NAME.cer in the firmware's db (setup menu: Secure Boot > Key Management > db), or with\n\
efi-updatevar/KeyTool; see docs/secure-boot.md. Sign images with --secure-boot-key/--secure-boot-cert."
    )]
    SecureBoot {
        /// Output path without extension: DIR/NAME.
        #[arg(long, value_name = "DIR/NAME")]
        out: PathBuf,
        /// Certificate common name.
        #[arg(long, default_value = "homestick Secure Boot db key")]
        name: String,
    },
}

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

/// `homestick build`
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Customer profile directory (holds customer.toml).
    #[arg(long, value_name = "DIR")]
    pub profile: PathBuf,
    /// Base directory (base.toml, esp/, system.img).
    #[arg(long, value_name = "DIR")]
    pub base: PathBuf,
    /// Ed25519 private signing key: a PKCS#8 PEM file (mode 0600), or a key in a PKCS#11
    /// token: pkcs11:token=NAME;object=LABEL (RFC 7512).
    #[arg(long, value_name = "FILE|URI")]
    pub key: String,
    /// The passphrase of an encrypted --key, or the PIN of its token.
    #[command(flatten)]
    pub secret: SecretArgs,
    /// The PKCS#11 module for pkcs11: keys (default: $HOMESTICK_PKCS11_MODULE).
    #[arg(long, value_name = "FILE.so")]
    pub pkcs11_module: Option<PathBuf>,
    /// Where to write the image; written to a temporary file first and renamed when verified.
    /// With --roster: the new directory of the stick set.
    #[arg(long, value_name = "FILE|DIR")]
    pub output: PathBuf,
    /// Build a stick set: one signed image per user of this filled roster (CSV), stored as
    /// the shared part and per user only what differs.
    #[arg(long, value_name = "ROSTER")]
    pub roster: Option<PathBuf>,
    /// Image version (default: the base's version).
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Anti-rollback index recorded in the signed manifest.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rollback_index: u64,
    /// The image is no longer trusted after this time: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ
    /// (UTC), or +DAYS after the build time.
    #[arg(long, value_name = "WHEN", value_parser = parse_expires)]
    pub expires: Option<Expires>,
    /// The boot verifier warns the person at home this many days before the image expires.
    #[arg(long, value_name = "DAYS", default_value_t = homestick_image::policy::DEFAULT_EXPIRY_WARNING_DAYS, value_parser = clap::value_parser!(u32).range(0..=3650))]
    pub expiry_warning_days: u32,
    /// The provider's signed revocation list (FILE and FILE.sig), embedded into the boot
    /// policy: the boot verifier refuses the keys, images and users it lists.
    #[arg(long, value_name = "FILE")]
    pub revocations: Option<PathBuf>,
    /// The lowest revocation-list version taken (the newest version this station or
    /// signing machine has seen): an older list, which misses later revocations, is refused.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "revocations")]
    pub min_revocation_version: u64,
    /// Image file size: bytes, or with a suffix K, M, G (powers of 1024). Default: the smallest that fits.
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub size: Option<u64>,
    /// Static boot verifier for bases with a kernel (default: homestick-boot beside this program).
    #[arg(long, value_name = "FILE")]
    pub boot_verifier: Option<PathBuf>,
    /// Public keys (.pub file or directory) the boot verifier trusts (default: the signing key's).
    #[arg(long, value_name = "PATH")]
    pub boot_keyring: Option<PathBuf>,
    /// Sign the UKI for Secure Boot with this RSA private key: a PEM file, or a pkcs11: URI
    /// (in the same module as a pkcs11: --key).
    #[arg(long, value_name = "FILE|URI", requires = "secure_boot_cert")]
    pub secure_boot_key: Option<String>,
    /// The X.509 db certificate (PEM or DER) that belongs to --secure-boot-key.
    #[arg(long, value_name = "FILE", requires = "secure_boot_key")]
    pub secure_boot_cert: Option<PathBuf>,
    /// Passphrase for an encrypted --secure-boot-key (first line of the file).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "secure_boot_passphrase_fd"
    )]
    pub secure_boot_passphrase_file: Option<PathBuf>,
    /// Passphrase for an encrypted --secure-boot-key, from this file descriptor.
    #[arg(long, value_name = "N")]
    pub secure_boot_passphrase_fd: Option<u32>,
    /// Seconds the refusal message stays on screen before the PC powers off.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub failure_delay: u32,
    /// Keep dm-verity trees of system partitions here, by content, so an unchanged base is not
    /// hashed again for every customer (default: $XDG_CACHE_HOME/homestick or ~/.cache/homestick).
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Use no cache: hash the system's dm-verity tree in every build.
    #[arg(long)]
    pub no_cache: bool,
}

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

/// A command-line value that does not parse; clap prints it after the option's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadValue(String);

/// Parse a GUID into its lowercase hyphenated form.
pub fn parse_guid(s: &str) -> Result<uuid::Uuid, BadValue> {
    uuid::Uuid::parse_str(s.trim()).map_err(|e| BadValue(format!("{s:?} is not a GUID: {e}")))
}

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

/// When an image expires: at a time, or some days after its build time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expires {
    /// At this Unix time.
    At(i64),
    /// This many days after the build time.
    Days(u32),
}

impl Expires {
    /// The Unix time, for a build at `epoch`.
    pub fn at(self, epoch: i64) -> i64 {
        match self {
            Expires::At(t) => t,
            Expires::Days(d) => epoch.saturating_add(i64::from(d) * 86_400),
        }
    }
}

/// Parse `2027-06-30`, `2027-06-30T12:00:00Z` or `+365`.
pub fn parse_expires(s: &str) -> Result<Expires, BadValue> {
    if let Some(d) = s.strip_prefix('+') {
        return d
            .parse::<u32>()
            .ok()
            .filter(|&d| (1..=36_500).contains(&d))
            .map(Expires::Days)
            .ok_or_else(|| BadValue(format!("{s:?}: +DAYS takes 1 to 36500 days")));
    }
    homestick_image::time::parse(s)
        .map(Expires::At)
        .map_err(|e| BadValue(e.to_string()))
}

/// Parse `1073741824`, `1024M`, `1G`, `64MiB`.
pub fn parse_size(s: &str) -> Result<u64, BadValue> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        BadValue(format!(
            "{s:?} is not a size (bytes, or a number with K, M or G)"
        ))
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        other => {
            return Err(BadValue(format!(
                "unknown size unit {other:?} (use K, M or G)"
            )))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| BadValue(format!("{s:?} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert!(parse_size("1T").is_err());
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn expiry_values() {
        assert_eq!(parse_expires("+30").unwrap().at(100), 100 + 30 * 86_400);
        assert_eq!(parse_expires("1970-01-02").unwrap(), Expires::At(86_400));
        for bad in ["+0", "+x", "+-3", "2027-02-30", "soon"] {
            assert!(parse_expires(bad).is_err(), "{bad}");
        }
    }
}
