//! The attribute changes nothing but what is recorded, in every shape:
//! when a command counts (every async shape at its first poll), the order
//! in which parameters drop, and a future dropped before it completes,
//! which is a failed command: `cancelled`.

#![deny(warnings)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Waker};
use std::time::Duration;

use devsy_telemetry::telemetry_command;

use crate::support::recording::{block_on, record, summary};

const QUICK: Duration = devsy_telemetry::DEFAULT_SLOW_THRESHOLD;

fn start(command: &str) -> (String, Option<String>) {
    (format!("devsy {command}"), None)
}

fn failed(command: &str, error: &str) -> (String, Option<String>) {
    (format!("devsy {command}"), Some(error.to_string()))
}

/// Named like the `futures` crate's alias, which the attribute knows by
/// name (an alias of another name is not seen through).
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// ---- every async shape counts at its first poll --------------------------

#[telemetry_command("async fn")]
async fn an_async_fn() -> Result<(), String> {
    Ok(())
}

// The shape is the point, not the `async fn` clippy would prefer.
#[allow(clippy::manual_async_fn)]
#[telemetry_command("impl future")]
fn an_impl_future() -> impl Future<Output = Result<(), String>> {
    async { Ok(()) }
}

#[allow(clippy::unused_async)] // a future that is ready at once
async fn quick() -> Result<(), String> {
    Ok(())
}

#[allow(clippy::unused_async)]
async fn slow() -> Result<(), String> {
    Err("slow".into())
}

/// A boxed future built by an expression, not a literal `Box::pin(async ..)`.
#[telemetry_command("boxed")]
fn a_boxed_future(fast: bool) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
    if fast {
        Box::pin(quick())
    } else {
        Box::pin(slow())
    }
}

#[telemetry_command("box future")]
fn a_box_future_alias(fast: bool) -> BoxFuture<'static, Result<(), String>> {
    if fast {
        Box::pin(quick())
    } else {
        Box::pin(slow())
    }
}

#[async_trait::async_trait]
trait Connect {
    async fn connect(&self, to: (String, u16)) -> Result<(), String>;
}

struct Ssh;

#[async_trait::async_trait]
impl Connect for Ssh {
    // `#[async_trait]` renames the pattern parameter; the property still
    // names its binding.
    #[telemetry_command(provider = host)]
    async fn connect(&self, (host, _port): (String, u16)) -> Result<(), String> {
        if host.is_empty() {
            Err("no host".into())
        } else {
            Ok(())
        }
    }
}

#[test]
fn a_future_made_before_start_and_polled_after_counts_in_every_shape() {
    // Made while no client of this test runs; decided when first polled.
    let futures = (
        an_async_fn(),
        an_impl_future(),
        a_boxed_future(false),
        a_box_future_alias(true),
        Ssh.connect(("box".into(), 22)),
    );
    let (outputs, events) = record(QUICK, move || {
        let (async_fn, impl_future, boxed, box_future, async_trait) = futures;
        (
            block_on(async_fn),
            block_on(impl_future),
            block_on(boxed),
            block_on(box_future),
            block_on(async_trait),
        )
    });
    assert_eq!(
        outputs,
        (Ok(()), Ok(()), Err("slow".into()), Ok(()), Ok(()))
    );
    assert_eq!(
        summary(&events),
        [
            start("async fn"),
            start("impl future"),
            start("boxed"),
            failed("boxed", "slow"),
            start("box future"),
            start("connect"),
        ]
    );
    // Made after start, the property from the renamed pattern is set: it is
    // evaluated at the call, when telemetry is on.
    let (_, events) = record(QUICK, || block_on(Ssh.connect(("box".into(), 22))));
    assert_eq!(events[0]["event"]["properties"]["provider"], "box");
}

#[telemetry_command("sync box")]
fn a_send_and_sync_box() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + Sync>> {
    Box::pin(async { Err("refused".to_string()) })
}

#[test]
fn a_send_and_sync_boxed_future_is_instrumented_too() {
    let (output, events) = record(QUICK, || block_on(a_send_and_sync_box()));
    assert_eq!(output, Err("refused".into()));
    assert_eq!(
        summary(&events),
        [start("sync box"), failed("sync box", "refused")]
    );
}

/// What a late poll records cannot be seen here (the recording ended with
/// its client); what is asserted is that making the future records nothing
/// and that it still runs, to its own output, with telemetry gone.
#[test]
fn a_future_made_but_not_polled_records_nothing_and_runs_after_telemetry_ended() {
    let (future, events) = record(QUICK, || a_box_future_alias(false));
    assert!(events.is_empty(), "made, not polled: {events:?}");
    assert_eq!(block_on(future), Err("slow".into()));
}

