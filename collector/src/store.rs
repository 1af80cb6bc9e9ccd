//! The SQLite database: its schema, the [`Row`] of one event, the writer
//! that stores batches, and the read-only connection the report uses.
//!
//! One writer thread owns the only writing connection: SQLite takes one
//! writer at a time anyway, and a queue in front of it is fairer and faster
//! than connections retrying on `SQLITE_BUSY`. Each batch is one
//! transaction, committed before the request is answered.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, params};
use tokio::sync::{mpsc, oneshot};

use devsy_telemetry_wire::EventKey;

use crate::log::log;

/// The schema this build writes; a database from a newer build is refused.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id           INTEGER PRIMARY KEY,
    received_us  INTEGER NOT NULL,
    type         TEXT    NOT NULL,
    machine_id   TEXT    NOT NULL,
    timestamp_us INTEGER NOT NULL,
    command      TEXT    NOT NULL,
    finished     INTEGER NOT NULL,
    provider     TEXT,
    source_type  TEXT,
    ide          TEXT,
    desktop      INTEGER NOT NULL,
    version      TEXT    NOT NULL,
    error        TEXT,
    duration_ms  INTEGER,
    arch         TEXT    NOT NULL,
    os           TEXT    NOT NULL
);
-- A client resends a batch whose answer it did not see: the same event,
-- by the wire's EventKey (machine, microsecond, command, start or finish;
-- `Row::key`), is kept once.
CREATE UNIQUE INDEX IF NOT EXISTS events_identity
    ON events (machine_id, timestamp_us, command, finished);
CREATE INDEX IF NOT EXISTS events_time ON events (timestamp_us);
CREATE INDEX IF NOT EXISTS events_received ON events (received_us);
";

const INSERT: &str = "
INSERT OR IGNORE INTO events (received_us, type, machine_id, timestamp_us, command, finished,
    provider, source_type, ide, desktop, version, error, duration_ms, arch, os)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";

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

/// How hard a commit is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// Survives the collector being killed at any moment (SQLite WAL with
    /// `synchronous=NORMAL`); a power loss may take the last commits.
    Normal,
    /// Survives a power loss too: one fsync per batch (`synchronous=FULL`).
    Full,
}

/// A database that cannot be opened or used.
#[derive(Debug)]
pub struct StoreError {
    path: PathBuf,
    problem: Problem,
}

#[derive(Debug)]
enum Problem {
    Sqlite(rusqlite::Error),
    /// Opened, but not usable by this build.
    Refused(String),
}

