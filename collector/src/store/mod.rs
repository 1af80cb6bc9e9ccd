//! Where the events are kept, behind one seam: [`Store`] for ingest (store
//! a batch, prune, is there room) and [`Reader`] for the report, each an
//! enum over the two databases.
//!
//! - SQLite (`sqlite.rs`), the embedded default: one file, one writer
//!   thread, one collector.
//! - PostgreSQL (`postgres.rs`), for several collectors sharing one
//!   database: a pool of connections, one transaction per batch.
//!
//! Both run the same SQL texts (`sql.rs`), so a report is the same from
//! either; each acknowledges a batch only once its transaction committed.

mod postgres;
pub mod sql;
mod sqlite;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use devsy_telemetry_wire::EventKey;

pub use postgres::DEFAULT_POOL;
pub use sql::{Cells, Shape};
pub use sqlite::Durability;
#[cfg(test)]
pub use sqlite::{insert as insert_sqlite, open_for_writing as open_sqlite};

/// What a request holds while its rows are in memory (its share of the
/// body budget), released when the store is done with them.
pub type Reserved = Box<dyn Send>;

/// One event, checked, as it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub kind: String,
    pub machine_id: String,
    pub timestamp_us: u64,
    pub command: String,
    pub provider: Option<String>,
    pub source_type: Option<String>,
    pub ide: Option<String>,
    pub desktop: bool,
    pub version: String,
    pub error: Option<String>,
    pub duration_ms: Option<u64>,
    pub arch: String,
    pub os: String,
}

impl Row {
    /// The event's identity, the wire's [`EventKey`]: the columns of the
    /// unique index `events_identity`, so a batch sent again is stored once.
    pub fn key(&self) -> EventKey<'_> {
        EventKey {
            machine_id: &self.machine_id,
            timestamp: self.timestamp_us,
            command: &self.command,
            finished: self.duration_ms.is_some(),
        }
    }
}

#[cfg(test)]
impl Row {
    /// A start event of `command` at `timestamp_us`, for tests.
    pub fn example(command: &str, timestamp_us: u64) -> Self {
        Self {
            kind: "devsy_cli".into(),
            machine_id: "ab".repeat(32),
            timestamp_us,
            command: command.into(),
            provider: None,
            source_type: None,
            ide: None,
            desktop: false,
            version: "v0.5.29".into(),
            error: None,
            duration_ms: None,
            arch: "amd64".into(),
            os: "linux".into(),
        }
    }
}

/// The database `--db` names: a SQLite file, or a PostgreSQL URL.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(postgres::Url),
}

impl FromStr for Database {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return postgres::Url::parse(text).map(Self::Postgres);
        }
        if text.is_empty() {
            return Err("the database is a SQLite file path or a postgres:// URL".into());
        }
        Ok(Self::Sqlite(PathBuf::from(text)))
    }
}

/// The path, or the URL without its password.
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => write!(f, "{url}"),
        }
    }
}

/// A database that cannot be opened or used.
#[derive(Debug)]
pub struct StoreError {
    database: String,
    problem: Problem,
}

#[derive(Debug)]
enum Problem {
    Sqlite(rusqlite::Error),
    Postgres(tokio_postgres::Error),
    /// Opened, but not usable by this build; or not reached.
    Refused(String),
}

impl StoreError {
    fn refused(database: impl fmt::Display, why: String) -> Self {
        Self {
            database: database.to_string(),
            problem: Problem::Refused(why),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let database = &self.database;
        match &self.problem {
            Problem::Sqlite(e) => write!(f, "database {database}: {e}"),
            Problem::Postgres(e) => write!(f, "database {database}: {}", postgres::describe(e)),
            Problem::Refused(why) => write!(f, "database {database}: {why}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            Problem::Sqlite(e) => Some(e),
            Problem::Postgres(e) => Some(e),
            Problem::Refused(_) => None,
        }
    }
}

/// What storing one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Stored {
    /// Events newly stored.
    pub stored: usize,
    /// Events already stored by an earlier request (a client's resend).
    pub duplicates: usize,
}

/// Why a batch was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The database is at its size cap, or the disk is full: 507.
    Full(String),
    /// Anything else: 503, try again.
    Other(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(e) => write!(f, "the database is full: {e}"),
            Self::Other(e) => write!(f, "storing failed: {e}"),
        }
    }
}

