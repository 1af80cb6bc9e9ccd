//! The dashboard: on its own address only, behind its token when it has
//! one, every stored string escaped, the same figures as `report --json`,
//! and, in a real browser, charts and tables that say what the report
//! says. Also `demo` serving it on a terminal until Ctrl-C.

mod support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
#[cfg(unix)]
use support::browser;
use support::{
    BINARY, Collector, Stderr, UNLIMITED, agent, batch, devsy, finished_event, get, get_header,
    get_json, now_micros, post, report_json, report_json_with, start_event,
};

const DAY_US: u64 = 86_400_000_000;

fn with_dashboard(db: &std::path::Path, extra: &[&str]) -> Collector {
    let args = [UNLIMITED, &["--dashboard", "127.0.0.1:0"], extra].concat();
    Collector::start_with(db, &args, Stderr::Piped)
}

#[test]
fn the_ingest_address_serves_nothing_to_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let collector = with_dashboard(&dir.path().join("t.db"), &[]);
    let events = [start_event(1, "devsy up", now_micros())];
    assert_eq!(
        post(&agent(), &collector.endpoint(), &batch(&events)).0,
        200
    );
    for path in ["/", "/api/report", "/api/dashboard", "/index.html"] {
        let (status, body) = get(&agent(), &collector.url(path), &[]);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("devsy up"), "{path}: {body}");
    }
    // And the dashboard takes no events.
    let (status, _) = post(&agent(), &collector.board("/v1/insert"), &batch(&events));
    assert!(status == 404 || status == 405, "{status}");
    assert_eq!(get(&agent(), &collector.board("/"), &[]).0, 200);
}

#[test]
fn with_a_token_every_request_must_carry_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(BINARY);
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dashboard",
            "127.0.0.1:0",
            "--db",
        ])
        .arg(dir.path().join("t.db"))
        .env("DEVSY_DASHBOARD_TOKEN", "s3cret-token");
    let collector = Collector::spawn(command, true);
    for path in ["/", "/api/report", "/api/dashboard"] {
        let (status, body) = get(&agent(), &collector.board(path), &[]);
        assert_eq!(status, 401, "{path}: {body}");
        let wrong = get(
            &agent(),
            &collector.board(path),
            &[("Authorization", "Bearer nope")],
        );
        assert_eq!(wrong.0, 401, "{path}");
        let right = [("Authorization", "Bearer s3cret-token")];
        assert_eq!(
            get(&agent(), &collector.board(path), &right).0,
            200,
            "{path}"
        );
    }
    // A browser's Basic prompt: any user, the token as password
    // ("me:s3cret-token").
    let basic = [("Authorization", "Basic bWU6czNjcmV0LXRva2Vu")];
    assert_eq!(get(&agent(), &collector.board("/"), &basic).0, 200);
    let (challenge, body) = get_header(&agent(), &collector.board("/"), "www-authenticate");
    assert!(challenge.starts_with("Basic "), "{challenge}");
    assert!(body.contains("token"), "{body}");
}

#[test]
fn a_dashboard_open_to_other_hosts_needs_a_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("t.db");
    let db = db.to_str().expect("a UTF-8 path");
    let stderr = support::refused(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dashboard",
            "0.0.0.0:0",
            "--db",
            db,
        ],
        &[],
    );
    assert!(stderr.contains("give it a token"), "{stderr}");
}

/// A page elsewhere that rebinds its name to 127.0.0.1 sends its own Host:
/// without a token, only a loopback Host is answered.
#[test]
fn without_a_token_only_a_loopback_host_is_answered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let collector = with_dashboard(&dir.path().join("t.db"), &[]);
    let (status, body) = get(
        &agent(),
        &collector.board("/api/report"),
        &[("Host", "evil.example:8788")],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("loopback Host"), "{body}");
    let (status, _) = get(
        &agent(),
        &collector.board("/"),
        &[("Host", "localhost:8788")],
    );
    assert_eq!(status, 200);
}

