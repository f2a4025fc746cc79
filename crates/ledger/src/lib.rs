//! The ledger: every flash attempt, which stick went to whom, and what to revoke when one is
//! lost.
//!
//! Two back ends with one schema: an embedded SQLite file (the default, one station) and
//! PostgreSQL (`postgres://…`, several stations). The schema is created and upgraded by
//! versioned migrations when the ledger is opened. A user of a stick set is never handed to two
//! sticks at once, even by two stations racing: a unique index over (set, user) of the rows
//! that are being written, good or revoked decides, not a check-then-write.
//!
//! A row is `writing` from the moment a stick is claimed, then `good` (verified from the
//! device) or `failed` (wiped); `revoked` once the stick is reported lost. A stick whose state
//! nobody knows is `needs-check`: its flasher died or stalled while writing, or it could not be
//! wiped. Such a stick may be good, so its user is never handed out again by itself: a
//! technician checks the stick (`homestick ledger check`), which makes the row `good` or
//! `failed`. The next open marks a dead flasher's `writing` rows so: at once for a dead process
//! of this station, after [`STALE_SECONDS`] without a heartbeat for any station. Stations are
//! told apart by a random id kept on each station ([`station_id`]), not by host name, and every
//! time in the ledger is the database server's clock.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use serde::Serialize;

mod location;
use location::pg_connect;
pub use location::{default_location, is_postgres, redacted, Tls};

/// Rows of a station with no heartbeat for this long need a check.
pub const STALE_SECONDS: i64 = 120;
/// How long SQLite waits for another process's transaction.
const BUSY_MS: u64 = 30_000;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A row this station wrote is not as it left it: another station or a person changed it.
    #[error("ledger {location}: row {id}: could not {what}: the row is not this station's row being written any more (changed by another station or by hand?)")]
    RowLost {
        /// Where.
        location: String,
        /// The row.
        id: i64,
        /// What was being done.
        what: String,
    },
    /// The SQLite file cannot be used.
    #[error("ledger {location}: {source}")]
    Sqlite {
        /// File.
        location: String,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The PostgreSQL server cannot be used.
    #[error("ledger {location}: {}", pg_detail(source))]
    Postgres {
        /// URL without the password.
        location: String,
        /// Why.
        #[source]
        source: postgres::Error,
    },
    /// The connection to the PostgreSQL server cannot be secured as asked.
    #[error("ledger {location}: {why}")]
    Tls {
        /// URL without the password.
        location: String,
        /// Why.
        why: String,
    },
    /// The ledger is newer than this homestick.
    #[error("ledger {location}: schema version {found} is newer than this homestick knows ({known}); update homestick")]
    TooNew {
        /// Where.
        location: String,
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
    },
    /// The directory of the SQLite file cannot be made.
    #[error("ledger {location}: {source}")]
    Io {
        /// Where.
        location: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The server's own message where there is one ("db error" alone says nothing).
fn pg_detail(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.severity(), d.message()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(x) = src {
                s = format!("{s}: {x}");
                src = x.source();
            }
            s
        }
    }
}

/// A flash attempt as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// Row id.
    pub id: i64,
    /// Started, seconds since the Unix epoch.
    pub started: i64,
    /// Finished (good or failed), if it has.
    pub finished: Option<i64>,
    /// Station (host name).
    pub station: String,
    /// Process id of the flasher on the station.
    pub pid: i64,
    /// Device path, e.g. /dev/sdc.
    pub device: String,
    /// The stick's serial number ("" if it has none).
    pub serial: String,
    /// Customer id.
    pub customer: String,
    /// The stick set's id, for a per-user stick.
    pub set_id: Option<String>,
    /// The user, for a per-user stick.
    pub user_id: Option<String>,
    /// The user's display name.
    pub user_name: Option<String>,
    /// The image id written.
    pub image_id: String,
    /// SHA-256 of the image's manifest.json.
    pub manifest_sha256: String,
    /// `writing`, `good`, `failed`, `revoked` or `needs-check`.
    pub result: String,
    /// Why it failed, or why it was revoked.
    pub error: Option<String>,
    /// What a server must drop when this stick is lost (JSON array of credentials).
    pub credentials: Option<String>,
    /// Revoked at.
    pub revoked: Option<i64>,
    /// The station's random id.
    pub station_id: String,
    /// The device number the stick was written and read back through (`major:minor`; "" in
    /// rows of schema 2 and earlier).
    pub device_number: String,
}

