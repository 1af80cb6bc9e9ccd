//! The exit that hands off to a detached courier (`Exit::Handoff`, the
//! default outside CI), against the real example binaries and a loopback
//! server. Linux only: couriers are found through `/proc`.
//!
//! Every run here clears `CI` (the test support sets it, for the exit that
//! waits); every test waits for its couriers (bounded) and kills any left
//! by id, so none outlives it.

#![cfg(target_os = "linux")]

use crate::support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::support::couriers::{NoCourierLeft, finish_couriers, spooled_batches};
use crate::support::fault_server::{Mode, Server};
use crate::support::recording::wait_until;
use devsy_telemetry::{ContextStore, Exit, RecordingTransport, Telemetry};

/// Well above what a courier on loopback needs, well below "hangs".
const GENEROUS: Duration = Duration::from_secs(10);

/// `devsy` as a user runs it outside CI.
fn devsy(home: &Path, endpoint: &str, args: &[&str]) -> Output {
    support::process::run_example(
        "devsy",
        args,
        home,
        &[("CI", ""), ("DEVSY_TELEMETRY_ENDPOINT", endpoint)],
    )
}

fn note(home: &Path) -> Option<String> {
    std::fs::read_to_string(home.join("telemetry-spool").join("courier-last")).ok()
}

