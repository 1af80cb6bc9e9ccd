//! `#[telemetry_command]` on every function shape a real CLI has: each test
//! calls the instrumented function and checks the events it recorded, and
//! that the function behaves exactly as before.
//!
//! Each shape is declared here once, and here rustc's lints are checked
//! on what the attribute generates: this module denies every warning, so
//! the attribute leaves none behind (that they still fire on the user's
//! own code is shown by the trybuild cases `dead_code` and
//! `unused_must_use`). Clippy lints the functions as written (`cfg(clippy)`),
//! which `lints.rs` proves gives exactly the lints of the build without
//! the attribute.

#![deny(warnings)]

use std::error::Error;
use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use devsy_telemetry::telemetry_command;

use crate::support;
use crate::support::recording::{block_on, record, summary};

const QUICK: Duration = Duration::from_secs(10);

fn start(command: &str) -> (String, Option<String>) {
    (format!("devsy {command}"), None)
}

fn failed(command: &str, error: &str) -> (String, Option<String>) {
    (format!("devsy {command}"), Some(error.to_string()))
}

#[derive(Debug)]
struct NotFound(String);

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "provider '{}' does not exist", self.0)
    }
}

impl Error for NotFound {}

// ---- free functions and return types ------------------------------------

#[telemetry_command]
fn provider_list() {}

#[telemetry_command("provider delete")]
fn delete(name: &str) -> Result<(), NotFound> {
    if name == "docker" {
        return Err(NotFound(name.to_string()));
    }
    Ok(())
}

#[test]
fn unit_and_result_returns() {
    let ((), events) = record(QUICK, provider_list);
    assert_eq!(summary(&events), [start("provider list")]);

    let (result, events) = record(QUICK, || delete("docker"));
    assert_eq!(
        result.map_err(|e| e.to_string()),
        Err("provider 'docker' does not exist".into())
    );
    assert_eq!(
        summary(&events),
        [
            start("provider delete"),
            failed("provider delete", "provider 'docker' does not exist")
        ]
    );

    let (result, events) = record(QUICK, || delete("ssh"));
    assert!(result.is_ok());
    assert_eq!(summary(&events), [start("provider delete")]);
}

#[telemetry_command]
fn exit_with(code: u8) -> ExitCode {
    ExitCode::from(code)
}

#[test]
fn exit_code_returns() {
    let (code, events) = record(QUICK, || exit_with(0));
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(summary(&events), [start("exit with")]);
    let (code, events) = record(QUICK, || exit_with(3));
    assert_eq!(code, ExitCode::from(3));
    assert_eq!(
        summary(&events),
        [
            start("exit with"),
            failed("exit with", "exited with a failure code")
        ]
    );
}

type CliResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

#[telemetry_command]
fn alias_result(fail: bool) -> CliResult<u32> {
    if fail {
        Err("boxed failure".into())
    } else {
        Ok(7)
    }
}

#[telemetry_command]
fn io_result() -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "no such file",
    ))
}

#[telemetry_command]
fn anyhow_result() -> anyhow::Result<String> {
    let n: u32 = "x".parse()?;
    Ok(n.to_string())
}

#[test]
fn alias_io_and_anyhow_results_decide_by_type() {
    let (value, events) = record(QUICK, || alias_result(false));
    assert_eq!(value.ok(), Some(7));
    assert_eq!(summary(&events), [start("alias result")]);
    let (_, events) = record(QUICK, || alias_result(true));
    assert_eq!(summary(&events)[1], failed("alias result", "boxed failure"));
    let (_, events) = record(QUICK, io_result);
    assert_eq!(summary(&events)[1], failed("io result", "no such file"));
    let (_, events) = record(QUICK, anyhow_result);
    assert_eq!(
        summary(&events)[1],
        failed("anyhow result", "invalid digit found in string")
    );
}

#[telemetry_command]
fn question_mark_and_early_return(input: &str) -> Result<u32, String> {
    if input.is_empty() {
        return Err("empty input".into());
    }
    if input == "zero" {
        return Ok(0);
    }
    let n: u32 = input.parse().map_err(|e| format!("not a number: {e}"))?;
    Ok(n * 2)
}

