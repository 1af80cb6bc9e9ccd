//! The dashboard: one server-rendered page (`GET /`) and its figures as
//! JSON (`GET /api/report`, the same as `report --json`; `GET
//! /api/dashboard`, that and the series over time), on an address of its
//! own. The ingest address serves no read endpoint: whoever can post
//! cannot read.
//!
//! The page needs no JavaScript and loads nothing else: inline SVG and
//! CSS, a table behind each chart, every stored string escaped
//! (`page.rs`, `charts.rs`). With a token, every request must carry it, as
//! `Authorization: Bearer <token>` or, from a browser, as the password of
//! its Basic prompt.

mod charts;
mod page;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::report::{self, Report, series::Series};
use crate::respond::{pretty, problem};
use crate::store::{QueryError, Reader, Source, Store};

/// The default address: loopback, so that nothing is exposed by accident.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8788";

/// Where the dashboard listens, and the token it asks for.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    /// When `listen` is taken: any free port on its host instead (the
    /// demo's), or an error (`serve`'s: the address was asked for).
    pub any_port_if_taken: bool,
    /// `None`: no token asked (fit for loopback only; `serve` warns).
    pub token: Option<String>,
}

/// Commands drawn in "runs per day"; the rest are summed.
const DAILY_COMMANDS: usize = 6;
/// Versions drawn in "versions over time".
const DAILY_VERSIONS: usize = 6;
/// The most rows a table may be asked for.
const MAX_TOP: usize = 1_000;

/// Everything the page shows: `GET /api/dashboard`.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// The report, as `report --json` prints it for the same window.
    pub report: Report,
    /// Runs per day of the most run commands.
    pub runs_per_day: Series,
    /// Runs per day of each version.
    pub versions_per_day: Series,
}

/// Builds the figures from the store, for `since_us` on.
pub fn figures(
    db: &mut impl Source,
    since_us: Option<u64>,
    top: usize,
) -> Result<Figures, QueryError> {
    Ok(Figures {
        report: report::build(db, since_us, top)?,
        runs_per_day: report::series::daily(db, "command", since_us, DAILY_COMMANDS)?,
        versions_per_day: report::series::daily(db, "version", since_us, DAILY_VERSIONS)?,
    })
}

/// The query string every route takes: `?since=7d&top=20`.
#[derive(Debug, Default, Deserialize)]
struct Window {
    since: Option<String>,
    /// Read as text, so that a bad value gets this module's answer.
    top: Option<String>,
}

/// A window checked: when from, how many rows.
struct Checked {
    since_text: String,
    since_us: Option<u64>,
    top: usize,
}

impl Window {
    fn check(self) -> Result<Checked, String> {
        let text = self.since.unwrap_or_default();
        let text = text.trim();
        let since_us = if text.is_empty() || text == "all" {
            None
        } else {
            Some(report::parse_since(text, SystemTime::now())?)
        };
        let top = match self.top.as_deref().map(str::trim) {
            None | Some("") => report::DEFAULT_TOP,
            Some(text) => text
                .parse()
                .ok()
                .filter(|top| (1..=MAX_TOP).contains(top))
                .ok_or_else(|| {
                    format!("top is a number of rows from 1 to {MAX_TOP}, not '{text}'")
                })?,
        };
        Ok(Checked {
            since_text: text.to_string(),
            since_us,
            top,
        })
    }
}

#[derive(Clone)]
struct Board {
    store: Arc<Store>,
    /// The token's bytes; compared in constant time.
    token: Option<Arc<[u8]>>,
    /// Pages computed at once: a few reloads cannot take the connections
    /// ingest needs.
    loads: Arc<Semaphore>,
}

/// Pages computed at once, and how long one waits for its turn.
const LOADS: usize = 2;
const LOAD_WAIT: Duration = Duration::from_secs(30);

/// The dashboard's routes on `store`.
pub fn router(store: Arc<Store>, options: &Options) -> Router {
    let board = Board {
        store,
        token: options.token.as_deref().map(|t| Arc::from(t.as_bytes())),
        loads: Arc::new(Semaphore::new(LOADS)),
    };
    Router::new()
        .route("/", get(html))
        .route("/api/report", get(report_json))
        .route("/api/dashboard", get(dashboard_json))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            board.clone(),
            authorized,
        ))
        .layer(axum::middleware::map_response(hardened))
        .with_state(board)
}

/// Computes what a route shows (`compute`: the figures, or the report
/// alone) for the window, off the async threads (the queries block).
async fn load<T: Send + 'static>(
    board: &Board,
    window: &Checked,
    compute: fn(&mut Reader, Option<u64>, usize) -> Result<T, QueryError>,
) -> Result<T, String> {
    let busy = || "the dashboard is busy; try again".to_string();
    let turn = tokio::time::timeout(LOAD_WAIT, Arc::clone(&board.loads).acquire_owned())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    let mut reader = board.store.reader().await.map_err(|e| e.to_string())?;
    let (since, top) = (window.since_us, window.top);
    // The turn is held by the queries, not by the request: a client that
    // goes away does not free it while they still run.
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        reader.snapshot(|r| compute(r, since, top))
    })
    .await
    .map_err(|_| "the figures could not be computed".to_string())?
    .map_err(|e| e.to_string())
}

