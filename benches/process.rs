//! Whole process (`cargo bench --bench process`): the `devsy` example,
//! built in release, timed from spawn to exit, with the default exit (hand
//! off to a courier), against servers near and far. Linux: couriers are
//! found through `/proc`.
//!
//! - `provider list`, telemetry on against off (`DEVSY_DISABLE_TELEMETRY`),
//!   interleaved pair by pair, against a server 100 ms away (a loopback
//!   proxy that delays each chunk 50 ms each way, and a connection's first
//!   bytes one more round trip), a server that accepts and never answers,
//!   and a healthy loopback server; the floor (one spawn of the example
//!   with null stdio, one spool write) in the same run;
//! - 30 runs 100 ms away: when the events arrive, and how many twice; the
//!   same for a command about as long as the first batch's window;
//! - 200 runs against a hanging server: couriers at once, their lifetime,
//!   the spool's size;
//! - `x=$(devsy provider list)` against a hanging server;
//! - when a long command's start event arrives, 100 ms away;
//! - a command killed 1 s into a 3 s run, 100 ms away: its start event;
//! - in CI mode, 100 ms away: delivered at exit, no courier.
//!
//! Prints min, median and max; BENCHMARKS.md has the figures.

mod support {
    //! The tests' fault server and courier helpers, and the bench's proxy.
    #![allow(dead_code)] // the tests use the rest of these files
    #[path = "../../tests/it/support/couriers.rs"]
    pub mod couriers;
    #[path = "../../tests/it/support/fault_server.rs"]
    pub mod fault_server;
    pub mod proxy;
    #[path = "../../tests/it/support/recording.rs"]
    pub mod recording;

    pub use fault_server::{Mode, Server};
    pub use recording::wait_until;
}

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::couriers::{couriers_in, finish_couriers};
use support::proxy::DelayProxy;
use support::{Mode, Server, wait_until};

const PAIRS: usize = 25;
const ONE_WAY: Duration = Duration::from_millis(50);
const COURIER_BOUND: Duration = Duration::from_secs(35);

/// Builds the example in release (the benches do not build examples).
fn devsy_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--example", "devsy"])
        .current_dir(root)
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "cargo build --release --example devsy failed"
    );
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    target.join("release").join("examples").join("devsy")
}

fn command(binary: &Path, home: &Path, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary);
    command
        .args(args)
        .env_clear()
        .env("DEVSY_HOME", home)
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn run(binary: &Path, home: &Path, args: &[&str], vars: &[(&str, &str)]) -> Duration {
    let started = Instant::now();
    let status = command(binary, home, args, vars)
        .status()
        .expect("run devsy");
    let elapsed = started.elapsed();
    assert!(status.success(), "devsy {args:?} failed");
    elapsed
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `min / median / max` in milliseconds.
fn summary(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    (
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
    )
}

/// On and off, pair by pair. Between pairs the couriers finish (not timed),
/// so that none competes for the CPU, unless the server `hangs`: its one
/// courier then waits on the network for its lifetime, and is killed at
/// the end.
fn pairs(binary: &Path, name: &str, endpoint: &str, hangs: bool) -> f64 {
    // Two homes: an opted-out run deletes the spool, which would change
    // what the next run with telemetry on finds.
    let home = tempfile::tempdir().expect("temp dir");
    let off_home = tempfile::tempdir().expect("temp dir");
    let on = [("DEVSY_TELEMETRY_ENDPOINT", endpoint)];
    let off = [
        ("DEVSY_TELEMETRY_ENDPOINT", endpoint),
        ("DEVSY_DISABLE_TELEMETRY", "true"),
    ];
    let args = ["provider", "list"];
    // Warm the page cache.
    run(binary, off_home.path(), &args, &off);
    let (mut on_times, mut off_times) = (Vec::new(), Vec::new());
    for _ in 0..PAIRS {
        off_times.push(run(binary, off_home.path(), &args, &off));
        on_times.push(run(binary, home.path(), &args, &on));
        if !hangs {
            finish_couriers(home.path(), COURIER_BOUND);
        }
    }
    let (on_min, on_median, on_max) = summary(&mut on_times);
    let (off_min, off_median, off_max) = summary(&mut off_times);
    println!(
        "{name}: on min {on_min:.2} / median {on_median:.2} / max {on_max:.2} ms; \
         off {off_min:.2} / {off_median:.2} / {off_max:.2} ms; \
         median added {:+.2} ms ({PAIRS} pairs)",
        on_median - off_median
    );
    // The hanging server's couriers would outlive the bench otherwise.
    finish_couriers(home.path(), Duration::ZERO);
    on_median - off_median
}

/// The least a hand-off can cost: starting the example with null stdio
/// (not waited for), and writing one batch to a spool.
fn floor(binary: &Path) {
    let home = tempfile::tempdir().expect("temp dir");
    let mut spawns: Vec<Duration> = (0..PAIRS)
        .map(|_| {
            let started = Instant::now();
            let mut child = command(binary, home.path(), &["version"], &[])
                .spawn()
                .expect("spawn");
            let spawned = started.elapsed();
            let _ = child.wait();
            spawned
        })
        .collect();
    let body = vec![b'x'; 600];
    let mut writes: Vec<Duration> = (0..PAIRS)
        .map(|i| {
            let started = Instant::now();
            let tmp = home.path().join(format!(".{i}.tmp"));
            std::fs::write(&tmp, &body).expect("write");
            std::fs::rename(&tmp, home.path().join(format!("{i}.json"))).expect("rename");
            started.elapsed()
        })
        .collect();
    let (_, spawn_ms, _) = summary(&mut spawns);
    let (_, write_ms, _) = summary(&mut writes);
    println!(
        "floor: one spawn of the example with null stdio median {spawn_ms:.3} ms, \
         one spool write median {write_ms:.3} ms"
    );
}

/// Events received more than once, by their timestamp and command.
fn duplicates(events: &[Value]) -> usize {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for event in events {
        let key = format!(
            "{}{}{}",
            event["event"]["timestamp"],
            event["event"]["properties"]["command"],
            event["event"]["properties"]["duration_ms"]
        );
        *seen.entry(key).or_default() += 1;
    }
    seen.values().map(|n| n - 1).sum()
}

/// A config dir with the provider `up` needs (added with telemetry off).
fn home_with_a_provider(binary: &Path) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("temp dir");
    run(
        binary,
        home.path(),
        &["provider", "add", "docker"],
        &[("DEVSY_DISABLE_TELEMETRY", "1")],
    );
    home
}

