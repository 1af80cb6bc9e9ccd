//! The events on the wire, as a real HTTP server on loopback receives them
//! from the example binary, key by key and type by type; and the README's
//! example kept equal to the code's wire format.

use devsy_telemetry::event::{Envelope, is_machine_id};
use devsy_telemetry::{RecordingTransport, Telemetry};
use serde_json::{Map, Value};

use crate::support;
use crate::support::fault_server::{Mode, Server};
use crate::support::readme::keys;
use crate::support::recording::micros_now;

fn object<'a>(value: &'a Value, what: &str) -> &'a Map<String, Value> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {value}"))
}

fn is_64_lower_hex(value: &Value) -> bool {
    value.as_str().is_some_and(is_machine_id)
}

#[test]
fn failed_command_sends_a_start_and_a_finished_event_in_the_documented_shape() {
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    let before = micros_now();
    let output = support::process::run_example(
        "manual",
        &["provider", "delete", "docker"],
        home.path(),
        &[("DEVSY_TELEMETRY_ENDPOINT", &server.endpoint())],
    );
    let after = micros_now();

    // The command's own behaviour is untouched.
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        support::process::stderr(&output),
        "error: provider 'docker' does not exist\n"
    );

    // One request at exit: the batch of both events.
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/insert");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("user-agent"),
        Some(concat!("devsy-telemetry/", env!("CARGO_PKG_VERSION")))
    );
    let body: Value = serde_json::from_slice(&request.body).expect("body is JSON");
    assert_eq!(keys(object(&body, "body")), ["data"]);

    let events = server.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    let version = concat!("v", env!("CARGO_PKG_VERSION"));
    for (i, envelope) in events.iter().enumerate() {
        assert_eq!(keys(object(envelope, "element")), ["event", "user"]);
        let event = object(&envelope["event"], "event");
        assert_eq!(
            keys(event),
            ["type", "machine_id", "timestamp", "properties"]
        );
        assert_eq!(event["type"], "devsy_cli");
        assert!(
            is_64_lower_hex(&event["machine_id"]),
            "{}",
            event["machine_id"]
        );
        let timestamp = event["timestamp"]
            .as_u64()
            .expect("timestamp is an integer");
        assert!(
            (before..=after).contains(&timestamp),
            "timestamp {timestamp} not within the run [{before}, {after}] (microseconds)"
        );

        let props = object(&event["properties"], "properties");
        let expected_keys: &[&str] = if i == 0 {
            &["command", "provider", "desktop", "version"]
        } else {
            &[
                "command",
                "provider",
                "desktop",
                "version",
                "error",
                "duration_ms",
            ]
        };
        assert_eq!(keys(props), expected_keys, "event {i}");
        assert_eq!(props["command"], "devsy provider delete");
        assert_eq!(props["provider"], "kubernetes");
        assert_eq!(props["desktop"], "false");
        assert_eq!(props["version"], version);

        let user = object(&envelope["user"], "user");
        assert_eq!(keys(user), ["machine_id", "arch", "os"]);
        assert_eq!(user["machine_id"], event["machine_id"]);
        assert!(user["arch"].is_string() && user["os"].is_string());
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        assert_eq!(
            (&user["arch"], &user["os"]),
            (&Value::from("amd64"), &Value::from("linux"))
        );
    }
    let finished = &events[1]["event"]["properties"];
    assert_eq!(finished["error"], "provider 'docker' does not exist");
    assert!(
        finished["duration_ms"].is_u64(),
        "{}",
        finished["duration_ms"]
    );
    assert!(
        events[0]["event"]["timestamp"].as_u64() <= events[1]["event"]["timestamp"].as_u64(),
        "the start event comes first"
    );
    // The OS has a machine id here or not: either way no raw id was written
    // next to the config, and the id is stable across runs.
    let again = Server::start(Mode::Status(200));
    support::process::run_example(
        "manual",
        &["provider", "list"],
        home.path(),
        &[("DEVSY_TELEMETRY_ENDPOINT", &again.endpoint())],
    );
    assert_eq!(
        again.events()[0]["event"]["machine_id"],
        events[0]["event"]["machine_id"]
    );
}