/// A new attempt, as a station starts writing a stick.
#[derive(Debug, Clone, Default)]
pub struct NewAttempt {
    /// Device path.
    pub device: String,
    /// Device number (`major:minor`) of the opened device.
    pub device_number: String,
    /// Serial number.
    pub serial: String,
    /// Customer id.
    pub customer: String,
    /// Set id (per-user sticks).
    pub set_id: Option<String>,
    /// User id (per-user sticks).
    pub user_id: Option<String>,
    /// User's display name.
    pub user_name: Option<String>,
    /// Image id.
    pub image_id: String,
    /// Manifest SHA-256 (hex).
    pub manifest_sha256: String,
    /// Credentials (JSON array), for `revoke`.
    pub credentials: Option<String>,
}

/// Which rows to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this row.
    pub id: Option<i64>,
    /// Only this image.
    pub image_id: Option<String>,
    /// Only this serial.
    pub serial: Option<String>,
    /// Only this user.
    pub user_id: Option<String>,
    /// Only this set.
    pub set_id: Option<String>,
}

/// An [`Attempt`] from a row of `SELECT {COLUMNS}`, with the back end's getter.
macro_rules! attempt_row {
    ($r:ident, $get:ident) => {
        Attempt {
            id: $r.$get(0)?,
            started: $r.$get(1)?,
            finished: $r.$get(2)?,
            station: $r.$get(3)?,
            pid: $r.$get(4)?,
            device: $r.$get(5)?,
            serial: $r.$get(6)?,
            customer: $r.$get(7)?,
            set_id: $r.$get(8)?,
            user_id: $r.$get(9)?,
            user_name: $r.$get(10)?,
            image_id: $r.$get(11)?,
            manifest_sha256: $r.$get(12)?,
            result: $r.$get(13)?,
            error: $r.$get(14)?,
            credentials: $r.$get(15)?,
            revoked: $r.$get(16)?,
            station_id: $r.$get(17)?,
            device_number: $r.$get(18)?,
        }
    };
}

const COLUMNS: &str = "id, started, finished, station, pid, device, serial, customer, set_id, user_id, user_name, image_id, manifest_sha256, result, error, credentials, revoked, station_id, device_number";

/// The migrations, in order, in SQLite's words ([`pg_dialect`] gives PostgreSQL's), and, where
/// the two differ beyond that, PostgreSQL's own. Never changed once released: a new schema is
/// a new migration.
const MIGRATIONS: &[(i64, &str, Option<&str>)] = &[
    (
        1,
        "CREATE TABLE attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started INTEGER NOT NULL,
        finished INTEGER,
        heartbeat INTEGER NOT NULL,
        station TEXT NOT NULL,
        pid INTEGER NOT NULL,
        device TEXT NOT NULL,
        serial TEXT NOT NULL,
        customer TEXT NOT NULL,
        set_id TEXT,
        user_id TEXT,
        user_name TEXT,
        image_id TEXT NOT NULL,
        manifest_sha256 TEXT NOT NULL,
        result TEXT NOT NULL CHECK (result IN ('writing', 'good', 'failed', 'revoked')),
        error TEXT,
        credentials TEXT,
        revoked INTEGER
    );
    CREATE UNIQUE INDEX one_stick_per_user ON attempts (set_id, user_id)
        WHERE result IN ('writing', 'good', 'revoked');
    CREATE INDEX attempts_serial ON attempts (serial);
    CREATE INDEX attempts_user ON attempts (user_id);",
        None,
    ),
    // 2: `needs-check`, a stick whose state is unknown (its flasher died or stalled, it could
    // not be wiped): its user stays taken until a technician checks the stick; and the
    // station's random id, so two stations with one host name are told apart.
    (
        2,
        "CREATE TABLE attempts_v2 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started INTEGER NOT NULL,
        finished INTEGER,
        heartbeat INTEGER NOT NULL,
        station TEXT NOT NULL,
        pid INTEGER NOT NULL,
        device TEXT NOT NULL,
        serial TEXT NOT NULL,
        customer TEXT NOT NULL,
        set_id TEXT,
        user_id TEXT,
        user_name TEXT,
        image_id TEXT NOT NULL,
        manifest_sha256 TEXT NOT NULL,
        result TEXT NOT NULL CHECK (result IN ('writing', 'good', 'failed', 'revoked', 'needs-check')),
        error TEXT,
        credentials TEXT,
        revoked INTEGER,
        station_id TEXT NOT NULL DEFAULT ''
    );
    INSERT INTO attempts_v2 (id, started, finished, heartbeat, station, pid, device, serial, customer, set_id, user_id, user_name, image_id, manifest_sha256, result, error, credentials, revoked)
        SELECT id, started, finished, heartbeat, station, pid, device, serial, customer, set_id, user_id, user_name, image_id, manifest_sha256, result, error, credentials, revoked FROM attempts;
    DROP TABLE attempts;
    ALTER TABLE attempts_v2 RENAME TO attempts;
    CREATE UNIQUE INDEX one_stick_per_user ON attempts (set_id, user_id)
        WHERE result IN ('writing', 'good', 'revoked', 'needs-check');
    CREATE INDEX attempts_serial ON attempts (serial);
    CREATE INDEX attempts_user ON attempts (user_id);",
        Some(
            "ALTER TABLE attempts DROP CONSTRAINT attempts_result_check;
    ALTER TABLE attempts ADD CONSTRAINT attempts_result_check
        CHECK (result IN ('writing', 'good', 'failed', 'revoked', 'needs-check'));
    ALTER TABLE attempts ADD COLUMN station_id TEXT NOT NULL DEFAULT '';
    DROP INDEX one_stick_per_user;
    CREATE UNIQUE INDEX one_stick_per_user ON attempts (set_id, user_id)
        WHERE result IN ('writing', 'good', 'revoked', 'needs-check');",
        ),
    ),
    // 3: the device number (major:minor) the stick was written and read back through, beside
    // its path: a path can name another device later, the number is what was checked.
    (
        3,
        "ALTER TABLE attempts ADD COLUMN device_number TEXT NOT NULL DEFAULT '';",
        None,
    ),
];