#[test]
fn every_stored_string_is_escaped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let collector = with_dashboard(&dir.path().join("t.db"), &[]);
    let now = now_micros();
    let start = start_event(1, "<script>alert(1)</script>", now);
    let mut hostile = start.clone();
    hostile["event"]["properties"]["provider"] = json!("\"><img src=x onerror=alert(2)>");
    let events = [
        hostile,
        finished_event(start, 50, Some("</td><script>alert(3)</script>")),
    ];
    assert_eq!(
        post(&agent(), &collector.endpoint(), &batch(&events)).0,
        200
    );
    let (policy, page) = get_header(&agent(), &collector.board("/"), "content-security-policy");
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(page.contains("&lt;/td&gt;&lt;script&gt;alert(3)"), "{page}");
    assert!(page.contains("&quot;&gt;&lt;img src=x"), "{page}");
    for raw in ["<script", "<img", "onerror=alert(2)>"] {
        assert!(!page.contains(raw), "{raw} reached the page unescaped");
    }
}

#[test]
fn the_json_is_the_reports_for_the_same_window() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("t.db");
    let collector = with_dashboard(&db, &[]);
    let (first_us, last_us) = fill_with_history(&collector, 10);
    let (_, all) = get_json(&agent(), &collector.board("/api/dashboard"));
    let days = all["runs_per_day"]["days"].as_array().expect("days");
    // Ten days back from now, minutes apart: eleven UTC days just after
    // midnight.
    let spanned = usize::try_from(last_us / DAY_US - first_us / DAY_US + 1).expect("small");
    assert_eq!(days.len(), spanned, "{all:#}");
    // A day in the middle of the data: the window leaves some out.
    let since = days[5].as_str().expect("a day").to_string();
    let since_query = format!("?since={since}");
    let mut in_window = Vec::new();
    for (query, args) in [
        ("", &[][..]),
        (since_query.as_str(), &["--since", since.as_str()][..]),
        ("?top=2", &["--top", "2"][..]),
    ] {
        let (status, served) = get_json(&agent(), &collector.board(&format!("/api/report{query}")));
        assert_eq!(status, 200, "{query}");
        assert_eq!(served, report_json_with(&db, args), "{query}");
        let (_, all) = get_json(
            &agent(),
            &collector.board(&format!("/api/dashboard{query}")),
        );
        assert_eq!(all["report"], served, "{query}");
        in_window.push(served["events"].as_u64().expect("events"));
    }
    assert!(
        0 < in_window[1] && in_window[1] < in_window[0],
        "since {since}: {in_window:?}"
    );
    let (status, error) = get_json(&agent(), &collector.board("/api/report?since=yesterday"));
    assert_eq!(status, 400);
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("'yesterday' is not a date")),
        "{error}"
    );
    let (status, _) = get_json(&agent(), &collector.board("/api/report?top=0"));
    assert_eq!(status, 400);
}

/// Posts `days` days of runs from a dozen machines: versions replacing
/// each other, a few providers and IDEs, failures with durations. The
/// first and the last event's time.
fn fill_with_history(collector: &Collector, days: u64) -> (u64, u64) {
    let now = now_micros();
    let commands = [
        ("devsy up", 9, 4),
        ("devsy provider list", 6, 0),
        ("devsy provider add", 3, 1),
        ("devsy ssh", 4, 1),
        ("devsy delete", 2, 0),
        ("devsy context set-options", 1, 0),
        ("devsy build", 1, 1),
    ];
    let mut events = Vec::new();
    for day in 0..days {
        for (c, (command, per_day, failing)) in commands.iter().enumerate() {
            let runs = per_day + (day + c as u64) % 3;
            for run in 0..runs {
                let machine = u32::try_from((day * 7 + run * 3 + c as u64) % 12).expect("small");
                let at = now - (days - 1 - day) * DAY_US - (run + 1) * 60_000_000 - c as u64;
                let mut start = start_event(machine + 1, command, at);
                let props = &mut start["event"]["properties"];
                let age = days - day;
                props["version"] = json!(if age > days * 2 / 3 {
                    "v0.5.27"
                } else if age > days / 3 && run % 2 == 0 {
                    "v0.5.28"
                } else if age > days / 3 {
                    "v0.5.27"
                } else {
                    "v0.5.29"
                });
                props["provider"] = json!(["docker", "kubernetes", "ssh"][(run as usize + c) % 3]);
                if *command == "devsy up" {
                    props["ide"] = json!(["vscode", "goland", "cursor"][run as usize % 3]);
                }
                if run % 5 == 4 {
                    start["user"]["os"] = json!("darwin");
                    start["user"]["arch"] = json!("arm64");
                }
                events.push(start.clone());
                if run < *failing {
                    let ms = 800 + 900 * run + 40 * day;
                    events.push(finished_event(
                        start,
                        ms,
                        Some("provider 'ssh' does not exist"),
                    ));
                } else if *command == "devsy up" && run == per_day - 1 {
                    events.push(finished_event(start, 12_000 + 500 * day, None));
                }
            }
        }
    }
    for chunk in events.chunks(500) {
        let (status, answer) = post(&agent(), &collector.endpoint(), &batch(chunk));
        assert_eq!(status, 200, "{answer}");
    }
    let times = events
        .iter()
        .map(|e| e["event"]["timestamp"].as_u64().expect("a time"));
    (
        times.clone().min().expect("events"),
        times.max().expect("events"),
    )
}