/// The default largest database: a small deployment never meets it, a
/// flood cannot fill the disk past it.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024 * 1024;

/// Events deleted by one [`Store::prune`]: in chunks, so that ingest waits
/// for no long delete.
pub const PRUNE_CHUNK: usize = 5_000;

/// How a store is opened for ingest.
#[derive(Debug, Clone)]
pub struct Settings {
    pub durability: Durability,
    /// The largest the database may grow, in bytes; past it, 507.
    pub max_bytes: u64,
    /// Below this many free bytes on the database's disk, 507 (SQLite's
    /// own disk; a PostgreSQL server watches its own).
    pub min_free_bytes: u64,
    /// PostgreSQL connections this collector holds at most.
    pub pool_size: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            durability: Durability::Normal,
            max_bytes: DEFAULT_MAX_BYTES,
            min_free_bytes: 0,
            pool_size: postgres::DEFAULT_POOL,
        }
    }
}

/// The store ingest writes to.
pub enum Store {
    Sqlite(sqlite::Writer),
    Postgres(postgres::Pool),
}

impl Store {
    /// Opens (creating if needed) the database and its schema, and refuses
    /// one from a newer build. Call it inside the Tokio runtime.
    pub async fn open(
        database: &Database,
        settings: &Settings,
    ) -> Result<(Self, Background), StoreError> {
        match database {
            Database::Sqlite(path) => {
                let conn = sqlite::open_for_writing(path, settings.durability, settings.max_bytes)?;
                let (writer, thread) = sqlite::spawn_writer(conn, path, settings.min_free_bytes)
                    .map_err(|e| StoreError::refused(path.display(), e.to_string()))?;
                Ok((Self::Sqlite(writer), thread))
            }
            Database::Postgres(url) => {
                let pool =
                    postgres::Pool::open(url, settings.pool_size, settings.max_bytes).await?;
                Ok((Self::Postgres(pool), Background::none()))
            }
        }
    }

    /// Stores `rows` in one transaction, all or none, and answers once it
    /// committed. `reserved` (what the request reserved for its body) is
    /// dropped with the rows, not before: a batch still waiting in
    /// SQLite's queue, or an insert still running on PostgreSQL, after its
    /// request gave up still counts (the request hands an insert it
    /// stopped waiting for to a task of its own).
    pub async fn store(&self, rows: Vec<Row>, reserved: Reserved) -> Result<Stored, Failure> {
        match self {
            Self::Sqlite(writer) => writer.store(rows, reserved).await,
            Self::Postgres(pool) => {
                let _reserved = reserved;
                pool.store(&rows).await
            }
        }
    }

    /// Deletes at most [`PRUNE_CHUNK`] events received before `before_us`,
    /// by the time of receipt, not the client's timestamp, which may be
    /// old: an event answered as stored stays for the whole retention.
    /// `None` when the store is gone.
    pub async fn prune(&self, before_us: u64) -> Option<usize> {
        match self {
            Self::Sqlite(writer) => writer.prune(before_us).await,
            Self::Postgres(pool) => Some(pool.prune(before_us).await),
        }
    }

    /// Why nothing may be stored now, if anything: a disk below its floor
    /// (SQLite, read at most once a second), the events at their cap
    /// (PostgreSQL, as its watcher last saw; SQLite's own cap is
    /// `max_page_count`, met by the insert).
    pub fn no_room(&self) -> Option<String> {
        match self {
            Self::Sqlite(writer) => writer.no_room(),
            Self::Postgres(pool) => pool.seen().full,
        }
    }

    /// Why the store cannot store now, if it cannot: with SQLite, the
    /// last batch's failure (the file is this process's alone); with
    /// PostgreSQL, whether the server answered its watcher a second ago,
    /// so that a collector a load balancer took out for a passing failure
    /// comes back once the server does, without a batch to prove it.
    pub fn health(&self) -> Option<String> {
        match self {
            Self::Sqlite(writer) => writer.health.problem(),
            Self::Postgres(pool) => pool.seen().unreachable,
        }
    }

