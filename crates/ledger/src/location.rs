//! Where a ledger is: a SQLite file or a PostgreSQL URL, shown without its password, reached
//! over verified TLS.

use std::path::PathBuf;

use super::LedgerError;

/// The default SQLite ledger: `$HOMESTICK_LEDGER`, else `$XDG_DATA_HOME/homestick/ledger.sqlite`,
/// else `~/.local/share/homestick/ledger.sqlite`.
pub fn default_location() -> String {
    if let Some(v) = std::env::var_os("HOMESTICK_LEDGER").filter(|v| !v.is_empty()) {
        return v.to_string_lossy().into_owned();
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share"))
        })
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    base.join("homestick/ledger.sqlite")
        .to_string_lossy()
        .into_owned()
}

/// True for a PostgreSQL connection string.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// `location` with any password replaced, for messages: in the user part and as a
/// `password=` parameter.
pub fn redacted(location: &str) -> String {
    if !is_postgres(location) {
        return location.to_string();
    }
    let (scheme, rest) = location.split_once("://").unwrap_or(("", location));
    let (head, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    let head = match head.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => head.to_string(),
        },
        None => head.to_string(),
    };
    let query = query.map(|q| {
        q.split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(q) => format!("{scheme}://{head}?{q}"),
        None => format!("{scheme}://{head}"),
    }
}

/// How a PostgreSQL ledger is reached: TLS with the server's certificate verified against
/// `ca` (PEM; default: the system's CA certificates), or, only when asked by name, plain TCP.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// CA certificates the server's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// No TLS: the password and every row in clear, and any server may answer.
    pub insecure_plaintext: bool,
}

/// The system's CA certificates (Debian's bundle).
const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Connect to a PostgreSQL ledger as `tls` says. TLS is required and verified (chain and host
/// name); a URL that asks for `sslmode=disable` is refused unless plain TCP was asked for.
pub(crate) fn pg_connect(
    location: &str,
    tls: &Tls,
    shown: &str,
) -> Result<postgres::Client, LedgerError> {
    use rustls_pki_types::pem::PemObject;
    let bad = |why: String| LedgerError::Tls {
        location: shown.to_string(),
        why,
    };
    let pg = |source| LedgerError::Postgres {
        location: shown.to_string(),
        source,
    };
    let mut config: postgres::Config = location.parse().map_err(pg)?;
    if tls.insecure_plaintext {
        config.ssl_mode(postgres::config::SslMode::Disable);
        return config.connect(postgres::NoTls).map_err(pg);
    }
    if config.get_ssl_mode() == postgres::config::SslMode::Disable {
        return Err(bad("the URL says sslmode=disable: the password and every row would travel in clear; give --ledger-insecure-plaintext to do so on a trusted network".into()));
    }
    config.ssl_mode(postgres::config::SslMode::Require);
    let ca = tls.ca.clone().unwrap_or_else(|| PathBuf::from(SYSTEM_CA));
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(&ca)
        .map_err(|e| bad(format!("CA certificates {}: {e}", ca.display())))?;
    for c in certs {
        let c = c.map_err(|e| bad(format!("CA certificates {}: {e}", ca.display())))?;
        roots
            .add(c)
            .map_err(|e| bad(format!("CA certificates {}: {e}", ca.display())))?;
    }
    if roots.is_empty() {
        return Err(bad(format!(
            "CA certificates {}: none in the file",
            ca.display()
        )));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(client))
        .map_err(pg)
}
