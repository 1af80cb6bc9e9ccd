//! What telemetry shows and keeps on the user's machine: the first-run
//! notice (on a terminal, once), private files (`0700` directories, `0600`
//! files, no symbolic link followed), everything forgotten on opt-out, and
//! `devsy telemetry status`. Linux: a pseudo-terminal through `script`,
//! modes through `stat`.
#![cfg(target_os = "linux")]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::couriers::{NoCourierLeft, finish_couriers};
use crate::support::fault_server::{Mode, Server, closed_port_endpoint};
use crate::support::process::{example, files_under, run_example, stdout, wait_bounded};

/// A line of the default notice.
const NOTICE: &str = "devsy collects anonymous usage data";

/// `name args` run on a pseudo-terminal (`script`), stderr included in
/// what it prints, with a clean environment but for `vars`; not CI.
fn on_a_terminal(name: &str, args: &str, home: &Path, vars: &[(&str, &str)]) -> Output {
    // Quoted for the shell that `script` runs it with.
    let command = format!("'{}' {args}", example(name).display());
    let child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("DEVSY_HOME", home)
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script");
    wait_bounded(child, Duration::from_secs(30))
}

#[test]
fn the_notice_is_shown_once_on_a_terminal_and_never_elsewhere() {
    let server = Server::start(Mode::Status(200));
    let endpoint = server.endpoint();
    let home = tempfile::tempdir().expect("temp dir");
    let _no_courier_left = NoCourierLeft(home.path().to_path_buf());
    let vars = [("DEVSY_TELEMETRY_ENDPOINT", endpoint.as_str())];

    // Not on a pipe, not in CI, not opted out, not in debug mode.
    let piped = run_example(
        "devsy",
        &["provider", "list"],
        home.path(),
        &[("CI", ""), vars[0]],
    );
    assert!(!String::from_utf8_lossy(&piped.stderr).contains(NOTICE));
    for extra in [
        ("CI", "true"),
        ("DEVSY_DISABLE_TELEMETRY", "1"),
        ("DEVSY_TELEMETRY_DEBUG", "1"),
    ] {
        let output = on_a_terminal("devsy", "provider list", home.path(), &[vars[0], extra]);
        // `script -e` exits as the command did: it ran.
        assert!(output.status.success(), "{}", stdout(&output));
        assert!(
            !stdout(&output).contains(NOTICE),
            "shown with {}={}: {}",
            extra.0,
            extra.1,
            stdout(&output)
        );
    }
    assert!(finish_couriers(home.path(), Duration::from_secs(15)));

    // On a terminal: once, naming the variable and the app's own command.
    let first = on_a_terminal("devsy", "provider list", home.path(), &vars);
    let text = stdout(&first);
    assert!(text.contains(NOTICE), "{text}");
    assert!(text.contains("DEVSY_DISABLE_TELEMETRY=1"), "{text}");
    assert!(
        text.contains("devsy context set-options -o TELEMETRY=false"),
        "{text}"
    );
    let second = on_a_terminal("devsy", "provider list", home.path(), &vars);
    assert!(!stdout(&second).contains(NOTICE), "shown twice");
    assert!(finish_couriers(home.path(), Duration::from_secs(15)));
}

