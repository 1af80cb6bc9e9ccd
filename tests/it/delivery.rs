//! Background delivery: the exit budget against a server that never
//! answers, a full queue that drops instead of blocking, batching, and
//! `disable()` discarding what is queued.
//!
//! Time bounds here are generous upper bounds on a feature (the exit
//! budget), not speed measurements: the benchmarks measure speed.

use crate::support;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::fault_server::{Mode, Server};
use crate::support::recording::wait_until;
use devsy_telemetry::{Telemetry, Transport, TransportError};

/// Well above a 500 ms budget, well below "hangs".
const GENEROUS: Duration = Duration::from_secs(3);

fn builder(home: &std::path::Path) -> devsy_telemetry::Builder {
    Telemetry::builder("devsy")
        .version("v1.0.0")
        .env([("HOME", "/nonexistent")])
        .config_dir(home)
}

#[test]
fn the_cli_exits_within_the_budget_when_the_server_never_answers() {
    let server = Server::start(Mode::Hang);
    let home = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let output = support::process::run_example(
        "manual",
        &["provider", "delete", "docker"],
        home.path(),
        &[("DEVSY_TELEMETRY_ENDPOINT", &server.endpoint())],
    );
    let elapsed = started.elapsed();
    assert!(server.connections() >= 1, "the CLI never connected");
    // Output and exit code are what they would be without telemetry.
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        support::process::stderr(&output),
        "error: provider 'docker' does not exist\n"
    );
    assert!(
        elapsed < GENEROUS,
        "the CLI took {elapsed:?} against a hanging server (budget 500 ms)"
    );
}

#[test]
fn dropping_the_guard_holds_a_custom_budget_against_a_hanging_server() {
    let _turn = support::recording::a_client();
    let server = Server::start(Mode::Hang);
    let home = tempfile::tempdir().expect("temp dir");
    let telemetry = builder(home.path())
        .endpoint(server.endpoint())
        .exit_budget(Duration::from_millis(200))
        .start();
    telemetry.command("provider list").start().finish_ok();
    let started = Instant::now();
    drop(telemetry);
    let elapsed = started.elapsed();
    assert!(server.connections() >= 1);
    assert!(
        elapsed < GENEROUS,
        "drop took {elapsed:?} with a 200 ms budget"
    );
}

#[test]
fn a_server_error_is_retried_then_spooled_and_a_refusal_dropped_and_counted() {
    let _turn = support::recording::a_client();
    let server = Server::start(Mode::Status(503));
    let home = tempfile::tempdir().expect("temp dir");
    let telemetry = builder(home.path()).endpoint(server.endpoint()).start();
    telemetry.command("provider list").start().finish_ok();
    assert!(
        telemetry.flush(GENEROUS),
        "a batch kept in the spool is settled"
    );
    let stats = telemetry.stats();
    assert_eq!((stats.recorded, stats.delivered, stats.spooled), (1, 0, 1));
    // Three attempts, with backoff between them, then the spool.
    assert_eq!(server.requests().len(), 3);
    let spooled = support::process::files_under(&home.path().join("telemetry-spool"));
    assert_eq!(spooled.len(), 1, "{spooled:?}");
    drop(telemetry);

    let refusing = Server::start(Mode::Status(400));
    let home = tempfile::tempdir().expect("temp dir");
    let telemetry = builder(home.path()).endpoint(refusing.endpoint()).start();
    telemetry.command("provider list").start().finish_ok();
    assert!(telemetry.flush(GENEROUS));
    let stats = telemetry.stats();
    assert_eq!((stats.rejected, stats.spooled), (1, 0));
    assert_eq!(refusing.requests().len(), 1, "a 400 is never retried");
}

/// A transport that tells when it is entered and blocks until released.
struct Gate {
    entered: mpsc::Sender<()>,
    release: std::sync::Mutex<mpsc::Receiver<()>>,
}

