//! The collector on a public endpoint: clients that never finish, floods
//! of connections, uploads that stall, a full database with stderr closed.
//! The real binary on loopback; every loop is bounded in count and time.
#![cfg(target_os = "linux")]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use support::{Collector, Stderr, agent, batch, now_micros, post, start_event, stored};

/// Whether the server closes `stream` within `limit`: a read sees the end
/// (or a reset) rather than the timeout.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let mut buf = [0_u8; 4096];
    let started = Instant::now();
    // Bounded: each read waits at most `limit`, and the loop ends by then.
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
    false
}

fn resident_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS")
}

#[test]
fn a_slowloris_and_idle_connections_are_closed_within_the_timeouts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let collector = Collector::start_with(
        &dir.path().join("t.db"),
        &["--header-timeout", "1"],
        Stderr::Piped,
    );
    // One header byte at a time, every 300 ms, forever.
    let mut slow = TcpStream::connect(collector.address).expect("connect");
    slow.write_all(b"POST /v1/insert HTTP/1.1\r\n")
        .expect("write");
    let mut dripping = slow.try_clone().expect("clone");
    let drip = std::thread::spawn(move || {
        for _ in 0..20 {
            if dripping.write_all(b"X").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    // Connected, and never a byte.
    let mut silent = TcpStream::connect(collector.address).expect("connect");
    // A keep-alive connection after one request.
    let mut kept = TcpStream::connect(collector.address).expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut answer = [0_u8; 512];
    kept.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let n = kept.read(&mut answer).expect("an answer");
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));

    let bound = Duration::from_secs(4);
    assert!(
        closed_within(&mut slow, bound),
        "the slowloris is still open"
    );
    assert!(
        closed_within(&mut silent, bound),
        "the silent connection is still open"
    );
    assert!(
        closed_within(&mut kept, bound),
        "the idle keep-alive connection is still open"
    );
    let _ = drip.join();
}

#[test]
fn a_flood_above_the_cap_does_not_starve_a_connected_client() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("t.db");
    let collector = Collector::start_with(
        &db,
        &["--max-connections", "40", "--header-timeout", "30"],
        Stderr::Piped,
    );
    // The valid client's connection is open before the flood.
    let client = agent();
    assert_eq!(post(&client, &collector.endpoint(), &batch(&[])).0, 200);

    let flood: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(collector.address).ok())
        .collect();
    let refused = closed_at_once(&flood, Duration::from_millis(200));
    assert!(
        refused >= 300 - 40,
        "connections past the cap are closed at once: {refused} of 300"
    );
    twenty_batches_stored(&client, &collector, &db);
    drop(flood);
}

/// How many of `flood` the server closes within `limit` each.
fn closed_at_once(flood: &[TcpStream], limit: Duration) -> usize {
    flood
        .iter()
        .filter_map(|s| s.try_clone().ok())
        .filter_map(|mut stream| closed_within(&mut stream, limit).then_some(()))
        .count()
}

/// A valid client posts 20 batches during a flood: each is stored.
fn twenty_batches_stored(client: &ureq::Agent, collector: &Collector, db: &std::path::Path) {
    let started = now_micros();
    for i in 0..20 {
        let (status, answer) = post(
            client,
            &collector.endpoint(),
            &batch(&[start_event(i, "devsy up", started)]),
        );
        assert_eq!(status, 200, "batch {i} during the flood: {answer}");
    }
    assert_eq!(stored(db), 20);
}

#[test]
fn stalled_uploads_stay_within_the_body_budget() {
    let dir = tempfile::tempdir().expect("temp dir");
    let collector = Collector::start_with(
        &dir.path().join("t.db"),
        &["--body-budget", "8", "--max-connections", "400"],
        Stderr::Piped,
    );
    let before = resident_kib(collector.pid());
    let body_size = 1024 * 1024;
    let mut stalled = Vec::new();
    let mut turned_away = 0;
    let chunk = vec![b' '; 64 * 1024];
    // From 20 addresses, 10 each: each holds its share (one body), and
    // together they reach the global budget.
    for n in 0..200_u8 {
        let from = std::net::Ipv4Addr::new(127, 0, 1, 1 + n / 10);
        let Ok(mut stream) = connect_from(from, collector.address) else {
            continue;
        };
        let head = format!(
            "POST /v1/insert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {body_size}\r\n\r\n"
        );
        if stream.write_all(head.as_bytes()).is_err() {
            turned_away += 1;
            continue;
        }
        // All but the last byte, unless the server answers first.
        let mut sent = 0;
        while sent + chunk.len() < body_size {
            if stream.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        stalled.push(stream);
    }
    std::thread::sleep(Duration::from_millis(500));
    let during = resident_kib(collector.pid());
    let grown_mib = during.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 8 + 24,
        "RSS grew by {grown_mib} MiB for 200 stalled 1 MiB uploads with an 8 MiB budget \
         (turned away at once: {turned_away})"
    );
    // The rest were told to come back: 503 with Retry-After, some because
    // the budget itself was spent.
    let mut answered = 0;
    let mut budget_spent = 0;
    for stream in &mut stalled {
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let mut buf = [0_u8; 256];
        if let Ok(n) = stream.read(&mut buf)
            && buf[..n].starts_with(b"HTTP/1.1 503")
            && String::from_utf8_lossy(&buf[..n])
                .to_ascii_lowercase()
                .contains("retry-after")
        {
            answered += 1;
            if String::from_utf8_lossy(&buf[..n]).contains("in memory; try again") {
                budget_spent += 1;
            }
        }
    }
    assert!(answered >= 150, "only {answered} of 200 told to retry");
    assert!(budget_spent > 0, "the global budget was never reached");
    drop(stalled);
}