async fn html(State(board): State<Board>, Query(window): Query<Window>) -> Response {
    let window = match window.check() {
        Ok(window) => window,
        Err(error) => return page_error(StatusCode::BAD_REQUEST, &error),
    };
    match load(&board, &window, figures).await {
        Ok(figures) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            page::render(&figures, &window.since_text),
        )
            .into_response(),
        Err(error) => page_error(StatusCode::SERVICE_UNAVAILABLE, &error),
    }
}

/// Only the report's queries: the charts' are not run for it.
async fn report_json(State(board): State<Board>, Query(window): Query<Window>) -> Response {
    json_of(&board, window, report::build).await
}

async fn dashboard_json(State(board): State<Board>, Query(window): Query<Window>) -> Response {
    json_of(&board, window, figures).await
}

async fn json_of<T: Serialize + Send + 'static>(
    board: &Board,
    window: Window,
    compute: fn(&mut Reader, Option<u64>, usize) -> Result<T, QueryError>,
) -> Response {
    let window = match window.check() {
        Ok(window) => window,
        Err(error) => return problem(StatusCode::BAD_REQUEST, &error),
    };
    match load(board, &window, compute).await {
        Ok(value) => pretty(StatusCode::OK, &value),
        Err(error) => problem(StatusCode::SERVICE_UNAVAILABLE, &error),
    }
}

fn page_error(status: StatusCode, error: &str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        page::error(status, error),
    )
        .into_response()
}

async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "no such page: GET /, /api/report, /api/dashboard",
    )
}

/// With a token, a request without it is answered 401, asking a browser
/// for it (Basic: any user name, the token as password).
async fn authorized(
    State(board): State<Board>,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(token) = &board.token else {
        // Without a token the dashboard is on loopback; a page elsewhere
        // that rebinds its name to 127.0.0.1 still sends its own Host.
        if is_loopback_host(&headers) {
            return next.run(request).await;
        }
        return problem(
            StatusCode::FORBIDDEN,
            "without a token this dashboard answers only to a loopback Host \
             (localhost, 127.0.0.1, [::1])",
        );
    };
    if carries(&headers, token) {
        return next.run(request).await;
    }
    let mut response = problem(
        StatusCode::UNAUTHORIZED,
        "this dashboard asks for its token: Authorization: Bearer <token>",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"devsy-collector dashboard\", charset=\"UTF-8\""),
    );
    response
}

/// Whether the request's `Host` names this machine's loopback.
fn is_loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether the request's `Authorization` holds `token`.
fn carries(headers: &HeaderMap, token: &[u8]) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return same(credentials.as_bytes(), token);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
            return false;
        };
        // `user:password`; the user name is not checked.
        let password = decoded
            .iter()
            .position(|b| *b == b':')
            .map_or(&[][..], |at| &decoded[at + 1..]);
        return same(password, token);
    }
    false
}

/// Compares in time that depends on the lengths only, so that a guess
/// cannot be improved a byte at a time.
fn same(given: &[u8], token: &[u8]) -> bool {
    given.len() == token.len()
        && given
            .iter()
            .zip(token)
            .fold(0_u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

/// Headers on every answer: no script may run and nothing may be loaded,
/// even if a stored string slipped past the escaping; nothing cached.
async fn hardened(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_taken_as_bearer_or_as_a_basic_password() {
        let mut headers = HeaderMap::new();
        let token = b"s3cret";
        assert!(!carries(&headers, token));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(carries(&headers, token));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cre"),
        );
        assert!(!carries(&headers, token));
        // "me:s3cret"
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic bWU6czNjcmV0"),
        );
        assert!(carries(&headers, token));
        // "me:wrong!"
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic bWU6d3Jvbmch"),
        );
        assert!(!carries(&headers, token));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic %%%"));
        assert!(!carries(&headers, token));
    }

    #[test]
    fn only_a_loopback_host_is_answered_without_a_token() {
        let host = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_static(value));
            is_loopback_host(&headers)
        };
        for good in [
            "localhost:8788",
            "LOCALHOST",
            "127.0.0.1:8788",
            "127.0.0.2",
            "[::1]:8788",
        ] {
            assert!(host(good), "{good}");
        }
        for bad in [
            "evil.example:8788",
            "10.0.0.5:8788",
            "[2001:db8::1]:80",
            "localhost.evil",
        ] {
            assert!(!host(bad), "{bad}");
        }
        assert!(!is_loopback_host(&HeaderMap::new()));
    }

    #[test]
    fn a_window_is_checked() {
        let window = |since: &str, top: Option<&str>| Window {
            since: Some(since.into()),
            top: top.map(String::from),
        };
        assert!(window("", None).check().is_ok_and(|w| w.since_us.is_none()));
        assert!(window("all", Some("5")).check().is_ok_and(|w| w.top == 5));
        assert!(
            window("7d", None)
                .check()
                .is_ok_and(|w| w.since_us.is_some())
        );
        let error = window("yesterday", None).check().err().unwrap_or_default();
        assert!(error.contains("is not a date"), "{error}");
        assert!(window("7d", Some("0")).check().is_err());
        let error = window("7d", Some("x")).check().err().unwrap_or_default();
        assert!(error.contains("not 'x'"), "{error}");
        assert!(window("7d", Some("1001")).check().is_err());
    }
}
