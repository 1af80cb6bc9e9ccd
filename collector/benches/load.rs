//! Load on the collector over loopback (`cargo bench -p devsy-collector
//! --bench load`): the release binary, a fresh database, and clients in
//! this process on keep-alive connections. Client and server share the
//! machine's cores, so the figures are a floor for a dedicated host.
//!
//! - sustained: closed-loop clients posting as fast as they are answered,
//!   with batches of 100 and of 1: events per second and request latency;
//! - paced: an open-loop schedule of requests per second (latency counted
//!   from when each request was due, so a server that falls behind is
//!   charged for the wait), with batches of 1 and of 100.
//!
//! - the same with `--durability full` (one fsync per batch);
//! - the same phases on PostgreSQL (`DEVSY_BENCH_POSTGRES`, or the tests'
//!   `DEVSY_TEST_POSTGRES`: a URL the bench may create a database from),
//!   beside SQLite: one collector, one behind a proxy that puts the
//!   database 1 ms away (2 ms a round trip, another zone), and three
//!   collectors sharing it, the clients spread over them (`-- stores`
//!   runs only these);
//! - under attack: a valid client's paced requests, from 127.0.0.1, while
//!   other loopback addresses hold idle connections, a slowloris, or
//!   stalled uploads (the default limits, rate limits lifted).
//!
//! Every phase is bounded in requests and in time. Figures and goals are in
//! the collector's README.

#[allow(dead_code)] // the root benches' proxy; this bench uses a part
#[path = "../../benches/support/proxy.rs"]
mod proxy;

#[allow(dead_code)] // the tests' PostgreSQL support; the bench uses a part
#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Builds the collector in release (benches do not build binaries).
fn collector_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "devsy-collector",
            "--bin",
            "devsy-collector",
        ])
        .current_dir(root)
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "cargo build --release -p devsy-collector failed"
    );
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("../target"), PathBuf::from);
    target.join("release").join("devsy-collector")
}

struct Server {
    child: Child,
    endpoint: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(binary: &Path, db: &std::ffi::OsStr, durability: &str) -> Server {
    let mut child = Command::new(binary)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--durability",
            durability,
            "--db",
        ])
        .arg(db)
        // The bench's clients share one address: its rate limits are lifted.
        .args(["--rate-requests", "1000000", "--rate-events", "100000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the collector");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the collector names its address");
    let address = line
        .strip_prefix("listening on http://")
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an address")
        .to_string();
    Server {
        child,
        endpoint: format!("http://{address}/v1/insert"),
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(0))
}

/// Unique events: every request takes fresh timestamps from this counter.
static NEXT: AtomicU64 = AtomicU64::new(0);

fn body(client: u32, events: u64, t0: u64) -> Vec<u8> {
    let first = NEXT.fetch_add(events, Ordering::Relaxed);
    let id = format!("{client:08x}").repeat(8);
    let mut out = String::with_capacity(64 + 330 * usize::try_from(events).unwrap_or(0));
    out.push_str(r#"{"data":["#);
    for i in 0..events {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"event":{{"type":"devsy_cli","machine_id":"{id}","timestamp":{},"properties":{{"command":"devsy provider list","provider":"docker","desktop":"false","version":"v0.5.29"}}}},"user":{{"machine_id":"{id}","arch":"amd64","os":"linux"}}}}"#,
            t0 + first + i
        ));
    }
    out.push_str("]}");
    out.into_bytes()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

fn send(agent: &ureq::Agent, endpoint: &str, body: &[u8]) -> bool {
    agent
        .post(endpoint)
        .header("Content-Type", "application/json")
        .send(body)
        .is_ok_and(|mut r| r.status() == 200 && r.body_mut().read_to_vec().is_ok())
}

struct Figures {
    requests: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    /// Events per second and the p50 and p99 latency, for the table of
    /// stores.
    fn cell(&mut self, batch: u64) -> String {
        self.latencies.sort();
        let n = self.latencies.len();
        let pick = |p: usize| {
            if n == 0 {
                Duration::ZERO
            } else {
                self.latencies[(p * n).div_ceil(100).clamp(1, n) - 1]
            }
        };
        let ok = (self.requests - self.failed) as f64;
        let failed = if self.failed > 0 {
            format!(", {} failed", self.failed)
        } else {
            String::new()
        };
        format!(
            "{:.0} events/s, p50 {:.1?}, p99 {:.1?}{failed}",
            ok * batch as f64 / self.elapsed.as_secs_f64(),
            pick(50),
            pick(99)
        )
    }

