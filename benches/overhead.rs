//! What instrumentation costs a command, per call, side by side with what a
//! CLI author would otherwise write, in one run (`cargo bench --bench
//! overhead`). Figures and goals: BENCHMARKS.md.
//!
//! - `on/*`: a command that succeeds quickly, telemetry on: the plain
//!   function, `#[telemetry_command]` (recording a start event into the
//!   queue), the naive hand-written version (two `Instant::now()` and a
//!   `sync_channel` `try_send` to a worker blocked in `recv`), and
//!   `#[tracing::instrument]` with a fmt subscriber writing to `io::sink()`.
//! - `off/*`: the plain function and the instrumented one under each opt-out
//!   rule.
//! - `failed/*`: a failed command with a 100-byte error: the caller's side
//!   (formatting it, recording the failure) and the worker's (scrubbing it).
//! - `start`: `Telemetry::builder(..).start()` on the calling thread.

use std::hint::black_box;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use devsy_telemetry::{Telemetry, Transport, TransportError, telemetry_command};

/// Accepts every batch, so the queue drains as fast as the worker goes.
struct Discard;

impl Transport for Discard {
    fn send(&self, body: &[u8], _: Duration) -> Result<(), TransportError> {
        black_box(body);
        Ok(())
    }
}

fn telemetry(dir: &std::path::Path) -> devsy_telemetry::Builder {
    Telemetry::builder("devsy")
        .version("v1.0.0")
        .env([("HOME", "/nonexistent")])
        .config_dir(dir)
        .transport(Discard)
}

#[inline(never)]
fn plain(n: u64) -> Result<u64, String> {
    Ok(black_box(n) + 1)
}

#[inline(never)]
#[telemetry_command("provider list")]
fn instrumented(n: u64) -> Result<u64, String> {
    Ok(black_box(n) + 1)
}

#[inline(never)]
#[tracing::instrument]
fn traced(n: u64) -> Result<u64, String> {
    Ok(black_box(n) + 1)
}

type NaiveEvent = (&'static str, Instant, Duration);

/// The hand-written version a CLI author might write instead.
#[inline(never)]
fn naive(tx: &mpsc::SyncSender<NaiveEvent>, n: u64) -> Result<u64, String> {
    let start = Instant::now();
    let result = Ok(black_box(n) + 1);
    let elapsed = start.elapsed();
    let _ = tx.try_send(("provider list", start, elapsed));
    result
}

const ERROR_100: &str = "failed to create workspace 'devsy': provider 'kubernetes' answered 503 Service Unavailable (retry!!)";

#[inline(never)]
#[telemetry_command("up")]
fn fails(n: u64) -> Result<u64, String> {
    if black_box(n) < u64::MAX {
        return Err(black_box(ERROR_100).to_string());
    }
    Ok(n)
}

/// Times `calls` calls of `f` in rounds of at most `round`, flushing
/// between rounds (untimed) so the queue never fills: what is measured is
/// recording into the queue, not dropping.
fn timed_in_rounds(
    telemetry: &Telemetry,
    calls: u64,
    round: u64,
    mut f: impl FnMut(u64),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < calls {
        let n = round.min(calls - done);
        let _ = telemetry.flush(Duration::from_secs(5));
        let started = Instant::now();
        for i in 0..n {
            f(i);
        }
        total += started.elapsed();
        done += n;
    }
    total
}

fn on(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("on");
    group.bench_function("plain", |b| b.iter(|| plain(black_box(1))));
    {
        let telemetry = telemetry(dir.path()).start();
        assert!(telemetry.status().is_enabled());
        group.bench_function("telemetry_command", |b| {
            b.iter_custom(|iters| {
                timed_in_rounds(&telemetry, iters, 400, |i| {
                    let _ = black_box(instrumented(black_box(i)));
                })
            });
        });
        let stats = telemetry.stats();
        assert_eq!(
            stats.dropped_queue_full, 0,
            "measured the drop path: {stats}"
        );
    }
    {
        let (tx, rx) = mpsc::sync_channel::<NaiveEvent>(1000);
        let worker = thread::spawn(move || {
            for event in rx {
                black_box(event);
            }
        });
        group.bench_function("naive", |b| b.iter(|| naive(&tx, black_box(1))));
        drop(tx);
        let _ = worker.join();
    }
    {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            group.bench_function("tracing_instrument", |b| b.iter(|| traced(black_box(1))));
        });
    }
    group.finish();
}

fn off(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("config.json");
    std::fs::write(
        &file,
        r#"{"contexts": {"default": {"options": {"TELEMETRY": "false"}}}}"#,
    )
    .expect("write config");
    let broken = tempfile::tempdir().expect("temp dir");
    std::fs::write(broken.path().join("config.json"), "{").expect("write config");
    type Rule<'a> = (&'static str, Box<dyn Fn() -> Telemetry + 'a>);
    let rules: Vec<Rule<'_>> = vec![
        (
            "disable_variable",
            Box::new(|| {
                telemetry(dir.path())
                    .env([("DEVSY_DISABLE_TELEMETRY", "true")])
                    .start()
            }),
        ),
        (
            "do_not_track",
            Box::new(|| telemetry(dir.path()).env([("DO_NOT_TRACK", "1")]).start()),
        ),
        ("context_option", Box::new(|| telemetry(dir.path()).start())),
        (
            "development_build",
            Box::new(|| telemetry(broken.path()).version("v0.0.0").start()),
        ),
        (
            "unreadable_config",
            Box::new(|| telemetry(broken.path()).start()),
        ),
        (
            "app_switch",
            Box::new(|| {
                let empty = std::env::temp_dir().join("devsy-bench-empty");
                telemetry(&empty).enabled(false).start()
            }),
        ),
    ];
    let mut group = c.benchmark_group("off");
    group.bench_function("plain", |b| b.iter(|| plain(black_box(1))));
    for (rule, start) in &rules {
        let telemetry = start();
        assert!(
            !telemetry.status().is_enabled(),
            "{rule}: {}",
            telemetry.status()
        );
        group.bench_function(*rule, |b| b.iter(|| instrumented(black_box(1))));
        drop(telemetry);
    }
    group.finish();
}

fn failed(c: &mut Criterion) {
    assert_eq!(ERROR_100.len(), 100);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("failed");
    {
        let telemetry = telemetry(dir.path()).start();
        group.bench_function("caller", |b| {
            b.iter_custom(|iters| {
                timed_in_rounds(&telemetry, iters, 200, |i| {
                    let _ = black_box(fails(black_box(i)));
                })
            });
        });
    }
    let scrub = devsy_telemetry::__private::scrubber(Some("/home/alice"), Some("alice"));
    group.bench_function("scrub_on_worker", |b| {
        b.iter(|| scrub(black_box(ERROR_100)))
    });
    group.finish();
}

fn start(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    c.bench_function("start", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let telemetry = telemetry(dir.path()).start();
                total += started.elapsed();
                drop(black_box(telemetry));
            }
            total
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = on, off, failed, start
}
criterion_main!(benches);
