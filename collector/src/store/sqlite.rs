//! SQLite, the embedded default: its pragmas, the writer thread that owns
//! the only writing connection, and the read-only connection the report
//! uses.
//!
//! One writer thread: SQLite takes one writer at a time anyway, and a
//! queue in front of it is fairer and faster than connections retrying on
//! `SQLITE_BUSY`. Each batch is one transaction, committed before the
//! request is answered.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, params_from_iter};
use tokio::sync::{mpsc, oneshot};

use super::sql::{self, Cell, Cells, Dialect, Param, Shape};
use super::{
    Background, Failure, PRUNE_CHUNK, Problem, QueryError, Reserved, Row, StoreError, Stored, mib,
    now_us,
};
use crate::log::log;

/// The schema this build writes; a database from a newer build is refused.
const SCHEMA_VERSION: i64 = 1;

/// How hard a commit is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// Survives the collector being killed at any moment (SQLite WAL with
    /// `synchronous=NORMAL`); a power loss may take the last commits.
    Normal,
    /// Survives a power loss too: one fsync per batch (`synchronous=FULL`).
    Full,
}

fn at(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError {
        database: path.display().to_string(),
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
            path.display(),
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
            path.display(),
            format!("schema version {version} is newer than this collector's ({SCHEMA_VERSION})"),
        ));
    }
    conn.execute_batch(&Dialect::Sqlite.schema())
        .map_err(&err)?;
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

/// Opens an existing database read-only, for the report.
pub fn open_for_reading(path: &Path) -> Result<Connection, StoreError> {
    let err = at(path);
    if !path.exists() {
        return Err(StoreError::refused(path.display(), "no such file".into()));
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
            path.display(),
            format!("not a devsy-collector database of schema {SCHEMA_VERSION} (found {version})"),
        ));
    }
    Ok(conn)
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Self::Int(n) => n.to_sql(),
            Self::OptInt(n) => n.to_sql(),
            Self::Text(s) => s.to_sql(),
            Self::OptText(s) => s.to_sql(),
        }
    }
}

/// Stores `rows` in one transaction: all of them or, on error, none.
pub fn insert(conn: &mut Connection, rows: &[Row]) -> rusqlite::Result<Stored> {
    // One row a statement, prepared once: SQLite has no round trips to
    // save, and one statement per batch size would compile a new one of
    // up to 15,000 parameters whenever the sizes vary.
    static INSERT_ONE: LazyLock<String> =
        LazyLock::new(|| Dialect::Sqlite.sql(&sql::insert(1)).into_owned());
    let received = now_us();
    let tx = conn.transaction()?;
    let mut stored = 0;
    {
        let mut insert = tx.prepare_cached(&INSERT_ONE)?;
        for row in rows {
            stored += insert.execute(params_from_iter(sql::params(row, received)))?;
        }
    }
    tx.commit()?;
    Ok(Stored {
        stored,
        duplicates: rows.len() - stored,
    })
}

/// Deletes at most [`PRUNE_CHUNK`] events received before `before_us`.
pub fn prune(conn: &Connection, before_us: u64) -> rusqlite::Result<usize> {
    conn.execute(
        &Dialect::Sqlite.sql(sql::PRUNE),
        [sql::int(before_us), sql::int(PRUNE_CHUNK as u64)],
    )
}

fn failure(error: &rusqlite::Error) -> Failure {
    let text = error.to_string();
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => Failure::Full(text),
        _ => Failure::Other(text),
    }
}

/// Runs a report query and hands over its rows.
pub(super) fn each(
    conn: &Connection,
    text: &str,
    params: &[i64],
    row: &mut dyn FnMut(Cells) -> Result<(), Shape>,
) -> Result<(), QueryError> {
    let mut stmt = conn
        .prepare_cached(&Dialect::Sqlite.sql(text))
        .map_err(QueryError::Sqlite)?;
    let columns = stmt.column_count();
    let mut rows = stmt
        .query(params_from_iter(params))
        .map_err(QueryError::Sqlite)?;
    while let Some(found) = rows.next().map_err(QueryError::Sqlite)? {
        let mut cells = Vec::with_capacity(columns);
        for i in 0..columns {
            use rusqlite::types::ValueRef;
            cells.push(match found.get_ref(i).map_err(QueryError::Sqlite)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(n) => Cell::Int(n),
                ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Real(_) | ValueRef::Blob(_) => {
                    return Err(Shape(format!("column {i} is neither a number nor text")).into());
                }
            });
        }
        row(Cells(cells))?;
    }
    Ok(())
}

/// Work for the writer, and where to send what became of it.
enum Job {
    Store {
        rows: Vec<Row>,
        /// Dropped after the insert, with the rows.
        reserved: Reserved,
        reply: oneshot::Sender<Result<Stored, Failure>>,
    },
    Prune {
        before_us: u64,
        reply: oneshot::Sender<usize>,
    },
}

/// Batches waiting for the writer; beyond this, requests wait to enqueue.
const QUEUE: usize = 256;

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

