//! The whole system: the real `devsy` example sends to the real collector,
//! and the report says what happened. Also the `demo` command and the
//! report's own options.

mod support;

// The root package's courier helpers: found in `/proc`, so Linux only.
#[cfg(target_os = "linux")]
#[path = "../../tests/it/support/couriers.rs"]
mod couriers;

use std::process::Command;

use serde_json::{Value, json};
use support::{
    BINARY, Collector, agent, batch, command, devsy, finished_event, now_micros, post, start_event,
    stored,
};

#[test]
fn events_from_the_example_cli_reach_the_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let db = dir.path().join("t.db");
    let collector = Collector::start(&db);
    let endpoint = collector.endpoint();

    // Arguments, extra environment, expected exit code.
    type Run<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32);
    let runs: [Run<'_>; 6] = [
        (&["up", "github.com/devsy-sh/devsy"], &[], 1),
        (&["provider", "add", "docker"], &[], 0),
        (&["provider", "add", "docker"], &[], 1),
        (&["provider", "list"], &[("DEVSY_UI", "true")], 0),
        (
            &["up", "github.com/devsy-sh/devsy", "--ide", "vscode"],
            &[],
            0,
        ),
        // Opted out: sends nothing.
        (&["provider", "list"], &[("DO_NOT_TRACK", "1")], 0),
    ];
    for (args, env, code) in runs {
        assert_eq!(devsy(&home, &endpoint, args, env), code, "devsy {args:?}");
    }
    drop(collector);

    let report = support::report_json(&db);
    // 5 runs recorded (one opted out), 2 of them failed: 7 events.
    assert_eq!(report["events"], json!(7), "{report:#}");
    assert_eq!(report["machines"], json!(1));
    let add = command(&report, "devsy provider add");
    assert_eq!(add["runs"], json!(2));
    assert_eq!(add["failures"], json!(1));
    assert_eq!(add["failure_rate"], json!(0.5));
    assert_eq!(
        add["top_errors"],
        json!([{"value": "provider 'docker' already exists", "count": 1}])
    );
    let up = command(&report, "devsy up");
    assert_eq!((&up["runs"], &up["failures"]), (&json!(2), &json!(1)));
    let list = command(&report, "devsy provider list");
    assert_eq!((&list["runs"], &list["failures"]), (&json!(1), &json!(0)));
    assert_eq!(
        report["breakdowns"]["client"],
        json!([{"value": "cli", "count": 4}, {"value": "desktop", "count": 1}])
    );
    assert_eq!(
        report["breakdowns"]["platform"][0]["value"],
        json!(format!("{}/{}", go_os(), go_arch()))
    );
}

fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn the_report_counts_slow_runs_and_honours_since() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("t.db");
    let collector = Collector::start(&db);
    let now = now_micros();
    let old = now - 3 * 86_400_000_000;
    let up = start_event(1, "devsy up", now);
    let events = [
        start_event(1, "devsy up", old),
        up.clone(),
        finished_event(up, 12_000, None),
    ];
    let (status, _) = post(&agent(), &collector.endpoint(), &batch(&events));
    assert_eq!(status, 200);
    drop(collector);

    let output = Command::new(BINARY)
        .args(["report", "--json", "--since", "2d", "--db"])
        .arg(&db)
        .output()
        .expect("report");
    assert!(output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let up = command(&report, "devsy up");
    assert_eq!((&up["runs"], &up["slow"]), (&json!(1), &json!(1)));
    assert_eq!(
        (&up["p50_ms"], &up["p95_ms"]),
        (&json!(12_000), &json!(12_000))
    );

    let output = Command::new(BINARY)
        .args(["report", "--db"])
        .arg(&db)
        .output()
        .expect("report");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("3 events from 1 machine"), "{text}");
    assert!(text.contains("devsy up"), "{text}");

    let output = Command::new(BINARY)
        .args(["report", "--since", "last week", "--db"])
        .arg(&db)
        .output()
        .expect("report");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("'last week' is not a date"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_report_names_a_missing_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("none.db");
    let output = Command::new(BINARY)
        .args(["report", "--db"])
        .arg(&missing)
        .output()
        .expect("report");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("none.db") && stderr.contains("no such file"),
        "{stderr}"
    );
    assert!(!missing.exists());
}