impl StoreError {
    fn refused(path: &Path, why: String) -> Self {
        Self {
            path: path.to_path_buf(),
            problem: Problem::Refused(why),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.problem {
            Problem::Sqlite(e) => write!(f, "database {path}: {e}"),
            Problem::Refused(why) => write!(f, "database {path}: {why}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            Problem::Sqlite(e) => Some(e),
            Problem::Refused(_) => None,
        }
    }
}

fn at(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError {
        path: path.to_path_buf(),
        problem: Problem::Sqlite(source),
    }
}

/// Opens (creating if needed) the database for writing: WAL mode, the
/// schema, and a check that it is not from a newer build.
pub fn open_for_writing(
    path: &Path,
    durability: Durability,
    max_bytes: u64,
) -> Result<Connection, StoreError> {
    let err = at(path);
    let conn = Connection::open(path).map_err(&err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(&err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(&err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::refused(
            path,
            format!("cannot use write-ahead logging (journal mode is {mode})"),
        ));
    }
    let level = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", level)
        .map_err(&err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(&err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::refused(
            path,
            format!("schema version {version} is newer than this collector's ({SCHEMA_VERSION})"),
        ));
    }
    conn.execute_batch(SCHEMA).map_err(&err)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(&err)?;
    // The size cap: SQLite refuses to grow past it (SQLITE_FULL), and the
    // insert that would is answered 507. A database already larger keeps
    // its size and takes no more.
    let page_size: u64 = conn
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .map_err(&err)?;
    let pages = (max_bytes / page_size.max(512)).max(1);
    conn.pragma_update(None, "max_page_count", pages)
        .map_err(&err)?;
    Ok(conn)
}

/// The default largest database: a small deployment never meets it, a
/// flood cannot fill the disk past it.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024 * 1024;

/// The free bytes of the file system that holds `path`, if the OS says.
#[cfg(unix)]
pub fn free_bytes(path: &Path) -> Option<u64> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stats = rustix::fs::statvfs(dir).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Elsewhere the floor is not checked.
#[cfg(not(unix))]
pub fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

/// Opens an existing database read-only, for the report.
pub fn open_for_reading(path: &Path) -> Result<Connection, StoreError> {
    let err = at(path);
    if !path.exists() {
        return Err(StoreError::refused(path, "no such file".into()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(&err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(&err)?;
    if version != SCHEMA_VERSION {
        return Err(StoreError::refused(
            path,
            format!("not a devsy-collector database of schema {SCHEMA_VERSION} (found {version})"),
        ));
    }
    Ok(conn)
}

/// What storing one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Stored {
    /// Events newly stored.
    pub stored: usize,
    /// Events already stored by an earlier request (a client's resend).
    pub duplicates: usize,
}

/// Stores `rows` in one transaction: all of them or, on error, none.
pub fn insert(conn: &mut Connection, rows: &[Row]) -> rusqlite::Result<Stored> {
    let received = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    let tx = conn.transaction()?;
    let mut stored = 0;
    {
        let mut insert = tx.prepare_cached(INSERT)?;
        for row in rows {
            let key = row.key();
            stored += insert.execute(params![
                received,
                row.kind,
                key.machine_id,
                i64::try_from(key.timestamp).unwrap_or(i64::MAX),
                key.command,
                key.finished,
                row.provider,
                row.source_type,
                row.ide,
                row.desktop,
                row.version,
                row.error,
                row.duration_ms
                    .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)),
                row.arch,
                row.os,
            ])?;
        }
    }
    tx.commit()?;
    Ok(Stored {
        stored,
        duplicates: rows.len() - stored,
    })
}

/// Work for the writer, and where to send what became of it.
pub enum Job {
    /// A batch to store.
    Store {
        rows: Vec<Row>,
        reply: oneshot::Sender<Result<Stored, Failure>>,
    },
    /// Delete at most [`PRUNE_CHUNK`] events received before this time;
    /// replies how many went. In chunks, so that ingest waits for no long
    /// delete. By the time of receipt, not the client's timestamp, which
    /// may be old: an event answered as stored stays for the whole
    /// retention.
    Prune {
        before_us: u64,
        reply: oneshot::Sender<usize>,
    },
}

/// Events deleted by one [`Job::Prune`].
pub const PRUNE_CHUNK: usize = 5_000;

/// Deletes at most [`PRUNE_CHUNK`] events received before `before_us`.
pub fn prune(conn: &Connection, before_us: u64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM events WHERE id IN \
         (SELECT id FROM events WHERE received_us < ?1 LIMIT ?2)",
        params![
            i64::try_from(before_us).unwrap_or(i64::MAX),
            i64::try_from(PRUNE_CHUNK).unwrap_or(i64::MAX)
        ],
    )
}

/// Why a batch was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The database is at its size cap, or the disk is full: 507.
    Full(String),
    /// Anything else: 503, try again.
    Other(String),
}

impl Failure {
    fn of(error: &rusqlite::Error) -> Self {
        let text = error.to_string();
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => Self::Full(text),
            _ => Self::Other(text),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(e) => write!(f, "the database is full: {e}"),
            Self::Other(e) => write!(f, "storing failed: {e}"),
        }
    }
}

/// Batches waiting for the writer; beyond this, requests wait to enqueue.
const QUEUE: usize = 256;

/// Whether the writer can store: `/healthz` says so, with the reason.
#[derive(Debug, Default)]
pub struct Health {
    problem: std::sync::Mutex<Option<String>>,
}

impl Health {
    /// `None` when the last batch was stored (or none came yet); else why
    /// it was not.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, problem: Option<String>) {
        *self
            .problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = problem;
    }
}

/// The writer thread, and how to tell that it stopped.
pub struct Writer {
    pub jobs: mpsc::Sender<Job>,
    pub health: Arc<Health>,
    pub thread: std::thread::JoinHandle<()>,
    /// Resolves when the thread ends, however it ends.
    pub stopped: oneshot::Receiver<()>,
}