#[test]
fn a_short_command_hands_its_events_to_a_courier_that_delivers_them() {
    let home = tempfile::tempdir().expect("temp dir");
    let _guard = NoCourierLeft(home.path().to_path_buf());
    let server = Server::start(Mode::Status(200));
    let output = devsy(
        home.path(),
        &server.endpoint(),
        &["provider", "delete", "docker"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        support::process::stderr(&output),
        "error: provider 'docker' does not exist\n"
    );
    assert!(wait_until(GENEROUS, || server.events().len() == 2));
    assert!(
        finish_couriers(home.path(), GENEROUS),
        "a courier outlived its work"
    );
    let summary = support::recording::summary(&server.events());
    assert_eq!(summary[0], ("devsy provider delete".into(), None));
    assert_eq!(server.requests().len(), 1, "one request for both events");
    assert_eq!(spooled_batches(home.path()), 0);
    let note = note(home.path()).expect("the courier says how it ended");
    assert!(
        note.contains("the spool is empty; 1 batches sent"),
        "{note}"
    );
}

#[test]
fn no_courier_starts_when_nothing_is_pending() {
    let home = tempfile::tempdir().expect("temp dir");
    let _guard = NoCourierLeft(home.path().to_path_buf());
    let server = Server::start(Mode::Status(200));
    // Records nothing: connects nowhere, starts nothing.
    let output = devsy(home.path(), &server.endpoint(), &["version"]);
    assert!(output.status.success());
    assert!(finish_couriers(home.path(), GENEROUS));
    assert_eq!(server.connections(), 0, "`version` connected");
    assert_eq!(note(home.path()), None, "`version` started a courier");
    assert!(
        !home.path().join("telemetry-spool").exists(),
        "`version` made a spool"
    );
    // Runs longer than the first batch's window: its start event is
    // delivered while it runs, and nothing is left at exit.
    devsy(
        home.path(),
        &server.endpoint(),
        &["provider", "add", "docker"],
    );
    assert!(wait_until(GENEROUS, || server.events().len() == 1));
    assert!(finish_couriers(home.path(), GENEROUS));
    let before = note(home.path());
    let output = devsy(
        home.path(),
        &server.endpoint(),
        &["up", "github.com/devsy-sh/devsy", "--delay", "0.5"],
    );
    assert!(
        output.status.success(),
        "{}",
        support::process::stderr(&output)
    );
    assert!(finish_couriers(home.path(), GENEROUS));
    assert_eq!(
        server.events().len(),
        2,
        "the start event of `up` was sent while it ran"
    );
    assert_eq!(
        note(home.path()),
        before,
        "a courier ran with nothing to send"
    );
}

#[test]
fn no_courier_in_ci_in_debug_mode_or_when_opted_out() {
    let server = Server::start(Mode::Status(200));
    let cases: [(&str, &[(&str, &str)]); 3] = [
        ("CI", &[("CI", "true")]),
        ("debug", &[("CI", ""), ("DEVSY_TELEMETRY_DEBUG", "1")]),
        ("opted out", &[("CI", ""), ("DEVSY_DISABLE_TELEMETRY", "1")]),
    ];
    for (case, vars) in cases {
        let home = tempfile::tempdir().expect("temp dir");
        let _guard = NoCourierLeft(home.path().to_path_buf());
        let before = server.events().len();
        let endpoint = server.endpoint();
        let mut vars = vars.to_vec();
        vars.push(("DEVSY_TELEMETRY_ENDPOINT", &endpoint));
        let output =
            support::process::run_example("devsy", &["provider", "list"], home.path(), &vars);
        assert!(output.status.success(), "{case}");
        if case == "CI" {
            // Delivered before the process exited.
            assert_eq!(server.events().len(), before + 1, "{case}");
        }
        assert!(
            finish_couriers(home.path(), Duration::from_millis(200)),
            "{case}"
        );
        assert_eq!(note(home.path()), None, "{case}: a courier ran");
    }
}

#[test]
fn without_a_config_dir_the_exit_waits_and_delivers() {
    let server = Server::start(Mode::Status(200));
    let output = std::process::Command::new(support::process::example("devsy"))
        .args(["provider", "list"])
        .env_clear()
        .env("DEVSY_TELEMETRY_ENDPOINT", server.endpoint())
        .output()
        .expect("run devsy");
    // No HOME: nowhere to keep events, so the exit waits for delivery.
    assert!(
        !server.events().is_empty(),
        "{}",
        support::process::stderr(&output)
    );
}

#[test]
fn never_two_couriers_send_at_once_and_every_event_arrives() {
    let home = tempfile::tempdir().expect("temp dir");
    let _guard = NoCourierLeft(home.path().to_path_buf());
    // Slow enough that a second courier, if one started, would overlap.
    let server = Server::start(Mode::Delay(Duration::from_millis(300), 200));
    for _ in 0..4 {
        let output = devsy(home.path(), &server.endpoint(), &["provider", "list"]);
        assert!(output.status.success());
    }
    let mut most = 0;
    let all = wait_until(GENEROUS * 2, || {
        most = most.max(support::couriers::couriers_in(home.path()).len());
        server.events().len() == 4
    });
    assert!(all, "{} of 4 events arrived", server.events().len());
    assert!(finish_couriers(home.path(), GENEROUS));
    assert!(most <= 1, "{most} couriers at once");
}

/// Two runs against a closed port (their couriers give up: the spool keeps
/// two batches), then a third against a server that answers after 1 s:
/// returned once its courier has sent the oldest batch and waits.
fn a_courier_waiting_on_its_first_of_three(home: &Path) -> Server {
    let closed = support::fault_server::closed_port_endpoint();
    for _ in 0..2 {
        devsy(home, &closed, &["provider", "list"]);
        assert!(finish_couriers(home, GENEROUS));
    }
    assert_eq!(spooled_batches(home), 2);
    let server = Server::start(Mode::Delay(Duration::from_secs(1), 200));
    devsy(home, &server.endpoint(), &["provider", "list"]);
    assert!(wait_until(GENEROUS, || server.requests().len() == 1));
    server
}

#[test]
fn a_courier_that_finds_the_user_opted_out_since_deletes_the_spool_and_sends_nothing_more() {
    let home = tempfile::tempdir().expect("temp dir");
    let _guard = NoCourierLeft(home.path().to_path_buf());
    let server = a_courier_waiting_on_its_first_of_three(home.path());
    // Meanwhile the user opts out.
    let path = home.path().join("config.json");
    let mut store = ContextStore::open(&path).expect("open the store");
    store
        .set_option("default", "TELEMETRY", "false")
        .expect("set the option");
    store.save().expect("save the store");
    assert!(finish_couriers(home.path(), GENEROUS));
    assert_eq!(server.requests().len(), 1, "sent after the opt-out");
    assert!(
        !home.path().join("telemetry-spool").exists(),
        "the spool outlived the opt-out"
    );
}

#[test]
fn a_courier_whose_spool_was_deleted_by_an_opt_out_and_opt_in_sends_nothing_more() {
    let home = tempfile::tempdir().expect("temp dir");
    let _guard = NoCourierLeft(home.path().to_path_buf());
    let server = a_courier_waiting_on_its_first_of_three(home.path());
    let endpoint = server.endpoint();
    // While that courier waits for its answer, the user opts out (which
    // deletes the spool), opts back in, and runs a command.
    for options in ["TELEMETRY=false", "TELEMETRY=true"] {
        let output = devsy(
            home.path(),
            &endpoint,
            &["context", "set-options", "-o", options],
        );
        assert!(
            output.status.success(),
            "{}",
            support::process::stderr(&output)
        );
    }
    devsy(home.path(), &endpoint, &["provider", "list"]);
    assert!(finish_couriers(home.path(), GENEROUS));
    // The first courier's batch, and the new run's: nothing deleted, and
    // nothing twice.
    assert_eq!(server.requests().len(), 2);
    assert_eq!(spooled_batches(home.path()), 0);
}

#[test]
fn a_host_that_starts_late_runs_none_of_its_code_in_a_courier_and_the_next_run_delivers() {
    let home = tempfile::tempdir().expect("temp dir");
    let _guard = NoCourierLeft(home.path().to_path_buf());
    let server = Server::start(Mode::Status(200));
    let endpoint = server.endpoint();
    let vars = [("CI", ""), ("DEVSY_TELEMETRY_ENDPOINT", endpoint.as_str())];
    let output = support::process::run_example("late_start", &["work"], home.path(), &vars);
    assert!(
        output.status.success(),
        "{}",
        support::process::stderr(&output)
    );
    assert!(finish_couriers(home.path(), GENEROUS));
    // Its courier stopped at the unknown argument: nothing sent, nothing run.
    assert_eq!(server.events().len(), 0);
    assert_eq!(spooled_batches(home.path()), 1);
    let ran = || std::fs::read_to_string(home.path().join("ran.log")).unwrap_or_default();
    assert_eq!(ran(), "ran\n");
    // The next run (waiting, in CI) sends the earlier run's event with its own.
    let vars = [
        ("CI", "true"),
        ("DEVSY_TELEMETRY_ENDPOINT", endpoint.as_str()),
    ];
    let output = support::process::run_example("late_start", &["work"], home.path(), &vars);
    assert!(output.status.success());
    assert_eq!(server.events().len(), 2);
    assert_eq!(ran(), "ran\nran\n", "a courier ran the host's command");
}

#[test]
fn next_run_keeps_everything_for_the_next_run_and_wait_delivers_it() {
    let home = tempfile::tempdir().expect("temp dir");
    let _turn = support::recording::one_at_a_time();
    let recording = RecordingTransport::new();
    let builder = || {
        Telemetry::builder("devsy")
            .version("v1.0.0")
            .env([("HOME", "/nonexistent")])
            .config_dir(home.path())
            .transport(recording.clone())
    };
    let telemetry = builder().exit(Exit::NextRun).start();
    telemetry.command("provider list").start().finish_ok();
    let stats = telemetry.finish();
    assert_eq!((stats.recorded, stats.spooled, stats.delivered), (1, 1, 0));
    assert!(recording.events().is_empty(), "sent at exit");
    assert_eq!(spooled_batches(home.path()), 1);

    // As when the next run is another process: the first one's worker is
    // gone and has let the spool's lock go (in-process it may still be
    // ending, holding it for a moment).
    let lock_free = || {
        std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(home.path().join("telemetry-spool").join(".lock"))
            .is_ok_and(|file| file.try_lock().is_ok())
    };
    assert!(wait_until(GENEROUS, lock_free));
    // The next run sends the spool first, then its own event.
    let telemetry = builder().exit(Exit::Wait).start();
    telemetry.command("provider use").start().finish_ok();
    let stats = telemetry.finish();
    assert_eq!((stats.spool_delivered, stats.delivered), (1, 1));
    assert_eq!(recording.events().len(), 2);
    assert_eq!(spooled_batches(home.path()), 0);
}

#[test]
fn what_the_exit_keeps_stays_within_the_spools_caps() {
    let home = tempfile::tempdir().expect("temp dir");
    let _turn = support::recording::one_at_a_time();
    let telemetry = Telemetry::builder("devsy")
        .version("v1.0.0")
        .env([("HOME", "/nonexistent")])
        .config_dir(home.path())
        // Whatever the worker takes, it cannot deliver: every event ends
        // in the spool, kept by the worker or by the exit.
        .transport(Refusing)
        .queue_capacity(2_000)
        .exit(Exit::NextRun)
        .start();
    for _ in 0..1_100 {
        telemetry.command("provider list").start().finish_ok();
    }
    let stats = telemetry.finish();
    assert_eq!((stats.recorded, stats.spooled), (1_100, 1_100));
    assert_eq!(
        stats.spool_full, 100,
        "the oldest batch is dropped, and counted"
    );
    let kept: usize = std::fs::read_dir(home.path().join("telemetry-spool"))
        .expect("the spool")
        .flatten()
        .filter_map(|f| {
            let name = f.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".json")?;
            stem.rsplit('-').next()?.parse::<usize>().ok()
        })
        .sum();
    assert_eq!(kept, 1_000);
}

