//! `serve`: the HTTP side. `POST /v1/insert` checks a batch in full, hands
//! it to the store and answers only once it is committed; `GET /healthz`
//! says whether the collector can store. With a dashboard, its routes are
//! served on a listener of their own (`dashboard`). SIGINT and SIGTERM stop
//! taking connections and finish the requests in flight, for a bounded
//! time, before the process exits. How connections are accepted, capped
//! and timed out is `listener`'s.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use http_body_util::LengthLimitError;
use tokio::sync::Semaphore;

use crate::dashboard;
use crate::ingest::{self, MAX_BODY};
use crate::listener::{self, Limits};
use crate::log::log;
use crate::quota::{PerClient, Quota, Rate};
use crate::respond::{answer, problem};
use crate::store::{self, Database, Failure, Settings, Store};

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub db: Database,
    /// How the database is opened: durability, size cap, disk floor, pool.
    pub store: Settings,
    pub limits: Limits,
    /// Request bodies held in memory at once, in bytes, across all
    /// connections; a request that would pass it is answered 503. At
    /// least one largest body ([`MAX_BODY`]).
    pub body_budget: usize,
    /// Per client address: requests, and events, per second.
    pub requests: Rate,
    pub events: Rate,
    /// Events recorded longer ago are deleted in the background; `None`:
    /// kept forever.
    pub retain: Option<Duration>,
    /// The dashboard's own address and token; `None`: no dashboard.
    pub dashboard: Option<dashboard::Options>,
}

/// Connections the dashboard takes at once.
const BOARD_CONNECTIONS: usize = 64;

/// After the shutdown grace, how long a dashboard query may still run.
const DASHBOARD_QUERY_GRACE: Duration = Duration::from_secs(1);

/// How often retention runs, besides at start.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The default of [`Options::body_budget`]: 64 bodies of the largest size.
pub const DEFAULT_BODY_BUDGET: usize = 64 * MAX_BODY;

/// The longest a request waits for its batch to be committed.
const STORE_ANSWER: Duration = Duration::from_secs(30);

/// How long a client asked to wait for memory should wait (`Retry-After`).
const RETRY_AFTER_BUSY: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct App {
    store: Arc<Store>,
    quota: Arc<Quota>,
    stored: Arc<AtomicU64>,
    /// The body budget, in KiB (a semaphore counts in `u32`).
    budget: Arc<Semaphore>,
    /// What of the budget each address holds, at most a sixteenth of it.
    shares: Arc<PerClient>,
    body_deadline: Duration,
}

/// `application/json`, with or without parameters such as `charset`.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

async fn insert(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !is_json(&headers) {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected Content-Type: application/json",
        );
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    // Memory for the body is reserved before it is read: a flood of slow
    // uploads waits for none of it, it is told to come back.
    let reserve = declared.map_or(MAX_BODY, |n| usize::try_from(n).unwrap_or(MAX_BODY));
    let kib = u32::try_from(reserve.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .max(1);
    // One address holds at most its share, so a few that stall uploads
    // cannot spend the whole budget on the others.
    let Some(share) = PerClient::take(&app.shares, peer.ip(), u64::from(kib)) else {
        return retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            RETRY_AFTER_BUSY,
            "too many request bodies in memory from this address; try again",
        );
    };
    let Ok(budget) = Arc::clone(&app.budget).try_acquire_many_owned(kib) else {
        return retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            RETRY_AFTER_BUSY,
            "too many request bodies in memory; try again",
        );
    };
    // Never more than was reserved, whatever the framing says.
    let read = tokio::time::timeout(app.body_deadline, to_bytes(body, reserve.min(MAX_BODY))).await;
    let Ok(read) = read else {
        let mut response = problem(
            StatusCode::REQUEST_TIMEOUT,
            &format!("the body did not arrive within {:?}", app.body_deadline),
        );
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    };
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(error) => {
            // Nothing is stored either way.
            let error = error.into_inner();
            if error.is::<LengthLimitError>() {
                // No or a false Content-Length: found out while reading.
                return too_large();
            }
            return problem(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {error}"),
            );
        }
    };
    let rows = match ingest::validate(&bytes, SystemTime::now()) {
        Ok(rows) => rows,
        Err(rejection) => return answer(StatusCode::BAD_REQUEST, &rejection),
    };
    // The rows own their strings; the reservation now covers them, until
    // the store is done with them.
    drop(bytes);
    let reserved: store::Reserved = Box::new((share, budget));
    if rows.is_empty() {
        return answer(
            StatusCode::OK,
            &store::Stored {
                stored: 0,
                duplicates: 0,
            },
        );
    }
    if let Err(wait) = app.quota.events(peer.ip(), rows.len(), Instant::now()) {
        return retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            wait,
            "too many events from this address; try again later",
        );
    }
    if let Some(problem) = app.store.no_room() {
        return self::problem(StatusCode::INSUFFICIENT_STORAGE, &problem);
    }
    // A database that does not answer (a stuck disk, a lost server) does
    // not hold the client forever; what it commits later is stored once
    // all the same. An insert the client stopped waiting for goes on in a
    // task of its own: its rows, its reservation and its connection last
    // exactly as long as it does. (Spawned only then, so that an answered
    // request pays no hand-off between tasks.)
    let store = Arc::clone(&app.store);
    let mut insert = Box::pin(async move { store.store(rows, reserved).await });
    let Ok(done) = tokio::time::timeout(STORE_ANSWER, &mut insert).await else {
        tokio::spawn(insert);
        return retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            RETRY_AFTER_BUSY,
            "the database did not answer in time; try again",
        );
    };
    match done {
        Ok(stored) => {
            app.stored
                .fetch_add(stored.stored as u64, Ordering::Relaxed);
            answer(StatusCode::OK, &stored)
        }
        Err(Failure::Full(_)) => problem(
            StatusCode::INSUFFICIENT_STORAGE,
            "the collector's database is full; the batch was not stored",
        ),
        // Not stored: the client keeps the batch and tries again.
        Err(Failure::Other(_)) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the batch could not be stored; try again",
        ),
    }
}

