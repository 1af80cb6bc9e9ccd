//! How a batch leaves the process: the [`Transport`] trait, the default
//! [`HttpTransport`], and the [`RecordingTransport`] for tests.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Delivers one request body, `{"data": [...]}`, to the backend.
///
/// Called only on the worker thread, one batch at a time. An implementation
/// must return within `timeout` (or soon after): the exit budget depends on it.
///
/// ```
/// use std::time::Duration;
/// use devsy_telemetry_runtime::{Transport, TransportError};
///
/// /// Appends each body to a log file instead of posting it.
/// struct LogFile(std::path::PathBuf);
///
/// impl Transport for LogFile {
///     fn send(&self, body: &[u8], _timeout: Duration) -> Result<(), TransportError> {
///         use std::io::Write as _;
///         let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.0)
///             .map_err(|e| TransportError::Io(e.to_string()))?;
///         file.write_all(body).and_then(|()| file.write_all(b"\n"))
///             .map_err(|e| TransportError::Io(e.to_string()))
///     }
/// }
/// ```
pub trait Transport: Send + Sync + 'static {
    /// Sends `body` (JSON, `{"data": [...]}`); `Ok` means the backend
    /// acknowledged it.
    ///
    /// # Errors
    ///
    /// Any [`TransportError`]: the events of the batch are counted as failed.
    fn send(&self, body: &[u8], timeout: Duration) -> Result<(), TransportError>;

    /// Called on the worker thread when the process records its first
    /// event, before the first batch's window ends (and never when nothing
    /// is recorded): a chance to open the connection the first request will
    /// use, so that it pays no handshake. Spend at most `timeout`. The
    /// default does nothing.
    fn prepare(&self, timeout: Duration) {
        let _ = timeout;
    }
}

/// Why a batch was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// The backend answered with a status other than 2xx.
    Status {
        /// The HTTP status code.
        code: u16,
        /// The `Retry-After` header, as sent.
        retry_after: Option<String>,
    },
    /// No connection could be made (refused, unreachable, DNS, proxy).
    Connect(String),
    /// The request did not complete in time.
    Timeout,
    /// Reading or writing failed after connecting, or a local I/O error.
    Io(String),
    /// The request could not be built (bad URL, TLS setup).
    Config(String),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status { code, .. } => write!(f, "server answered {code}"),
            Self::Connect(reason) => write!(f, "cannot connect: {reason}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Io(reason) => write!(f, "i/o error: {reason}"),
            Self::Config(reason) => write!(f, "bad request configuration: {reason}"),
        }
    }
}

impl std::error::Error for TransportError {}

/// The size of each of the HTTP connection's two buffers.
const BUFFER: usize = 16 * 1024;

/// The `User-Agent` of every request: this library and its version.
pub const USER_AGENT: &str = concat!("devsy-telemetry/", env!("CARGO_PKG_VERSION"));

/// Posts batches over HTTP(S) with `ureq`, honouring `HTTPS_PROXY`,
/// `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` from the process environment.
/// [`prepare`](Transport::prepare) opens the first request's TCP connection
/// ahead (not through a proxy; over `https` the TLS handshake stays with
/// the request).
///
/// ```
/// use devsy_telemetry_runtime::HttpTransport;
///
/// let transport = HttpTransport::new("https://telemetry.devsy.sh/v1/insert")?;
/// assert!(HttpTransport::new("telemetry.devsy.sh").is_err()); // no scheme
/// # Ok::<(), devsy_telemetry_runtime::TransportError>(())
/// ```
#[derive(Debug)]
pub struct HttpTransport {
    agent: ureq::Agent,
    endpoint: String,
    /// A connection opened ahead of the first request (see
    /// [`Transport::prepare`]); `None` when a proxy is in the way.
    opened: Option<preconnect::Slot>,
}

impl HttpTransport {
    /// A transport that posts to `endpoint`.
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] when `endpoint` is not an absolute `http`
    /// or `https` URL.
    pub fn new(endpoint: impl Into<String>) -> Result<Self, TransportError> {
        let endpoint = endpoint.into();
        let _origin = check_endpoint(&endpoint).map_err(TransportError::Config)?;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(USER_AGENT)
            // One backend, one connection at a time: keep at most one idle.
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            // ureq's default buffers are 128 KiB each, zeroed on first use:
            // in a short-lived CLI, faulting in and clearing them cost more
            // than the request. A batch streams through 16 KiB; an answer's
            // head fits in it.
            .input_buffer_size(BUFFER)
            .output_buffer_size(BUFFER)
            .max_response_header_size(BUFFER)
            .build();
        // Through a proxy the first connection goes to the proxy and says
        // CONNECT: not opened ahead.
        if config.proxy().is_some() {
            return Ok(Self {
                agent: ureq::Agent::new_with_config(config),
                endpoint,
                opened: None,
            });
        }
        let slot = preconnect::Slot::default();
        let agent = ureq::Agent::with_parts(
            config,
            preconnect::connector(slot.clone()),
            ureq::unversioned::resolver::DefaultResolver::default(),
        );
        Ok(Self {
            agent,
            endpoint,
            opened: Some(slot),
        })
    }
}