    /// A reader for the report, on the same database. SQLite's is opened
    /// on a blocking thread (a file and a query), not the caller's.
    pub async fn reader(&self) -> Result<Reader, StoreError> {
        match self {
            Self::Sqlite(writer) => {
                let path = writer.path().to_path_buf();
                tokio::task::spawn_blocking(move || sqlite::open_for_reading(&path))
                    .await
                    .map_err(|e| StoreError::refused(writer.path().display(), e.to_string()))?
                    .map(Reader::Sqlite)
            }
            Self::Postgres(pool) => pool.reader().await.map(|r| Reader::Postgres(Box::new(r))),
        }
    }
}

/// What a store runs beside the requests: SQLite's writer thread (for
/// PostgreSQL, nothing). The server exits when it ends, and waits for it
/// to drain once the last request is answered.
pub struct Background {
    stopped: Option<tokio::sync::oneshot::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn none() -> Self {
        Self {
            stopped: None,
            thread: None,
        }
    }

    /// Resolves if the background work ends while requests are served.
    pub async fn stopped(&mut self) {
        match &mut self.stopped {
            Some(stopped) => {
                let _ = stopped.await;
            }
            None => std::future::pending().await,
        }
    }

    /// Waits for it to finish what it was given (once every [`Store`] is
    /// dropped); `false` if it panicked.
    pub fn join(self) -> bool {
        self.thread.is_none_or(|thread| thread.join().is_ok())
    }
}

/// The report's side of the seam: runs a query and hands over its rows.
pub trait Source {
    /// Runs `sql` (written with `$1` placeholders, all integers) and calls
    /// `row` with each result row in order.
    fn each(
        &mut self,
        sql: &str,
        params: &[i64],
        row: &mut dyn FnMut(Cells) -> Result<(), Shape>,
    ) -> Result<(), QueryError>;
}

/// A query that failed.
#[derive(Debug)]
pub enum QueryError {
    Sqlite(rusqlite::Error),
    Postgres(tokio_postgres::Error),
    Shape(Shape),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(e) => write!(f, "query failed: {e}"),
            Self::Postgres(e) => write!(f, "query failed: {}", postgres::describe(e)),
            Self::Shape(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for QueryError {}

impl From<Shape> for QueryError {
    fn from(shape: Shape) -> Self {
        Self::Shape(shape)
    }
}

/// A read-only view of either database, for the report.
pub enum Reader {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Reader>),
}

impl Reader {
    /// Opens an existing database for reading: it must hold this build's
    /// schema, and nothing is created. For PostgreSQL, outside any Tokio
    /// runtime (the report's own).
    pub fn open(database: &Database) -> Result<Self, StoreError> {
        match database {
            Database::Sqlite(path) => sqlite::open_for_reading(path).map(Self::Sqlite),
            Database::Postgres(url) => {
                postgres::Reader::standalone(url).map(|r| Self::Postgres(Box::new(r)))
            }
        }
    }

    /// Runs `figures` on one snapshot of the database (a read-only
    /// transaction, rolled back after), so that the report's numbers agree
    /// with each other while events arrive.
    pub fn snapshot<T>(
        &mut self,
        figures: impl FnOnce(&mut Self) -> Result<T, QueryError>,
    ) -> Result<T, QueryError> {
        match self {
            Self::Sqlite(conn) => conn.execute_batch("BEGIN").map_err(QueryError::Sqlite)?,
            Self::Postgres(reader) => reader.begin()?,
        }
        let result = figures(self);
        let ended = match self {
            Self::Sqlite(conn) => conn.execute_batch("ROLLBACK").map_err(QueryError::Sqlite),
            Self::Postgres(reader) => reader.end(),
        };
        let value = result?;
        ended?;
        Ok(value)
    }
}

impl Source for Reader {
    fn each(
        &mut self,
        sql: &str,
        params: &[i64],
        row: &mut dyn FnMut(Cells) -> Result<(), Shape>,
    ) -> Result<(), QueryError> {
        match self {
            Self::Sqlite(conn) => sqlite::each(conn, sql, params, row),
            Self::Postgres(reader) => reader.each(sql, params, row),
        }
    }
}

/// The time of receipt, in microseconds since the epoch.
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn mib(bytes: u64) -> u64 {
    bytes / (1024 * 1024)
}