#[test]
fn question_mark_and_early_returns_leave_the_body() {
    let cases = [
        ("", Err("empty input".to_string())),
        ("zero", Ok(0)),
        (
            "x",
            Err("not a number: invalid digit found in string".to_string()),
        ),
        ("21", Ok(42)),
    ];
    for (input, expected) in cases {
        let (result, events) = record(QUICK, || question_mark_and_early_return(input));
        assert_eq!(result, expected, "{input:?}");
        let name = "question mark and early return";
        let mut want = vec![start(name)];
        if let Err(e) = &expected {
            want.push(failed(name, e));
        }
        assert_eq!(summary(&events), want, "{input:?}");
    }
}

#[telemetry_command]
fn impl_trait_ok(n: u8) -> Result<impl fmt::Display, std::num::TryFromIntError> {
    let small = i8::try_from(n)?;
    Ok(small)
}

trait Provider {
    fn name(&self) -> String;
}

struct Docker;

impl Provider for Docker {
    fn name(&self) -> String {
        "docker".into()
    }
}

#[telemetry_command]
fn boxed_dyn(early: bool) -> Result<Box<dyn Provider>, String> {
    if early {
        return Ok(Box::new(Docker));
    }
    Err("no provider".into())
}

#[test]
fn impl_trait_and_boxed_dyn_returns() {
    let (result, events) = record(QUICK, || impl_trait_ok(5).map(|v| v.to_string()));
    assert_eq!(result.as_deref(), Ok("5"));
    assert_eq!(summary(&events), [start("impl trait ok")]);
    let (result, events) = record(QUICK, || impl_trait_ok(200).map(|v| v.to_string()));
    assert!(result.is_err());
    assert_eq!(summary(&events).len(), 2);

    let (result, events) = record(QUICK, || boxed_dyn(true).map(|p| p.name()));
    assert_eq!(result.as_deref(), Ok("docker"));
    assert_eq!(summary(&events), [start("boxed dyn")]);
    let (_, events) = record(QUICK, || boxed_dyn(false).map(|p| p.name()));
    assert_eq!(summary(&events)[1], failed("boxed dyn", "no provider"));
}

// ---- generics, lifetimes and parameters ---------------------------------

#[telemetry_command]
fn generic_where<T, U: Clone>(items: &[T], extra: U) -> Result<usize, String>
where
    T: fmt::Debug + PartialEq,
{
    let _ = extra.clone();
    if items.is_empty() {
        Err(format!("no items among {items:?}"))
    } else {
        Ok(items.len())
    }
}

#[telemetry_command]
fn first_word(text: &str) -> Result<&str, String> {
    text.split(' ').next().ok_or_else(|| "empty".to_string())
}

#[telemetry_command]
fn longest<'a>(a: &'a str, b: &'a str) -> Result<&'a str, String> {
    Ok(if a.len() >= b.len() { a } else { b })
}

// The lifetimes are the point: a named one, instrumented.
#[allow(clippy::needless_lifetimes)]
#[telemetry_command]
fn first_mut<'v>(values: &'v mut [u32]) -> Result<&'v mut u32, String> {
    values.first_mut().ok_or_else(|| "no values".to_string())
}

#[telemetry_command]
fn destructured(
    (left, right): (u32, u32),
    Wrapper(inner): Wrapper,
    mut count: u32,
) -> Result<u32, String> {
    count += left + right + inner;
    Ok(count)
}

struct Wrapper(u32);

#[test]
fn generics_lifetimes_and_parameters() {
    let (result, events) = record(QUICK, || generic_where(&[1, 2], "x".to_string()));
    assert_eq!(result, Ok(2));
    assert_eq!(summary(&events), [start("generic where")]);
    let (result, _) = record(QUICK, || generic_where::<u8, u8>(&[], 1));
    assert_eq!(result, Err("no items among []".into()));

    let (word, events) = record(QUICK, || first_word("hello world").map(str::to_string));
    assert_eq!(word.as_deref(), Ok("hello"));
    assert_eq!(summary(&events), [start("first word")]);
    let (long, _) = record(QUICK, || longest("ab", "abc").map(str::to_string));
    assert_eq!(long.as_deref(), Ok("abc"));

    let mut values = vec![1, 2];
    let ((), events) = record(QUICK, || {
        if let Ok(first) = first_mut(&mut values) {
            *first = 10;
        }
    });
    assert_eq!(values, [10, 2]);
    assert_eq!(summary(&events), [start("first mut")]);

    let (sum, events) = record(QUICK, || destructured((1, 2), Wrapper(3), 4));
    assert_eq!(sum, Ok(10));
    assert_eq!(summary(&events), [start("destructured")]);
}

