//! PostgreSQL, for several collectors sharing one database: a pool of
//! connections (deadpool), one transaction per batch, acknowledged once it
//! committed. The collectors keep no state of their own, so any of them
//! may take any request; the unique index settles a batch that two of
//! them receive at once.

use std::fmt;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::types::{ToSql, Type};

use super::sql::{self, Cell, Cells, Param, Shape};
use super::{Failure, PRUNE_CHUNK, Problem, QueryError, Row, StoreError, Stored, mib};
use crate::log::RateLimited;
use std::sync::{Arc, Mutex, PoisonError};

/// The schema this build writes, kept in `devsy_schema`; a database from
/// a newer build is refused.
const SCHEMA_VERSION: i64 = 1;

/// Connections one collector holds at most, by default.
pub const DEFAULT_POOL: u32 = 16;

/// How long a request waits for a connection from the pool, and a new
/// connection may take to open.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// Taken while the schema is created, so that collectors starting at once
/// do not race on `CREATE TABLE` (any fixed number; this is "devsy" in
/// ASCII).
const SCHEMA_LOCK: i64 = 0x0064_6576_7379;

/// A `postgres://` URL, checked; shown without its password.
#[derive(Clone)]
pub struct Url {
    config: Box<tokio_postgres::Config>,
}

impl Url {
    /// Reads a URL as tokio-postgres does (host, port, user, password,
    /// database, and options such as `sslmode`, `connect_timeout`,
    /// `application_name`); refuses one without a host or asking for TLS.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut config: tokio_postgres::Config = text
            .parse()
            .map_err(|e| format!("not a PostgreSQL URL ({e})"))?;
        if config.get_hosts().is_empty() {
            return Err("the PostgreSQL URL names no host".into());
        }
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(
                "sslmode=require: this build connects without TLS; reach the \
                 server over a private network or a Unix socket, or through a TLS proxy"
                    .into(),
            );
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(POOL_WAIT);
        }
        if config.get_application_name().is_none() {
            config.application_name("devsy-collector");
        }
        Ok(Self {
            config: Box::new(config),
        })
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "postgres://")?;
        if let Some(user) = self.config.get_user() {
            write!(f, "{user}@")?;
        }
        for (i, host) in self.config.get_hosts().iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            match host {
                tokio_postgres::config::Host::Tcp(name) => write!(f, "{name}")?,
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => write!(f, "[{}]", path.display())?,
            }
            if let Some(port) = self.config.get_ports().get(i) {
                write!(f, ":{port}")?;
            }
        }
        write!(f, "/{}", self.config.get_dbname().unwrap_or(""))
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Url({self})")
    }
}

/// The server's own words for an error, with its SQLSTATE.
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut text = error.to_string();
            if let Some(source) = std::error::Error::source(error) {
                text = format!("{text}: {source}");
            }
            text
        }
    }
}

fn pool_error(error: &deadpool_postgres::PoolError) -> String {
    match error {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

fn at(url: &Url) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
    move |source| StoreError {
        database: url.to_string(),
        problem: Problem::Postgres(source),
    }
}

/// Each of [`Param`]'s cases as PostgreSQL takes it, with its type.
fn typed<'a>(param: &'a Param<'a>) -> (&'a (dyn ToSql + Sync), Type) {
    match param {
        Param::Int(n) => (n, Type::INT8),
        Param::OptInt(n) => (n, Type::INT8),
        Param::Text(s) => (s, Type::TEXT),
        Param::OptText(s) => (s, Type::TEXT),
    }
}

/// What the watcher last saw of the server: whether it answers, and
/// whether the events are at their size cap.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Why the server did not answer, if it did not.
    pub unreachable: Option<String>,
    /// Why nothing more may be stored, if the events take the cap.
    pub full: Option<String>,
}

/// How often the watcher asks, and how long it waits for an answer.
const WATCH_EVERY: Duration = Duration::from_secs(1);
const WATCH_WAIT: Duration = Duration::from_secs(2);