/// A migration's SQL for PostgreSQL: 64-bit integers and a sequence for the row id.
fn pg_dialect(sql: &str) -> String {
    sql.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
        .replace("INTEGER", "BIGINT")
}

/// The schema version this homestick writes.
pub const SCHEMA_VERSION: i64 = 3;

enum Conn {
    Sqlite(rusqlite::Connection),
    Pg(Box<postgres::Client>),
}

/// A parameter value.
#[derive(Debug, Clone)]
enum V {
    I(i64),
    T(String),
    N,
}

impl From<i64> for V {
    fn from(v: i64) -> V {
        V::I(v)
    }
}
impl From<&str> for V {
    fn from(v: &str) -> V {
        V::T(v.to_string())
    }
}
impl From<Option<&str>> for V {
    fn from(v: Option<&str>) -> V {
        v.map_or(V::N, |s| V::T(s.to_string()))
    }
}

/// An open ledger.
pub struct Ledger {
    conn: Conn,
    location: String,
    station: String,
    station_id: String,
}

/// How an attempt ended, for [`Ledger::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish<'a> {
    /// Verified from the device.
    Good,
    /// Failed and wiped: the stick cannot boot; its user is free again.
    Failed(&'a str),
    /// Its state is unknown (it stalled and could not be wiped): set aside, checked later.
    NeedsCheck(&'a str),
}

/// This station's random id: read from `DIR/station-id` beside the default ledger (made with
/// 128 random bits on first use). `$HOMESTICK_STATION_ID` overrides it.
pub fn station_id() -> Result<String, std::io::Error> {
    if let Some(v) = std::env::var_os("HOMESTICK_STATION_ID").filter(|v| !v.is_empty()) {
        return Ok(v.to_string_lossy().into_owned());
    }
    let path = PathBuf::from(default_location())
        .parent()
        .map_or_else(|| PathBuf::from("station-id"), |d| d.join("station-id"));
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(id.to_string());
        }
    }
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    homestick_image::files::write_atomic(&path, format!("{id}\n").as_bytes())
        .map_err(std::io::Error::other)?;
    Ok(id)
}

/// The database's clock in SQL, written `{NOW}` in statements: stations' clocks differ, the
/// ledger's does not.
const NOW: &str = "{NOW}";
const SQLITE_NOW: &str = "CAST(strftime('%s','now') AS INTEGER)";
const PG_NOW: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS BIGINT)";

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("location", &self.location)
            .finish()
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `?` placeholders as PostgreSQL's `$1, $2, …`, and its clock for `{NOW}`.
fn pg_sql(sql: &str) -> String {
    let sql = sql.replace(NOW, PG_NOW);
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Run `f` again while SQLite answers "busy" or "locked", for up to [`BUSY_MS`]. The busy
/// timeout alone does not cover every case: SQLite returns SQLITE_BUSY at once, without
/// waiting, when a WAL file is being recovered, when the journal mode is switched while
/// another station opens the file, and when a read snapshot went stale before its write.
fn sqlite_retry<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(BUSY_MS);
    let mut pause = 5u64;
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, m))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                if std::time::Instant::now() >= deadline {
                    return Err(rusqlite::Error::SqliteFailure(e, m));
                }
                // Stations pause for different times (the process id), so they do not retry
                // in step.
                let jitter = u64::from(std::process::id() % 7);
                std::thread::sleep(std::time::Duration::from_millis(pause + jitter));
                pause = (pause * 2).min(200);
            }
            other => return other,
        }
    }
}

