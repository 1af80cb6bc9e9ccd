//! Every opt-out rule: zero connections to a live server and no file created
//! in the config dir. The environment rules run the example binary with the
//! real variables; the others use the builder in-process.

use crate::support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::support::fault_server::{Mode, Server};
use devsy_telemetry::{DisabledBy, Status, Telemetry};

/// Runs `manual telemetry status` and `manual provider delete docker` with
/// `vars`; asserts nothing reached the server and `home` holds only
/// `expected_files`. Returns the printed status line.
fn child_sends_nothing(home: &Path, vars: &[(&str, &str)], expected_files: &[&str]) -> String {
    let server = Server::start(Mode::Status(200));
    let endpoint = server.endpoint();
    let mut all_vars = vec![("DEVSY_TELEMETRY_ENDPOINT", endpoint.as_str())];
    all_vars.extend_from_slice(vars);

    let status = support::process::run_example("manual", &["telemetry", "status"], home, &all_vars);
    assert!(
        status.status.success(),
        "{}",
        support::process::stderr(&status)
    );
    let failed =
        support::process::run_example("manual", &["provider", "delete", "docker"], home, &all_vars);
    // Telemetry being off changes nothing the user sees.
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(
        support::process::stderr(&failed),
        "error: provider 'docker' does not exist\n"
    );

    assert_eq!(
        server.connections(),
        0,
        "a disabled CLI connected to the server"
    );
    assert_eq!(
        support::process::files_under(home),
        expected_files,
        "files in the config dir"
    );
    support::process::stdout(&status).trim().to_string()
}

#[test]
fn disable_variable_turns_telemetry_off() {
    for value in ["true", "1", "YES", "anything"] {
        let home = tempfile::tempdir().expect("temp dir");
        let status = child_sends_nothing(home.path(), &[("DEVSY_DISABLE_TELEMETRY", value)], &[]);
        assert_eq!(
            status,
            format!("telemetry: disabled: DEVSY_DISABLE_TELEMETRY={value}")
        );
    }
}

#[test]
fn do_not_track_turns_telemetry_off() {
    let home = tempfile::tempdir().expect("temp dir");
    let status = child_sends_nothing(home.path(), &[("DO_NOT_TRACK", "1")], &[]);
    assert_eq!(status, "telemetry: disabled: DO_NOT_TRACK=1");
}

#[test]
fn falsy_values_leave_telemetry_on() {
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    let output = support::process::run_example(
        "manual",
        &["provider", "list"],
        home.path(),
        &[
            ("DEVSY_TELEMETRY_ENDPOINT", &server.endpoint()),
            ("DEVSY_DISABLE_TELEMETRY", "false"),
            ("DO_NOT_TRACK", "0"),
        ],
    );
    assert!(output.status.success());
    assert_eq!(server.events().len(), 1);
}

#[test]
fn context_option_turns_telemetry_off_and_the_file_is_untouched() {
    let home = tempfile::tempdir().expect("temp dir");
    let config = home.path().join("config.json");
    let text =
        r#"{"defaultContext": "work", "contexts": {"work": {"options": {"TELEMETRY": "FALSE"}}}}"#;
    fs::write(&config, text).expect("write config");
    let status = child_sends_nothing(home.path(), &[], &["config.json"]);
    assert_eq!(
        status,
        "telemetry: disabled: option TELEMETRY=FALSE of context 'work'"
    );
    assert_eq!(fs::read_to_string(&config).expect("read config"), text);
}

#[test]
fn the_opt_out_command_itself_sends_nothing_and_later_runs_stay_off() {
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    let vars = [("DEVSY_TELEMETRY_ENDPOINT", server.endpoint())];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let off = support::process::run_example("manual", &["telemetry", "off"], home.path(), &vars);
    assert!(off.status.success(), "{}", support::process::stderr(&off));
    assert_eq!(
        support::process::stdout(&off),
        "telemetry is off for context 'default'\n"
    );
    let saved = fs::read_to_string(home.path().join("config.json")).expect("config written");
    let saved: serde_json::Value = serde_json::from_str(&saved).expect("config is JSON");
    assert_eq!(
        saved["contexts"]["default"]["options"]["TELEMETRY"],
        "false"
    );

    let list = support::process::run_example("manual", &["provider", "list"], home.path(), &vars);
    assert!(list.status.success());
    // Neither the opt-out command's own start event nor the later command's
    // events were sent, and no machine id file was made.
    assert_eq!(server.connections(), 0);
    assert_eq!(support::process::files_under(home.path()), ["config.json"]);
}

