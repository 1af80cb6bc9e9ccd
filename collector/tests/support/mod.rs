//! The real collector binary on a free loopback port, a client for it, and
//! events in the wire format. Every wait here is bounded.

#![allow(dead_code)] // each test file uses a part

#[cfg(unix)]
pub mod browser;
pub mod cut_proxy;
pub mod postgres;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

pub const BINARY: &str = env!("CARGO_BIN_EXE_devsy-collector");

/// Rate limits no test reaches.
pub const UNLIMITED: &[&str] = &["--rate-requests", "1000000", "--rate-events", "100000000"];

/// Where a collector's stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// A pipe the test reads when the collector stops.
    Piped,
    /// Closed (`2>&-`): every write to it fails.
    Closed,
    /// A pipe whose reading end is gone: every write fails with EPIPE.
    Broken,
}

/// A `devsy-collector serve` process; killed when dropped.
pub struct Collector {
    child: Child,
    pub address: SocketAddr,
    /// Where `--dashboard` serves, when given.
    pub dashboard: Option<SocketAddr>,
    /// The SQLite path, or the PostgreSQL URL.
    pub db: PathBuf,
}

impl Collector {
    /// Starts `serve` on port 0 with `db`, and waits (at most 10 s) for the
    /// line that names the port.
    /// With the rate limits lifted: these tests send from one address
    /// far more than one client would.
    pub fn start(db: &(impl AsRef<OsStr> + ?Sized)) -> Self {
        Self::start_with(db, UNLIMITED, Stderr::Piped)
    }

    /// Starts `serve` with `extra` arguments, its stderr as `stderr` says.
    /// `db` is a SQLite path or a PostgreSQL URL.
    pub fn start_with(db: &(impl AsRef<OsStr> + ?Sized), extra: &[&str], stderr: Stderr) -> Self {
        let db = db.as_ref();
        let mut command = match stderr {
            Stderr::Piped | Stderr::Broken => Command::new(BINARY),
            // Closed, not the null device: a write to it fails (EBADF).
            Stderr::Closed => {
                let mut shell = Command::new("/bin/sh");
                shell.args(["-c", "exec \"$0\" \"$@\" 2>&-", BINARY]);
                shell
            }
        };
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(extra)
            // A token from the shell would turn every tokenless test's
            // dashboard into a 401.
            .env_remove("DEVSY_DASHBOARD_TOKEN")
            .stderr(match stderr {
                Stderr::Piped | Stderr::Broken => Stdio::piped(),
                Stderr::Closed => Stdio::null(),
            });
        let mut collector = Self::spawn(command, extra.contains(&"--dashboard"));
        if stderr == Stderr::Broken {
            drop(collector.child.stderr.take());
        }
        collector.db = PathBuf::from(db);
        collector
    }