#[allow(unsafe_code)]
#[telemetry_command]
unsafe fn read_raw(pointer: *const u32) -> Result<u32, String> {
    // SAFETY: the caller passes a valid pointer.
    Ok(unsafe { *pointer })
}

#[test]
#[allow(unsafe_code)]
fn unsafe_fn() {
    let value = 5_u32;
    // SAFETY: `value` lives for the call.
    let (result, events) = record(QUICK, || unsafe { read_raw(&raw const value) });
    assert_eq!(result, Ok(5));
    assert_eq!(summary(&events), [start("read raw")]);
}

// ---- methods, traits and impls ------------------------------------------

struct Cli {
    providers: Vec<String>,
}

impl Cli {
    #[telemetry_command("provider list")]
    fn list(&self) -> Result<usize, String> {
        Ok(self.providers.len())
    }

    #[telemetry_command("provider add")]
    fn add(&mut self, name: &str) -> Result<(), String> {
        if self.providers.iter().any(|p| p == name) {
            return Err(format!("provider '{name}' already exists"));
        }
        self.providers.push(name.to_string());
        Ok(())
    }

    #[telemetry_command("context delete")]
    fn consume(self) -> Result<Vec<String>, String> {
        Ok(self.providers)
    }

    #[allow(clippy::boxed_local)] // the receiver shape is the point
    #[telemetry_command("context export")]
    fn boxed(self: Box<Self>) -> Result<usize, String> {
        Ok(self.providers.len())
    }
}

#[test]
fn methods_with_every_receiver() {
    let mut cli = Cli { providers: vec![] };
    let (result, events) = record(QUICK, || cli.add("docker"));
    assert!(result.is_ok());
    assert_eq!(summary(&events), [start("provider add")]);
    let (result, events) = record(QUICK, || cli.add("docker"));
    assert_eq!(
        summary(&events)[1],
        failed("provider add", "provider 'docker' already exists")
    );
    assert!(result.is_err());
    let (count, events) = record(QUICK, || cli.list());
    assert_eq!(count, Ok(1));
    assert_eq!(summary(&events), [start("provider list")]);
    let (all, events) = record(QUICK, || {
        Box::new(Cli {
            providers: vec!["a".into()],
        })
        .boxed()
    });
    assert_eq!(all, Ok(1));
    assert_eq!(summary(&events), [start("context export")]);
    let (all, events) = record(QUICK, move || cli.consume());
    assert_eq!(all, Ok(vec!["docker".to_string()]));
    assert_eq!(summary(&events), [start("context delete")]);
}

trait Command {
    fn run(&self) -> Result<(), String>;

    #[telemetry_command("default method")]
    fn describe(&self) -> Result<String, String> {
        Ok("a command".into())
    }
}

struct Up;

impl Command for Up {
    #[telemetry_command("up")]
    fn run(&self) -> Result<(), String> {
        Err("no source".into())
    }
}

#[test]
fn trait_impls_and_default_methods() {
    let (_, events) = record(QUICK, || Up.run());
    assert_eq!(summary(&events), [start("up"), failed("up", "no source")]);
    let (text, events) = record(QUICK, || Up.describe());
    assert_eq!(text.as_deref(), Ok("a command"));
    assert_eq!(summary(&events), [start("default method")]);
}

// ---- async ---------------------------------------------------------------

#[telemetry_command]
async fn async_up(source: String) -> Result<String, String> {
    let source = ready(source).await;
    if source.is_empty() {
        return Err("no source".into());
    }
    Ok(format!("workspace for {source}"))
}