#[test]
fn unparsable_config_turns_telemetry_off_and_is_never_overwritten() {
    let home = tempfile::tempdir().expect("temp dir");
    let config = home.path().join("config.json");
    fs::write(&config, "{\"contexts\": {").expect("write config");
    let status = child_sends_nothing(home.path(), &[], &["config.json"]);
    assert!(
        status.starts_with("telemetry: disabled: unreadable config: ")
            && status.contains("config.json is not valid JSON (line 1, column 14)"),
        "{status}"
    );
    assert_eq!(
        fs::read_to_string(&config).expect("read config"),
        "{\"contexts\": {"
    );
}

#[test]
fn debug_mode_prints_the_exact_events_and_sends_nothing() {
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    let output = support::process::run_example(
        "manual",
        &["provider", "delete", "docker"],
        home.path(),
        &[
            ("DEVSY_TELEMETRY_ENDPOINT", &server.endpoint()),
            ("DEVSY_TELEMETRY_DEBUG", "1"),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(server.connections(), 0);

    let stderr = support::process::stderr(&output);
    let mut lines = stderr.lines();
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("devsy-telemetry: debug mode: ")
                && l.contains("debug mode never starts a courier")),
        "{stderr}"
    );
    assert_eq!(
        lines.next(),
        Some("error: provider 'docker' does not exist")
    );
    let lines: Vec<&str> = lines.collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    // The counters, last.
    assert!(
        lines[2].starts_with(
            "devsy-telemetry: 2 recorded, 2 delivered, 0 spooled; dropped: 0 queue full"
        ),
        "{stderr}"
    );
    // Exactly what would be posted: each line is one wire-format element.
    let events: Vec<devsy_telemetry::event::Envelope<'_>> = lines[..2]
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    assert_eq!(
        events[1].event.properties.error.as_deref(),
        Some("provider 'docker' does not exist")
    );
}

#[test]
fn a_bad_endpoint_or_proxy_never_breaks_the_cli() {
    let home = tempfile::tempdir().expect("temp dir");
    let status = child_sends_nothing(
        home.path(),
        &[("DEVSY_TELEMETRY_ENDPOINT", "not a url")],
        &[],
    );
    assert!(
        status.starts_with("telemetry: disabled: invalid endpoint 'not a url'"),
        "{status}"
    );

    // A malformed proxy: the CLI behaves as without telemetry.
    let server = Server::start(Mode::Status(200));
    for proxy in ["::not a proxy::", "http://", "socks9://x"] {
        let output = support::process::run_example(
            "manual",
            &["provider", "list"],
            home.path(),
            &[
                ("DEVSY_TELEMETRY_ENDPOINT", &server.endpoint()),
                ("HTTPS_PROXY", proxy),
                ("HTTP_PROXY", proxy),
                ("ALL_PROXY", proxy),
            ],
        );
        assert!(
            output.status.success(),
            "proxy {proxy:?}: {}",
            support::process::stderr(&output)
        );
        assert_eq!(support::process::stdout(&output), "kubernetes\nssh\n");
        assert_eq!(support::process::stderr(&output), "", "proxy {proxy:?}");
    }
}