#[test]
fn sigterm_with_a_stalled_client_exits_within_the_grace() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("t.db");
    let collector = Collector::start_with(&db, &["--shutdown-grace", "1"], Stderr::Piped);
    let client = agent();
    let (status, _) = post(
        &client,
        &collector.endpoint(),
        &batch(&[start_event(1, "devsy up", now_micros())]),
    );
    assert_eq!(status, 200);
    // Half a request, then nothing.
    let mut stalled = TcpStream::connect(collector.address).expect("connect");
    stalled
        .write_all(
            b"POST /v1/insert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"data\": [",
        )
        .expect("write");
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let (status, stderr) = collector.stop_with(Signal::TERM);
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "exited after {:?}",
        started.elapsed()
    );
    assert_eq!(stored(&db), 1, "the acknowledged event is stored");
    drop(stalled);
}

#[test]
fn a_full_database_answers_507_and_healthz_says_why_with_stderr_closed() {
    for stderr in [Stderr::Closed, Stderr::Broken] {
        full_database(stderr);
    }
}

fn full_database(stderr: Stderr) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("t.db");
    let collector = Collector::start_with(&db, &["--max-db-size", "1"], stderr);
    let client = agent();
    let started = now_micros();
    let mut refused = None;
    // 1 MiB holds a few thousand events: bounded well past that.
    for round in 0..400_u32 {
        let events: Vec<_> = (0..100)
            .map(|i| start_event(round * 100 + i, "devsy provider list", started))
            .collect();
        let (status, answer) = post(&client, &collector.endpoint(), &batch(&events));
        match status {
            200 => {}
            507 => {
                refused = Some(events);
                break;
            }
            other => panic!("round {round}: {other} {answer}"),
        }
    }
    let Some(events) = refused else {
        panic!("never full");
    };
    // The writer logged to a stderr it cannot write and lives: the same
    // batch is refused again, and /healthz says why.
    let (status, _) = post(&client, &collector.endpoint(), &batch(&events));
    assert_eq!(status, 507);
    let (status, reason) = support::get(&client, &collector.url("/healthz"), &[]);
    assert_eq!(status, 503);
    assert!(reason.contains("full"), "{reason}");
    // The report still works on what was stored.
    let report = support::report_json(&db);
    assert!(report["events"].as_u64().unwrap_or(0) > 0, "{report}");
}

#[test]
fn the_free_disk_floor_answers_507_and_healthz_says_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("t.db");
    // A floor no disk here has.
    let collector = Collector::start_with(&db, &["--min-free-disk", "1000000000"], Stderr::Piped);
    let client = agent();
    let (status, answer) = post(
        &client,
        &collector.endpoint(),
        &batch(&[start_event(1, "devsy up", now_micros())]),
    );
    assert_eq!(status, 507, "{answer}");
    let (status, reason) = support::get(&client, &collector.url("/healthz"), &[]);
    assert_eq!(status, 503);
    assert!(reason.contains("below the floor"), "{reason}");
    assert_eq!(stored(&db), 0);
}

#[test]
fn events_older_than_the_retention_are_deleted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("t.db");
    let day_us = 86_400_000_000;
    let now = now_micros();
    {
        let collector = Collector::start_with(&db, &["--retain", "forever"], Stderr::Piped);
        let events = [
            start_event(1, "devsy up", now - 3 * day_us),
            start_event(2, "devsy up", now - 2 * day_us),
            start_event(3, "devsy up", now),
        ];
        assert_eq!(
            post(&agent(), &collector.endpoint(), &batch(&events)).0,
            200
        );
        let (status, _) = collector.stop_with(Signal::TERM);
        assert!(status.success());
    }
    assert_eq!(stored(&db), 3);
    // Retention goes by when an event was received: two of them, long ago.
    {
        let conn = rusqlite::Connection::open(&db).expect("open");
        let old = i64::try_from(now - 3 * day_us).expect("fits");
        conn.execute(
            "UPDATE events SET received_us = ?1 WHERE timestamp_us < ?2",
            rusqlite::params![old, i64::try_from(now - day_us).expect("fits")],
        )
        .expect("age two events");
    }
    let collector = Collector::start_with(&db, &["--retain", "1d"], Stderr::Piped);
    let started = Instant::now();
    // Retention runs at start, in the background: bounded wait.
    while stored(&db) != 1 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(stored(&db), 1, "only the event received today is kept");
    drop(collector);
}

/// A connection to `to` from `from`, another loopback address (Linux
/// routes all of 127.0.0.0/8 to the loopback device).
fn connect_from(from: std::net::Ipv4Addr, to: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketType, bind, connect, socket};
    let socket = socket(AddressFamily::INET, SocketType::STREAM, None)?;
    bind(&socket, &std::net::SocketAddr::from((from, 0)))?;
    connect(&socket, &to)?;
    Ok(TcpStream::from(socket))
}

#[test]
fn one_address_cannot_take_every_connection_from_the_others() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("t.db");
    let collector = Collector::start_with(
        &db,
        &[
            "--max-connections",
            "100",
            "--max-connections-per-address",
            "10",
            "--header-timeout",
            "30",
        ],
        Stderr::Piped,
    );
    // A flood from 127.0.0.2: ten are held, the rest closed at once.
    let attacker = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let flood: Vec<TcpStream> = (0..200)
        .filter_map(|_| connect_from(attacker, collector.address).ok())
        .collect();
    let closed = closed_at_once(&flood, Duration::from_millis(100));
    assert!(closed >= 190, "{closed} of 200 closed at once");
    // A client that connects only now, from 127.0.0.1, is served.
    twenty_batches_stored(&agent(), &collector, &db);
    drop(flood);
}