/// Deletes, now and every [`PRUNE_EVERY`], the events recorded more than
/// `retain` ago, a chunk at a time, so ingest never waits for a long
/// delete. Ends when the store is gone.
async fn retention(store: Arc<Store>, retain: Duration) {
    loop {
        let before_us = SystemTime::now()
            .checked_sub(retain)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        // Bounded: each chunk deletes events, and there were finitely many.
        loop {
            match store.prune(before_us).await {
                Some(n) if n == store::PRUNE_CHUNK => {}
                Some(_) => break,
                None => return,
            }
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

/// Into how many shares the body budget is cut per address: one address
/// holds at most one (and always room for one largest body).
const SHARES: u64 = 16;

/// `status` with `Retry-After` in whole seconds, which the runtime honours.
fn retry_later(status: StatusCode, after: Duration, error: &str) -> Response {
    let mut response = problem(status, error);
    let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn too_large() -> Response {
    problem(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the body is over {MAX_BODY} bytes"),
    )
}

async fn healthz(State(app): State<App>) -> Response {
    let problem = match app.store.health() {
        Some(problem) => Some(problem),
        None => app.store.no_room(),
    };
    match problem {
        None => answer(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        Some(reason) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "status": "unavailable", "reason": reason }),
        ),
    }
}

async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "no such path: POST /v1/insert, GET /healthz",
    )
}

async fn method_not_allowed() -> Response {
    problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: POST /v1/insert, GET /healthz",
    )
}

/// Every request, whatever its route (`/healthz` and a 404 too), is
/// charged to its address's rate.
async fn rate_limited(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Err(wait) = app.quota.request(peer.ip(), Instant::now()) {
        return retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            wait,
            "too many requests from this address; try again later",
        );
    }
    next.run(request).await
}

fn router(app: App) -> Router {
    Router::new()
        .route("/v1/insert", post(insert))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            rate_limited,
        ))
        .with_state(app)
}

/// What a finished `serve` did.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Events stored during this run.
    pub stored: u64,
}

/// Where a started collector listens.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    /// `POST /v1/insert` and `GET /healthz`, nothing else.
    pub ingest: SocketAddr,
    /// The dashboard, when asked for.
    pub dashboard: Option<SocketAddr>,
}

