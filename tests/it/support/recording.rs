//! In-process recording: telemetry started with a recording transport
//! around a closure, the process's one current client taken in turn, and
//! small waits and an executor for the tests of async shapes.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The process has one current client: the last one started. A test that
/// starts clients takes a turn for as long as they run.
static TURN: RwLock<()> = RwLock::new(());

/// For a test that talks to its clients only through their guards: such
/// tests run side by side, never beside a test that holds [`one_at_a_time`].
pub fn a_client() -> RwLockReadGuard<'static, ()> {
    TURN.read().unwrap_or_else(PoisonError::into_inner)
}

/// For a test that needs the process's current client to be its own (the
/// attribute, the free functions) or to be none: it runs alone among the
/// tests that start clients.
pub fn one_at_a_time() -> RwLockWriteGuard<'static, ()> {
    TURN.write().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` with telemetry on, recording what it sends; one at a time, as
/// the attribute talks to the process's one current client.
pub fn record<R>(slow_threshold: Duration, f: impl FnOnce() -> R) -> (R, Vec<Value>) {
    let _turn = one_at_a_time();
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

/// Polls `done` every 10 ms until it holds or `limit` passes: whether it
/// held. For waiting on background work without a fixed sleep.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if done() {
            return true;
        }
        if started.elapsed() >= limit {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
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