impl Transport for Gate {
    fn send(&self, _body: &[u8], _timeout: Duration) -> Result<(), TransportError> {
        let _ = self.entered.send(());
        let release = self
            .release
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        release
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| TransportError::Timeout)
    }
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let _turn = support::recording::a_client();
    let home = tempfile::tempdir().expect("temp dir");
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let telemetry = builder(home.path())
        .queue_capacity(4)
        .transport(Gate {
            entered: entered_tx,
            release: std::sync::Mutex::new(release_rx),
        })
        .start();

    // The worker takes the first event and blocks in the transport.
    telemetry.command("first").start().finish_ok();
    let _ = telemetry.flush(Duration::from_millis(1));
    entered
        .recv_timeout(Duration::from_secs(10))
        .expect("the worker entered the transport");

    // Ten more while the worker is stuck: four fit, six are dropped, and no
    // call waits for the worker (a blocking push would never return here).
    let (done_tx, done) = mpsc::channel();
    thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..10 {
                telemetry.command("provider list").start().finish_ok();
            }
            let _ = done_tx.send(());
        });
        done.recv_timeout(GENEROUS)
            .expect("recording blocked on a full queue");
    });
    let stats = telemetry.stats();
    assert_eq!(stats.recorded, 5);
    assert_eq!(stats.dropped_queue_full, 6);

    // Released, everything accepted is delivered.
    for _ in 0..2 {
        let _ = release.send(());
    }
    assert!(telemetry.flush(Duration::from_secs(10)));
    let stats = telemetry.stats();
    assert_eq!(
        (stats.delivered, stats.failed, stats.dropped_queue_full),
        (5, 0, 6)
    );
}

#[test]
fn events_are_batched_up_to_a_hundred_a_request() {
    let _turn = support::recording::a_client();
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    let telemetry = builder(home.path()).endpoint(server.endpoint()).start();
    for _ in 0..250 {
        telemetry.command("provider list").start().finish_ok();
    }
    assert!(telemetry.flush(Duration::from_secs(10)));
    let sizes: Vec<usize> = server
        .requests()
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
            body["data"].as_array().map_or(0, Vec::len)
        })
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 250);
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");
    assert!(sizes.len() <= 5, "250 events took {} requests", sizes.len());
    assert_eq!(telemetry.stats().delivered, 250);
}

#[test]
fn the_first_batch_goes_out_early_and_later_ones_a_second_after_their_first_event() {
    let _turn = support::recording::a_client();
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    let telemetry = builder(home.path()).endpoint(server.endpoint()).start();
    // Poll, bounded, for each window to pass: no flush is asked for.
    let started = Instant::now();
    telemetry.command("provider list").start().finish_ok();
    assert!(wait_until(Duration::from_secs(10), || !server
        .requests()
        .is_empty()));
    let first = started.elapsed();
    assert!(
        first >= Duration::from_millis(70),
        "sent after {first:?}: the first batch did not wait its window (75 ms)"
    );
    let started = Instant::now();
    telemetry.command("provider use").start().finish_ok();
    assert!(wait_until(Duration::from_secs(10), || server
        .requests()
        .len()
        == 2));
    let second = started.elapsed();
    assert!(
        second >= Duration::from_millis(900),
        "sent after {second:?}: a later batch did not wait the batch window (1 s)"
    );
    assert_eq!(server.events().len(), 2);
}

#[test]
fn an_event_after_the_worker_went_idle_wakes_it() {
    let _turn = support::recording::a_client();
    // The worker sleeps one batch window on a timer after its queue
    // empties, then until the next event wakes it: that event must still go
    // out a window after it was recorded, not at the exit.
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    let telemetry = builder(home.path()).endpoint(server.endpoint()).start();
    telemetry.command("provider list").start().finish_ok();
    wait_until(Duration::from_secs(10), || !server.events().is_empty());
    assert_eq!(server.events().len(), 1);
    // Past the timed sleep that follows the first batch.
    thread::sleep(Duration::from_millis(1500));
    telemetry.command("provider list").start().finish_ok();
    let recorded = Instant::now();
    wait_until(Duration::from_secs(10), || server.events().len() >= 2);
    assert_eq!(server.events().len(), 2, "the idle worker was never woken");
    assert!(
        recorded.elapsed() < GENEROUS,
        "sent {:?} after it was recorded: the idle worker was not woken",
        recorded.elapsed()
    );
}

