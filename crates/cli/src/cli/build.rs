//! `homestick build`: its arguments.

use super::*;

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
    /// How the firmware reaches the UKI: db (the UKI is EFI/BOOT/BOOTX64.EFI; the PC's db must
    /// hold the provider's certificate) or shim (Debian's Microsoft-signed shim starts the UKI
    /// once the certificate is enrolled with MokManager from the stick: PCs that trust only
    /// Microsoft's keys). Default: the base's [boot] path, else db.
    #[arg(long, value_name = "db|shim")]
    pub boot_path: Option<homestick_formats::base::BootPath>,
    /// The provider's own Microsoft-signed shim, whose built-in certificate is
    /// --secure-boot-cert: no enrolment on the PCs (implies --boot-path shim).
    #[arg(long, value_name = "FILE", requires = "secure_boot_key")]
    pub shim: Option<PathBuf>,
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