/// A future that is pending once, so the command really suspends.
async fn ready<T>(value: T) -> T {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
    value
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[test]
fn async_fn_is_timed_from_its_first_poll_and_stays_send() {
    let (result, events) = record(Duration::ZERO, || {
        let future = assert_send(async_up("github.com/devsy-sh/devsy".into()));
        // Created now, first polled after this pause: the command starts then.
        std::thread::sleep(Duration::from_millis(300));
        let polled_at = support::recording::micros_now();
        (block_on(future), polled_at)
    });
    let (output, polled_at) = result;
    assert_eq!(
        output.as_deref(),
        Ok("workspace for github.com/devsy-sh/devsy")
    );
    // A zero slow threshold: the success sends a finished event too.
    assert_eq!(
        summary(&events),
        [
            start("async up"),
            (String::from("devsy async up"), Some(String::new()))
        ]
    );
    let started_at = events[0]["event"]["timestamp"].as_u64().expect("timestamp");
    assert!(
        started_at >= polled_at,
        "the start was recorded before the first poll"
    );

    let (result, events) = record(QUICK, || block_on(async_up(String::new())));
    assert_eq!(result, Err("no source".into()));
    assert_eq!(
        summary(&events),
        [start("async up"), failed("async up", "no source")]
    );
}

#[telemetry_command("sleepy")]
fn sleepy(pause: Duration) {
    std::thread::sleep(pause);
}

#[test]
fn a_success_past_the_slow_threshold_sends_a_finished_event() {
    // A success's end is first judged by a coarse clock; one past the
    // threshold must still be seen as slow, and a quick one must not.
    let threshold = Duration::from_millis(120);
    let ((), events) = record(threshold, || sleepy(Duration::from_millis(160)));
    assert_eq!(
        summary(&events),
        [
            start("sleepy"),
            (String::from("devsy sleepy"), Some(String::new()))
        ]
    );
    let duration = events[1]["event"]["properties"]["duration_ms"]
        .as_u64()
        .expect("duration_ms");
    assert!(duration >= 160, "duration_ms {duration}");

    let ((), events) = record(threshold, || sleepy(Duration::ZERO));
    assert_eq!(summary(&events), [start("sleepy")]);
}

trait Workspace {
    async fn status(&self) -> Result<u8, String>;
}

struct Local;

impl Workspace for Local {
    #[telemetry_command("workspace status")]
    async fn status(&self) -> Result<u8, String> {
        Ok(ready(1).await)
    }
}

#[test]
fn native_async_fn_in_trait() {
    let (status, events) = record(QUICK, || block_on(Local.status()));
    assert_eq!(status, Ok(1));
    assert_eq!(summary(&events), [start("workspace status")]);
}

#[async_trait::async_trait]
trait Remote {
    async fn ssh(&self, host: &str) -> Result<String, String>;
}

struct Ssh;

#[async_trait::async_trait]
impl Remote for Ssh {
    #[telemetry_command("ssh")]
    async fn ssh(&self, host: &str) -> Result<String, String> {
        let host = ready(host.to_string()).await;
        if host.is_empty() {
            return Err("no host".into());
        }
        Ok(format!("connected to {host}"))
    }
}

#[test]
fn async_trait_impls_time_the_boxed_future() {
    let (result, events) = record(Duration::ZERO, || {
        let future = Ssh.ssh("box");
        std::thread::sleep(Duration::from_millis(300));
        let polled_at = support::recording::micros_now();
        (block_on(future), polled_at)
    });
    let (output, polled_at) = result;
    assert_eq!(output.as_deref(), Ok("connected to box"));
    assert_eq!(summary(&events).len(), 2);
    let started_at = events[0]["event"]["timestamp"].as_u64().expect("timestamp");
    assert!(
        started_at >= polled_at,
        "timed from the future's construction"
    );

    let (result, events) = record(QUICK, || block_on(Ssh.ssh("")));
    assert_eq!(result, Err("no host".into()));
    assert_eq!(summary(&events), [start("ssh"), failed("ssh", "no host")]);
}

#[telemetry_command("logs")]
fn returns_future(
    lines: &mut Vec<&'static str>,
) -> impl std::future::Future<Output = Result<usize, String>> {
    // Statements before the future run at the call, as without the attribute.
    lines.push("called");
    let count = lines.len();
    async move {
        let count = ready(count).await;
        if count > 1 {
            Err(format!("{count} lines"))
        } else {
            Ok(count)
        }
    }
}

#[test]
fn functions_returning_impl_future_time_the_future() {
    let mut lines = Vec::new();
    let (result, events) = record(QUICK, || {
        let future = returns_future(&mut lines);
        std::thread::sleep(Duration::from_millis(300));
        let polled_at = support::recording::micros_now();
        (block_on(future), polled_at)
    });
    assert_eq!(lines, ["called"]);
    let (output, polled_at) = result;
    assert_eq!(output, Ok(1));
    assert_eq!(summary(&events), [start("logs")]);
    let started_at = events[0]["event"]["timestamp"].as_u64().expect("timestamp");
    assert!(
        started_at >= polled_at,
        "timed from the future's construction"
    );

    let (result, events) = record(QUICK, || block_on(returns_future(&mut lines)));
    assert_eq!(result, Err("2 lines".into()));
    assert_eq!(summary(&events), [start("logs"), failed("logs", "2 lines")]);
}

// ---- attributes, scopes and names ---------------------------------------

/// Documented.
#[must_use = "the value is the point"]
#[inline]
#[telemetry_command]
fn attributes_kept() -> Result<u8, String> {
    #![allow(clippy::unnecessary_wraps)]
    Ok(1)
}

// One-line bodies leave no `unused_braces` behind, sync or async.
#[telemetry_command]
fn one_line(n: u32) -> Result<u32, String> {
    if n > 0 { Ok(n) } else { Err("zero".into()) }
}

#[telemetry_command]
async fn one_line_async(n: u32) -> Result<u32, String> {
    if n > 0 { Ok(n) } else { Err("zero".into()) }
}

#[test]
fn one_line_bodies() {
    let (results, events) = record(QUICK, || (one_line(1), block_on(one_line_async(0))));
    assert_eq!(results, (Ok(1), Err("zero".to_string())));
    assert_eq!(
        summary(&events),
        [
            start("one line"),
            start("one line async"),
            failed("one line async", "zero")
        ]
    );
}

#[cfg(any())]
#[telemetry_command]
fn compiled_out() -> Result<(), String> {
    this_would_not_compile()
}

#[test]
fn outer_and_inner_attributes_are_kept() {
    let (value, events) = record(QUICK, attributes_kept);
    assert_eq!(value, Ok(1));
    assert_eq!(summary(&events), [start("attributes kept")]);
}

mod shadowing {
    use devsy_telemetry::telemetry_command;

    #[allow(dead_code)]
    pub enum Outcome {
        Ok,
        Err,
        Some,
        None,
    }

    /// `Ok`, `Err`, `Some` and `None` are this module's enum inside the body.
    #[telemetry_command("shadowed")]
    pub fn shadowed(fail: bool) -> Result<&'static str, String> {
        use Outcome::*;
        let outcome = if fail { Err } else { Ok };
        match outcome {
            Ok => core::result::Result::Ok("fine"),
            Err | Some | None => core::result::Result::Err("shadowed failure".to_string()),
        }
    }
}