/// `runs` runs 100 ms away: all events must arrive within 10 s of the last.
fn delivery(binary: &Path, server: &Server, proxy: &DelayProxy, args: &[&str], runs: usize) {
    let home = if args[0] == "up" {
        home_with_a_provider(binary)
    } else {
        tempfile::tempdir().expect("temp dir")
    };
    let endpoint = proxy.endpoint();
    let vars = [("DEVSY_TELEMETRY_ENDPOINT", endpoint.as_str())];
    let before = server.events().len();
    for _ in 0..runs {
        run(binary, home.path(), args, &vars);
    }
    let last = Instant::now();
    let arrived = wait_until(Duration::from_secs(10), || {
        server.events().len() - before >= runs
    });
    let took = last.elapsed();
    finish_couriers(home.path(), COURIER_BOUND);
    let events = &server.events()[before..];
    println!(
        "{runs} runs of `devsy {}` 100 ms away: {} events (of {runs}) arrived{} {:.0} ms after the last run; {} received twice",
        args.join(" "),
        events.len() - duplicates(events),
        if arrived {
            ""
        } else {
            " (NOT ALL within 10 s)"
        },
        ms(took),
        duplicates(events)
    );
}

/// 200 runs against a hanging server.
fn hanging_runs(binary: &Path, endpoint: &str) {
    let home = tempfile::tempdir().expect("temp dir");
    let vars = [("DEVSY_TELEMETRY_ENDPOINT", endpoint)];
    let mut most = 0;
    let started = Instant::now();
    for _ in 0..200 {
        run(binary, home.path(), &["provider", "list"], &vars);
        most = most.max(couriers_in(home.path()).len());
    }
    let mut lived = started.elapsed();
    let gone = wait_until(COURIER_BOUND, || {
        let n = couriers_in(home.path()).len();
        most = most.max(n);
        lived = started.elapsed();
        n == 0
    });
    let (entries, bytes) =
        std::fs::read_dir(home.path().join("telemetry-spool")).map_or((0, 0), |dir| {
            dir.flatten()
                .filter(|f| f.file_name().to_string_lossy().ends_with(".json"))
                .fold((0, 0), |(n, b), f| {
                    (n + 1, b + f.metadata().map_or(0, |m| m.len()))
                })
        });
    finish_couriers(home.path(), Duration::ZERO);
    println!(
        "200 runs against a hanging server: at most {most} courier(s) at once; \
         the last gone {:.1} s after the first run{}; spool: {entries} batches, {bytes} bytes \
         (caps 1,000 events, 1 MiB)",
        lived.as_secs_f64(),
        if gone { "" } else { " (NOT within 35 s)" }
    );
}

/// `x=$(devsy provider list)`: the shell waits for every process holding
/// the pipe, so a courier that kept stdout would hold it up.
fn captured(binary: &Path, endpoint: &str) {
    let home = tempfile::tempdir().expect("temp dir");
    let mut times: Vec<Duration> = (0..PAIRS)
        .map(|_| {
            let started = Instant::now();
            let status = Command::new("sh")
                .args(["-c", "x=$(\"$0\" provider list)"])
                .arg(binary)
                .env_clear()
                .env("DEVSY_HOME", home.path())
                .env("DEVSY_TELEMETRY_ENDPOINT", endpoint)
                .status()
                .expect("run sh");
            assert!(status.success());
            started.elapsed()
        })
        .collect();
    finish_couriers(home.path(), Duration::ZERO);
    let (min, median, max) = summary(&mut times);
    println!(
        "x=$(devsy provider list), hanging server: min {min:.2} / median {median:.2} / max {max:.2} ms ({PAIRS} runs; goal < 50 ms)"
    );
}