/// Serves until the future that `shutdown` makes resolves, then finishes the
/// requests in flight, lets the store commit what it was given, and
/// returns. `shutdown` is called inside the runtime before `ready`, so that
/// signal handlers are in place before anyone learns the addresses; `ready`
/// gets the bound addresses (useful with port 0).
pub fn serve<F>(
    options: &Options,
    ready: impl FnOnce(Addresses),
    shutdown: impl FnOnce() -> F,
) -> Result<Summary, Box<dyn std::error::Error>>
where
    F: Future<Output = ()> + Send + 'static,
{
    let open_files = listener::raise_open_files();
    let mut limits = options.limits.clone();
    let cap = listener::cap_for(open_files, limits.max_connections);
    if cap < limits.max_connections {
        log(&format!(
            "at most {cap} connections, not {}: the open-file limit is {open_files}",
            limits.max_connections
        ));
        limits.max_connections = cap;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .enable_time()
        .thread_name("collector-http")
        .build()?;
    let (store, mut background) = runtime.block_on(Store::open(&options.db, &options.store))?;
    let store = Arc::new(store);
    let bind = |address: SocketAddr| {
        runtime
            .block_on(tokio::net::TcpListener::bind(address))
            .map_err(|e| format!("cannot listen on {address}: {e}"))
    };
    let tcp = bind(options.listen)?;
    let board = match &options.dashboard {
        Some(board) => {
            // Tried where it is bound, not probed before: nothing can take
            // the port in between.
            let listener = match bind(board.listen) {
                Err(_) if board.any_port_if_taken => bind(SocketAddr::new(board.listen.ip(), 0)),
                bound => bound,
            }?;
            Some((listener, board))
        }
        None => None,
    };
    let addresses = Addresses {
        ingest: tcp.local_addr()?,
        dashboard: match &board {
            Some((tcp, _)) => Some(tcp.local_addr()?),
            None => None,
        },
    };
    let stored = Arc::new(AtomicU64::new(0));
    // At least one largest body: a body without a length reserves that
    // much, and a smaller budget could never grant it.
    let budget_kib =
        u32::try_from(options.body_budget.max(MAX_BODY).div_ceil(1024)).unwrap_or(u32::MAX);
    if let Some(retain) = options.retain {
        runtime.spawn(retention(Arc::clone(&store), retain));
    }
    let app = router(App {
        store: Arc::clone(&store),
        quota: Arc::new(Quota::new(options.requests, options.events)),
        stored: Arc::clone(&stored),
        budget: Arc::new(Semaphore::new(budget_kib as usize)),
        shares: Arc::new(PerClient::new(
            (u64::from(budget_kib) / SHARES).max(MAX_BODY.div_ceil(1024) as u64),
        )),
        body_deadline: limits.body_deadline,
    });
    let board = board.map(|(tcp, board)| (tcp, dashboard::router(Arc::clone(&store), board)));
    // The dashboard is for a few people: its own, small connection caps.
    let board_limits = Limits {
        max_connections: limits.max_connections.min(BOARD_CONNECTIONS),
        max_per_address: limits.max_per_address.min(BOARD_CONNECTIONS / 4),
        ..limits.clone()
    };
    drop(store);
    let signalled = {
        let _runtime = runtime.enter();
        shutdown()
    };
    ready(addresses);
    let store_stopped = runtime.block_on(async {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let until_stopped = |mut stopping: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let mut gone = false;
        let watch = async {
            tokio::select! {
                () = signalled => {}
                () = background.stopped() => gone = true,
            }
            let _ = stop.send(true);
        };
        let ingest = listener::serve(tcp, app, &limits, until_stopped(stopping.clone()));
        let board = async {
            if let Some((tcp, router)) = board {
                listener::serve(tcp, router, &board_limits, until_stopped(stopping.clone())).await;
            }
        };
        tokio::join!(watch, ingest, board);
        gone
    });
    // Every connection is closed (the grace is spent) and the routers, with
    // the store, are gone: SQLite's writer drains what it was given and
    // stops. A dashboard query still running gets a second at most.
    runtime.shutdown_timeout(DASHBOARD_QUERY_GRACE);
    if !background.join() || store_stopped {
        return Err("the database writer stopped; what it acknowledged is stored".into());
    }
    Ok(Summary {
        stored: stored.load(Ordering::Relaxed),
    })
}

/// Watches for SIGINT and SIGTERM from now on (call it inside the
/// runtime); the future resolves on the first of them.
#[cfg(unix)]
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};

    let watched = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    async move {
        let (Ok(mut interrupt), Ok(mut terminate)) = watched else {
            log("cannot watch for signals; stop it with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        log("stopping: finishing the requests in flight");
    }
}

/// Resolves on the first Ctrl-C.
#[cfg(not(unix))]
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            log("cannot watch for Ctrl-C");
            return std::future::pending().await;
        }
        log("stopping: finishing the requests in flight");
    }
}
