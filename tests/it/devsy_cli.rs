//! End to end: the `devsy` example binary against a real HTTP server on
//! loopback, each run with a fresh `DEVSY_HOME` and an otherwise empty
//! environment.

use crate::support;

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::fault_server::{Mode, Server};
use serde_json::Value;

/// Runs `devsy` against `server` with `vars` on top.
fn devsy(home: &Path, server: &Server, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let endpoint = server.endpoint();
    let mut all = vec![("DEVSY_TELEMETRY_ENDPOINT", endpoint.as_str())];
    all.extend_from_slice(vars);
    support::process::run_example("devsy", args, home, &all)
}

/// Runs `devsy` and asserts it succeeded; returns its stdout.
fn ok(home: &Path, server: &Server, args: &[&str]) -> String {
    let output = devsy(home, server, args, &[]);
    assert!(
        output.status.success(),
        "devsy {args:?}: {}",
        support::process::stderr(&output)
    );
    support::process::stdout(&output)
}

fn documented() -> Value {
    serde_json::from_str(&support::readme::readme_example()).expect("README example is JSON")
}

fn properties(event: &Value) -> &Value {
    &event["event"]["properties"]
}

#[test]
fn provider_delete_sends_the_documented_events() {
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");

    // A fresh home: nothing is known of provider, source type or IDE.
    let output = devsy(home.path(), &server, &["provider", "delete", "docker"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        support::process::stderr(&output),
        "error: provider 'docker' does not exist\n"
    );
    assert_eq!(support::process::stdout(&output), "");
    let events = server.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    for event in &events {
        support::readme::assert_shape_within(&documented(), event);
        assert_eq!(properties(event)["command"], "devsy provider delete");
    }
    assert!(properties(&events[0]).get("error").is_none());
    assert_eq!(
        properties(&events[1])["error"],
        "provider 'docker' does not exist"
    );
    assert!(properties(&events[1])["duration_ms"].is_u64());

    // With a default provider and a workspace, the finished event has
    // exactly the document's keys and types.
    ok(home.path(), &server, &["provider", "add", "kubernetes"]);
    ok(
        home.path(),
        &server,
        &["up", "github.com/devsy-sh/devsy", "--ide", "vscode"],
    );
    let again = Server::start(Mode::Status(200));
    let output = devsy(home.path(), &again, &["provider", "delete", "docker"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let events = again.events();
    assert_eq!(events.len(), 2);
    support::readme::assert_same_shape(&documented(), &events[1], "$");
    let props = properties(&events[1]);
    assert_eq!(
        (&props["provider"], &props["source_type"], &props["ide"]),
        (
            &Value::from("kubernetes"),
            &Value::from("git:"),
            &Value::from("vscode")
        )
    );
}

#[test]
fn a_quick_success_sends_one_event_and_a_slow_one_a_finished_event() {
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    assert_eq!(
        ok(home.path(), &server, &["provider", "add", "docker"]),
        "added provider 'docker'\n"
    );
    assert_eq!(
        ok(home.path(), &server, &["provider", "list"]),
        "docker (default)\n"
    );
    let events = server.events();
    assert_eq!(events.len(), 2, "one event per quick command: {events:#?}");
    assert_eq!(properties(&events[1])["command"], "devsy provider list");
    assert_eq!(properties(&events[1])["provider"], "docker");

    // The slow-command rule: 10 s or more sends a finished event, without error.
    let slow = Server::start(Mode::Status(200));
    let output = devsy(
        home.path(),
        &slow,
        &["up", "image:alpine", "--delay", "10.2"],
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        support::process::stderr(&output)
    );
    let events = slow.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    let finished = properties(&events[1]);
    assert!(
        finished["duration_ms"]
            .as_u64()
            .is_some_and(|ms| ms >= 10_000),
        "{finished}"
    );
    assert!(finished.get("error").is_none());
    assert_eq!(finished["source_type"], "image:");
}

#[test]
fn desktop_and_the_properties_of_up_arrive_as_given() {
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    ok(home.path(), &server, &["provider", "add", "docker"]);
    ok(home.path(), &server, &["provider", "add", "ssh"]);
    let local = home.path().to_string_lossy().into_owned();
    let cases = [
        ("git@github.com:devsy-sh/devsy.git", "git:"),
        ("https://gitlab.com/org/project", "git:"),
        (local.as_str(), "local:"),
        ("image:ubuntu:24.04", "image:"),
        ("container:3f2a9c", "container:"),
        ("just-a-word", "unknown:"),
    ];
    for (source, source_type) in cases {
        let server = Server::start(Mode::Status(200));
        let output = devsy(
            home.path(),
            &server,
            &["up", source, "--provider", "ssh", "--ide", "goland"],
            &[("DEVSY_UI", "true")],
        );
        assert!(
            output.status.success(),
            "{source}: {}",
            support::process::stderr(&output)
        );
        let events = server.events();
        assert_eq!(events.len(), 1, "{source}");
        let props = properties(&events[0]);
        assert_eq!(props["command"], "devsy up");
        assert_eq!(props["provider"], "ssh", "{source}");
        assert_eq!(props["ide"], "goland", "{source}");
        assert_eq!(props["source_type"], source_type, "{source}");
        assert_eq!(props["desktop"], "true", "{source}");
    }
}

#[test]
fn up_fails_clearly_without_a_provider_or_with_an_unknown_one() {
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    let output = devsy(home.path(), &server, &["up", "github.com/a/b"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(support::process::stderr(&output).starts_with("error: no provider: pass --provider"));
    let output = devsy(
        home.path(),
        &server,
        &["up", "github.com/a/b", "--provider", "aws"],
        &[],
    );
    assert_eq!(
        support::process::stderr(&output),
        "error: provider 'aws' does not exist\n"
    );
    assert_eq!(server.events().len(), 4, "start and failure of each");
}

/// `telemetry status` prints this rule, and `provider list` sends nothing.
fn assert_off(home: &Path, vars: &[(&str, &str)], rule: &str) {
    let server = Server::start(Mode::Status(200));
    let status = devsy(home, &server, &["telemetry", "status"], vars);
    assert_eq!(
        support::process::stdout(&status),
        format!("telemetry: disabled: {rule}\n")
    );
    let list = devsy(home, &server, &["provider", "list"], vars);
    assert!(list.status.success());
    let delete = devsy(home, &server, &["provider", "delete", "docker"], vars);
    assert_eq!(delete.status.code(), Some(1));
    assert_eq!(server.connections(), 0, "{rule}: connected");
}

#[test]
fn each_opt_out_rule_sends_nothing_and_status_names_it() {
    let home = tempfile::tempdir().expect("temp dir");
    assert_off(
        home.path(),
        &[("DEVSY_DISABLE_TELEMETRY", "true")],
        "DEVSY_DISABLE_TELEMETRY=true",
    );
    assert_off(home.path(), &[("DO_NOT_TRACK", "1")], "DO_NOT_TRACK=1");
    // Nothing was written for any of them: no machine id, no config.
    assert_eq!(
        support::process::files_under(home.path()),
        Vec::<String>::new()
    );

    // A development build.
    let server = Server::start(Mode::Status(200));
    let dev = support::process::run_example(
        "devsy_dev_build",
        &["telemetry", "status"],
        home.path(),
        &[("DEVSY_TELEMETRY_ENDPOINT", &server.endpoint())],
    );
    assert_eq!(
        support::process::stdout(&dev),
        "telemetry: disabled: development build (version 'v0.0.0')\n"
    );
    support::process::run_example(
        "devsy_dev_build",
        &["provider", "list"],
        home.path(),
        &[("DEVSY_TELEMETRY_ENDPOINT", &server.endpoint())],
    );
    assert_eq!(server.connections(), 0);
}

#[test]
fn the_opt_out_command_sends_nothing_itself_and_contexts_keep_their_own_setting() {
    let home = tempfile::tempdir().expect("temp dir");
    let server = Server::start(Mode::Status(200));
    let output = ok(
        home.path(),
        &server,
        &["context", "set-options", "-o", "TELEMETRY=false"],
    );
    assert_eq!(output, "set TELEMETRY=false for context 'default'\n");
    assert_eq!(server.connections(), 0, "the opt-out command itself sent");
    assert_off(
        home.path(),
        &[],
        "option TELEMETRY=false of context 'default'",
    );

    // Another context keeps its own setting.
    let work = Server::start(Mode::Status(200));
    ok(
        home.path(),
        &work,
        &["--context", "work", "provider", "list"],
    );
    assert_eq!(work.events().len(), 1);
    let status = ok(
        home.path(),
        &work,
        &["--context", "work", "telemetry", "status"],
    );
    let mut lines = status.lines();
    assert_eq!(lines.next(), Some("telemetry: enabled"));
    assert_eq!(
        lines.next(),
        Some("exit: wait for delivery (at most 500 ms), because CI was detected (CI)")
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("events: 1 recorded, ")),
        "{status}"
    );
    ok(
        home.path(),
        &work,
        &["context", "options", "--context", "work"],
    );

    // Switched back on, events flow again; the switching command itself
    // still ran with telemetry off.
    let back = Server::start(Mode::Status(200));
    assert_eq!(
        ok(
            home.path(),
            &back,
            &["context", "set-options", "-o", "telemetry=TRUE"]
        ),
        "set TELEMETRY=true for context 'default'\n"
    );
    assert_eq!(back.connections(), 0);
    ok(home.path(), &back, &["provider", "list"]);
    assert_eq!(back.events().len(), 1);
    assert_eq!(
        ok(home.path(), &back, &["context", "options"]),
        "TELEMETRY=true\n"
    );
}

#[test]
fn a_bad_option_value_is_refused_and_the_file_kept() {
    let home = tempfile::tempdir().expect("temp dir");
    let server = Server::start(Mode::Status(200));
    ok(
        home.path(),
        &server,
        &["context", "set-options", "-o", "TELEMETRY=true"],
    );
    let config = home.path().join("config.json");
    let before = fs::read_to_string(&config).expect("config written");
    for bad in [
        &["-o", "TELEMETRY=maybe"][..],
        &["-o", "IDE=vscode", "-o", "telemetry=0"],
        &["-o", "NOEQUALS"],
    ] {
        let mut args = vec!["context", "set-options"];
        args.extend_from_slice(bad);
        let output = devsy(home.path(), &server, &args, &[]);
        assert_eq!(output.status.code(), Some(1), "{bad:?}");
        let stderr = support::process::stderr(&output);
        assert!(
            stderr.contains("for option TELEMETRY: expected true or false")
                || stderr.contains("expected KEY=VALUE"),
            "{bad:?}: {stderr}"
        );
        assert_eq!(
            fs::read_to_string(&config).expect("config"),
            before,
            "{bad:?}"
        );
    }
}

#[test]
fn an_unparsable_config_fails_every_config_command_and_is_never_overwritten() {
    let home = tempfile::tempdir().expect("temp dir");
    let config = home.path().join("config.json");
    let garbage = "{\"providers\": [\"docker\"],\n  oops";
    fs::write(&config, garbage).expect("write config");
    let server = Server::start(Mode::Status(200));
    let commands: [&[&str]; 6] = [
        &["provider", "list"],
        &["provider", "add", "ssh"],
        &["provider", "delete", "docker"],
        &["up", "image:alpine", "--provider", "docker"],
        &["context", "set-options", "-o", "TELEMETRY=false"],
        &["context", "options"],
    ];
    let position = format!("{} is not valid JSON (line 2, column 3)", config.display());
    for args in commands {
        let output = devsy(home.path(), &server, args, &[]);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(
            support::process::stderr(&output),
            format!("error: {position}\n"),
            "{args:?}"
        );
    }
    let status = ok(home.path(), &server, &["telemetry", "status"]);
    assert_eq!(
        status,
        format!("telemetry: disabled: unreadable config: {position}\n")
    );
    assert_eq!(fs::read_to_string(&config).expect("config"), garbage);
    assert_eq!(server.connections(), 0);
}

#[test]
fn debug_mode_prints_the_payload_and_sends_nothing() {
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    let output = devsy(
        home.path(),
        &server,
        &["provider", "delete", "docker"],
        &[("DEVSY_TELEMETRY_DEBUG", "1")],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(server.connections(), 0);
    let stderr = support::process::stderr(&output);
    let events: Vec<Value> = stderr
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("a JSON event"))
        .collect();
    assert_eq!(events.len(), 2, "{stderr}");
    for event in &events {
        support::readme::assert_shape_within(&documented(), event);
    }
    let mut lines = stderr.lines();
    assert_eq!(
        lines.next(),
        Some(
            "devsy-telemetry: debug mode: events are printed, not sent; exit: wait for \
             delivery (at most 500 ms), because debug mode never starts a courier"
        )
    );
    assert_eq!(
        lines.next(),
        Some("error: provider 'docker' does not exist")
    );
}

#[test]
fn against_a_server_that_never_answers_every_command_keeps_its_exit_code_and_budget() {
    let server = Server::start(Mode::Hang);
    let home = tempfile::tempdir().expect("temp dir");
    let cases: [(&[&str], i32); 4] = [
        (&["provider", "add", "docker"], 0),
        (&["provider", "list"], 0),
        (&["provider", "delete", "aws"], 1),
        (&["up", "github.com/a/b", "--provider", "aws"], 1),
    ];
    for (args, code) in cases {
        let started = Instant::now();
        let output = devsy(home.path(), &server, args, &[]);
        let elapsed = started.elapsed();
        assert_eq!(
            output.status.code(),
            Some(code),
            "{args:?}: {}",
            support::process::stderr(&output)
        );
        // The exit budget is 500 ms; the bound is generous, not a benchmark.
        assert!(
            elapsed < Duration::from_secs(3),
            "{args:?} took {elapsed:?}"
        );
    }
    assert!(server.connections() >= 1);
}

#[test]
fn version_loads_nothing_and_sends_nothing() {
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    assert_eq!(
        ok(home.path(), &server, &["version"]),
        concat!("devsy v", env!("CARGO_PKG_VERSION"), "\n")
    );
    assert_eq!(server.connections(), 0);
    assert_eq!(
        support::process::files_under(home.path()),
        Vec::<String>::new()
    );
}