/// What the page shows, read from the browser's DOM.
const READ_THE_PAGE: &str = r"
const text = (e) => e ? e.textContent : null;
const rows = [...document.querySelectorAll('#commands-table tbody tr')].map((tr) => ({
  command: text(tr.querySelector('th')),
  numbers: [...tr.querySelectorAll('td.n')].map((td) => td.textContent),
}));
const series = (id) => {
  const sums = {};
  document.querySelectorAll('#' + id + ' rect.bar').forEach((r) => {
    sums[r.dataset.series] = (sums[r.dataset.series] || 0) + Number(r.dataset.value);
  });
  return sums;
};
const charts = [...document.querySelectorAll('figure.chart > svg')].map((s) => {
  const box = s.getBoundingClientRect();
  return { width: box.width, height: box.height, label: text(s.querySelector('title')) };
});
const versions = [...document.querySelectorAll('#version-table tbody tr')].map((tr) =>
  [text(tr.querySelector('th')), text(tr.querySelector('td'))]);
return {
  title: document.title,
  rows,
  runs: series('runs-per-day'),
  versions_per_day: series('versions-per-day'),
  versions,
  charts,
  tables: document.querySelectorAll('table caption').length,
  scripts: document.scripts.length,
  font: getComputedStyle(document.body).fontSize,
  height: document.documentElement.scrollHeight,
  width: document.documentElement.scrollWidth,
};
";

#[cfg(unix)]
#[test]
fn in_a_real_browser_the_charts_and_tables_say_what_the_report_says() {
    let Some(browser) = browser::browser() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("t.db");
    let collector = with_dashboard(&db, &[]);
    let _ = fill_with_history(&collector, 30);
    // And the example itself, with a command that is markup.
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    for (args, code) in [
        (&["provider", "add", "docker"][..], 0),
        (&["provider", "list"][..], 0),
        (&["up", "github.com/devsy-sh/devsy"][..], 0),
    ] {
        assert_eq!(
            devsy(&home, &collector.endpoint(), args, &[]),
            code,
            "{args:?}"
        );
    }
    let hostile = [start_event(40, "<script>alert(1)</script>", now_micros())];
    assert_eq!(
        post(&agent(), &collector.endpoint(), &batch(&hostile)).0,
        200
    );
    let report = report_json(&db);

    browser.open(&collector.board("/"));
    let page = browser.run(READ_THE_PAGE);
    assert_eq!(page["title"], json!("devsy telemetry"));
    assert_eq!(
        page["scripts"],
        json!(0),
        "no stored string became a script"
    );
    let commands = report["commands"].as_array().expect("commands");
    let rows = page["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), commands.len(), "{page:#}");
    for (row, expected) in rows.iter().zip(commands) {
        assert_eq!(row["command"], expected["command"], "{page:#}");
        let numbers: Vec<String> = ["runs", "machines", "failures"]
            .iter()
            .map(|k| expected[k].to_string())
            .collect();
        let shown: Vec<String> = row["numbers"]
            .as_array()
            .expect("numbers")
            .iter()
            .take(3)
            .map(|v| v.as_str().expect("text").to_string())
            .collect();
        assert_eq!(shown, numbers, "{}", expected["command"]);
    }
    // Runs per day: each drawn command's bars add up to its runs; the
    // rest are "(other)".
    let runs = page["runs"].as_object().expect("series");
    let mut drawn = 0;
    for expected in commands {
        if let Some(sum) = runs.get(expected["command"].as_str().expect("name")) {
            assert_eq!(sum, &expected["runs"], "{}", expected["command"]);
            drawn += 1;
        }
    }
    assert_eq!(drawn, 6, "the six most run commands are drawn: {runs:?}");
    let all_runs: u64 = commands
        .iter()
        .map(|c| c["runs"].as_u64().expect("n"))
        .sum();
    let drawn_runs: u64 = runs.values().map(|v| v.as_u64().expect("n")).sum();
    assert_eq!(
        drawn_runs, all_runs,
        "with (other), every run is drawn once"
    );
    // Versions: the bars per version add up to the version table.
    let versions = page["versions_per_day"].as_object().expect("series");
    for pair in page["versions"].as_array().expect("versions") {
        let (name, count) = (pair[0].as_str().expect("name"), &pair[1]);
        assert_eq!(
            versions[name].to_string(),
            count.as_str().expect("text"),
            "{name}"
        );
    }
    for (name, expected) in report["breakdowns"]["version"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|c| (c["value"].as_str().expect("v"), &c["count"]))
    {
        assert_eq!(&versions[name], expected, "{name}");
    }
    // Laid out for a laptop at 100 %: wide charts, 16 px text, nothing
    // wider than the window.
    for chart in page["charts"].as_array().expect("charts") {
        assert!(
            chart["width"].as_f64().is_some_and(|w| w >= 900.0),
            "{chart}"
        );
        assert!(
            chart["label"].as_str().is_some_and(|l| !l.is_empty()),
            "{chart}"
        );
    }
    assert_eq!(page["charts"].as_array().map(Vec::len), Some(2));
    assert!(page["tables"].as_u64().is_some_and(|n| n >= 8), "{page:#}");
    assert_eq!(page["font"], json!("16px"));
    assert!(
        page["width"].as_u64().is_some_and(|w| w <= 1280),
        "{page:#}"
    );

    // The screenshot, of the whole page.
    let height = page["height"].as_u64().expect("height").clamp(900, 8000);
    browser.resize(1280, height + 140);
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&shot, &png).expect("save the screenshot");
    eprintln!("screenshot: {}", shot.display());
    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
        std::fs::write(&docs, &png).expect("update docs/dashboard.png");
    }
}