#[test]
fn properties_arrive_as_given_and_desktop_follows_devsy_ui() {
    let server = Server::start(Mode::Status(200));
    let home = tempfile::tempdir().expect("temp dir");
    let output = support::process::run_example(
        "manual",
        &[
            "up",
            "github.com/devsy-sh/devsy",
            "--provider",
            "ssh",
            "--ide",
            "vscode",
        ],
        home.path(),
        &[
            ("DEVSY_TELEMETRY_ENDPOINT", &server.endpoint()),
            ("DEVSY_UI", "true"),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        support::process::stderr(&output)
    );

    // A quick successful command: the start event only.
    let events = server.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    let props = &events[0]["event"]["properties"];
    assert_eq!(props["command"], "devsy up");
    assert_eq!(props["provider"], "ssh");
    assert_eq!(props["ide"], "vscode");
    assert_eq!(props["source_type"], "git:");
    assert_eq!(props["desktop"], "true");
    assert!(props.get("error").is_none() && props.get("duration_ms").is_none());
}

#[test]
fn readme_example_is_exactly_the_wire_format() {
    let _turn = support::recording::a_client();
    let text = support::readme::readme_example();
    let documented: Value = serde_json::from_str(&text).expect("README example is JSON");
    // Every key and type of the README parses into the wire types, which
    // refuse unknown keys; what they serialize back is the README again.
    let parsed: Envelope<'_> = serde_json::from_str(&text).expect("README example is an Envelope");
    assert_eq!(
        serde_json::to_value(&parsed).expect("serialize"),
        documented
    );

    // A real failed command, recorded, has exactly the README's keys.
    let recording = RecordingTransport::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let telemetry = Telemetry::builder("devsy")
        .version("v0.5.29")
        .provider("kubernetes")
        .ide("vscode")
        .source_type("git:")
        .env([("HOME", dir.path().to_str().expect("utf-8 path"))])
        .config_dir(dir.path())
        .transport(recording.clone())
        .start();
    telemetry
        .command("provider delete")
        .start()
        .finish_err("provider 'docker' does not exist");
    drop(telemetry);
    let recorded = recording.events();
    assert_eq!(recorded.len(), 2);
    support::readme::assert_same_shape(&documented, &recorded[1], "$");
}

/// Every field leaves within the limits the collector checks, from the
/// wire crate both share: a long or odd value is cut or cleaned, and its
/// batch is not refused.
#[test]
fn every_field_is_fitted_to_the_collectors_limits() {
    use devsy_telemetry::event::limits::{self, Field, accepts};

    let _turn = support::recording::a_client();
    let recording = RecordingTransport::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let long = "x".repeat(300);
    let telemetry = Telemetry::builder("devsy")
        .version(format!("v1.0.0-{}", "r".repeat(100)))
        .ide("vs\tcode\u{200b}")
        .env([("HOME", dir.path().to_str().expect("utf-8 path"))])
        .config_dir(dir.path())
        .transport(recording.clone())
        .start();
    let command = format!("provider {long}");
    telemetry
        .command(command)
        .provider(format!("€{long}"))
        .source_type("git:\u{1b}[31m")
        .start()
        .finish_err(format!("line one\nline two\u{7}{}", "e".repeat(5000)));
    drop(telemetry);

    let events = recording.events();
    assert_eq!(events.len(), 2);
    let event = &events[1]["event"];
    let props = &event["properties"];
    let field = |value: &Value| value.as_str().expect("a string").to_string();
    for (value, max, kind) in [
        (field(&event["type"]), limits::TYPE, Field::Line),
        (field(&props["command"]), limits::COMMAND, Field::Identifier),
        (
            field(&props["provider"]),
            limits::PROPERTY,
            Field::Identifier,
        ),
        (
            field(&props["source_type"]),
            limits::PROPERTY,
            Field::Identifier,
        ),
        (field(&props["ide"]), limits::PROPERTY, Field::Identifier),
        (field(&props["version"]), limits::VERSION, Field::Identifier),
        (field(&props["error"]), limits::ERROR, Field::Message),
    ] {
        assert!(
            accepts(&value, max, kind),
            "{value:?} breaks its limit of {max}"
        );
    }
    assert_eq!(props["ide"], "vs code");
    assert!(field(&props["provider"]).starts_with("€xxx"));
    assert!(field(&props["error"]).starts_with("line one"), "{props}");
}

/// An empty property is left out (the builder's default applies) and an
/// empty error becomes a placeholder: the collector refuses empty fields.
#[test]
fn no_field_is_sent_empty() {
    let _turn = support::recording::a_client();
    let recording = RecordingTransport::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let telemetry = Telemetry::builder("devsy")
        .version("v1.0.0")
        .ide("")
        .provider("docker")
        .env([("HOME", dir.path().to_str().expect("utf-8 path"))])
        .config_dir(dir.path())
        .transport(recording.clone())
        .start();
    telemetry
        .command("up")
        .provider("")
        .source_type("")
        .start()
        .finish_err("");
    drop(telemetry);

    let events = recording.events();
    let props = object(&events[1]["event"]["properties"], "properties");
    assert_eq!(
        props["provider"], "docker",
        "the default, not the empty value"
    );
    assert!(
        !props.contains_key("ide") && !props.contains_key("source_type"),
        "{props:?}"
    );
    assert_eq!(props["error"], "(no message)");
}
