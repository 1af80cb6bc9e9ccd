//! For long-running hosts (`cargo bench --bench throughput`): events per
//! second enqueued from two threads, events per second delivered to a
//! loopback server with batching, the peak memory while a million events
//! are offered to a dead server, and that an instrumented call with
//! telemetry off allocates nothing. Prints one line per figure; the figures
//! and their goals are in BENCHMARKS.md.

#[allow(dead_code)] // the tests use the rest of the file
#[path = "../tests/it/support/fault_server.rs"]
mod fault_server;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use devsy_telemetry::{Telemetry, Transport, TransportError, telemetry_command};
use fault_server::{Mode, Server};

/// Counts allocations, for the telemetry-off check.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; counting is one atomic add.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Discard;

impl Transport for Discard {
    fn send(&self, body: &[u8], _: Duration) -> Result<(), TransportError> {
        black_box(body);
        Ok(())
    }
}

#[telemetry_command("provider list")]
fn instrumented(n: u64) -> Result<u64, String> {
    Ok(black_box(n) + 1)
}

fn builder(dir: &std::path::Path) -> devsy_telemetry::Builder {
    Telemetry::builder("devsy")
        .version("v1.0.0")
        .env([("HOME", "/nonexistent")])
        .config_dir(dir)
}

/// Peak resident memory so far, in KiB (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Two threads record as fast as they can, for `window` or until `room`
/// events are in: with a queue large enough that nothing is dropped, this
/// is the rate at which callers enqueue (the worker drains concurrently).
/// Then the same with the default queue (1,000) kept full: what is
/// accepted then is what the worker drains, the rest dropped and counted.
fn enqueue_two_threads(window: Duration, room: usize) {
    for (label, capacity, per_thread) in [
        ("room for all", room, (room / 2) as u64),
        (
            "default queue, saturated",
            devsy_telemetry::DEFAULT_QUEUE_CAPACITY,
            u64::MAX,
        ),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let telemetry = builder(dir.path())
            .transport(Discard)
            .queue_capacity(capacity)
            .start();
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    let mut i = 0_u64;
                    while i < per_thread && started.elapsed() < window {
                        for _ in 0..1000 {
                            let _ = black_box(instrumented(black_box(i)));
                            i += 1;
                        }
                    }
                });
            }
        });
        let elapsed = started.elapsed();
        let _ = telemetry.flush(Duration::from_secs(30));
        let stats = telemetry.stats();
        let offered = stats.recorded + stats.dropped_queue_full;
        println!(
            "enqueue, 2 threads, {label}: {:.0} events/s accepted, {:.0} offered/s ({} accepted, {} dropped as the queue was full, in {elapsed:.2?})",
            stats.recorded as f64 / elapsed.as_secs_f64(),
            offered as f64 / elapsed.as_secs_f64(),
            stats.recorded,
            stats.dropped_queue_full,
        );
    }
}

/// Events delivered per second to a loopback server, the queue kept full.
fn delivered_per_second(events: u64) {
    let server = Server::start(Mode::Status(200));
    let dir = tempfile::tempdir().expect("temp dir");
    let telemetry = builder(dir.path())
        .endpoint(server.endpoint())
        .queue_capacity(10_000)
        .start();
    let started = Instant::now();
    let mut offered = 0;
    while offered < events && started.elapsed() < Duration::from_secs(30) {
        let _ = instrumented(offered);
        offered += 1;
        if offered % 5_000 == 0 {
            // Keep the queue from overflowing: wait for the worker.
            let _ = telemetry.flush(Duration::from_secs(10));
        }
    }
    let _ = telemetry.flush(Duration::from_secs(30));
    let elapsed = started.elapsed();
    let stats = telemetry.stats();
    println!(
        "delivered to loopback: {:.0} events/s ({} delivered of {} recorded, {} requests, in {elapsed:.2?}; {stats})",
        stats.delivered as f64 / elapsed.as_secs_f64(),
        stats.delivered,
        stats.recorded,
        server.requests().len(),
    );
}

/// Peak memory growth while a million events are offered to a dead server.
fn memory_with_a_dead_server(events: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let before = peak_rss_kib();
    let telemetry = builder(dir.path())
        .endpoint(fault_server::closed_port_endpoint())
        .start();
    let started = Instant::now();
    for i in 0..events {
        let _ = instrumented(i);
    }
    let elapsed = started.elapsed();
    let stats = telemetry.stats();
    let after = peak_rss_kib();
    drop(telemetry);
    match (before, after) {
        (Some(before), Some(after)) => println!(
            "dead server, {events} events offered in {elapsed:.2?}: peak RSS grew {} KiB ({} recorded, {} dropped as the queue was full)",
            after.saturating_sub(before),
            stats.recorded,
            stats.dropped_queue_full,
        ),
        _ => println!("dead server: peak RSS unavailable on this platform"),
    }
}

/// With telemetry off, instrumented calls allocate nothing.
fn allocations_when_off(calls: u64) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..calls {
        let _ = black_box(instrumented(black_box(i)));
    }
    let allocated = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!("telemetry off: {allocated} allocations in {calls} instrumented calls");
}

fn main() {
    // Under `cargo test --benches` there is nothing to measure.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    allocations_when_off(1_000_000);
    // First, while the peak is still this process's start-up.
    memory_with_a_dead_server(1_000_000);
    enqueue_two_threads(Duration::from_secs(2), 2_000_000);
    delivered_per_second(200_000);
}
