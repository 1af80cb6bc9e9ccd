//! Accepting connections from the public internet: a cap on how many are
//! open, hyper's HTTP/1 connection with a timer (so its header read timeout,
//! which also closes an idle keep-alive connection, applies), and a graceful
//! shutdown that lasts at most a bound.
//!
//! `axum::serve` builds hyper's connection without a timer, so no header
//! timeout ever applied and a slowloris or an idle connection stayed open
//! forever; this serves through `hyper::server::conn::http1::Builder` with
//! `hyper_util::rt::TokioTimer` instead.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::log::{RateLimited, log};
use crate::quota::PerClient;

/// How long a client may take, and how many may be connected.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The whole request head must arrive within this, and an idle
    /// keep-alive connection is closed after it.
    pub header_timeout: Duration,
    /// The whole body must arrive within this after its head.
    pub body_deadline: Duration,
    /// Connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// Connections open at once from one address: one client cannot take
    /// the whole of `max_connections`.
    pub max_per_address: usize,
    /// After SIGTERM, how long requests in flight may take.
    pub shutdown_grace: Duration,
    /// The longest a connection lives: then it finishes its request and
    /// closes, so a client that keeps one alive with a request every few
    /// seconds gives its slot back.
    pub max_lifetime: Duration,
}

impl Limits {
    /// The defaults, which `serve`'s flags show too.
    pub const DEFAULT: Self = Self {
        header_timeout: Duration::from_secs(10),
        body_deadline: Duration::from_secs(20),
        max_connections: 1024,
        max_per_address: 64,
        shutdown_grace: Duration::from_secs(5),
        max_lifetime: Duration::from_secs(120),
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The read buffer of one connection: a head larger than this is refused
/// (hyper's least is 8 KiB; its default, 400 KiB, would let each idle
/// connection hold that much).
const MAX_HEAD: usize = 16 * 1024;

/// Serves `app` on `listener` until `shutdown` resolves; then stops
/// accepting, asks each connection to finish its request, and waits at
/// most `limits.shutdown_grace` before dropping those still open.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerClient::new(limits.max_per_address as u64));
    let (stop, stopping) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD)
        .keep_alive(true);
    let mut connections = JoinSet::new();
    let mut accept_errors = RateLimited::new(Duration::from_secs(10));
    let mut refused = RateLimited::new(Duration::from_secs(10));
    let mut refused_per_address = RateLimited::new(Duration::from_secs(10));
    let max_lifetime = limits.max_lifetime;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Reaps finished connections, so the set stays as large as the cap.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some(mine) = PerClient::take(&per_address, peer.ip(), 1) else {
                        refused_per_address.log(|n| format!(
                            "{n} connections refused: {} open from one address, its cap",
                            limits.max_per_address
                        ));
                        drop(stream);
                        continue;
                    };
                    let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
                        // Closed at once: a flood must not starve the clients
                        // already connected, nor queue behind them.
                        refused.log(|n| format!("{n} connections refused: {} open, the cap", limits.max_connections));
                        drop(stream);
                        continue;
                    };
                    let app = app.clone();
                    let http = http.clone();
                    let mut stopping = stopping.clone();
                    connections.spawn(async move {
                        let _permit = (permit, mine);
                        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                            request.extensions_mut().insert(ConnectInfo(peer));
                            app.clone().oneshot(request)
                        });
                        let connection = http.serve_connection(TokioIo::new(stream), service);
                        tokio::pin!(connection);
                        tokio::select! {
                            _ = connection.as_mut() => {}
                            _ = stopping.changed() => {
                                connection.as_mut().graceful_shutdown();
                                let _ = connection.await;
                            }
                            () = tokio::time::sleep(max_lifetime) => {
                                connection.as_mut().graceful_shutdown();
                                let _ = tokio::time::timeout(max_lifetime, connection).await;
                            }
                        }
                    });
                }
                Err(error) => {
                    // Out of descriptors (EMFILE) and the like: say so, and
                    // give the open connections a moment to end.
                    accept_errors.log(|n| format!("accepting a connection failed ({n} times): {error}"));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        log(&format!(
            "{} connections still open after {:?}: closed",
            connections.len(),
            limits.shutdown_grace
        ));
        connections.abort_all();
    }
}

/// Raises the open-file limit to its hard limit, where the OS allows it
/// (saying so where it does not), and returns the limit in force: each
/// connection holds a descriptor.
#[cfg(unix)]
pub fn raise_open_files() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        // An unlimited hard limit (macOS) cannot be the soft one: try a
        // large finite one, and keep the current limit if that fails too.
        let wanted = limit.maximum.unwrap_or(1 << 20).min(1 << 20);
        let raised = Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            log(&format!("cannot raise the open-file limit: {e}"));
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(1 << 20)
}

/// Elsewhere the limit is the OS's business.
#[cfg(not(unix))]
pub fn raise_open_files() -> u64 {
    u64::MAX
}

/// The connection cap that fits `open_files`: the database, the listener
/// and the runtime keep some descriptors.
pub fn cap_for(open_files: u64, wanted: usize) -> usize {
    const KEPT: u64 = 64;
    usize::try_from(open_files.saturating_sub(KEPT))
        .unwrap_or(usize::MAX)
        .min(Semaphore::MAX_PERMITS)
        .clamp(1, wanted.max(1))
}