/// Starts the writer thread on `conn`. It stores jobs in order until every
/// sender is dropped. A batch that cannot be stored is answered with the
/// error and marks the writer unhealthy until one is stored again; a
/// panic while storing (none is known) ends the thread, which `stopped`
/// reports, so the collector exits instead of answering 503 forever.
pub fn spawn_writer(mut conn: Connection) -> std::io::Result<Writer> {
    let (jobs, mut rx) = mpsc::channel::<Job>(QUEUE);
    let health = Arc::new(Health::default());
    let (ended, stopped) = oneshot::channel();
    let thread = {
        let health = Arc::clone(&health);
        std::thread::Builder::new()
            .name("collector-writer".into())
            .spawn(move || {
                // Dropped however the thread ends: `stopped` resolves.
                let _ended = ended;
                let mut failures = crate::log::RateLimited::new(std::time::Duration::from_secs(10));
                while let Some(job) = rx.blocking_recv() {
                    let (rows, reply) = match job {
                        Job::Store { rows, reply } => (rows, reply),
                        Job::Prune { before_us, reply } => {
                            let deleted = prune(&conn, before_us).unwrap_or_else(|e| {
                                failures.log(|n| format!("pruning failed ({n} times): {e}"));
                                0
                            });
                            let _ = reply.send(deleted);
                            continue;
                        }
                    };
                    let stored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        insert(&mut conn, &rows)
                    }));
                    let Ok(result) = stored else {
                        health.set(Some("the database writer stopped".into()));
                        let failure = Failure::Other("the writer stopped".into());
                        let _ = reply.send(Err(failure));
                        return;
                    };
                    let result = result.map_err(|e| Failure::of(&e));
                    match &result {
                        Ok(_) => health.set(None),
                        Err(failure) => {
                            failures.log(|n| format!("{failure} ({n} batches)"));
                            health.set(Some(failure.to_string()));
                        }
                    }
                    // The client may have gone; what was committed stays.
                    let _ = reply.send(result);
                }
                if let Err((_, e)) = conn.close() {
                    log(&format!("closing the database: {e}"));
                }
            })?
    };
    Ok(Writer {
        jobs,
        health,
        thread,
        stopped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(timestamp_us: u64) -> Row {
        Row::example("devsy provider list", timestamp_us)
    }

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn stores_a_batch_and_keeps_a_resent_event_once() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.db");
        let mut conn = open_for_writing(&path, Durability::Normal, DEFAULT_MAX_BYTES)?;
        let first = insert(&mut conn, &[row(1), row(2)])?;
        assert_eq!(
            first,
            Stored {
                stored: 2,
                duplicates: 0
            }
        );
        let again = insert(&mut conn, &[row(2), row(3)])?;
        assert_eq!(
            again,
            Stored {
                stored: 1,
                duplicates: 1
            }
        );
        assert_eq!(count(&conn), 3);
        let mut finished = row(3);
        finished.duration_ms = Some(5);
        assert_eq!(
            insert(&mut conn, &[finished])?.stored,
            1,
            "a finish is not its start"
        );
        Ok(())
    }

    #[test]
    fn the_journal_is_write_ahead_and_reopening_keeps_everything()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.db");
        let mut conn = open_for_writing(&path, Durability::Full, DEFAULT_MAX_BYTES)?;
        insert(&mut conn, &[row(1)])?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        assert_eq!(mode, "wal");
        drop(conn);
        let conn = open_for_writing(&path, Durability::Normal, DEFAULT_MAX_BYTES)?;
        assert_eq!(count(&conn), 1);
        let reader = open_for_reading(&path)?;
        assert_eq!(count(&reader), 1);
        Ok(())
    }

    #[test]
    fn a_database_from_a_newer_build_or_another_program_is_refused()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let newer = dir.path().join("newer.db");
        Connection::open(&newer)?.pragma_update(None, "user_version", SCHEMA_VERSION + 1)?;
        let error = open_for_writing(&newer, Durability::Normal, DEFAULT_MAX_BYTES)
            .expect_err("newer schema");
        assert!(error.to_string().contains("newer"), "{error}");

        let other = dir.path().join("other.db");
        Connection::open(&other)?.execute_batch("CREATE TABLE t (x)")?;
        let error = open_for_reading(&other).expect_err("not ours");
        assert!(
            error.to_string().contains("not a devsy-collector database"),
            "{error}"
        );

        let missing = dir.path().join("missing.db");
        assert!(open_for_reading(&missing).is_err());
        assert!(!missing.exists(), "reading must not create a database");
        Ok(())
    }
}
