//! The fault-injection test server itself (`support::Server`), checked with
//! a raw `TcpStream` client: each `Mode` answers as documented, scripts play
//! in order, `set_mode` takes effect, requests are recorded however they
//! were answered, and dropping the server is prompt whatever it is doing.
//!
//! Durations checked here are lower bounds on scripted waits, or generous
//! upper bounds on shutdown, never speed measurements.

use crate::support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::fault_server::{
    DRIP_BODY, DRIP_PAUSE, ENORMOUS_LENGTH, GARBAGE, Mode, RESET_PARTIAL, Server,
};
use serde_json::{Value, json};

/// How long the client waits for any one read or write.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// The address of an `http://127.0.0.1:<port>/…` endpoint.
fn addr_of(endpoint: &str) -> SocketAddr {
    endpoint
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .expect("an http:// endpoint")
        .parse()
        .expect("a socket address")
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr_of(&server.endpoint()), CLIENT_TIMEOUT)
        .expect("connect to the test server");
    stream
        .set_read_timeout(Some(CLIENT_TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(CLIENT_TIMEOUT))
        .expect("write timeout");
    stream
}

/// Sends a small POST whose body's `data` is `[{"n": n}]`.
fn post(stream: &mut TcpStream, n: u64) {
    let body = json!({ "data": [{ "n": n }] }).to_string();
    let request = format!(
        "POST /v1/insert HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
}

/// A response head, and what was read past it.
struct Head {
    status: u16,
    /// Names lower-cased.
    headers: Vec<(String, String)>,
    rest: Vec<u8>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> u64 {
        self.header("content-length")
            .expect("a content-length")
            .parse()
            .expect("a number")
    }
}

fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// Reads until a whole response head arrived (bounded in reads).
fn read_head(stream: &mut TcpStream) -> Head {
    let mut bytes = Vec::new();
    let mut buffer = [0; 4096];
    for _ in 0..1000 {
        if let Some(end) = head_end(&bytes) {
            return parse_head(&bytes[..end], bytes[end..].to_vec());
        }
        let n = stream.read(&mut buffer).expect("read the response");
        assert!(n > 0, "connection closed mid-head after {bytes:?}");
        bytes.extend_from_slice(&buffer[..n]);
    }
    panic!("no response head in 1000 reads");
}

fn parse_head(head: &[u8], rest: Vec<u8>) -> Head {
    let text = std::str::from_utf8(head).expect("a UTF-8 head");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let mut parts = status_line.split(' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status = parts.next().and_then(|s| s.parse().ok()).expect("a status");
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, value) = l.split_once(':').expect("name: value");
            (name.trim().to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    Head {
        status,
        headers,
        rest,
    }
}

/// A whole response with an empty body.
fn read_empty_response(stream: &mut TcpStream) -> Head {
    let head = read_head(stream);
    assert_eq!(head.content_length(), 0);
    assert!(
        head.rest.is_empty(),
        "bytes past the response: {:?}",
        head.rest
    );
    head
}

/// Everything until the end of the stream or an error: the bytes, the
/// error, and how many reads returned data. Bounded in reads and time.
fn read_to_end(stream: &mut TcpStream) -> (Vec<u8>, Option<std::io::Error>, usize) {
    let started = Instant::now();
    let mut bytes = Vec::new();
    let mut buffer = [0; 4096];
    let mut reads = 0;
    for _ in 0..10_000 {
        assert!(started.elapsed() < Duration::from_secs(5), "still open");
        match stream.read(&mut buffer) {
            Ok(0) => return (bytes, None, reads),
            Ok(n) => {
                reads += 1;
                bytes.extend_from_slice(&buffer[..n]);
            }
            Err(e) => return (bytes, Some(e), reads),
        }
    }
    panic!("no end in 10000 reads");
}

fn numbers(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["n"].as_u64().expect("an n"))
        .collect()
}

#[test]
fn status_answers_every_request_on_a_connection_and_records_it() {
    let server = Server::start(Mode::Status(201));
    let mut stream = connect(&server);
    for n in 1..=2 {
        post(&mut stream, n);
        assert_eq!(read_empty_response(&mut stream).status, 201);
    }
    assert_eq!(server.connections(), 1);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/insert");
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    assert_eq!(numbers(&server.events()), [1, 2]);
    assert_eq!(numbers(&server.delivered_events()), [1, 2]);
}

#[test]
fn status_with_sends_the_scripted_headers() {
    let date = "Wed, 21 Oct 2015 07:28:00 GMT";
    let server = Server::start_script(vec![
        Mode::StatusWith(503, vec![("Retry-After".into(), "2".into())]),
        Mode::StatusWith(429, vec![("Retry-After".into(), date.into())]),
    ]);
    let mut stream = connect(&server);
    post(&mut stream, 1);
    let first = read_empty_response(&mut stream);
    assert_eq!(
        (first.status, first.header("retry-after")),
        (503, Some("2"))
    );
    post(&mut stream, 2);
    let second = read_empty_response(&mut stream);
    assert_eq!(
        (second.status, second.header("retry-after")),
        (429, Some(date))
    );
    assert_eq!(numbers(&server.events()), [1, 2]);
    assert_eq!(server.delivered_events(), Vec::<Value>::new());
}

#[test]
fn delay_records_the_request_then_answers_no_sooner_than_scripted() {
    let delay = Duration::from_millis(400);
    let server = Server::start(Mode::Delay(delay, 200));
    let mut stream = connect(&server);
    let sent = Instant::now();
    post(&mut stream, 7);
    for _ in 0..200 {
        if !server.requests().is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(numbers(&server.events()), [7], "recorded before answering");
    if sent.elapsed() < delay / 2 {
        assert_eq!(server.delivered_events(), Vec::<Value>::new());
    }
    assert_eq!(read_empty_response(&mut stream).status, 200);
    let elapsed = sent.elapsed();
    assert!(elapsed >= delay, "answered after {elapsed:?}");
    assert_eq!(numbers(&server.delivered_events()), [7]);
}

#[test]
fn drip_arrives_a_byte_at_a_time_in_many_reads() {
    assert_eq!(DRIP_BODY.len(), 50);
    let server = Server::start(Mode::Drip(200));
    let mut stream = connect(&server);
    let sent = Instant::now();
    post(&mut stream, 1);
    let mut bytes = Vec::new();
    let mut buffer = [0; 1024];
    let mut reads = 0;
    for _ in 0..1000 {
        if head_end(&bytes).is_some_and(|end| bytes.len() >= end + DRIP_BODY.len()) {
            break;
        }
        let n = stream.read(&mut buffer).expect("read the drip");
        assert!(n > 0, "closed mid-response after {bytes:?}");
        reads += 1;
        bytes.extend_from_slice(&buffer[..n]);
    }
    let elapsed = sent.elapsed();
    let end = head_end(&bytes).expect("a whole head");
    let head = parse_head(&bytes[..end], bytes[end..].to_vec());
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), 50);
    assert_eq!(head.rest, DRIP_BODY);
    assert!(reads >= 40, "{} bytes in only {reads} reads", bytes.len());
    let pauses = u32::try_from(bytes.len() - 1).expect("small");
    assert!(elapsed >= DRIP_PAUSE * pauses, "dripped in {elapsed:?}");
    assert_eq!(numbers(&server.delivered_events()), [1]);
}

