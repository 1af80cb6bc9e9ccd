//! Whole process (`cargo bench --bench process`): the `devsy` example,
//! built in release, running `provider list`, timed from spawn to exit.
//!
//! - telemetry on against a healthy loopback server, against telemetry off
//!   (`DEVSY_DISABLE_TELEMETRY=true`), interleaved run by run so that both
//!   see the same machine; every event must arrive;
//! - telemetry on against a server that accepts and never answers: each
//!   run must exit within the exit budget (500 ms) plus 50 ms.
//!
//! Prints min, median and max over the runs; BENCHMARKS.md has the figures.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use devsy_telemetry::Transport as _;
use support::{Mode, Server};

const RUNS: usize = 30;

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

fn run(binary: &Path, home: &Path, vars: &[(&str, &str)]) -> Duration {
    let started = Instant::now();
    let status = Command::new(binary)
        .args(["provider", "list"])
        .env_clear()
        .env("DEVSY_HOME", home)
        .envs(vars.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run devsy");
    let elapsed = started.elapsed();
    assert!(status.success(), "devsy provider list failed");
    elapsed
}

/// `min / median / max` in milliseconds.
fn summary(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
    )
}

/// The least that "a background thread delivers at exit" can cost, measured
/// on its own: starting and joining a thread, and one POST to the same
/// loopback server on a fresh connection, through the library's transport.
fn floor(server: &Server, added_ms: f64) {
    let mut threads: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            let worker = std::thread::Builder::new()
                .name("floor".into())
                .spawn(|| std::hint::black_box(vec![0_u8; 64]))
                .expect("spawn");
            let _ = worker.join();
            started.elapsed()
        })
        .collect();
    let body = br#"{"data":[]}"#;
    let mut posts: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            let transport =
                devsy_telemetry::HttpTransport::new(server.endpoint()).expect("endpoint");
            transport
                .send(body, Duration::from_secs(5))
                .expect("delivered");
            started.elapsed()
        })
        .collect();
    let (_, thread_ms, _) = summary(&mut threads);
    let (_, post_ms, _) = summary(&mut posts);
    println!(
        "floor: thread start+join median {:.3} ms, one loopback POST on a new connection median {:.3} ms; \
         together {:.3} ms of the {added_ms:.3} ms telemetry added",
        thread_ms,
        post_ms,
        thread_ms + post_ms
    );
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let binary = devsy_binary();
    let home = tempfile::tempdir().expect("temp dir");

    let server = Server::start(Mode::Status(200));
    let endpoint = server.endpoint();
    let on_vars = [("DEVSY_TELEMETRY_ENDPOINT", endpoint.as_str())];
    let off_vars = [
        ("DEVSY_TELEMETRY_ENDPOINT", endpoint.as_str()),
        ("DEVSY_DISABLE_TELEMETRY", "true"),
    ];
    // Warm the page cache and the server.
    run(&binary, home.path(), &off_vars);
    run(&binary, home.path(), &on_vars);
    let warm_events = server.events().len();
    let mut on = Vec::with_capacity(RUNS);
    let mut off = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        off.push(run(&binary, home.path(), &off_vars));
        on.push(run(&binary, home.path(), &on_vars));
    }
    let delivered = server.events().len() - warm_events;
    let (on_min, on_median, on_max) = summary(&mut on);
    let (off_min, off_median, off_max) = summary(&mut off);
    println!(
        "provider list, telemetry on, healthy server: min {on_min:.2} ms, median {on_median:.2} ms, max {on_max:.2} ms ({RUNS} runs)"
    );
    println!(
        "provider list, telemetry off:                min {off_min:.2} ms, median {off_median:.2} ms, max {off_max:.2} ms ({RUNS} runs)"
    );
    println!(
        "median ratio on/off: {:.3}; events delivered: {delivered} of {RUNS}",
        on_median / off_median
    );

    floor(&server, on_median - off_median);

    let hanging = Server::start(Mode::Hang);
    let endpoint = hanging.endpoint();
    let hang_vars = [("DEVSY_TELEMETRY_ENDPOINT", endpoint.as_str())];
    let mut hang: Vec<Duration> = (0..10)
        .map(|_| run(&binary, home.path(), &hang_vars))
        .collect();
    let (hang_min, hang_median, hang_max) = summary(&mut hang);
    println!(
        "provider list, server never answers: min {hang_min:.2} ms, median {hang_median:.2} ms, max {hang_max:.2} ms (10 runs; budget 500 ms + 50 ms)"
    );
}