fn process_alive(pid: i64) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

impl Ledger {
    /// Open (and create or upgrade) the ledger at `location`: a file path, or a
    /// `postgres://` URL. `station` names this station in new rows (its host name, for people);
    /// `station_id` tells it from every other station ([`station_id`]).
    pub fn open(
        location: &str,
        station: &str,
        station_id: &str,
        tls: &Tls,
    ) -> Result<Ledger, LedgerError> {
        let shown = redacted(location);
        let conn = if is_postgres(location) {
            Conn::Pg(Box::new(pg_connect(location, tls, &shown)?))
        } else {
            let path = Path::new(location);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| LedgerError::Io {
                    location: shown.clone(),
                    source,
                })?;
            }
            let sq = |source| LedgerError::Sqlite {
                location: shown.clone(),
                source,
            };
            let c = rusqlite::Connection::open(path).map_err(sq)?;
            c.busy_timeout(std::time::Duration::from_millis(BUSY_MS))
                .map_err(sq)?;
            sqlite_retry(|| c.pragma_update(None, "journal_mode", "WAL")).map_err(sq)?;
            sqlite_retry(|| c.pragma_update(None, "synchronous", "FULL")).map_err(sq)?;
            Conn::Sqlite(c)
        };
        let mut l = Ledger {
            conn,
            location: shown,
            station: station.to_string(),
            station_id: station_id.to_string(),
        };
        l.migrate()?;
        l.sweep()?;
        Ok(l)
    }

    /// Where it is (a password redacted).
    pub fn location(&self) -> &str {
        &self.location
    }

    fn sqlite_err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sqlite {
            location: self.location.clone(),
            source,
        }
    }

    fn pg_err(&self, source: postgres::Error) -> LedgerError {
        LedgerError::Postgres {
            location: self.location.clone(),
            source,
        }
    }

    /// `Some(version)`: the ledger's schema is newer than this homestick's.
    fn too_new(&self, found: Option<i64>) -> Result<(), LedgerError> {
        match found {
            None => Ok(()),
            Some(found) => Err(LedgerError::TooNew {
                location: self.location.clone(),
                found,
                known: SCHEMA_VERSION,
            }),
        }
    }

    /// Apply the migrations this ledger has not seen, each in a transaction that holds off
    /// other stations doing the same.
    fn migrate(&mut self) -> Result<(), LedgerError> {
        let create = "CREATE TABLE IF NOT EXISTS homestick_schema (version BIGINT NOT NULL, applied BIGINT NOT NULL)";
        match &mut self.conn {
            Conn::Sqlite(c) => {
                let r = sqlite_retry(|| {
                    c.execute_batch(create)?;
                    let tx =
                        c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    let v: i64 = tx.query_row(
                        "SELECT COALESCE(MAX(version), 0) FROM homestick_schema",
                        [],
                        |r| r.get(0),
                    )?;
                    if v > SCHEMA_VERSION {
                        return Ok(Some(v));
                    }
                    for (n, sql, _) in MIGRATIONS.iter().filter(|m| m.0 > v) {
                        tx.execute_batch(sql)?;
                        tx.execute(
                            "INSERT INTO homestick_schema (version, applied) VALUES (?1, ?2)",
                            rusqlite::params![n, now()],
                        )?;
                    }
                    tx.commit()?;
                    Ok(None)
                });
                let r = r.map_err(|source| LedgerError::Sqlite {
                    location: self.location.clone(),
                    source,
                })?;
                self.too_new(r)
            }
            Conn::Pg(c) => {
                let r = (|| {
                    // Stations opening a new ledger at once: one migrates, the others wait
                    // (CREATE TABLE IF NOT EXISTS alone races in PostgreSQL).
                    let mut tx = c.transaction()?;
                    tx.batch_execute("SELECT pg_advisory_xact_lock(7061727374)")?;
                    tx.batch_execute(create)?;
                    let v: i64 = tx
                        .query_one(
                            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM homestick_schema",
                            &[],
                        )?
                        .get(0);
                    if v > SCHEMA_VERSION {
                        return Ok(Some(v));
                    }
                    for (n, sql, pg) in MIGRATIONS.iter().filter(|m| m.0 > v) {
                        match pg {
                            Some(pg) => tx.batch_execute(pg)?,
                            None => tx.batch_execute(&pg_dialect(sql))?,
                        }
                        tx.execute(
                            "INSERT INTO homestick_schema (version, applied) VALUES ($1, $2)",
                            &[n, &now()],
                        )?;
                    }
                    tx.commit()?;
                    Ok(None)
                })();
                let r = r.map_err(|source| LedgerError::Postgres {
                    location: self.location.clone(),
                    source,
                })?;
                self.too_new(r)
            }
        }
    }

    /// Run a statement; `Ok(None)` where a unique constraint refused it, else the rows it
    /// changed.
    fn exec(&mut self, sql: &str, params: &[V]) -> Result<Option<u64>, LedgerError> {
        self.run(sql, params, false).map(|r| r.map(|n| n as u64))
    }

    /// Insert a row and return its id; `None` where a unique constraint refused it.
    fn insert(&mut self, sql: &str, params: &[V]) -> Result<Option<i64>, LedgerError> {
        self.run(sql, params, true)
    }

    /// Run `sql`; with `returning_id` the new row's id, else the number of rows changed.
    /// `None` where a unique constraint refused it.
    fn run(
        &mut self,
        sql: &str,
        params: &[V],
        returning_id: bool,
    ) -> Result<Option<i64>, LedgerError> {
        match &mut self.conn {
            Conn::Sqlite(c) => {
                let p: Vec<rusqlite::types::Value> = params.iter().map(sq_value).collect();
                let sql = sql.replace(NOW, SQLITE_NOW);
                match sqlite_retry(|| c.execute(&sql, rusqlite::params_from_iter(p.iter()))) {
                    Ok(_) if returning_id => Ok(Some(c.last_insert_rowid())),
                    Ok(n) => Ok(Some(n as i64)),
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(self.sqlite_err(e)),
                }
            }
            Conn::Pg(c) => {
                let owned = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    owned.iter().map(|b| b.as_ref()).collect();
                let r = if returning_id {
                    let sql = format!("{} RETURNING id", pg_sql(sql));
                    c.query_one(sql.as_str(), &refs)
                        .map(|row| row.get::<_, i64>(0))
                } else {
                    c.execute(pg_sql(sql).as_str(), &refs).map(|n| n as i64)
                };
                match r {
                    Ok(v) => Ok(Some(v)),
                    Err(e) if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) => {
                        Ok(None)
                    }
                    Err(e) => Err(self.pg_err(e)),
                }
            }
        }
    }

    fn attempts(&mut self, where_: &str, params: &[V]) -> Result<Vec<Attempt>, LedgerError> {
        let sql = format!("SELECT {COLUMNS} FROM attempts {where_} ORDER BY id");
        let sql = if matches!(self.conn, Conn::Sqlite(_)) {
            sql.replace(NOW, SQLITE_NOW)
        } else {
            sql
        };
        match &mut self.conn {
            Conn::Sqlite(c) => {
                let p: Vec<rusqlite::types::Value> = params.iter().map(sq_value).collect();
                let r = sqlite_retry(|| {
                    let mut st = c.prepare(&sql)?;
                    let rows = st.query_map(rusqlite::params_from_iter(p.iter()), |r| {
                        Ok(attempt_row!(r, get))
                    })?;
                    rows.collect::<Result<Vec<_>, _>>()
                });
                r.map_err(|e| self.sqlite_err(e))
            }
            Conn::Pg(c) => {
                let owned = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    owned.iter().map(|b| b.as_ref()).collect();
                let rows = match c.query(pg_sql(&sql).as_str(), &refs) {
                    Ok(rows) => rows,
                    Err(e) => return Err(self.pg_err(e)),
                };
                let conv = |r: &postgres::Row| -> Result<Attempt, postgres::Error> {
                    Ok(attempt_row!(r, try_get))
                };
                rows.iter()
                    .map(conv)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| self.pg_err(e))
            }
        }
    }

    /// Mark the `writing` rows of dead flashers `needs-check` (their sticks may be good: their
    /// users stay taken): this station's whose process is gone, and any station's without a
    /// heartbeat for [`STALE_SECONDS`] by the database's clock.
    pub fn sweep(&mut self) -> Result<usize, LedgerError> {
        let mine = self.attempts(
            "WHERE result = 'writing' AND station_id = ?",
            &[self.station_id.as_str().into()],
        )?;
        let mut n = 0;
        for a in mine.iter().filter(|a| !process_alive(a.pid)) {
            n += self
                .exec(
                    "UPDATE attempts SET result = 'needs-check', finished = {NOW}, error = ? WHERE id = ? AND result = 'writing'",
                    &[
                        format!("interrupted: the flasher (process {}) ended while writing; check the stick: homestick ledger check {} DEVICE", a.pid, a.id)
                            .as_str()
                            .into(),
                        a.id.into(),
                    ],
                )?
                .unwrap_or(0) as usize;
        }
        n += self
            .exec(
                "UPDATE attempts SET result = 'needs-check', finished = {NOW}, error = 'interrupted: the station stopped sending signs of life while writing; check the stick: homestick ledger check ID DEVICE' WHERE result = 'writing' AND heartbeat < {NOW} - ?",
                &[STALE_SECONDS.into()],
            )?
            .unwrap_or(0) as usize;
        Ok(n)
    }

    /// Record that this station starts writing a stick. `None`: the user already has a stick
    /// being written, a good one, a revoked one or one to check (the unique index refused the
    /// row).
    pub fn begin(&mut self, a: &NewAttempt) -> Result<Option<i64>, LedgerError> {
        self.insert(
            "INSERT INTO attempts (started, heartbeat, station, station_id, pid, device, device_number, serial, customer, set_id, user_id, user_name, image_id, manifest_sha256, result, credentials) VALUES ({NOW}, {NOW}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'writing', ?)",
            &[
                self.station.clone().as_str().into(),
                self.station_id.clone().as_str().into(),
                i64::from(std::process::id()).into(),
                a.device.as_str().into(),
                a.device_number.as_str().into(),
                a.serial.as_str().into(),
                a.customer.as_str().into(),
                a.set_id.as_deref().into(),
                a.user_id.as_deref().into(),
                a.user_name.as_deref().into(),
                a.image_id.as_str().into(),
                a.manifest_sha256.as_str().into(),
                a.credentials.as_deref().into(),
            ],
        )
    }

    /// Users of `set_id` that have a stick being written, a good, a revoked one or one to
    /// check.
    pub fn taken(&mut self, set_id: &str) -> Result<Vec<String>, LedgerError> {
        Ok(self
            .attempts(
                "WHERE set_id = ? AND result IN ('writing', 'good', 'revoked', 'needs-check')",
                &[set_id.into()],
            )?
            .into_iter()
            .filter_map(|a| a.user_id)
            .collect())
    }

    /// Exactly one row must have changed, or the ledger no longer says what this station did.
    fn one_row(&self, id: i64, what: &str, n: Option<u64>) -> Result<(), LedgerError> {
        match n {
            Some(1) => Ok(()),
            _ => Err(LedgerError::RowLost {
                location: self.location.clone(),
                id,
                what: what.to_string(),
            }),
        }
    }

    /// Record the end of this station's attempt `id` (a row it is writing, or one marked to
    /// check meanwhile). Exactly one row changes, or it is an error.
    pub fn finish(&mut self, id: i64, how: Finish<'_>) -> Result<(), LedgerError> {
        let (result, error) = match how {
            Finish::Good => ("good", None),
            Finish::Failed(e) => ("failed", Some(e)),
            Finish::NeedsCheck(e) => ("needs-check", Some(e)),
        };
        let n = self.exec(
            "UPDATE attempts SET result = ?, finished = {NOW}, error = ? WHERE id = ? AND station_id = ? AND result IN ('writing', 'needs-check')",
            &[
                result.into(),
                error.into(),
                id.into(),
                self.station_id.clone().as_str().into(),
            ],
        )?;
        self.one_row(id, &format!("record it as {result}"), n)
    }

    /// Signs of life for this station's rows being written (a row marked to check because its
    /// signs of life were late is `writing` again). Each must change exactly one row.
    pub fn heartbeat(&mut self, ids: &[i64]) -> Result<(), LedgerError> {
        for &id in ids {
            let n = self.exec(
                "UPDATE attempts SET heartbeat = {NOW}, result = 'writing', finished = NULL, error = NULL WHERE id = ? AND station_id = ? AND result IN ('writing', 'needs-check')",
                &[id.into(), self.station_id.clone().as_str().into()],
            )?;
            self.one_row(id, "record a sign of life", n)?;
        }
        Ok(())
    }

    /// A technician checked the stick of `needs-check` row `id`: `good` (it holds the user's
    /// verified image) or `failed` with why.
    pub fn check(&mut self, id: i64, failed: Option<&str>) -> Result<Attempt, LedgerError> {
        let (result, error) = match failed {
            None => ("good", None),
            Some(e) => ("failed", Some(e)),
        };
        let n = self.exec(
            "UPDATE attempts SET result = ?, finished = {NOW}, error = ? WHERE id = ? AND result = 'needs-check'",
            &[result.into(), error.into(), id.into()],
        )?;
        self.one_row(id, "resolve it (it is not a row to check)", n)?;
        self.attempts("WHERE id = ?", &[id.into()])?
            .pop()
            .ok_or_else(|| LedgerError::RowLost {
                location: self.location.clone(),
                id,
                what: "read it back".into(),
            })
    }

    /// Rows, oldest first.
    pub fn list(&mut self, f: &Filter) -> Result<Vec<Attempt>, LedgerError> {
        let mut conds = Vec::new();
        let mut params = Vec::new();
        if let Some(id) = f.id {
            conds.push("id = ?".to_string());
            params.push(V::I(id));
        }
        for (col, v) in [
            ("image_id", &f.image_id),
            ("serial", &f.serial),
            ("user_id", &f.user_id),
            ("set_id", &f.set_id),
        ] {
            if let Some(v) = v {
                conds.push(format!("{col} = ?"));
                params.push(V::T(v.clone()));
            }
        }
        let where_ = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        self.attempts(&where_, &params)
    }

    /// The sticks that `f` selects which may be in someone's hands: good, or to check.
    pub fn revocable(&mut self, f: &Filter) -> Result<Vec<Attempt>, LedgerError> {
        Ok(self
            .list(f)?
            .into_iter()
            .filter(|a| a.result == "good" || a.result == "needs-check")
            .collect())
    }

    /// Mark `rows` (from [`Ledger::revocable`]) revoked (lost) and return them as they now are.
    pub fn revoke(&mut self, rows: &[Attempt], reason: &str) -> Result<Vec<Attempt>, LedgerError> {
        let mut done = Vec::new();
        for a in rows {
            let n = self.exec(
                "UPDATE attempts SET result = 'revoked', revoked = {NOW}, error = ? WHERE id = ? AND result IN ('good', 'needs-check')",
                &[reason.into(), a.id.into()],
            )?;
            self.one_row(a.id, "revoke it", n)?;
            done.extend(self.attempts("WHERE id = ?", &[a.id.into()])?);
        }
        Ok(done)
    }
}