#[test]
fn reset_breaks_the_connection_mid_response() {
    let server = Server::start(Mode::Reset);
    let mut stream = connect(&server);
    post(&mut stream, 3);
    let (bytes, error, _) = read_to_end(&mut stream);
    assert_eq!(
        error.as_ref().map(std::io::Error::kind),
        Some(ErrorKind::ConnectionReset),
        "a reset, not a clean close, after {bytes:?}"
    );
    assert!(
        head_end(&bytes).is_none(),
        "a whole head arrived: {bytes:?}"
    );
    // The partial head may or may not arrive before the reset discards it.
    assert!(RESET_PARTIAL.starts_with(&bytes), "{bytes:?}");
    assert_eq!(numbers(&server.events()), [3]);
    assert_eq!(server.delivered_events(), Vec::<Value>::new());
}

#[test]
fn garbage_is_not_http_and_the_connection_closes() {
    let server = Server::start(Mode::Garbage);
    let mut stream = connect(&server);
    post(&mut stream, 4);
    let (bytes, error, _) = read_to_end(&mut stream);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(bytes, GARBAGE);
    assert!(!bytes.starts_with(b"HTTP/"));
    assert!(std::str::from_utf8(&bytes).is_err(), "not even text");
    assert_eq!(numbers(&server.events()), [4]);
    assert_eq!(server.delivered_events(), Vec::<Value>::new());
}