#[test]
fn disable_discards_everything_queued() {
    let _turn = support::recording::a_client();
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    let telemetry = builder(home.path()).endpoint(server.endpoint()).start();
    for _ in 0..3 {
        telemetry.command("provider list").start().finish_ok();
    }
    telemetry.disable();
    telemetry.command("after").start().finish_err("ignored");
    assert!(telemetry.flush(GENEROUS));
    assert_eq!(
        telemetry.status(),
        devsy_telemetry::Status::Disabled(devsy_telemetry::DisabledBy::Runtime)
    );
    let stats = telemetry.stats();
    // Three queued and two after (a start and a failure), all discarded.
    assert_eq!(
        (stats.recorded, stats.discarded, stats.delivered),
        (5, 5, 0)
    );
    drop(telemetry);
    assert_eq!(server.connections(), 0);
}

#[test]
fn a_flush_of_more_than_a_spools_worth_delivers_every_event() {
    let _turn = support::recording::a_client();
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    let telemetry = builder(home.path())
        .endpoint(server.endpoint())
        .queue_capacity(5000)
        .start();
    for _ in 0..4000 {
        telemetry.command("provider list").start().finish_ok();
    }
    assert!(telemetry.flush(Duration::from_secs(30)));
    let stats = telemetry.stats();
    assert_eq!(
        (stats.recorded, stats.delivered, stats.failed),
        (4000, 4000, 0),
        "{stats}"
    );
    assert_eq!(server.events().len(), 4000);
}

/// Events on disk in the spool, in flight or not (from the file names).
fn events_in_spool(home: &std::path::Path) -> usize {
    let dir = home.join("telemetry-spool");
    let Ok(listing) = std::fs::read_dir(dir) else {
        return 0;
    };
    listing
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let name = name.strip_prefix(".inflight-").unwrap_or(&name).to_string();
            let stem = name.strip_suffix(".json")?.to_string();
            stem.rsplit('-').next()?.parse::<usize>().ok()
        })
        .sum()
}

/// Blocks for the whole timeout it is given, then fails.
struct Stalls;

impl Transport for Stalls {
    fn send(&self, _body: &[u8], timeout: Duration) -> Result<(), TransportError> {
        thread::sleep(timeout);
        Err(TransportError::Timeout)
    }
}

#[test]
fn a_background_send_cut_short_by_the_exit_loses_nothing() {
    let _turn = support::recording::a_client();
    let home = tempfile::tempdir().expect("temp dir");
    let telemetry = builder(home.path()).transport(Stalls).start();
    telemetry.command("first").start().finish_ok();
    // The batch window passes: the worker is now stuck in a background send.
    thread::sleep(Duration::from_millis(1150));
    telemetry.command("second").start().finish_ok();
    drop(telemetry);
    // Right after the exit, both events are on disk for the next run.
    assert_eq!(events_in_spool(home.path()), 2);
}

#[test]
fn a_large_exit_flush_against_a_slow_server_keeps_every_event() {
    let _turn = support::recording::a_client();
    let server = Server::start_script(vec![
        Mode::Delay(Duration::from_millis(300), 200),
        Mode::Status(200),
    ]);
    let home = tempfile::tempdir().expect("temp dir");
    let telemetry = builder(home.path())
        .endpoint(server.endpoint())
        .queue_capacity(3000)
        .start();
    for _ in 0..2500 {
        telemetry.command("provider list").start().finish_ok();
    }
    drop(telemetry);
    let delivered = server.delivered_events().len();
    assert_eq!(
        delivered + events_in_spool(home.path()),
        2500,
        "delivered {delivered}"
    );
}

#[test]
fn a_timed_out_flush_does_not_shorten_the_exit() {
    let _turn = support::recording::a_client();
    let server = Server::start_script(vec![
        Mode::Delay(Duration::from_millis(300), 200),
        Mode::Status(200),
    ]);
    let home = tempfile::tempdir().expect("temp dir");
    let telemetry = builder(home.path()).endpoint(server.endpoint()).start();
    telemetry.command("a").start().finish_ok();
    assert!(!telemetry.flush(Duration::from_millis(10)));
    telemetry.command("b").start().finish_ok();
    drop(telemetry);
    assert_eq!(server.delivered_events().len(), 2);
}