/// The pool ingest stores through.
pub struct Pool {
    pool: deadpool_postgres::Pool,
    url: Url,
    /// Failed batches, logged at most once per 10 s.
    failures: Mutex<RateLimited>,
    /// Written by the watcher, read by `/healthz` and each insert: no
    /// request waits for a query of its own to learn either.
    seen: Arc<Mutex<Seen>>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// Asks the server how much the events take, on the watcher's own
/// connection (made again when it was lost): an answer says the server is
/// reachable, and whether the events are at `max_bytes` (table and
/// indexes, not the whole database, which may hold other things; the
/// server's disk is its own to watch). Not through the pool: a pool busy
/// with ingest is a busy collector, not an unreachable server.
async fn look(
    config: &tokio_postgres::Config,
    client: &mut Option<tokio_postgres::Client>,
    max_bytes: u64,
) -> Result<Option<String>, String> {
    if client
        .as_ref()
        .is_some_and(tokio_postgres::Client::is_closed)
    {
        *client = None;
    }
    let mut cancel = None;
    let asked = tokio::time::timeout(WATCH_WAIT, async {
        if client.is_none() {
            let (connected, connection) = config.connect(NoTls).await.map_err(|e| describe(&e))?;
            // Ends when the client is dropped, or the server goes.
            tokio::spawn(async move {
                let _ = connection.await;
            });
            *client = Some(connected);
        }
        let connected = client.as_ref().ok_or("no connection")?;
        cancel = Some(connected.cancel_token());
        connected
            .query_typed("SELECT pg_total_relation_size('events')", &[])
            .await
            .map_err(|e| describe(&e))?
            .first()
            .and_then(|row| row.try_get::<_, i64>(0).ok())
            .ok_or_else(|| "no size for the events table".to_string())
    })
    .await;
    // A look that ran out of time is cancelled on the server, so that the
    // connection is free for the next one: one connection, however long
    // the server stalls (a table lock, a stuck disk).
    if let (Err(_), Some(cancel)) = (&asked, cancel) {
        tokio::spawn(async move {
            let _ = cancel.cancel_query(NoTls).await;
        });
    }
    let bytes = match asked {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return Err(format!("the database does not answer: {e}")),
        Err(_) => return Err(format!("the database did not answer within {WATCH_WAIT:?}")),
    };
    Ok(u64::try_from(bytes)
        .ok()
        .filter(|bytes| *bytes >= max_bytes)
        .map(|bytes| {
            format!(
                "the events take {} MiB, at the cap of {} MiB",
                mib(bytes),
                mib(max_bytes)
            )
        }))
}

/// Looks every [`WATCH_EVERY`], until aborted with its pool.
async fn watch(
    config: tokio_postgres::Config,
    mut client: Option<tokio_postgres::Client>,
    max_bytes: u64,
    seen: Arc<Mutex<Seen>>,
) {
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let looked = look(&config, &mut client, max_bytes).await;
        seen.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .update(looked);
    }
}

impl Seen {
    /// What a look found: the size, or why the server did not answer (the
    /// size last seen is kept: the cap still applies meanwhile).
    fn update(&mut self, looked: Result<Option<String>, String>) {
        match looked {
            Ok(full) => {
                self.unreachable = None;
                self.full = full;
            }
            Err(why) => self.unreachable = Some(why),
        }
    }
}