fn sq_value(v: &V) -> rusqlite::types::Value {
    match v {
        V::I(i) => rusqlite::types::Value::Integer(*i),
        V::T(s) => rusqlite::types::Value::Text(s.clone()),
        V::N => rusqlite::types::Value::Null,
    }
}

fn pg_params(params: &[V]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                V::I(i) => Box::new(*i),
                V::T(s) => Box::new(s.clone()),
                V::N => Box::new(None::<String>),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(user: &str) -> NewAttempt {
        NewAttempt {
            device: "/dev/sdx".into(),
            device_number: "8:16".into(),
            serial: format!("SER-{user}"),
            customer: "c".into(),
            set_id: Some("set-1".into()),
            user_id: Some(user.into()),
            user_name: Some(user.to_uppercase()),
            image_id: format!("img-{user}"),
            manifest_sha256: "00".into(),
            credentials: Some("[]".into()),
        }
    }

    #[test]
    fn a_user_is_claimed_once_until_the_stick_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let mut l = Ledger::open(path.to_str().unwrap(), "st1", "id-1", &Tls::default()).unwrap();
        let a = l.begin(&attempt("anna")).unwrap().expect("first claim");
        assert_eq!(l.begin(&attempt("anna")).unwrap(), None, "writing blocks");
        l.finish(a, Finish::Failed("removed")).unwrap();
        let b = l.begin(&attempt("anna")).unwrap().expect("after a failure");
        l.finish(b, Finish::Good).unwrap();
        assert_eq!(l.begin(&attempt("anna")).unwrap(), None, "good blocks");
        let f = Filter {
            user_id: Some("anna".into()),
            ..Filter::default()
        };
        let rows = l.revocable(&f).unwrap();
        let r = l.revoke(&rows, "lost").unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].result, "revoked");
        assert_eq!(l.begin(&attempt("anna")).unwrap(), None, "revoked blocks");
        // A customer-wide image (no set, no user) is never refused.
        let plain = NewAttempt {
            set_id: None,
            user_id: None,
            ..attempt("x")
        };
        assert!(l.begin(&plain).unwrap().is_some());
        assert!(l.begin(&plain).unwrap().is_some());
        let rows = l.list(&Filter::default()).unwrap();
        assert_eq!(
            rows.iter().map(|a| a.result.as_str()).collect::<Vec<_>>(),
            ["failed", "revoked", "writing", "writing"]
        );
        drop(l);
        // Reopened by the same station: its process (this one) lives, the rows stay.
        let mut l = Ledger::open(path.to_str().unwrap(), "st1", "id-1", &Tls::default()).unwrap();
        assert_eq!(l.taken("set-1").unwrap(), ["anna"]);
        assert_eq!(
            l.exec(
                "UPDATE attempts SET pid = 999999999 WHERE result = 'writing'",
                &[]
            )
            .unwrap(),
            Some(2)
        );
        assert_eq!(l.sweep().unwrap(), 2, "a dead flasher's rows need a check");
        let rows = l.list(&Filter::default()).unwrap();
        assert!(
            rows[2..].iter().all(|a| a.result == "needs-check"),
            "{rows:?}"
        );
    }

    #[test]
    fn a_stick_that_may_be_good_keeps_its_user_until_a_technician_checks_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let p = path.to_str().unwrap();
        let mut l = Ledger::open(p, "station", "id-1", &Tls::default()).unwrap();
        let a = l.begin(&attempt("anna")).unwrap().unwrap();
        // A second station with the same host name but its own id: its sweep does not take the
        // first station's live row for its own (whose process it cannot see).
        let mut twin = Ledger::open(p, "station", "id-2", &Tls::default()).unwrap();
        assert_eq!(twin.sweep().unwrap(), 0);
        assert_eq!(twin.taken("set-1").unwrap(), ["anna"]);
        // Nor can it finish or keep alive a row that is not its own.
        let e = twin.finish(a, Finish::Good).unwrap_err().to_string();
        assert!(e.contains("could not record it as good"), "{e}");
        assert!(twin.heartbeat(&[a]).is_err());
        // The first station's signs of life stop: after STALE_SECONDS by the ledger's clock
        // the row needs a check, and the user stays taken.
        l.exec(
            "UPDATE attempts SET heartbeat = heartbeat - ? WHERE id = ?",
            &[(STALE_SECONDS + 1).into(), a.into()],
        )
        .unwrap();
        assert_eq!(twin.sweep().unwrap(), 1);
        assert_eq!(l.list(&Filter::default()).unwrap()[0].result, "needs-check");
        assert_eq!(twin.begin(&attempt("anna")).unwrap(), None, "still taken");
        // The first station was only slow: its next sign of life makes the row `writing`
        // again, and its result is recorded.
        l.heartbeat(&[a]).unwrap();
        assert_eq!(l.list(&Filter::default()).unwrap()[0].result, "writing");
        l.finish(a, Finish::NeedsCheck("stalled; could not be wiped"))
            .unwrap();
        // A technician checks the stick: not the user's image, so the user is free again.
        let r = l.check(a, Some("checked: the stick is blank")).unwrap();
        assert_eq!(r.result, "failed");
        assert!(l.begin(&attempt("anna")).unwrap().is_some());
        // Only rows to check are resolved so.
        assert!(l.check(a, None).is_err());
    }

    #[test]
    fn migrations_are_recorded_and_a_newer_ledger_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let p = path.to_str().unwrap();
        drop(Ledger::open(p, "s", "i", &Tls::default()).unwrap());
        drop(Ledger::open(p, "s", "i", &Tls::default()).unwrap());
        let c = rusqlite::Connection::open(&path).unwrap();
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM homestick_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, SCHEMA_VERSION, "each applied once");
        c.execute("INSERT INTO homestick_schema VALUES (99, 0)", [])
            .unwrap();
        let e = Ledger::open(p, "s", "i", &Tls::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("schema version 99 is newer"), "{e}");
    }

    #[test]
    fn a_schema_2_ledger_keeps_its_rows_and_records_device_numbers_from_then_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE homestick_schema (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL);")
            .unwrap();
        for (n, sql, _) in MIGRATIONS.iter().filter(|m| m.0 <= 2) {
            c.execute_batch(sql).unwrap();
            c.execute("INSERT INTO homestick_schema VALUES (?1, 0)", [n])
                .unwrap();
        }
        c.execute_batch(
            "INSERT INTO attempts (started, heartbeat, station, pid, device, serial, customer, image_id, manifest_sha256, result, station_id)
             VALUES (1, 1, 'st', 1, '/dev/sdb', 'OLD', 'c', 'img', '00', 'good', 'id-0');",
        )
        .unwrap();
        drop(c);
        let mut l = Ledger::open(path.to_str().unwrap(), "st1", "id-1", &Tls::default()).unwrap();
        let id = l.begin(&attempt("u1")).unwrap().unwrap();
        let rows = l.list(&Filter::default()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].serial.as_str(), rows[0].device_number.as_str()),
            ("OLD", "")
        );
        assert_eq!(rows[1].id, id);
        assert_eq!(rows[1].device_number, "8:16");
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("postgres://hs:secret@db.example/ledger"),
            "postgres://hs:***@db.example/ledger"
        );
        assert_eq!(redacted("/var/lib/x.sqlite"), "/var/lib/x.sqlite");
        assert_eq!(
            redacted("postgres://hs@db.example/ledger?sslmode=require&password=secret"),
            "postgres://hs@db.example/ledger?sslmode=require&password=***"
        );
        assert_eq!(pg_sql("a = ? AND b = ?"), "a = $1 AND b = $2");
        assert_eq!(
            pg_dialect("id INTEGER PRIMARY KEY AUTOINCREMENT, t INTEGER NOT NULL"),
            "id BIGSERIAL PRIMARY KEY, t BIGINT NOT NULL"
        );
    }
}
