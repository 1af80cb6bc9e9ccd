//! A real HTTP/1.1 server on 127.0.0.1 that can be scripted to misbehave:
//! delays, dripping, resets, garbage, endless bodies. Every wait is bounded
//! in time; every loop in count or time.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How a [`Server`] answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Reads the request and answers with this status.
    Status(u16),
    /// Accepts the connection, then never reads or answers (the request is
    /// not recorded).
    Hang,
    /// Reads the request, waits this long, then answers with the status.
    Delay(Duration, u16),
    /// Answers with the status and a [`DRIP_BODY`], one byte at a time with
    /// [`DRIP_PAUSE`] between bytes.
    Drip(u16),
    /// Reads the request, writes the start of a response head
    /// ([`RESET_PARTIAL`]), then resets the connection (RST, not FIN: it
    /// closes with the request still unread in the receive buffer).
    Reset,
    /// Reads the request and answers with the status and these extra
    /// headers (e.g. `Retry-After`); the server adds `content-length: 0`.
    StatusWith(u16, Vec<(String, String)>),
    /// Reads the request, answers with [`GARBAGE`] (not HTTP), closes.
    Garbage,
    /// Answers 200 with a declared [`ENORMOUS_LENGTH`]-byte body, streamed
    /// until the client stops reading, [`ENORMOUS_LIMIT`] bytes were
    /// written, or [`ENORMOUS_TIME`] passed; then closes.
    Enormous,
}

/// The pause between two bytes of a [`Mode::Drip`] response.
pub const DRIP_PAUSE: Duration = Duration::from_millis(20);
/// The body of a [`Mode::Drip`] response: 50 bytes.
pub const DRIP_BODY: &[u8] = b"{\"status\":\"ok\",\"note\":\"dripped a byte at a time.\"}";
/// What [`Mode::Reset`] writes before the reset: the start of a 200 head.
pub const RESET_PARTIAL: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-le";
/// What [`Mode::Garbage`] answers.
pub const GARBAGE: &[u8] = b"\x00\xff\xfe garbage, definitely not HTTP \x7f\r\n\r\n";
/// The body length a [`Mode::Enormous`] response declares: 256 MiB.
pub const ENORMOUS_LENGTH: u64 = 256 << 20;
/// The most body bytes a [`Mode::Enormous`] response writes: 64 MiB.
pub const ENORMOUS_LIMIT: usize = 64 << 20;
/// The longest a [`Mode::Enormous`] response is streamed.
pub const ENORMOUS_TIME: Duration = Duration::from_secs(10);

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A received request and the status the client was sent, once a whole
/// response head has been written.
struct Exchange {
    request: Request,
    answered: Option<u16>,
}

/// The modes still to play: the n-th request gets `modes[n]`, the last
/// repeating.
struct Script {
    modes: Vec<Mode>,
    next: usize,
}

struct State {
    connections: AtomicUsize,
    exchanges: Mutex<Vec<Exchange>>,
    script: Mutex<Script>,
    stop: AtomicBool,
}

impl State {
    /// The mode for the next request, counted across connections.
    fn next_mode(&self) -> Mode {
        let mut script = self.script.lock().unwrap_or_else(PoisonError::into_inner);
        let index = script.next.min(script.modes.len() - 1);
        script.next += 1;
        script.modes[index].clone()
    }

    fn record(&self, request: Request) -> usize {
        let mut exchanges = self
            .exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        exchanges.push(Exchange {
            request,
            answered: None,
        });
        exchanges.len() - 1
    }