#[test]
fn the_quick_demo_runs_the_example_and_prints_a_report() {
    let devsy = support::devsy_binary();
    let output = Command::new(BINARY)
        .args(["demo", "--quick", "--devsy"])
        .arg(&devsy)
        .output()
        .expect("demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("events stored: 13."), "{stdout}");
    assert!(stdout.contains("provider 'ssh' does not exist"), "{stdout}");
    assert!(stdout.contains("desktop"), "{stdout}");
}

/// A run's request is stored but its answer is cut, so the batch goes to a
/// courier at exit, which sends it again: the wire's `EventKey` keeps the
/// event once and the collector answers the resend as a duplicate.
#[cfg(target_os = "linux")]
#[test]
fn a_batch_a_courier_sends_again_after_a_cut_answer_is_stored_once() {
    use std::time::Duration;
    use support::cut_proxy::CutProxy;

    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let _no_courier_left = couriers::NoCourierLeft(home.clone());
    let db = dir.path().join("t.db");
    let collector = Collector::start(&db);
    assert_eq!(
        devsy(
            &home,
            &collector.endpoint(),
            &["provider", "add", "docker"],
            &[]
        ),
        0
    );

    let proxy = CutProxy::start(collector.address);
    // Not CI: the exit hands off to a courier. The command outlives the
    // first batch's 75 ms, so its request is in flight, and cut, before
    // the exit.
    let up = [
        "up",
        "github.com/devsy-sh/devsy",
        "--provider",
        "docker",
        "--delay",
        "0.5",
    ];
    assert_eq!(devsy(&home, &proxy.endpoint(), &up, &[("CI", "")]), 0);
    proxy.relay();
    assert!(
        couriers::finish_couriers(&home, Duration::from_secs(15)),
        "the courier did not end within 15 s"
    );

    let exchanges = proxy.exchanges();
    let (cut, relayed): (Vec<_>, Vec<_>) = exchanges.iter().partition(|e| e.cut);
    assert!(
        cut.first()
            .is_some_and(|e| e.answer.contains(r#""stored":1"#)),
        "the run's first request was stored and its answer cut: {exchanges:?}"
    );
    assert!(
        relayed
            .iter()
            .any(|e| e.answer.contains(r#""stored":0,"duplicates":1"#)),
        "the courier sent the batch again: {exchanges:?}"
    );
    assert_eq!(couriers::spooled_batches(&home), 0, "nothing left behind");
    let report = support::report_json(&db);
    assert_eq!(command(&report, "devsy up")["runs"], 1, "{report:#}");
    assert_eq!(
        report["events"], 2,
        "provider add and up, once each: {report:#}"
    );
}

/// A client over its rate is answered 429 with `Retry-After`; the runtime
/// keeps the batch and a later run delivers it.
#[test]
fn a_client_over_its_rate_is_told_to_wait_and_a_later_run_delivers() {
    use std::time::Duration;
    use support::Stderr;

    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let db = dir.path().join("t.db");
    // Half a request a second, a burst of five: spent by the test first.
    // The example is built first, so its run follows at once.
    let _ = support::devsy_binary();
    let collector = Collector::start_with(&db, &["--rate-requests", "0.5"], Stderr::Piped);
    let client = agent();
    let mut limited = None;
    for _ in 0..20 {
        let mut response = client
            .post(&collector.endpoint())
            .header("Content-Type", "application/json")
            .send(&batch(&[])[..])
            .expect("a response");
        if response.status().as_u16() == 429 {
            limited = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let _ = response.body_mut().read_to_string();
            break;
        }
    }
    assert_eq!(limited.as_deref(), Some("2"), "429 with Retry-After: 2");

    assert_eq!(
        devsy(
            &home,
            &collector.endpoint(),
            &["provider", "add", "docker"],
            &[]
        ),
        0
    );
    assert_eq!(stored(&db), 0, "the first run was told to wait");
    // Room for the kept batch and the run's own, if they go apart.
    std::thread::sleep(Duration::from_millis(4_500));
    assert_eq!(
        devsy(&home, &collector.endpoint(), &["provider", "list"], &[]),
        0
    );
    let report = support::report_json(&db);
    assert_eq!(report["events"], 2, "both runs' events: {report:#}");
}