/// When the start event of a long command (`up --delay 1`) arrives, 100 ms
/// away: sent early, on a connection opened at its first record.
fn promptness(binary: &Path, server: &Server, proxy: &DelayProxy) {
    let home = home_with_a_provider(binary);
    let endpoint = proxy.endpoint();
    let mut arrivals: Vec<Duration> = (0..5)
        .map(|_| {
            let before = server.events().len();
            let started = Instant::now();
            let mut child = command(
                binary,
                home.path(),
                &["up", "github.com/devsy-sh/devsy", "--delay", "1"],
                &[("DEVSY_TELEMETRY_ENDPOINT", &endpoint)],
            )
            .spawn()
            .expect("spawn");
            let mut arrived = Duration::MAX;
            wait_until(Duration::from_secs(5), || {
                let done = server.events().len() > before;
                if done {
                    arrived = started.elapsed();
                }
                done
            });
            let _ = child.wait();
            finish_couriers(home.path(), COURIER_BOUND);
            arrived
        })
        .collect();
    let (min, median, max) = summary(&mut arrivals);
    println!(
        "start event of `up --delay 1`, 100 ms away: arrived {min:.0} / {median:.0} / {max:.0} ms after the spawn \
         (min / median / max, 5 runs; polled every 10 ms)"
    );
}

/// The mechanism behind it, A/B in one run: a first request made 75 ms
/// after the first event (the window), through the transport, on a
/// connection opened at the event or opened by the request.
fn opened_ahead(proxy: &DelayProxy) {
    use devsy_telemetry::{HttpTransport, Transport as _};
    let body = br#"{"data":[]}"#;
    let timed = |ahead: bool| -> Duration {
        let transport = HttpTransport::new(proxy.endpoint()).expect("endpoint");
        let started = Instant::now();
        if ahead {
            transport.prepare(Duration::from_secs(5));
        }
        std::thread::sleep(Duration::from_millis(75).saturating_sub(started.elapsed()));
        transport
            .send(body, Duration::from_secs(5))
            .expect("delivered");
        started.elapsed()
    };
    let (mut with, mut without): (Vec<Duration>, Vec<Duration>) =
        (0..5).map(|_| (timed(true), timed(false))).unzip();
    let (_, with_ms, _) = summary(&mut with);
    let (_, without_ms, _) = summary(&mut without);
    println!(
        "first request 75 ms after the first event, 100 ms away, until its answer (medians, 5 pairs): \
         connection opened at the event {with_ms:.0} ms, opened by the request {without_ms:.0} ms"
    );
}

/// `up --delay 3` killed after 1 s, 100 ms away.
fn killed(binary: &Path, server: &Server, proxy: &DelayProxy) {
    let home = home_with_a_provider(binary);
    let before = server.events().len();
    let endpoint = proxy.endpoint();
    let mut child = command(
        binary,
        home.path(),
        &["up", "github.com/devsy-sh/devsy", "--delay", "3"],
        &[("DEVSY_TELEMETRY_ENDPOINT", &endpoint)],
    )
    .spawn()
    .expect("spawn");
    std::thread::sleep(Duration::from_secs(1));
    let _ = child.kill();
    let _ = child.wait();
    let arrived = server.events().len() - before;
    println!(
        "`up --delay 3` killed after 1 s, 100 ms away: {arrived} start event(s) had arrived (goal 1)"
    );
}

/// CI mode, 100 ms away: delivered when the process exits, no courier.
fn ci(binary: &Path, server: &Server, proxy: &DelayProxy) {
    let home = tempfile::tempdir().expect("temp dir");
    let endpoint = proxy.endpoint();
    let before = server.events().len();
    let took = run(
        binary,
        home.path(),
        &["provider", "list"],
        &[("CI", "true"), ("DEVSY_TELEMETRY_ENDPOINT", &endpoint)],
    );
    let arrived = server.events().len() - before;
    let couriers = couriers_in(home.path()).len();
    println!(
        "CI=true, 100 ms away: {arrived} event(s) arrived by the exit ({:.0} ms), {couriers} courier(s)",
        ms(took)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let binary = devsy_binary();
    let server = Server::start(Mode::Status(200));
    let far = DelayProxy::start(server.addr, ONE_WAY);
    let hanging = Server::start(Mode::Hang);

    pairs(
        &binary,
        "provider list, server 100 ms away",
        &far.endpoint(),
        false,
    );
    pairs(
        &binary,
        "provider list, hanging server",
        &hanging.endpoint(),
        true,
    );
    pairs(
        &binary,
        "provider list, healthy loopback",
        &server.endpoint(),
        false,
    );
    floor(&binary);

    delivery(&binary, &server, &far, &["provider", "list"], 30);
    delivery(
        &binary,
        &server,
        &far,
        &["up", "github.com/devsy-sh/devsy", "--delay", "0.07"],
        30,
    );
    hanging_runs(&binary, &hanging.endpoint());
    captured(&binary, &hanging.endpoint());
    promptness(&binary, &server, &far);
    opened_ahead(&far);
    killed(&binary, &server, &far);
    ci(&binary, &server, &far);
}