    /// Notes the status of an answer about to be sent in full (so that it
    /// is noted by the time the client reads it), or `None` when sending
    /// it failed after all.
    fn answered(&self, index: usize, status: Option<u16>) {
        let mut exchanges = self
            .exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(exchange) = exchanges.get_mut(index) {
            exchange.answered = status;
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// A loopback HTTP server, stopped when dropped (within about 100 ms,
/// whatever it is doing).
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    acceptor: Option<JoinHandle<()>>,
}

/// The longest any connection is served or held.
const CONNECTION_LIMIT: Duration = Duration::from_secs(30);
/// How often a waiting connection checks whether the server stops.
const POLL: Duration = Duration::from_millis(20);
/// The most connections one server accepts.
const MAX_CONNECTIONS: usize = 10_000;
/// The largest request the server reads.
const MAX_REQUEST: usize = 16 << 20;

impl Server {
    /// Answers every request as `mode` says.
    pub fn start(mode: Mode) -> Self {
        Self::start_script(vec![mode])
    }

    /// Answers the n-th request (counted across connections, in the order
    /// they arrive in full) as `modes[n]` says; the last mode repeats.
    pub fn start_script(modes: Vec<Mode>) -> Self {
        assert!(!modes.is_empty(), "a script needs at least one mode");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            connections: AtomicUsize::new(0),
            exchanges: Mutex::new(Vec::new()),
            script: Mutex::new(Script { modes, next: 0 }),
            stop: AtomicBool::new(false),
        });
        let accept_state = Arc::clone(&state);
        let acceptor = thread::spawn(move || {
            let mut workers = Vec::new();
            for stream in listener.incoming().take(MAX_CONNECTIONS) {
                if accept_state.stopping() {
                    break;
                }
                let Ok(stream) = stream else { continue };
                accept_state.connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&accept_state);
                workers.push(thread::spawn(move || serve(&stream, &state)));
            }
            for worker in workers {
                let _ = worker.join();
            }
        });
        Self {
            addr,
            state,
            acceptor: Some(acceptor),
        }
    }

    /// From the next request on, answers every request as `mode` says
    /// (replacing what is left of the script).
    pub fn set_mode(&self, mode: Mode) {
        let mut script = self
            .state
            .script
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        script.modes = vec![mode];
        script.next = 0;
    }

    /// `http://127.0.0.1:<port>/v1/insert`
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1/insert", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Every request received in full, in order, however it was answered
    /// (all modes but [`Mode::Hang`] record theirs).
    pub fn requests(&self) -> Vec<Request> {
        self.state
            .exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|e| e.request.clone())
            .collect()
    }

    /// Every event received, in order: the elements of each POST body's `data`.
    pub fn events(&self) -> Vec<Value> {
        events_of(&self.requests())
    }

    /// The events of the requests answered with a 2xx whose response head
    /// was written in full: those the client can have seen acknowledged, as
    /// opposed to [`Server::events`], everything that arrived. (An answer is
    /// noted just before its head's last byte goes out, so a client that
    /// read it always finds it here.)
    pub fn delivered_events(&self) -> Vec<Value> {
        let delivered: Vec<Request> = self
            .state
            .exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|e| e.answered.is_some_and(|s| (200..300).contains(&s)))
            .map(|e| e.request.clone())
            .collect();
        events_of(&delivered)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Unblock `accept`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// `http://127.0.0.1:<port>/v1/insert` for a port nothing listens on (it
/// was free a moment ago): connecting is refused.
pub fn closed_port_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    format!("http://{addr}/v1/insert")
}

fn events_of(requests: &[Request]) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r.method == "POST")
        .flat_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).expect("request body is JSON");
            body["data"]
                .as_array()
                .cloned()
                .expect("body has a data array")
        })
        .collect()
}