// ---- parameters drop as they would without the attribute -----------------

type Log = Arc<Mutex<Vec<&'static str>>>;

/// Notes in its log when it drops.
struct Noisy(&'static str, Log);

impl Drop for Noisy {
    fn drop(&mut self) {
        self.1
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.0);
    }
}

fn noisy(log: &Log) -> (Noisy, Noisy, Noisy) {
    (
        Noisy("first", log.clone()),
        Noisy("second", log.clone()),
        Noisy("third", log.clone()),
    )
}

/// The same function with and without the attribute; each uses only its
/// second parameter, and a field of the third, so a closure would capture
/// those alone.
macro_rules! twins {
    ($($(#[$attr:meta])* fn $name:ident / $plain:ident ($($params:tt)*) -> $ret:ty $body:block)*) => {
        $(
            $(#[$attr])*
            #[telemetry_command]
            fn $name($($params)*) -> $ret $body

            #[allow(clippy::unnecessary_wraps)]
            $(#[$attr])*
            fn $plain($($params)*) -> $ret $body
        )*
    };
}

twins! {
    #[allow(clippy::needless_pass_by_value)]
    fn sync_drops / sync_drops_plain(_first: Noisy, second: Noisy, third: Noisy) -> Result<(), String> {
        let _ = (&second, &third.0);
        Ok(())
    }
    #[allow(clippy::needless_pass_by_value)]
    fn sync_pattern_drops / sync_pattern_drops_plain((_first, _): (Noisy, Noisy), mut third: Noisy) -> Result<(), String> {
        let _: &mut Noisy = &mut third;
        Ok(())
    }
    #[allow(clippy::needless_pass_by_value)]
    fn later_pattern_drops / later_pattern_drops_plain(_first: Noisy, (second, _): (Noisy, Noisy)) -> Result<(), String> {
        let _ = &second;
        Ok(())
    }
    #[allow(clippy::needless_pass_by_value, clippy::toplevel_ref_arg)]
    fn ref_drops / ref_drops_plain(ref _first: Noisy, second: Noisy, third: Noisy) -> Result<(), String> {
        let _ = (&second, &third.0);
        Ok(())
    }
    fn future_drops / future_drops_plain(_first: Noisy, second: Noisy, third: Noisy) -> impl Future<Output = Result<(), String>> {
        let _ = &third.0;
        async move {
            let _ = &second;
            Ok(())
        }
    }
    fn boxed_drops / boxed_drops_plain(_first: Noisy, second: Noisy, third: Noisy) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        let _ = &third.0;
        Box::pin(async move {
            let _ = &second;
            Ok(())
        })
    }
}

#[allow(clippy::unused_async)]
#[telemetry_command]
async fn async_drops(_first: Noisy, second: Noisy, third: Noisy) -> Result<(), String> {
    let _ = (&second, &third.0);
    Ok(())
}

#[allow(clippy::unused_async)]
async fn async_drops_plain(_first: Noisy, second: Noisy, third: Noisy) -> Result<(), String> {
    let _ = (&second, &third.0);
    Ok(())
}

/// A receiver with fields of its own, read only by their destructors.
#[allow(dead_code)]
struct Fields(Noisy, Noisy, Noisy);

impl Fields {
    #[telemetry_command]
    fn first_used(self) -> Result<(), String> {
        let _ = &self.0;
        Ok(())
    }

    #[allow(clippy::unnecessary_wraps)]
    fn first_used_plain(self) -> Result<(), String> {
        let _ = &self.0;
        Ok(())
    }
}

/// The order `run` dropped the three parameters in.
fn order(run: impl FnOnce(Noisy, Noisy, Noisy)) -> Vec<&'static str> {
    let log = Log::default();
    let (a, b, c) = noisy(&log);
    run(a, b, c);
    log.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

#[test]
fn parameters_drop_in_the_order_they_would_without_the_attribute() {
    let ((), events) = record(QUICK, || {
        let cases: [(&str, Vec<&str>, Vec<&str>); 8] = [
            (
                "sync",
                order(|a, b, c| drop(sync_drops(a, b, c))),
                order(|a, b, c| drop(sync_drops_plain(a, b, c))),
            ),
            (
                "sync pattern",
                order(|a, b, c| drop(sync_pattern_drops((a, b), c))),
                order(|a, b, c| drop(sync_pattern_drops_plain((a, b), c))),
            ),
            (
                "a pattern that leaves a part, after another parameter",
                order(|a, b, c| drop(later_pattern_drops(a, (b, c)))),
                order(|a, b, c| drop(later_pattern_drops_plain(a, (b, c)))),
            ),
            (
                "ref",
                order(|a, b, c| drop(ref_drops(a, b, c))),
                order(|a, b, c| drop(ref_drops_plain(a, b, c))),
            ),
            (
                "self by value, one field used",
                order(|a, b, c| drop(Fields(a, b, c).first_used())),
                order(|a, b, c| drop(Fields(a, b, c).first_used_plain())),
            ),
            (
                "async fn",
                order(|a, b, c| drop(block_on(async_drops(a, b, c)))),
                order(|a, b, c| drop(block_on(async_drops_plain(a, b, c)))),
            ),
            (
                "impl future",
                order(|a, b, c| drop(block_on(future_drops(a, b, c)))),
                order(|a, b, c| drop(block_on(future_drops_plain(a, b, c)))),
            ),
            (
                "boxed",
                order(|a, b, c| drop(block_on(boxed_drops(a, b, c)))),
                order(|a, b, c| drop(block_on(boxed_drops_plain(a, b, c)))),
            ),
        ];
        for (shape, with, without) in cases {
            assert_eq!(with, without, "{shape}: with the attribute, then without");
            assert_eq!(with.len(), 3, "{shape}");
        }
    });
    assert_eq!(events.len(), 8, "each instrumented call recorded its start");
}

// ---- a parameter used only in a property is used -------------------------

// Under `deny(warnings)`: none of these parameters is unused.
#[telemetry_command(provider = name)]
fn only_in_a_property(name: &str) {}

#[telemetry_command(provider = name, ide = ide)]
async fn only_in_properties_async(name: String, (ide, _): (&str, u8)) {}

#[telemetry_command(provider = name)]
fn only_in_a_property_boxed(name: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async {})
}

#[test]
fn a_parameter_used_only_in_a_property_is_used_and_recorded() {
    let ((), events) = record(QUICK, || {
        only_in_a_property("docker");
        block_on(only_in_properties_async("ssh".into(), ("vim", 1)));
        block_on(only_in_a_property_boxed("kubernetes".into()));
    });
    let property = |i: usize, key: &str| events[i]["event"]["properties"][key].clone();
    assert_eq!(property(0, "provider"), "docker");
    assert_eq!(
        (property(1, "provider"), property(1, "ide")),
        ("ssh".into(), "vim".into())
    );
    assert_eq!(property(2, "provider"), "kubernetes");
}

// ---- a future dropped before it completes is a cancelled command ---------

/// Never ready: the command is cut off by its caller, as by Ctrl-C in
/// `tokio::select!`.
async fn forever() {
    std::future::pending::<()>().await;
}

#[telemetry_command("cancel async fn")]
async fn cancelled_async_fn() -> Result<(), String> {
    forever().await;
    Ok(())
}

#[allow(clippy::manual_async_fn)]
#[telemetry_command("cancel impl future")]
fn cancelled_impl_future() -> impl Future<Output = Result<(), String>> {
    async {
        forever().await;
        Ok(())
    }
}

#[telemetry_command("cancel boxed")]
fn cancelled_boxed() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
    Box::pin(async {
        forever().await;
        Ok(())
    })
}

#[async_trait::async_trait]
trait Wait {
    async fn wait(&self) -> Result<(), String>;
}

#[async_trait::async_trait]
impl Wait for Ssh {
    #[telemetry_command("cancel async trait")]
    async fn wait(&self) -> Result<(), String> {
        forever().await;
        Ok(())
    }
}

/// Polls `future` once, then drops it.
fn poll_once_then_drop<F: Future>(future: F) {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(future.as_mut().poll(&mut cx).is_pending());
}

#[test]
fn a_future_dropped_after_its_first_poll_is_a_cancelled_command() {
    let ((), events) = record(QUICK, || {
        poll_once_then_drop(cancelled_async_fn());
        poll_once_then_drop(cancelled_impl_future());
        poll_once_then_drop(cancelled_boxed());
        poll_once_then_drop(Ssh.wait());
        // Never polled: it never ran, and nothing is recorded.
        drop(cancelled_async_fn());
        drop(cancelled_boxed());
    });
    let mut expected = Vec::new();
    for command in [
        "cancel async fn",
        "cancel impl future",
        "cancel boxed",
        "cancel async trait",
    ] {
        expected.push(start(command));
        expected.push(failed(command, "cancelled"));
    }
    assert_eq!(summary(&events), expected);
    // A failure sends its duration whatever it is: the report sees it.
    assert!(events[1]["event"]["properties"]["duration_ms"].is_u64());
}