#[test]
fn with_consent_first_the_run_that_shows_the_notice_sends_nothing() {
    let server = Server::start(Mode::Status(200));
    let endpoint = server.endpoint();
    let home = tempfile::tempdir().expect("temp dir");
    let _no_courier_left = NoCourierLeft(home.path().to_path_buf());
    let vars = [("DEVSY_TELEMETRY_ENDPOINT", endpoint.as_str())];
    let first = on_a_terminal("manual", "provider list", home.path(), &vars);
    assert!(stdout(&first).contains(NOTICE), "{}", stdout(&first));
    assert!(finish_couriers(home.path(), Duration::from_secs(15)));
    assert_eq!(server.requests().len(), 0, "the showing run sent");
    let _ = on_a_terminal("manual", "provider list", home.path(), &vars);
    assert!(finish_couriers(home.path(), Duration::from_secs(15)));
    assert!(!server.requests().is_empty(), "the next run sends");
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn everything_telemetry_creates_is_private() {
    let home = tempfile::tempdir().expect("temp dir");
    // The config dir itself is made by the run.
    let config = home.path().join("devsy-home");
    let dead = closed_port_endpoint();
    let output = run_example(
        "devsy",
        &["provider", "add", "docker"],
        &config,
        &[("DEVSY_TELEMETRY_ENDPOINT", dead.as_str())],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let made = files_under(&config);
    assert!(
        made.iter()
            .any(|f| f.starts_with("telemetry-spool/") && f.ends_with(".json")),
        "a batch was spooled against the dead server: {made:?}"
    );
    assert_eq!(mode(&config), 0o700, "the config dir");
    for relative in made {
        let path = config.join(&relative);
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{relative}");
    }
}

#[test]
fn a_link_where_the_spool_should_be_is_not_written_through() {
    let home = tempfile::tempdir().expect("temp dir");
    let elsewhere = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(elsewhere.path(), home.path().join("telemetry-spool"))
        .expect("plant a link");
    let _no_courier_left = NoCourierLeft(home.path().to_path_buf());
    let dead = closed_port_endpoint();
    let run = || {
        let output = run_example(
            "devsy",
            &["provider", "list"],
            home.path(),
            &[("CI", ""), ("DEVSY_TELEMETRY_ENDPOINT", dead.as_str())],
        );
        assert!(output.status.success());
        // What a courier would do happens before the look.
        assert!(finish_couriers(home.path(), Duration::from_secs(30)));
    };
    run();
    assert_eq!(files_under(elsewhere.path()), Vec::<String>::new());
    // The same run without the link spools its events: the one above
    // did try, and was refused.
    std::fs::remove_file(home.path().join("telemetry-spool")).expect("remove the link");
    run();
    assert!(
        files_under(home.path())
            .iter()
            .any(|f| f.starts_with("telemetry-spool/") && f.ends_with(".json")),
        "{:?}",
        files_under(home.path())
    );
}

#[test]
fn opting_out_forgets_the_fallback_id_and_the_notice() {
    let home = tempfile::tempdir().expect("temp dir");
    for kept in ["telemetry-machine-id", "telemetry-notice-shown"] {
        std::fs::write(home.path().join(kept), "x").expect("write");
    }
    let output = run_example(
        "devsy",
        &["provider", "list"],
        home.path(),
        &[("DEVSY_DISABLE_TELEMETRY", "1")],
    );
    assert!(output.status.success());
    let left = files_under(home.path());
    assert!(
        !left.iter().any(|f| f.starts_with("telemetry-")),
        "kept after opting out: {left:?}"
    );
}

#[test]
fn telemetry_status_says_where_events_go_what_waits_and_the_notice() {
    let home = tempfile::tempdir().expect("temp dir");
    // Behind a key in the path and a password: neither is shown.
    let endpoint = "http://user:secret@127.0.0.1:9/v1/insert?key=k";
    let _ = run_example(
        "devsy",
        &["provider", "list"],
        home.path(),
        &[("DEVSY_TELEMETRY_ENDPOINT", endpoint)],
    );
    let output = run_example(
        "devsy",
        &["telemetry", "status"],
        home.path(),
        &[("DEVSY_TELEMETRY_ENDPOINT", endpoint)],
    );
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"endpoint: http://127.0.0.1:9"), "{text}");
    assert!(
        lines.iter().any(|l| l.starts_with("spooled: ")
            && l.ends_with(" events")
            && *l != "spooled: 0 events"),
        "the dead endpoint left events waiting: {text}"
    );
    assert!(lines.contains(&"notice: not shown"), "{text}");
    assert!(
        !text.contains("secret") && !text.contains("key=k"),
        "{text}"
    );
}