/// Serves one connection: keep-alive requests, each as the script says,
/// bounded in count and time.
fn serve(stream: &TcpStream, state: &State) {
    let started = Instant::now();
    let deadline = started + CONNECTION_LIMIT;
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(POLL));
    for _ in 0..1000 {
        // Peeked, not read: until the mode is known, the request stays in
        // the socket's receive buffer.
        let Some((request, length)) = peek_request(stream, state, deadline) else {
            break;
        };
        let mode = state.next_mode();
        if mode == Mode::Hang {
            pause(state, deadline.saturating_duration_since(Instant::now()));
            return;
        }
        if mode != Mode::Reset {
            let mut consumed = vec![0; length];
            let mut reader = stream;
            if reader.read_exact(&mut consumed).is_err() {
                break;
            }
        }
        let index = state.record(request);
        match answer(stream, state, index, &mode, deadline) {
            After::KeepAlive => {}
            After::Close => break,
            // Dropping the stream with the request still unread in the
            // receive buffer makes the kernel send RST, not FIN.
            After::Reset => return,
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// What becomes of a connection after an answer.
enum After {
    KeepAlive,
    Close,
    Reset,
}

/// Answers one recorded request as `mode` says (any mode but `Hang`).
fn answer(
    stream: &TcpStream,
    state: &State,
    index: usize,
    mode: &Mode,
    deadline: Instant,
) -> After {
    let sent = |bytes: &[u8]| send(stream, bytes, state, deadline);
    let plain = |status: u16, headers: &[(String, String)], delay: Duration| {
        if !pause(state, delay) {
            return After::Close;
        }
        state.answered(index, Some(status));
        if !sent(response_head(status, headers, 0).as_bytes()) {
            state.answered(index, None);
            return After::Close;
        }
        After::KeepAlive
    };
    match mode {
        &Mode::Status(status) => plain(status, &[], Duration::ZERO),
        Mode::StatusWith(status, headers) => plain(*status, headers, Duration::ZERO),
        &Mode::Delay(delay, status) => plain(status, &[], delay),
        &Mode::Drip(status) => {
            let head = response_head(status, &[], DRIP_BODY.len() as u64);
            let response = [head.as_bytes(), DRIP_BODY].concat();
            for (i, byte) in response.iter().enumerate() {
                if i > 0 && !pause(state, DRIP_PAUSE) {
                    return After::Close;
                }
                if i + 1 == head.len() {
                    state.answered(index, Some(status));
                }
                if !sent(&[*byte]) {
                    if i + 1 == head.len() {
                        state.answered(index, None);
                    }
                    return After::Close;
                }
            }
            After::KeepAlive
        }
        Mode::Reset => {
            let _ = sent(RESET_PARTIAL);
            After::Reset
        }
        Mode::Garbage => {
            let _ = sent(GARBAGE);
            After::Close
        }
        Mode::Enormous => {
            enormous(stream, state, index);
            After::Close
        }
        Mode::Hang => After::Close,
    }
}

/// Streams a [`Mode::Enormous`] response, bounded in bytes and time.
fn enormous(stream: &TcpStream, state: &State, index: usize) {
    const CHUNK: usize = 64 << 10;
    let deadline = Instant::now() + ENORMOUS_TIME;
    state.answered(index, Some(200));
    if !send(
        stream,
        response_head(200, &[], ENORMOUS_LENGTH).as_bytes(),
        state,
        deadline,
    ) {
        state.answered(index, None);
        return;
    }
    let chunk = vec![b'x'; CHUNK];
    for _ in 0..ENORMOUS_LIMIT / CHUNK {
        if !send(stream, &chunk, state, deadline) {
            return;
        }
    }
}

fn response_head(status: u16, headers: &[(String, String)], length: u64) -> String {
    use std::fmt::Write as _;

    let reason = match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        s if s < 300 => "OK",
        _ => "Error",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let _ = write!(head, "content-length: {length}\r\n\r\n");
    head
}

/// Writes all of `bytes` unless the client goes, the server stops or the
/// deadline passes; whether it did.
fn send(stream: &TcpStream, bytes: &[u8], state: &State, deadline: Instant) -> bool {
    let mut writer = stream;
    let mut written = 0;
    // Each round writes something or waits `POLL`: bounded by the deadline.
    for _ in 0..1_000_000 {
        if written == bytes.len() {
            return true;
        }
        if state.stopping() || Instant::now() > deadline {
            return false;
        }
        match writer.write(&bytes[written..]) {
            Ok(0) => return false,
            Ok(n) => written += n,
            Err(e) if is_transient(&e) => {}
            Err(_) => return false,
        }
    }
    false
}

/// Waits `duration` in short steps; `false` if the server stops meanwhile.
fn pause(state: &State, duration: Duration) -> bool {
    let until = Instant::now() + duration;
    let steps = duration.as_millis() / 10 + 2;
    for _ in 0..steps {
        if state.stopping() {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        thread::sleep(left.min(Duration::from_millis(10)));
    }
    !state.stopping()
}

fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Waits, without consuming anything, until a whole request is in the
/// receive buffer; the request and its length in bytes. `None` when the
/// client closes, sends something that is not HTTP, or the server stops.
fn peek_request(stream: &TcpStream, state: &State, deadline: Instant) -> Option<(Request, usize)> {
    let mut buffer = vec![0; 64 << 10];
    // Each round waits up to `POLL` or 1 ms: bounded by the deadline.
    for _ in 0..1_000_000 {
        if state.stopping() || Instant::now() > deadline {
            return None;
        }
        match stream.peek(&mut buffer) {
            Ok(0) => return None,
            Ok(n) => match parse_request(&buffer[..n]) {
                Parse::Complete(request, length) => return Some((request, length)),
                Parse::Invalid => return None,
                Parse::Incomplete if n == buffer.len() => {
                    if buffer.len() >= MAX_REQUEST {
                        return None;
                    }
                    buffer.resize(buffer.len() * 2, 0);
                }
                Parse::Incomplete => thread::sleep(Duration::from_millis(1)),
            },
            Err(e) if is_transient(&e) => {}
            Err(_) => return None,
        }
    }
    None
}

enum Parse {
    Complete(Request, usize),
    Incomplete,
    Invalid,
}

/// A request at the start of `bytes`, with its length.
fn parse_request(bytes: &[u8]) -> Parse {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut head_end = None;
    for (i, byte) in bytes.iter().enumerate() {
        if *byte != b'\n' {
            continue;
        }
        let line = bytes[start..i]
            .strip_suffix(b"\r")
            .unwrap_or(&bytes[start..i]);
        start = i + 1;
        if line.is_empty() {
            head_end = Some(start);
            break;
        }
        lines.push(String::from_utf8_lossy(line).into_owned());
        if lines.len() > 101 {
            return Parse::Invalid;
        }
    }
    let Some(head_end) = head_end else {
        return Parse::Incomplete;
    };
    let mut parts = lines.first().map_or("", String::as_str).split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Parse::Invalid;
    };
    let mut headers = Vec::new();
    for line in lines.iter().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            return Parse::Invalid;
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let Some(end) = head_end
        .checked_add(length)
        .filter(|end| *end <= MAX_REQUEST)
    else {
        return Parse::Invalid;
    };
    if bytes.len() < end {
        return Parse::Incomplete;
    }
    let request = Request {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body: bytes[head_end..end].to_vec(),
    };
    Parse::Complete(request, end)
}