/// Answers every request with a 503.
struct Refusing;

impl devsy_telemetry::Transport for Refusing {
    fn send(&self, _: &[u8], _: Duration) -> Result<(), devsy_telemetry::TransportError> {
        Err(devsy_telemetry::TransportError::Status {
            code: 503,
            retry_after: None,
        })
    }
}

#[test]
fn a_courier_that_cannot_be_started_leaves_the_batches_for_the_next_run() {
    let home = tempfile::tempdir().expect("temp dir");
    let _guard = NoCourierLeft(home.path().to_path_buf());
    // A copy of the example, removed while it runs: as when an upgrade
    // replaces the binary, the courier's executable is gone at exit.
    let bin = tempfile::tempdir().expect("temp dir");
    let copy = bin.path().join("devsy");
    std::fs::copy(support::process::example("devsy"), &copy).expect("copy the example");
    let closed = support::fault_server::closed_port_endpoint();
    devsy(home.path(), &closed, &["provider", "add", "docker"]);
    assert!(finish_couriers(home.path(), GENEROUS));
    let before = spooled_batches(home.path());
    let first_note = note(home.path()).expect("the first run's courier gave up");
    let child = std::process::Command::new(&copy)
        .args(["up", "github.com/devsy-sh/devsy", "--delay", "0.5"])
        .env_clear()
        .env("DEVSY_HOME", home.path())
        .env("DEVSY_TELEMETRY_ENDPOINT", &closed)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the copy");
    std::fs::remove_file(&copy).expect("remove the copy");
    let output = child.wait_with_output().expect("wait for the copy");
    assert!(output.status.success());
    assert!(finish_couriers(home.path(), GENEROUS));
    // Its events wait in the spool, and no courier ran: the note is still
    // the first run's courier's (it gave up against the closed port).
    assert_eq!(spooled_batches(home.path()), before + 1);
    assert_eq!(note(home.path()), Some(first_note));
    // The next run, waiting in CI, delivers them with its own.
    let server = Server::start(Mode::Status(200));
    let vars = [
        ("CI", "true"),
        ("DEVSY_TELEMETRY_ENDPOINT", &server.endpoint() as &str),
    ];
    let output = support::process::run_example("devsy", &["provider", "list"], home.path(), &vars);
    assert!(output.status.success());
    let commands: Vec<String> = support::recording::summary(&server.events())
        .into_iter()
        .map(|(command, _)| command)
        .collect();
    assert!(commands.contains(&"devsy up".to_string()), "{commands:?}");
    assert_eq!(spooled_batches(home.path()), 0);
}