#[test]
fn two_clients_at_once_send_an_earlier_runs_spool_once() {
    let _turn = support::recording::a_client();
    let home = tempfile::tempdir().expect("temp dir");
    {
        let telemetry = builder(home.path())
            .endpoint(support::fault_server::closed_port_endpoint())
            .start();
        for _ in 0..5 {
            telemetry.command("earlier").start().finish_ok();
        }
    }
    assert_eq!(events_in_spool(home.path()), 5);
    let server = Server::start(Mode::Status(200));
    let first = builder(home.path()).endpoint(server.endpoint()).start();
    let second = builder(home.path()).endpoint(server.endpoint()).start();
    // Both are running when either would look at the spool.
    thread::sleep(Duration::from_millis(100));
    drop(first);
    drop(second);
    let earlier = server
        .delivered_events()
        .iter()
        .filter(|e| e["event"]["properties"]["command"] == "devsy earlier")
        .count();
    assert_eq!(earlier, 5);
}

#[test]
fn a_spooled_batch_refused_later_is_counted_once() {
    let _turn = support::recording::a_client();
    let server = Server::start_script(vec![
        Mode::Status(500),
        Mode::Status(500),
        Mode::Status(500),
        Mode::Status(400),
    ]);
    let home = tempfile::tempdir().expect("temp dir");
    let telemetry = builder(home.path()).endpoint(server.endpoint()).start();
    telemetry.command("provider list").start().finish_ok();
    assert!(telemetry.flush(GENEROUS));
    // Kept after three failures, then refused when retried from the spool.
    wait_until(Duration::from_secs(10), || {
        telemetry.stats().spool_rejected > 0
    });
    let stats = telemetry.stats();
    assert_eq!(
        (
            stats.recorded,
            stats.spooled,
            stats.rejected,
            stats.spool_rejected
        ),
        (1, 1, 0, 1),
        "{stats}"
    );
}

/// Fails every request with a 503, noting when each was made.
struct Failing(std::sync::Arc<std::sync::Mutex<Vec<Instant>>>);

impl Transport for Failing {
    fn send(&self, _body: &[u8], _timeout: Duration) -> Result<(), TransportError> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Instant::now());
        Err(TransportError::Status {
            code: 503,
            retry_after: None,
        })
    }
}

#[test]
fn a_backoff_holds_while_events_and_flushes_keep_waking_the_worker() {
    let _turn = support::recording::one_at_a_time();
    let home = tempfile::tempdir().expect("temp dir");
    let attempts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let telemetry = builder(home.path())
        .transport(Failing(attempts.clone()))
        .queue_capacity(4)
        .start();
    // Each record past the high water mark and each flush wakes the worker;
    // none of that may shorten a backoff.
    let until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < until {
        telemetry.command("provider list").start().finish_ok();
        let _ = telemetry.flush(Duration::from_millis(1));
        thread::sleep(Duration::from_millis(1));
    }
    let times = attempts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    drop(telemetry);
    assert!(times.len() >= 3, "{} attempts", times.len());
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|gap| *gap >= Duration::from_millis(45)),
        "attempts closer than the 50 ms backoff: {gaps:?}"
    );
}

#[test]
fn the_first_record_opens_the_connection_its_batch_then_uses() {
    let _turn = support::recording::a_client();
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    let telemetry = builder(home.path()).endpoint(server.endpoint()).start();
    thread::sleep(Duration::from_millis(100));
    assert_eq!(server.connections(), 0, "connected at start()");
    telemetry.command("provider list").start().finish_ok();
    // Connected at once, while the first batch's window (75 ms) runs.
    assert!(wait_until(GENEROUS, || server.connections() == 1));
    assert!(server.requests().is_empty(), "sent before its window ended");
    assert!(wait_until(GENEROUS, || server.events().len() == 1));
    assert_eq!(
        server.connections(),
        1,
        "the request did not use the connection opened ahead"
    );
}