    /// Starts `command` (a `serve` with its arguments), and waits (at most
    /// 20 s) for the line that names its address, and the next, when it
    /// serves a dashboard.
    pub fn spawn(mut command: Command, dashboard: bool) -> Self {
        let child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("start devsy-collector");
        // Owned at once, so that a panic below kills it (on drop).
        let mut collector = Self {
            child,
            address: SocketAddr::from(([0, 0, 0, 0], 0)),
            dashboard: None,
            db: PathBuf::new(),
        };
        let stdout = collector.child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let lines = if dashboard { 2 } else { 1 };
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            for _ in 0..lines {
                let mut line = String::new();
                let _ = stdout.read_line(&mut line);
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the collector names its address within 20 s");
        collector.address = line
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        if dashboard {
            let line = rx
                .recv_timeout(Duration::from_secs(5))
                .expect("the collector names its dashboard");
            collector.dashboard = Some(
                line.trim()
                    .strip_prefix("dashboard on http://")
                    .and_then(|rest| rest.strip_suffix('/'))
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected second line: {line:?}")),
            );
        }
        collector
    }

    /// `path` on the dashboard.
    pub fn board(&self, path: &str) -> String {
        let board = self.dashboard.expect("started with --dashboard");
        format!("http://{board}{path}")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn endpoint(&self) -> String {
        self.url("/v1/insert")
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    /// Sends `signal`, then waits (at most 10 s) for the process to exit.
    #[cfg(unix)]
    pub fn stop_with(mut self, signal: rustix::process::Signal) -> (ExitStatus, String) {
        let pid = rustix::process::Pid::from_raw(self.pid()).expect("a live pid");
        rustix::process::kill_process(pid, signal).expect("signal the collector");
        let status = wait_bounded(&mut self.child, Duration::from_secs(10));
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        (status, stderr)
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = wait_bounded(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_bounded(child: &mut Child, limit: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "the collector did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `devsy-collector` with `args`, expecting it to refuse to start
/// (at most 20 s); its stderr.
pub fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut child = Command::new(BINARY)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("DEVSY_DASHBOARD_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start devsy-collector");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("devsy-collector {args:?} did not stop within 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(!status.success(), "devsy-collector {args:?} started");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    stderr
}

/// An HTTP client that reports every status as a response.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

/// Posts `body` as JSON; the status and the parsed answer.
pub fn post(agent: &ureq::Agent, url: &str, body: &[u8]) -> (u16, Value) {
    try_post(agent, url, body).expect("a response")
}

/// [`post`], as a client's attempt: `None` when the collector could not
/// be reached.
pub fn try_post(agent: &ureq::Agent, url: &str, body: &[u8]) -> Option<(u16, Value)> {
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .ok()?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// GETs `url`, with `headers`; the status and the body.
pub fn get(agent: &ureq::Agent, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.call().expect("a response");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// GETs `url`; the value of the header `name` (empty when missing) and
/// the body.
pub fn get_header(agent: &ureq::Agent, url: &str, name: &str) -> (String, String) {
    let mut response = agent.get(url).call().expect("a response");
    let value = response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (
        value,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// The entry of `name` in a report's `commands`.
pub fn command<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["commands"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["command"] == name))
        .unwrap_or_else(|| panic!("no {name} in {report:#}"))
}

/// GETs `url`; the status and the body as JSON (`null` if it is not).
pub fn get_json(agent: &ureq::Agent, url: &str) -> (u16, Value) {
    let (status, body) = get(agent, url, &[]);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

pub fn now_micros() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    u64::try_from(d.as_micros()).expect("fits")
}

/// The machine id of machine `n`: 64 hex digits.
pub fn machine(n: u32) -> String {
    format!("{n:08x}").repeat(8)
}

/// A start event of `command` on machine `n` at `timestamp`.
pub fn start_event(n: u32, command: &str, timestamp: u64) -> Value {
    let id = machine(n);
    json!({
        "event": {
            "type": "devsy_cli",
            "machine_id": id,
            "timestamp": timestamp,
            "properties": {
                "command": command,
                "provider": "docker",
                "desktop": "false",
                "version": "v0.5.29"
            }
        },
        "user": {"machine_id": id, "arch": "amd64", "os": "linux"}
    })
}

/// A finished event: `start` with a duration, and an error if failed.
pub fn finished_event(mut start: Value, duration_ms: u64, error: Option<&str>) -> Value {
    let props = &mut start["event"]["properties"];
    props["duration_ms"] = json!(duration_ms);
    if let Some(error) = error {
        props["error"] = json!(error);
    }
    start
}

pub fn batch(events: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "data": events })).expect("serializable")
}

/// Rows in the database, read directly.
pub fn stored(db: &Path) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the database");
    conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .expect("count")
}

/// `devsy-collector report --json` on `db` (a path or a URL).
pub fn report_json(db: &(impl AsRef<OsStr> + ?Sized)) -> Value {
    report_json_with(db, &[])
}

/// `devsy-collector report --json` with more arguments.
pub fn report_json_with(db: &(impl AsRef<OsStr> + ?Sized), args: &[&str]) -> Value {
    let output = Command::new(BINARY)
        .args(["report", "--json", "--db"])
        .arg(db)
        .args(args)
        .output()
        .expect("run report");
    assert!(
        output.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("report --json prints JSON")
}

/// The devsy example binary, built next to this one by `cargo test
/// --workspace`; built here if it is missing (a run of this package alone).
pub fn devsy_binary() -> PathBuf {
    let profile_dir = Path::new(BINARY).parent().expect("target dir");
    let path = profile_dir
        .join("examples")
        .join(format!("devsy{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "devsy-telemetry",
                "--example",
                "devsy",
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --example devsy failed");
    }
    assert!(path.is_file(), "no devsy example at {}", path.display());
    path
}

/// Runs the devsy example once against `endpoint`; its exit code. With
/// `CI=true`, its exit waits for delivery (no courier): what a run sent
/// has arrived when it returns.
pub fn devsy(home: &Path, endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> i32 {
    Command::new(devsy_binary())
        .args(args)
        .env_clear()
        .env("CI", "true")
        .env("HOME", home)
        .env("DEVSY_HOME", home)
        .env("DEVSY_TELEMETRY_ENDPOINT", endpoint)
        .envs(env.iter().copied())
        .output()
        .expect("run devsy")
        .status
        .code()
        .unwrap_or(-1)
}