/// `demo` on a terminal (through `script`): after the report it prints the
/// dashboard's address, serves it, and stops at Ctrl-C.
#[cfg(target_os = "linux")]
#[test]
fn the_demo_serves_the_dashboard_on_a_terminal_until_ctrl_c() {
    let devsy = support::devsy_binary();
    // The usual port held (here, or by whoever holds it already): the
    // demo takes another.
    let _usual = std::net::TcpListener::bind("127.0.0.1:8788");
    // `exec`: a shell that stayed as the demo's parent (dash does) would
    // die of the Ctrl-C itself, whatever the demo does with it. The shell
    // is pinned so that a run here meets what CI meets.
    let line = format!("exec '{BINARY}' demo --devsy '{}'", devsy.display());
    let child = Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run script");
    let mut child = Terminal(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The demo's slow run takes just over 10 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    let address = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            panic!("no dashboard address within 60 s:\n{seen}");
        };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(rest) = line.trim().strip_prefix("the dashboard: ") {
            break rest
                .split_whitespace()
                .next()
                .expect("an address")
                .to_string();
        }
    };
    assert!(seen.contains("events stored: 15."), "{seen}");
    assert!(!address.contains(":8788"), "{address}");
    let (status, page) = get(&agent(), &address, &[]);
    assert_eq!(status, 200);
    assert!(page.contains("devsy provider list"), "{page}");
    // Ctrl-C, typed on the terminal.
    let status = child
        .ctrl_c(Duration::from_secs(15))
        .expect("the demo stops at Ctrl-C");
    assert!(status.success(), "{status}");
    assert!(
        agent().get(&address).call().is_err(),
        "the dashboard is gone"
    );
}

/// `script` and the program it runs on its terminal: stopped with Ctrl-C,
/// or killed (both, by id) when the test ends first.
struct Terminal(std::process::Child);

impl Terminal {
    /// Types Ctrl-C and waits at most `limit` for the exit.
    fn ctrl_c(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut stdin = self.0.stdin.take()?;
        stdin.write_all(b"\x03").ok()?;
        stdin.flush().ok()?;
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The programs `script` started, from `/proc`.
    fn children(&self) -> Vec<i32> {
        let pid = self.0.id();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(Some(_))) {
            return;
        }
        // `script` runs its program in a session of its own: the group
        // holds the demo and the example runs it started.
        for pid in self.children() {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