#[test]
fn a_body_with_a_glob_import_that_shadows_prelude_names() {
    let (result, events) = record(QUICK, || shadowing::shadowed(true));
    assert_eq!(result, Err("shadowed failure".into()));
    assert_eq!(
        summary(&events),
        [start("shadowed"), failed("shadowed", "shadowed failure")]
    );
}

mod user_modules {
    use ::devsy_telemetry::telemetry_command;

    /// Modules named like the crates the generated code uses.
    mod core {}
    mod devsy_telemetry {}

    #[telemetry_command("user modules")]
    pub fn next_to_lookalikes() -> Result<(), String> {
        Err("still instrumented".into())
    }
}

#[test]
fn user_modules_named_core_or_devsy_telemetry() {
    let (_, events) = record(QUICK, user_modules::next_to_lookalikes);
    assert_eq!(
        summary(&events),
        [
            start("user modules"),
            failed("user modules", "still instrumented")
        ]
    );
}

// ---- properties -----------------------------------------------------------

struct UpArgs {
    provider: Option<String>,
    ide: String,
}

enum Source {
    Git,
}

impl Source {
    fn kind(&self) -> &'static str {
        match self {
            Source::Git => "git:",
        }
    }
}

#[telemetry_command(name = "up", provider = args.provider.as_deref(), ide = &args.ide, source_type = source.kind())]
fn up_with(args: UpArgs, source: Source) -> Result<(), String> {
    drop((args, source));
    Ok(())
}

#[derive(Clone, Copy)]
enum Ide {
    VsCode,
}

impl fmt::Display for Ide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ide::VsCode => "vscode",
        })
    }
}

#[telemetry_command("open", ide = ide, provider = None::<String>, source_type = count_evaluation())]
fn open(ide: Ide) {
    let _ = ide;
}