    fn print(mut self, label: &str, batch: u64) {
        self.latencies.sort();
        let pick = |p: usize| {
            let n = self.latencies.len();
            if n == 0 {
                return Duration::ZERO;
            }
            self.latencies[((p * n).div_ceil(100)).clamp(1, n) - 1]
        };
        let ok = (self.requests - self.failed) as f64;
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{label}: {:.0} events/s, {:.0} requests/s ({} requests of {batch}, {} failed, in {:.2?}); \
             latency p50 {:.2?}, p99 {:.2?}, max {:.2?}",
            ok * batch as f64 / secs,
            ok / secs,
            self.requests,
            self.failed,
            self.elapsed,
            pick(50),
            pick(99),
            self.latencies.last().copied().unwrap_or_default(),
        );
    }
}

/// `clients` threads post batches of `batch` back to back, until `limit`
/// requests in all or `window`.
fn sustained(
    endpoints: &[&str],
    clients: u32,
    batch: u64,
    limit: usize,
    window: Duration,
) -> Figures {
    let t0 = now_micros();
    let started = Instant::now();
    let per_client = limit / clients as usize;
    let results: Vec<(usize, Vec<Duration>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                // Each client keeps to one collector, in turn.
                let endpoint = endpoints[client as usize % endpoints.len()];
                scope.spawn(move || {
                    let agent = agent();
                    let mut latencies = Vec::with_capacity(per_client);
                    let mut failed = 0;
                    while latencies.len() + failed < per_client && started.elapsed() < window {
                        let body = body(client, batch, t0);
                        let sent = Instant::now();
                        if send(&agent, endpoint, &body) {
                            latencies.push(sent.elapsed());
                        } else {
                            failed += 1;
                        }
                    }
                    (failed, latencies)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    collect(results, started.elapsed())
}

/// `rate` requests per second of `batch` events for `seconds`, spread over
/// `clients` threads, each sending on its own schedule.
fn paced(endpoints: &[&str], clients: u32, batch: u64, rate: u32, seconds: u32) -> Figures {
    let t0 = now_micros();
    let interval = Duration::from_secs(1) * clients / rate;
    let per_client = (rate * seconds / clients) as usize;
    let started = Instant::now();
    let results: Vec<(usize, Vec<Duration>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let endpoint = endpoints[client as usize % endpoints.len()];
                scope.spawn(move || {
                    let agent = agent();
                    let offset = interval * client / clients;
                    let mut latencies = Vec::with_capacity(per_client);
                    let mut failed = 0;
                    for i in 0..per_client {
                        let due =
                            started + offset + interval * u32::try_from(i).unwrap_or(u32::MAX);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let body = body(client, batch, t0);
                        if send(&agent, endpoint, &body) {
                            latencies.push(due.elapsed());
                        } else {
                            failed += 1;
                        }
                        // Bounded in time too: twice the schedule at most.
                        if started.elapsed() > Duration::from_secs(2 * u64::from(seconds)) {
                            break;
                        }
                    }
                    (failed, latencies)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    collect(results, started.elapsed())
}

fn collect(results: Vec<(usize, Vec<Duration>)>, elapsed: Duration) -> Figures {
    let mut figures = Figures {
        requests: 0,
        failed: 0,
        elapsed,
        latencies: Vec::new(),
    };
    for (failed, latencies) in results {
        figures.failed += failed;
        figures.requests += failed + latencies.len();
        figures.latencies.extend(latencies);
    }
    figures
}

/// A connection to `to` from `from`, another loopback address.
fn connect_from(from: std::net::Ipv4Addr, to: std::net::SocketAddr) -> Option<std::net::TcpStream> {
    use rustix::net::{AddressFamily, SocketType, bind, connect, socket};
    let socket = socket(AddressFamily::INET, SocketType::STREAM, None).ok()?;
    bind(&socket, &std::net::SocketAddr::from((from, 0))).ok()?;
    connect(&socket, &to).ok()?;
    Some(std::net::TcpStream::from(socket))
}

/// What the attackers send on each connection before they stop.
#[derive(Clone, Copy)]
enum Attack {
    /// Nothing.
    Idle,
    /// Half a request head.
    Slowloris,
    /// A head declaring 1 MiB, and all of the body but its last byte.
    StalledUpload,
}

/// Opens `per_address` connections from each of `addresses` loopback
/// addresses (127.0.0.2 on) and does `attack` on them; they stay open
/// until the returned streams are dropped.
fn attack(
    to: std::net::SocketAddr,
    addresses: u8,
    per_address: usize,
    attack: Attack,
) -> Vec<std::net::TcpStream> {
    use std::io::Write as _;
    let body = vec![b' '; 1024 * 1024 - 1];
    let mut held = Vec::new();
    for a in 0..addresses {
        let from = std::net::Ipv4Addr::new(127, 0, 0, 2 + a);
        for _ in 0..per_address {
            let Some(mut stream) = connect_from(from, to) else {
                continue;
            };
            let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
            let _ = match attack {
                Attack::Idle => Ok(()),
                Attack::Slowloris => stream.write_all(b"POST /v1/insert HTTP/1.1\r\nHost: x\r\nX-A"),
                Attack::StalledUpload => stream
                    .write_all(
                        b"POST /v1/insert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                          Content-Length: 1048576\r\n\r\n",
                    )
                    .and_then(|()| stream.write_all(&body)),
            };
            held.push(stream);
        }
    }
    held
}

fn main() {
    // Under `cargo test --benches` there is nothing to measure.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let binary = collector_binary();
    let dir = tempfile::tempdir().expect("temp dir");
    // `-- stores`: only the table of stores.
    if std::env::args().any(|a| a == "stores") {
        stores(&binary, dir.path());
        return;
    }
    let server = start(&binary, dir.path().join("load.db").as_os_str(), "normal");
    let endpoint = &[server.endpoint.as_str()][..];
    // Warm the connection pool and the database's pages.
    let _ = sustained(endpoint, 2, 10, 100, Duration::from_secs(5));

    sustained(endpoint, 4, 100, 5_000, Duration::from_secs(5))
        .print("sustained, 4 clients, batches of 100", 100);
    sustained(endpoint, 4, 1, 50_000, Duration::from_secs(3))
        .print("sustained, 4 clients, batches of 1", 1);
    paced(endpoint, 8, 1, 1_000, 5).print("paced 1,000 requests/s, batches of 1", 1);
    paced(endpoint, 8, 100, 200, 5).print(
        "paced 200 requests/s (20,000 events/s), batches of 100",
        100,
    );
    paced(endpoint, 8, 100, 1_000, 3).print("paced 1,000 requests/s, batches of 100", 100);
    drop(server);

    // One fsync per batch: what surviving a power loss costs.
    let server = start(&binary, dir.path().join("full.db").as_os_str(), "full");
    let endpoint = &[server.endpoint.as_str()][..];
    let _ = sustained(endpoint, 2, 10, 100, Duration::from_secs(5));
    paced(endpoint, 8, 1, 1_000, 3)
        .print("--durability full: paced 1,000 requests/s, batches of 1", 1);
    sustained(endpoint, 4, 100, 2_000, Duration::from_secs(3)).print(
        "--durability full: sustained, 4 clients, batches of 100",
        100,
    );
    drop(server);

    // Under attack, the default connection limits: 1,024 open, 64 from one
    // address, a 10 s header timeout, a 64 MiB body budget.
    for (label, addresses, per_address, kind) in [
        (
            "2,000 idle connections from one address",
            1,
            2_000,
            Attack::Idle,
        ),
        (
            "500 slowloris connections from one address",
            1,
            500,
            Attack::Slowloris,
        ),
        (
            "200 stalled 1 MiB uploads from 10 addresses",
            10,
            20,
            Attack::StalledUpload,
        ),
        (
            "2,000 idle connections from 40 addresses",
            40,
            50,
            Attack::Idle,
        ),
    ] {
        let server = start(
            &binary,
            dir.path()
                .join(format!("attack-{addresses}.db"))
                .as_os_str(),
            "normal",
        );
        let to = server
            .endpoint
            .trim_start_matches("http://")
            .trim_end_matches("/v1/insert")
            .parse()
            .expect("an address");
        let opening = Instant::now();
        let held = attack(to, addresses, per_address, kind);
        // Said, because connections opened more than the header timeout
        // (10 s) ago are closed again: a slow attack holds fewer slots.
        let opened_in = opening.elapsed();
        let endpoint = &[server.endpoint.as_str()][..];
        paced(endpoint, 4, 100, 200, 3).print(
            &format!(
                "under attack ({label}; {} connected in {opened_in:.1?}): paced 200 requests/s, \
                 batches of 100",
                held.len()
            ),
            100,
        );
        drop(held);
    }

    stores(&binary, dir.path());
}

/// The phases whose figures the table of stores compares.
const PHASES: [&str; 4] = [
    "sustained, 4 clients, batches of 100",
    "sustained, 8 clients, batches of 1",
    "paced 1,000 requests/s, batches of 1",
    "paced 200 requests/s, batches of 100",
];

/// `PHASES` against `endpoints`, a cell each.
fn phases(endpoints: &[&str]) -> Vec<String> {
    let _ = sustained(endpoints, 3, 10, 300, Duration::from_secs(5));
    vec![
        sustained(endpoints, 4, 100, 3_000, Duration::from_secs(3)).cell(100),
        sustained(endpoints, 8, 1, 30_000, Duration::from_secs(3)).cell(1),
        paced(endpoints, 8, 1, 1_000, 3).cell(1),
        paced(endpoints, 8, 100, 200, 3).cell(100),
    ]
}

/// SQLite beside PostgreSQL, phase by phase, as a Markdown table.
fn stores(binary: &Path, dir: &Path) {
    let mut columns: Vec<(String, Vec<String>)> = Vec::new();
    {
        let server = start(binary, dir.join("stores.db").as_os_str(), "normal");
        columns.push(("SQLite".into(), phases(&[server.endpoint.as_str()])));
    }
    let admin = std::env::var("DEVSY_BENCH_POSTGRES")
        .or_else(|_| std::env::var("DEVSY_TEST_POSTGRES"))
        .ok();
    // The tests' own database: bounded psql, dropped at the end.
    let database = admin
        .as_deref()
        .map(|admin| postgres::TestDatabase::try_create(admin, "devsy_bench"));
    match database {
        None => println!("PostgreSQL: not measured (set DEVSY_BENCH_POSTGRES to a server URL)"),
        Some(Err(e)) => println!("PostgreSQL: not measured: {e}"),
        Some(Ok(database)) => {
            let url = database.url.clone();
            {
                let server = start(binary, url.as_ref(), "normal");
                columns.push(("PostgreSQL".into(), phases(&[server.endpoint.as_str()])));
            }
            // The database 1 ms away: every statement pays 2 ms.
            if let Some(target) = url
                .split_once('@')
                .and_then(|(_, rest)| rest.split_once('/'))
                .and_then(|(host, _)| host.parse::<std::net::SocketAddr>().ok())
            {
                let far = proxy::DelayProxy::start(target, Duration::from_millis(1));
                let far_url = url.replacen(&target.to_string(), &far.address().to_string(), 1);
                let server = start(binary, far_url.as_ref(), "normal");
                columns.push((
                    "PostgreSQL 1 ms away".into(),
                    phases(&[server.endpoint.as_str()]),
                ));
            }
            let servers: Vec<Server> = (0..3)
                .map(|_| start(binary, url.as_ref(), "normal"))
                .collect();
            let endpoints: Vec<&str> = servers.iter().map(|s| s.endpoint.as_str()).collect();
            columns.push(("3 collectors, one PostgreSQL".into(), phases(&endpoints)));
            drop(servers);
        }
    }
    let header: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    println!("\n| phase | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(columns.len()));
    for (i, phase) in PHASES.iter().enumerate() {
        let cells: Vec<&str> = columns.iter().map(|(_, cells)| cells[i].as_str()).collect();
        println!("| {phase} | {} |", cells.join(" | "));
    }
}