/// The builder-level rules, in-process against a live server.
#[test]
fn builder_rules_send_nothing_and_create_no_file() {
    let _turn = support::recording::one_at_a_time();
    type Configure = Box<dyn Fn(devsy_telemetry::Builder) -> devsy_telemetry::Builder>;
    let cases: Vec<(&str, Configure, DisabledBy)> = vec![
        (
            "development build",
            Box::new(|b| b.version("v0.0.0")),
            DisabledBy::DevelopmentBuild {
                version: "v0.0.0".into(),
            },
        ),
        (
            "no version",
            Box::new(|b| b.version("")),
            DisabledBy::DevelopmentBuild {
                version: String::new(),
            },
        ),
        (
            "the app's switch",
            Box::new(|b| b.enabled(false)),
            DisabledBy::App,
        ),
        (
            "an app-kept context option",
            Box::new(|b| b.context("work").context_option(Some("false"))),
            DisabledBy::ContextOption {
                context: "work".into(),
                value: "false".into(),
            },
        ),
        (
            "the environment given to the builder",
            Box::new(|b| b.env([("DEVSY_DISABLE_TELEMETRY", "on")])),
            DisabledBy::EnvVar {
                name: "DEVSY_DISABLE_TELEMETRY".into(),
                value: "on".into(),
            },
        ),
    ];
    for (name, configure, rule) in cases {
        let server = Server::start(Mode::Status(200));
        let home = tempfile::tempdir().expect("temp dir");
        let builder = Telemetry::builder("devsy")
            .version("v1.0.0")
            .endpoint(server.endpoint())
            .env([("HOME", "/nonexistent")])
            .config_dir(home.path());
        #[cfg(target_os = "linux")]
        let before = worker_threads();
        let telemetry = configure(builder).start();
        assert_eq!(telemetry.status(), Status::Disabled(rule), "{name}");
        #[cfg(target_os = "linux")]
        assert!(
            worker_threads().is_subset(&before),
            "{name}: a thread was started"
        );

        let span = telemetry.command("provider delete").start();
        span.finish_err("provider 'docker' does not exist");
        devsy_telemetry::command("provider list")
            .start()
            .finish_ok();
        assert!(telemetry.flush(Duration::from_secs(1)));
        drop(telemetry);

        assert_eq!(server.connections(), 0, "{name}");
        assert_eq!(
            support::process::files_under(home.path()),
            Vec::<String>::new(),
            "{name}"
        );
    }

    // The check above can see a worker: an enabled client has one.
    #[cfg(target_os = "linux")]
    {
        let before = worker_threads();
        let home = tempfile::tempdir().expect("temp dir");
        let telemetry = Telemetry::builder("devsy")
            .version("v1.0.0")
            .env([("HOME", "/nonexistent")])
            .config_dir(home.path())
            .transport(devsy_telemetry::RecordingTransport::new())
            .start();
        // The new thread names itself once running: poll, bounded.
        let started = || worker_threads().difference(&before).count();
        support::recording::wait_until(Duration::from_secs(5), || started() > 0);
        assert_eq!(started(), 1);
        drop(telemetry);
    }
}

/// The ids of this process's threads named like the worker (Linux:
/// /proc). Compared with an earlier set, since the workers of other tests
/// in this process may still be ending.
#[cfg(target_os = "linux")]
fn worker_threads() -> std::collections::HashSet<String> {
    fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
        .filter(|task| {
            fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim() == "devsy-telemetry")
        })
        .map(|task| task.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_http_transport_honours_proxy_variables() {
    let target = Server::start(Mode::Status(200));
    let proxy = Server::start(Mode::Status(200));
    let proxy_url = proxy.endpoint().replace("/v1/insert", "");
    let home = tempfile::tempdir().expect("temp dir");

    // Through the proxy: ureq tunnels with CONNECT to the target, then posts
    // inside the tunnel (our proxy answers the POST itself).
    let output = support::process::run_example(
        "manual",
        &["provider", "list"],
        home.path(),
        &[
            ("DEVSY_TELEMETRY_ENDPOINT", &target.endpoint()),
            ("HTTP_PROXY", &proxy_url),
        ],
    );
    assert!(output.status.success());
    assert_eq!(target.connections(), 0, "the proxy was bypassed");
    let requests: Vec<(String, String)> = proxy
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    let target_authority = target
        .endpoint()
        .replace("http://", "")
        .replace("/v1/insert", "");
    assert_eq!(
        requests,
        [
            ("CONNECT".to_string(), target_authority),
            ("POST".to_string(), "/v1/insert".to_string())
        ]
    );
    assert_eq!(proxy.events().len(), 1);

    // NO_PROXY names the target: straight to it.
    let output = support::process::run_example(
        "manual",
        &["provider", "list"],
        home.path(),
        &[
            ("DEVSY_TELEMETRY_ENDPOINT", &target.endpoint()),
            ("HTTP_PROXY", &proxy_url),
            ("NO_PROXY", "127.0.0.1"),
        ],
    );
    assert!(output.status.success());
    assert_eq!(proxy.connections(), 1, "NO_PROXY was ignored");
    assert_eq!(target.events().len(), 1);
}