/// An or-pattern that binds by `ref`, used only by a property: bound again
/// by reference for it (no `ref` there, which edition 2024 refuses), and
/// not reported unused.
#[telemetry_command("either", ide = name.as_str())]
fn either((Ok(ref name) | Err(ref name)): Result<String, String>) {}

static EVALUATIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_evaluation() -> String {
    EVALUATIONS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    "local:".into()
}

#[test]
fn properties_from_parameters_override_the_defaults() {
    let args = UpArgs {
        provider: Some("kubernetes".into()),
        ide: "vscode".into(),
    };
    let (_, events) = record(QUICK, || up_with(args, Source::Git));
    let props = &events[0]["event"]["properties"];
    assert_eq!(props["provider"], "kubernetes");
    assert_eq!(props["ide"], "vscode");
    assert_eq!(props["source_type"], "git:");

    let before = EVALUATIONS.load(std::sync::atomic::Ordering::SeqCst);
    let ((), events) = record(Duration::ZERO, || open(Ide::VsCode));
    assert_eq!(
        EVALUATIONS.load(std::sync::atomic::Ordering::SeqCst),
        before + 1,
        "evaluated once"
    );
    for event in &events {
        let props = &event["event"]["properties"];
        assert_eq!(props["ide"], "vscode");
        assert_eq!(props["source_type"], "local:");
        assert!(
            props.get("provider").is_none(),
            "None, with no default, omits the property"
        );
    }
    assert_eq!(
        events.len(),
        2,
        "start and finished both carry the properties"
    );

    let ((), events) = record(QUICK, || either(Err("zed".into())));
    assert_eq!(events[0]["event"]["properties"]["ide"], "zed");
}

// ---- panics and telemetry off -------------------------------------------

#[telemetry_command("explode")]
fn explode(message: &'static str) -> Result<(), String> {
    if message.is_empty() {
        std::panic::panic_any(42_u8);
    }
    panic!("{message}");
}

#[test]
fn a_panic_is_recorded_then_continues_unchanged() {
    let (caught, events) = record(QUICK, || {
        std::panic::catch_unwind(|| explode("disk on fire"))
    });
    let payload = caught.expect_err("the panic continued");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("disk on fire")
    );
    assert_eq!(
        summary(&events),
        [start("explode"), failed("explode", "panic: disk on fire")]
    );

    let (caught, events) = record(QUICK, || std::panic::catch_unwind(|| explode("")));
    assert_eq!(
        caught.expect_err("panicked").downcast_ref::<u8>(),
        Some(&42)
    );
    assert_eq!(summary(&events)[1], failed("explode", "panic"));
}

#[test]
fn with_telemetry_off_functions_behave_as_before_and_evaluate_nothing() {
    // No client is started while this test holds the turn: the attribute's
    // entry finds none, and the property is never evaluated.
    static OFF_EVALUATIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    #[telemetry_command("off", provider = count_off())]
    fn off() {}

    fn count_off() -> &'static str {
        OFF_EVALUATIONS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        "docker"
    }

    let _turn = support::recording::one_at_a_time();
    off();
    open(Ide::VsCode);
    assert_eq!(
        delete("docker").map_err(|e| e.to_string()),
        Err("provider 'docker' does not exist".into())
    );
    assert_eq!(
        block_on(async_up("x".into())).as_deref(),
        Ok("workspace for x")
    );
    assert_eq!(OFF_EVALUATIONS.load(std::sync::atomic::Ordering::SeqCst), 0);
}

// ---- the facade under another path ----------------------------------------

/// A crate that re-exports the facade, as a CLI framework might.
pub mod framework {
    pub use ::devsy_telemetry as telemetry;
}

mod through_a_reexport {
    use super::framework::telemetry::telemetry_command;

    #[telemetry_command("reexported", crate = super::framework::telemetry, ide = "vim")]
    pub fn reexported() -> Result<(), String> {
        Err("through the re-export".into())
    }
}

#[test]
fn the_facade_under_another_path() {
    let (_, events) = record(QUICK, through_a_reexport::reexported);
    assert_eq!(
        summary(&events),
        [
            start("reexported"),
            failed("reexported", "through the re-export")
        ]
    );
    assert_eq!(events[0]["event"]["properties"]["ide"], "vim");
}
