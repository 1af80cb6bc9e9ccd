//! Test support: a real HTTP/1.1 server on 127.0.0.1, and the example
//! binaries run as child processes with a clean environment.
//!
//! Every wait here is bounded in time; every loop in count or time.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How a [`Server`] answers.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Reads the request and answers with this status.
    Status(u16),
    /// Accepts the connection, then never reads or answers.
    Hang,
}

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

#[derive(Default)]
struct State {
    connections: AtomicUsize,
    requests: Mutex<Vec<Request>>,
    stop: AtomicBool,
}

/// A loopback HTTP server, stopped when dropped.
pub struct Server {
    addr: std::net::SocketAddr,
    state: Arc<State>,
    acceptor: Option<JoinHandle<()>>,
}

/// The longest any connection is served or held.
const CONNECTION_LIMIT: Duration = Duration::from_secs(30);

impl Server {
    pub fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State::default());
        let accept_state = Arc::clone(&state);
        let acceptor = thread::spawn(move || {
            let mut workers = Vec::new();
            for stream in listener.incoming() {
                if accept_state.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                accept_state.connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&accept_state);
                workers.push(thread::spawn(move || serve(&stream, mode, &state)));
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

    /// `http://127.0.0.1:<port>/v1/insert`
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1/insert", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every event received, in order: the elements of each POST body's `data`.
    pub fn events(&self) -> Vec<Value> {
        self.requests()
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

fn serve(stream: &TcpStream, mode: Mode, state: &State) {
    let started = Instant::now();
    if let Mode::Hang = mode {
        while !state.stop.load(Ordering::SeqCst) && started.elapsed() < CONNECTION_LIMIT {
            thread::sleep(Duration::from_millis(10));
        }
        return;
    }
    let Mode::Status(status) = mode else { return };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let mut writer = stream;
    // Serve keep-alive requests until the client closes, bounded in count.
    for _ in 0..1000 {
        let Some(request) = read_request(&mut reader) else {
            break;
        };
        state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        let reason = if status < 300 { "OK" } else { "Error" };
        let response = format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\r\n");
        if writer.write_all(response.as_bytes()).is_err() {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    for _ in 0..100 {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// The path of an example binary built by `cargo test` (examples are built
/// with the tests, next to the test binaries' `deps` folder).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// An example run as a CLI user would run it, with an empty environment but
/// for `DEVSY_HOME` (a temporary directory) and `vars`.
pub fn run_example(name: &str, args: &[&str], home: &Path, vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(example(name));
    command.args(args).env_clear().env("DEVSY_HOME", home);
    for (key, value) in vars {
        command.env(key, value);
    }
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn example");
    wait_bounded(child, Duration::from_secs(60))
}

fn wait_bounded(mut child: std::process::Child, limit: Duration) -> Output {
    // Drain the pipes on their own threads so a chatty child never blocks.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("child still running after {limit:?}: killed");
        }
        thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Files and directories under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir").flatten() {
            let path = entry.path();
            found.push(
                path.strip_prefix(dir)
                    .expect("under dir")
                    .display()
                    .to_string(),
            );
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `f` with telemetry on, recording what it sends; one at a time, as
/// the attribute talks to the process's one current client.
pub fn record<R>(slow_threshold: Duration, f: impl FnOnce() -> R) -> (R, Vec<Value>) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let home = tempfile::tempdir().expect("temp dir");
    let recording = devsy_telemetry::RecordingTransport::new();
    let telemetry = devsy_telemetry::Telemetry::builder("devsy")
        .version("v1.2.3")
        .env([("HOME", home.path().to_string_lossy())])
        .config_dir(home.path())
        .slow_threshold(slow_threshold)
        .transport(recording.clone())
        .start();
    assert!(telemetry.status().is_enabled(), "{}", telemetry.status());
    let result = f();
    drop(telemetry);
    (result, recording.events())
}

/// The events as `(command, error)`, with `error` `None` for a start
/// event and `Some("")` for a finished event without error.
pub fn summary(events: &[Value]) -> Vec<(String, Option<String>)> {
    events
        .iter()
        .map(|e| {
            let props = &e["event"]["properties"];
            let command = props["command"].as_str().expect("command").to_string();
            let finished = props.get("duration_ms").is_some();
            let error = props.get("error").and_then(Value::as_str).unwrap_or("");
            (command, finished.then(|| error.to_string()))
        })
        .collect()
}

/// A minimal executor: polls `future` on this thread until it is ready,
/// bounded in polls and time.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let started = Instant::now();
    for _ in 0..100_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "future not ready after 30 s"
        );
        thread::park_timeout(Duration::from_millis(10));
    }
    panic!("future not ready after 100000 polls");
}

/// Microseconds since the Unix epoch, as event timestamps are.
pub fn micros_now() -> u64 {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros();
    u64::try_from(micros).expect("fits u64")
}

/// The JSON block after `<!-- wire-format -->` in the README.
pub fn readme_example() -> String {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("<!-- wire-format -->")
        .expect("README has a <!-- wire-format --> marker");
    let block = &readme[start..];
    let open = block
        .find("```json\n")
        .expect("a json block after the marker")
        + "```json\n".len();
    let close = block[open..].find("```").expect("the json block is closed");
    block[open..open + close].to_string()
}

/// Same keys in the same order, same JSON types, all the way down.
pub fn assert_same_shape(documented: &Value, actual: &Value, at: &str) {
    assert_shape(documented, actual, at, &[]);
}

/// As [`assert_same_shape`], but the properties the wire format omits when
/// unknown, or on a start event, may be missing.
pub fn assert_shape_within(documented: &Value, actual: &Value) {
    const OMITTABLE: &[&str] = &["provider", "source_type", "ide", "error", "duration_ms"];
    assert_shape(documented, actual, "$", OMITTABLE);
}

fn assert_shape(documented: &Value, actual: &Value, at: &str, omittable: &[&str]) {
    match (documented, actual) {
        (Value::Object(d), Value::Object(a)) => {
            let expected: Vec<&str> = keys(d)
                .into_iter()
                .filter(|k| a.contains_key(*k) || !omittable.contains(k))
                .collect();
            assert_eq!(expected, keys(a), "keys at {at}");
            for (key, value) in a {
                assert_shape(&d[key], value, &format!("{at}.{key}"), omittable);
            }
        }
        (Value::String(_), Value::String(_)) => {}
        (Value::Number(d), Value::Number(a)) if d.is_u64() && a.is_u64() => {}
        _ => panic!("{at}: README has {documented}, the code sends {actual}"),
    }
}

pub fn keys(map: &serde_json::Map<String, Value>) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}