impl Pool {
    fn build(url: &Url, size: u32) -> Result<deadpool_postgres::Pool, StoreError> {
        let manager = Manager::from_config(
            (*url.config).clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        deadpool_postgres::Pool::builder(manager)
            .max_size(usize::try_from(size.max(1)).unwrap_or(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| StoreError::refused(url, e.to_string()))
    }

    /// Connects, and creates the schema unless it is there.
    pub async fn open(url: &Url, size: u32, max_bytes: u64) -> Result<Self, StoreError> {
        let pool = Self::build(url, size)?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| StoreError::refused(url, format!("cannot connect: {}", pool_error(&e))))?;
        let err = at(url);
        let tx = client.transaction().await.map_err(&err)?;
        // A peer stuck holding the lock fails this start, it does not hang it.
        tx.batch_execute("SET LOCAL lock_timeout = '30s'")
            .await
            .map_err(&err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await
            .map_err(&err)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS devsy_schema (version BIGINT NOT NULL)")
            .await
            .map_err(&err)?;
        let found: Option<i64> = tx
            .query_one("SELECT max(version) FROM devsy_schema", &[])
            .await
            .map_err(&err)?
            .try_get(0)
            .map_err(&err)?;
        if let Some(version) = found.filter(|v| *v > SCHEMA_VERSION) {
            return Err(StoreError::refused(
                url,
                format!(
                    "schema version {version} is newer than this collector's ({SCHEMA_VERSION})"
                ),
            ));
        }
        tx.batch_execute(&sql::Dialect::Postgres.schema())
            .await
            .map_err(&err)?;
        tx.execute("DELETE FROM devsy_schema", &[])
            .await
            .map_err(&err)?;
        tx.execute(
            "INSERT INTO devsy_schema (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        drop(client);
        let config = (*url.config).clone();
        let mut client = None;
        let mut first = Seen::default();
        first.update(look(&config, &mut client, max_bytes).await);
        let seen = Arc::new(Mutex::new(first));
        let watcher = tokio::spawn(watch(config, client, max_bytes, Arc::clone(&seen)));
        Ok(Self {
            pool,
            url: url.clone(),
            failures: Mutex::new(RateLimited::new(Duration::from_secs(10))),
            seen,
            watcher,
        })
    }

    /// What the watcher saw last, at most a second ago.
    pub(super) fn seen(&self) -> Seen {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) async fn store(&self, rows: &[Row]) -> Result<Stored, Failure> {
        let result = self.insert(rows).await;
        if let Err(failure) = &result {
            self.failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .log(|n| format!("{failure} ({n} batches)"));
        }
        result
    }

    async fn insert(&self, rows: &[Row]) -> Result<Stored, Failure> {
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| Failure::Other(pool_error(&e)))?;
        let received = super::now_us();
        let stored = if rows.len() <= sql::ROWS_PER_INSERT {
            // One statement is its own transaction: one round trip to the
            // server instead of three (BEGIN, INSERT, COMMIT), which is
            // most of a batch's time once the server is a zone away.
            let plain: &tokio_postgres::Client = &client;
            insert_chunk(plain, rows, received).await?
        } else {
            let tx = client.transaction().await.map_err(|e| failure(&e))?;
            let mut stored = 0;
            let plain: &tokio_postgres::Transaction<'_> = &tx;
            for chunk in rows.chunks(sql::ROWS_PER_INSERT) {
                stored += insert_chunk(plain, chunk, received).await?;
            }
            tx.commit().await.map_err(|e| failure(&e))?;
            stored
        };
        // Answered only once the statement or the transaction returned:
        // committed on the server (its `synchronous_commit` decides how
        // durably).
        Ok(Stored {
            stored,
            duplicates: rows.len().saturating_sub(stored),
        })
    }

    pub(super) async fn prune(&self, before_us: u64) -> usize {
        let result = async {
            let client = self.pool.get().await.map_err(|e| pool_error(&e))?;
            let (before, chunk) = (sql::int(before_us), sql::int(PRUNE_CHUNK as u64));
            client
                .execute_typed(
                    sql::PRUNE,
                    &[
                        (&before as &(dyn ToSql + Sync), Type::INT8),
                        (&chunk, Type::INT8),
                    ],
                )
                .await
                .map_err(|e| describe(&e))
        }
        .await;
        match result {
            Ok(n) => usize::try_from(n).unwrap_or(usize::MAX),
            Err(e) => {
                crate::log::log(&format!("pruning failed: {e}"));
                0
            }
        }
    }

    pub(super) async fn reader(&self) -> Result<Reader, StoreError> {
        let client = self.pool.get().await.map_err(|e| {
            StoreError::refused(&self.url, format!("cannot connect: {}", pool_error(&e)))
        })?;
        Ok(Reader {
            client: Some(client),
            in_snapshot: false,
            handle: tokio::runtime::Handle::current(),
            runtime: None,
        })
    }
}

/// One multi-row insert of at most [`sql::ROWS_PER_INSERT`] rows; how many
/// were new. Sent with its parameters' types, in one round trip, as an
/// unnamed statement: no prepared statement per batch size piles up on the
/// server, and a pooler in transaction mode (pgbouncer) passes it through.
async fn insert_chunk(
    client: &impl tokio_postgres::GenericClient,
    rows: &[Row],
    received: i64,
) -> Result<usize, Failure> {
    let params: Vec<Param<'_>> = rows
        .iter()
        .flat_map(|row| sql::params(row, received))
        .collect();
    let typed: Vec<(&(dyn ToSql + Sync), Type)> = params.iter().map(typed).collect();
    let changed = client
        .execute_typed(&sql::insert(rows.len()), &typed)
        .await
        .map_err(|e| failure(&e))?;
    Ok(usize::try_from(changed).unwrap_or(usize::MAX))
}

fn failure(error: &tokio_postgres::Error) -> Failure {
    let text = describe(error);
    match error.code() {
        Some(code) if *code == tokio_postgres::error::SqlState::DISK_FULL => Failure::Full(text),
        _ => Failure::Other(text),
    }
}

/// A connection the report's queries run on, from blocking code: the
/// dashboard's `spawn_blocking`, or `report`'s own runtime.
pub struct Reader {
    /// `None` only once dropped.
    client: Option<Object>,
    /// Inside a snapshot not yet ended: if dropped so (a panic, a failed
    /// `ROLLBACK`), the connection is closed, not returned to the pool
    /// inside a read-only transaction.
    in_snapshot: bool,
    handle: tokio::runtime::Handle,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Reader {
    /// For `report`: a runtime of its own and one connection, on a
    /// database that holds this build's schema.
    pub fn standalone(url: &Url) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| StoreError::refused(url, e.to_string()))?;
        let pool = {
            let _entered = runtime.enter();
            Pool::build(url, 1)?
        };
        let client = runtime
            .block_on(pool.get())
            .map_err(|e| StoreError::refused(url, format!("cannot connect: {}", pool_error(&e))))?;
        let version =
            runtime.block_on(client.query_typed("SELECT max(version) FROM devsy_schema", &[]));
        let found: Option<i64> = match version {
            Ok(rows) => match rows
                .first()
                .map(|r| r.try_get::<_, Option<i64>>(0))
                .transpose()
            {
                Ok(version) => version.flatten(),
                Err(e) => return Err(at(url)(e)),
            },
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => None,
            Err(e) => return Err(at(url)(e)),
        };
        if found != Some(SCHEMA_VERSION) {
            let found = found.map_or_else(|| "none".to_string(), |v| v.to_string());
            return Err(StoreError::refused(
                url,
                format!(
                    "not a devsy-collector database of schema {SCHEMA_VERSION} (found {found})"
                ),
            ));
        }
        Ok(Self {
            client: Some(client),
            in_snapshot: false,
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    fn connection(&self) -> Result<&tokio_postgres::Client, QueryError> {
        match &self.client {
            Some(client) => Ok(client),
            None => Err(Shape("the connection is gone".into()).into()),
        }
    }

    /// Starts the snapshot [`super::Reader::snapshot`] reads from; a query
    /// in it that runs past 30 s is cancelled by the server.
    pub(super) fn begin(&mut self) -> Result<(), QueryError> {
        self.in_snapshot = true;
        let client = self.connection()?;
        self.handle
            .block_on(client.batch_execute(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                 SET LOCAL statement_timeout = '30s'",
            ))
            .map_err(QueryError::Postgres)
    }

    /// Ends it, so that the connection goes back to the pool outside any
    /// transaction.
    pub(super) fn end(&mut self) -> Result<(), QueryError> {
        let client = self.connection()?;
        self.handle
            .block_on(client.batch_execute("ROLLBACK"))
            .map_err(QueryError::Postgres)?;
        self.in_snapshot = false;
        Ok(())
    }

    pub(super) fn each(
        &mut self,
        text: &str,
        params: &[i64],
        row: &mut dyn FnMut(Cells) -> Result<(), Shape>,
    ) -> Result<(), QueryError> {
        let params: Vec<(&(dyn ToSql + Sync), Type)> = params
            .iter()
            .map(|p| (p as &(dyn ToSql + Sync), Type::INT8))
            .collect();
        let client = self.connection()?;
        // Typed and unnamed, as the inserts: one round trip, no statement
        // left on the server.
        let rows = self
            .handle
            .block_on(client.query_typed(text, &params))
            .map_err(QueryError::Postgres)?;
        for found in rows {
            let mut cells = Vec::with_capacity(found.len());
            for (i, column) in found.columns().iter().enumerate() {
                let cell = match *column.type_() {
                    Type::INT8 => found.try_get::<_, Option<i64>>(i).map(|v| v.map(Cell::Int)),
                    Type::INT4 => found
                        .try_get::<_, Option<i32>>(i)
                        .map(|v| v.map(|n| Cell::Int(i64::from(n)))),
                    Type::TEXT | Type::VARCHAR => found
                        .try_get::<_, Option<String>>(i)
                        .map(|v| v.map(Cell::Text)),
                    ref other => {
                        return Err(Shape(format!("column {i} is of type {other}")).into());
                    }
                }
                .map_err(QueryError::Postgres)?;
                cells.push(cell.unwrap_or(Cell::Null));
            }
            row(Cells(cells))?;
        }
        Ok(())
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && self.in_snapshot
        {
            // Out of the pool: closing it ends the transaction.
            drop(Object::take(client));
        }
        // `report`'s own runtime, stopped without waiting for the
        // connection's task, which it drops; a pooled client went back to
        // the pool above, which outlives it.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