/// How long a batch that could not be stored keeps `/healthz` at 503
/// without another: then it answers 200 and the next batch decides. Only
/// batches prove SQLite can store again, and a collector a load balancer
/// took out gets none: held for good, it would never come back.
const FAILURE_HOLD: Duration = Duration::from_secs(10);

/// Whether the writer can store: `/healthz` says so, with the reason.
#[derive(Debug, Default)]
pub struct Health {
    /// The last failure, and when it was.
    failed: Mutex<Option<(Instant, String)>>,
}

impl Health {
    /// Why the last batch was not stored, for [`FAILURE_HOLD`] after it;
    /// `None` once one was stored, or rows were pruned, since.
    pub fn problem(&self) -> Option<String> {
        self.problem_at(Instant::now())
    }

    fn problem_at(&self, now: Instant) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|(at, _)| now.saturating_duration_since(*at) < FAILURE_HOLD)
            .map(|(_, problem)| problem.clone())
    }

    fn set(&self, problem: Option<String>) {
        *self.failed.lock().unwrap_or_else(PoisonError::into_inner) =
            problem.map(|problem| (Instant::now(), problem));
    }
}

/// The queue in front of the writer thread.
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    pub(super) health: Arc<Health>,
    path: PathBuf,
    min_free: u64,
    /// The last reading of the free-disk floor, redone at most once a
    /// second (a system call per request would do for a small collector,
    /// not under a flood).
    disk: Mutex<Option<(Instant, Option<String>)>>,
}

impl Writer {
    pub(super) async fn store(
        &self,
        rows: Vec<Row>,
        reserved: Reserved,
    ) -> Result<Stored, Failure> {
        let (reply, done) = oneshot::channel();
        let gone = || Failure::Other("the database writer stopped".into());
        self.jobs
            .send(Job::Store {
                rows,
                reserved,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }

    pub(super) async fn prune(&self, before_us: u64) -> Option<usize> {
        let (reply, deleted) = oneshot::channel();
        self.jobs.send(Job::Prune { before_us, reply }).await.ok()?;
        deleted.await.ok()
    }

    /// The free-disk floor (the size cap is SQLite's own: `max_page_count`).
    pub(super) fn no_room(&self) -> Option<String> {
        let mut last = self.disk.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, problem)) = &*last
            && at.elapsed() < Duration::from_secs(1)
        {
            return problem.clone();
        }
        let problem = free_bytes(&self.path)
            .filter(|free| *free < self.min_free)
            .map(|free| {
                format!(
                    "the disk has {} MiB free, below the floor of {} MiB",
                    mib(free),
                    mib(self.min_free)
                )
            });
        *last = Some((Instant::now(), problem.clone()));
        problem
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

/// Starts the writer thread on `conn`. It stores jobs in order until every
/// sender is dropped. A batch that cannot be stored is answered with the
/// error and marks the writer unhealthy until one is stored again, rows
/// are pruned, or [`FAILURE_HOLD`] passes without another failure; a
/// panic while storing (none is known) ends the thread, which
/// [`Background::stopped`] reports, so the collector exits instead of
/// answering 503 forever.
pub(super) fn spawn_writer(
    mut conn: Connection,
    path: &Path,
    min_free: u64,
) -> std::io::Result<(Writer, Background)> {
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
                // Each kind of failure logged at most once per 10 s.
                let mut pruning = crate::log::RateLimited::new(Duration::from_secs(10));
                let mut storing = crate::log::RateLimited::new(Duration::from_secs(10));
                while let Some(job) = rx.blocking_recv() {
                    let (rows, _reserved, reply) = match job {
                        Job::Store {
                            rows,
                            reserved,
                            reply,
                        } => (rows, reserved, reply),
                        Job::Prune { before_us, reply } => {
                            let deleted = prune(&conn, before_us).unwrap_or_else(|e| {
                                pruning.log(|n| format!("pruning failed ({n} times): {e}"));
                                0
                            });
                            // Room was made: a full database may take
                            // batches again.
                            if deleted > 0 {
                                health.set(None);
                            }
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
                    let result = result.map_err(|e| failure(&e));
                    match &result {
                        Ok(_) => health.set(None),
                        Err(failure) => {
                            storing.log(|n| format!("{failure} ({n} batches)"));
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
    let writer = Writer {
        jobs,
        health,
        path: path.to_path_buf(),
        min_free,
        disk: Mutex::new(None),
    };
    Ok((
        writer,
        Background {
            stopped: Some(stopped),
            thread: Some(thread),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DEFAULT_MAX_BYTES;

    fn row(timestamp_us: u64) -> Row {
        Row::example("devsy provider list", timestamp_us)
    }

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn a_failure_is_held_for_a_while_then_the_next_batch_decides() {
        let health = Health::default();
        assert_eq!(health.problem(), None);
        health.set(Some("the database is full".into()));
        let now = Instant::now();
        assert_eq!(
            health.problem_at(now).as_deref(),
            Some("the database is full")
        );
        assert!(health.problem_at(now + FAILURE_HOLD / 2).is_some());
        assert_eq!(health.problem_at(now + FAILURE_HOLD), None);
        health.set(Some("again".into()));
        health.set(None);
        assert_eq!(health.problem(), None, "a stored batch clears it");
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