#[test]
fn enormous_streams_until_the_client_stops_reading() {
    const ENOUGH: usize = 4 << 20;
    let server = Server::start(Mode::Enormous);
    let mut stream = connect(&server);
    post(&mut stream, 5);
    let head = read_head(&mut stream);
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), ENORMOUS_LENGTH);
    let mut body = head.rest.len();
    let mut buffer = vec![0; 64 << 10];
    for _ in 0..100_000 {
        if body >= ENOUGH {
            break;
        }
        let n = stream.read(&mut buffer).expect("read the body");
        assert!(n > 0, "closed after {body} body bytes");
        assert!(buffer[..n].iter().all(|b| *b == b'x'));
        body += n;
    }
    assert!(body >= ENOUGH, "only {body} body bytes");
    drop(stream);
    assert_eq!(numbers(&server.events()), [5]);
    assert_eq!(
        numbers(&server.delivered_events()),
        [5],
        "the head was sent"
    );
    let dropping = Instant::now();
    drop(server);
    assert!(dropping.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_script_plays_in_order_across_connections_and_its_last_mode_repeats() {
    let server = Server::start_script(vec![
        Mode::Status(500),
        Mode::Status(429),
        Mode::Status(200),
    ]);
    let mut a = connect(&server);
    let mut b = connect(&server);
    post(&mut a, 1);
    assert_eq!(read_empty_response(&mut a).status, 500);
    post(&mut b, 2);
    assert_eq!(read_empty_response(&mut b).status, 429);
    post(&mut a, 3);
    assert_eq!(read_empty_response(&mut a).status, 200);
    let mut c = connect(&server);
    post(&mut c, 4);
    assert_eq!(read_empty_response(&mut c).status, 200);
    post(&mut b, 5);
    assert_eq!(read_empty_response(&mut b).status, 200);
    assert_eq!(server.connections(), 3);
    assert_eq!(numbers(&server.events()), [1, 2, 3, 4, 5]);
    assert_eq!(numbers(&server.delivered_events()), [3, 4, 5]);
}

#[test]
fn a_hang_in_a_script_holds_its_request_unanswered_and_unrecorded() {
    let server = Server::start_script(vec![Mode::Hang, Mode::Status(200)]);
    let mut hung = connect(&server);
    hung.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("read timeout");
    post(&mut hung, 1);
    let mut byte = [0; 1];
    let error = hung.read(&mut byte).expect_err("no answer");
    assert!(
        matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{error:?}"
    );
    let mut next = connect(&server);
    post(&mut next, 2);
    assert_eq!(read_empty_response(&mut next).status, 200);
    assert_eq!(server.connections(), 2);
    assert_eq!(numbers(&server.events()), [2]);
}

#[test]
fn set_mode_takes_effect_from_the_next_request() {
    let server = Server::start_script(vec![Mode::Status(503), Mode::Garbage]);
    let mut stream = connect(&server);
    post(&mut stream, 1);
    assert_eq!(read_empty_response(&mut stream).status, 503);
    server.set_mode(Mode::Status(200));
    for n in 2..=3 {
        post(&mut stream, n);
        assert_eq!(read_empty_response(&mut stream).status, 200);
    }
    assert_eq!(numbers(&server.events()), [1, 2, 3]);
    assert_eq!(numbers(&server.delivered_events()), [2, 3]);
}

#[test]
fn nothing_listens_on_the_closed_port() {
    let endpoint = support::fault_server::closed_port_endpoint();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    assert!(endpoint.ends_with("/v1/insert"), "{endpoint}");
    let error = TcpStream::connect_timeout(&addr_of(&endpoint), CLIENT_TIMEOUT)
        .expect_err("nothing listens");
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused, "{error:?}");
}

#[test]
fn dropping_the_server_is_prompt_whatever_it_is_doing() {
    let modes = [
        Mode::Hang,
        Mode::Status(200),
        Mode::Delay(Duration::from_secs(10), 200),
        Mode::Drip(200),
        Mode::Reset,
        Mode::StatusWith(503, vec![("Retry-After".into(), "2".into())]),
        Mode::Garbage,
        Mode::Enormous,
    ];
    for mode in modes {
        let server = Server::start(mode.clone());
        // One connection mid-request, one idle: neither holds the drop.
        let mut busy = connect(&server);
        let _idle = connect(&server);
        post(&mut busy, 1);
        for _ in 0..200 {
            if !server.requests().is_empty() || mode == Mode::Hang {
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        thread::sleep(Duration::from_millis(50));
        let recorded = server.requests().len();
        assert_eq!(recorded, usize::from(mode != Mode::Hang), "{mode:?}");
        let dropping = Instant::now();
        drop(server);
        let took = dropping.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "{mode:?}: drop took {took:?}"
        );
    }
}