/// `Ok` for an absolute `http(s)` URL with a host, else why not.
pub(crate) fn check_endpoint(endpoint: &str) -> Result<String, String> {
    let uri: ureq::http::Uri = endpoint.parse().map_err(|e| format!("{e}"))?;
    let scheme = match uri.scheme_str() {
        Some(scheme @ ("http" | "https")) => scheme,
        Some(other) => return Err(format!("scheme '{other}' is not http or https")),
        None => return Err("not an absolute URL (expected http:// or https://)".into()),
    };
    let host = uri
        .host()
        .filter(|host| !host.is_empty())
        .ok_or("no host")?;
    // What may be shown of it: its path and query may hold a key, and its
    // user info a password.
    Ok(match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

impl Transport for HttpTransport {
    fn send(&self, body: &[u8], timeout: Duration) -> Result<(), TransportError> {
        let response = self
            .agent
            .post(&self.endpoint)
            .config()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout))
            .build()
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(from_ureq)?;
        let code = response.status().as_u16();
        if (200..300).contains(&code) {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Err(TransportError::Status { code, retry_after })
    }

    /// Resolves the endpoint's host and opens a TCP connection to it, for
    /// the first request. (Over `https` the TLS handshake still happens in
    /// that request.)
    fn prepare(&self, timeout: Duration) {
        if let Some(slot) = &self.opened {
            slot.open(&self.agent, &self.endpoint, timeout);
        }
    }
}

/// A connection opened before the first request needs it: ureq's
/// connector chain (`ureq::unversioned`, hence ureq is pinned) with one
/// link, before its TCP connector, that hands out the connection opened
/// ahead when it goes where the request goes. The connection is opened by
/// ureq's own TCP connector, so it behaves as any other.
mod preconnect {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
    use std::time::Duration;

    use ureq::unversioned::resolver::{DefaultResolver, Resolver as _};
    use ureq::unversioned::transport::{
        ConnectProxyConnector, ConnectionDetails, Connector, Either, NextTimeout, RustlsConnector,
        TcpConnector, Transport, time,
    };

    /// Where the connection opened ahead goes, and the connection, until a
    /// request takes it.
    type Opened = (Vec<SocketAddr>, Box<dyn Transport>);

    #[derive(Debug, Clone, Default)]
    pub(super) struct Slot(Arc<Mutex<Option<Opened>>>);

    impl Slot {
        /// Opens a connection to `endpoint`'s host with `agent`'s settings,
        /// unless one waits already. Failures are silent: the request then
        /// connects as usual, and reports them.
        pub(super) fn open(&self, agent: &ureq::Agent, endpoint: &str, timeout: Duration) {
            if self.lock().is_some() {
                return;
            }
            let Ok(uri) = endpoint.parse::<ureq::http::Uri>() else {
                return;
            };
            let config = agent.config();
            let resolver = DefaultResolver::default();
            let timeout = NextTimeout {
                after: timeout.into(),
                reason: ureq::Timeout::Connect,
                per_read: None,
                per_write: None,
            };
            // Resolved here, on the worker, without the thread ureq starts
            // for a lookup with a timeout: nothing else waits for it, and
            // the exit never does.
            let Ok(addrs) = resolver.resolve(&uri, config, NextTimeout::default()) else {
                return;
            };
            let details = ConnectionDetails {
                uri: &uri,
                addrs: addrs.clone(),
                config,
                request_level: false,
                resolver: &resolver,
                now: time::Instant::now(),
                timeout,
                current_time: Arc::new(time::Instant::now),
                // Only a CONNECT proxy runs the chain again; there is none.
                run_connector: Arc::new(|_| Err(ureq::Error::ConnectionFailed)),
                // The agent is never shut down.
                register_shutdown: Arc::new(|_| Ok(())),
            };
            if let Ok(Some(Either::B(tcp))) = TcpConnector::default().connect(&details, None::<()>)
            {
                *self.lock() = Some((addrs.to_vec(), Box::new(tcp)));
            }
        }

        /// The connection opened ahead, if it goes to `addrs`.
        fn take_for(&self, addrs: &[SocketAddr]) -> Option<Box<dyn Transport>> {
            let mut slot = self.lock();
            if slot.as_ref().is_some_and(|(to, _)| to == addrs) {
                slot.take().map(|(_, transport)| transport)
            } else {
                None
            }
        }

        fn lock(&self) -> MutexGuard<'_, Option<Opened>> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// The link that hands out the connection opened ahead.
    #[derive(Debug)]
    struct Ahead(Slot);

    impl<In: Transport> Connector<In> for Ahead {
        type Out = Either<In, Box<dyn Transport>>;

        fn connect(
            &self,
            details: &ConnectionDetails,
            chained: Option<In>,
        ) -> Result<Option<Self::Out>, ureq::Error> {
            if chained.is_some() {
                return Ok(chained.map(Either::A));
            }
            Ok(self.0.take_for(&details.addrs).map(Either::B))
        }
    }

    /// ureq's default chain for this transport's features (CONNECT proxy,
    /// TCP, rustls), with [`Ahead`] before TCP.
    pub(super) fn connector(slot: Slot) -> impl Connector {
        ().chain(ConnectProxyConnector::default())
            .chain(Ahead(slot))
            .chain(TcpConnector::default())
            .chain(RustlsConnector::default())
    }
}

fn from_ureq(error: ureq::Error) -> TransportError {
    match error {
        ureq::Error::Timeout(_) => TransportError::Timeout,
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::ConnectProxyFailed(_)
        | ureq::Error::InvalidProxyUrl => TransportError::Connect(error.to_string()),
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            TransportError::Connect(e.to_string())
        }
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => TransportError::Timeout,
        ureq::Error::Io(e) => TransportError::Io(e.to_string()),
        ureq::Error::BadUri(_) | ureq::Error::Http(_) | ureq::Error::RequireHttpsOnly(_) => {
            TransportError::Config(error.to_string())
        }
        other => TransportError::Io(other.to_string()),
    }
}

/// Keeps every body it is given, for tests. Clones share the same record.
///
/// ```
/// use devsy_telemetry_runtime::{RecordingTransport, Telemetry};
///
/// let recording = RecordingTransport::new();
/// let telemetry = Telemetry::builder("devsy")
///     .version("v1.0.0")
///     .env([("HOME", "/nonexistent")]) // not the process environment
///     .config_dir(tempfile::tempdir()?.path())
///     .transport(recording.clone())
///     .start();
/// telemetry.command("provider list").start().finish_ok();
/// drop(telemetry); // flushes
///
/// let events = recording.events();
/// assert_eq!(events.len(), 1);
/// assert_eq!(events[0]["event"]["properties"]["command"], "devsy provider list");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct RecordingTransport {
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RecordingTransport {
    /// An empty recording.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Every body sent so far, in order.
    #[must_use]
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every event sent so far, in order: the elements of each body's
    /// `data` array.
    #[must_use]
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.bodies()
            .iter()
            .filter_map(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
            .filter_map(
                |mut body| match body.get_mut("data").map(serde_json::Value::take) {
                    Some(serde_json::Value::Array(events)) => Some(events),
                    _ => None,
                },
            )
            .flatten()
            .collect()
    }
}

impl Transport for RecordingTransport {
    fn send(&self, body: &[u8], _timeout: Duration) -> Result<(), TransportError> {
        self.bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(body.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_absolute_http_urls() {
        assert_eq!(
            check_endpoint("https://telemetry.devsy.sh/v1/insert").as_deref(),
            Ok("https://telemetry.devsy.sh")
        );
        assert_eq!(
            check_endpoint("http://u:secret@127.0.0.1:8080/v1/insert?key=k").as_deref(),
            Ok("http://127.0.0.1:8080"),
            "the origin alone: no password, path or key"
        );
        for bad in [
            "",
            "telemetry.devsy.sh/v1",
            "ftp://host/x",
            "http://",
            "http://exa mple.com",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn recording_transport_splits_bodies_into_events() -> Result<(), TransportError> {
        let recording = RecordingTransport::new();
        recording.send(br#"{"data": [{"n": 1}, {"n": 2}]}"#, Duration::from_secs(1))?;
        recording.send(br#"{"data": [{"n": 3}]}"#, Duration::from_secs(1))?;
        let numbers: Vec<_> = recording.events().iter().map(|e| e["n"].as_u64()).collect();
        assert_eq!(numbers, [Some(1), Some(2), Some(3)]);
        Ok(())
    }
}
