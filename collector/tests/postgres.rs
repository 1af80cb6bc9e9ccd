//! The collector on a real PostgreSQL server (`DEVSY_TEST_POSTGRES`, which
//! `.ci/run` sets): the example's events reach the report, the report is
//! the one SQLite gives, several collectors share one database without
//! storing an event twice, a collector killed under load loses nothing it
//! acknowledged, and the size cap, retention and schema checks hold.

mod support;

#[allow(dead_code)] // the root benches' proxy; these tests use a part
#[path = "../../benches/support/proxy.rs"]
mod proxy;

use std::collections::HashSet;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proxy::DelayProxy;
use serde_json::{Value, json};
use support::postgres;
use support::{
    BINARY, Collector, Stderr, UNLIMITED, agent, batch, command, devsy, finished_event, get_json,
    now_micros, post, report_json, report_json_with, start_event, try_post,
};

#[test]
fn the_example_reaches_the_report_through_postgres() {
    let Some(pg) = postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let collector = Collector::start_with(
        &pg.url,
        &[UNLIMITED, &["--dashboard", "127.0.0.1:0"]].concat(),
        Stderr::Piped,
    );
    let endpoint = collector.endpoint();
    let runs: [(&[&str], i32); 4] = [
        (&["up", "github.com/devsy-sh/devsy"], 1),
        (&["provider", "add", "docker"], 0),
        (&["provider", "add", "docker"], 1),
        (&["provider", "list"], 0),
    ];
    for (args, code) in runs {
        assert_eq!(devsy(&home, &endpoint, args, &[]), code, "devsy {args:?}");
    }
    // 4 runs, 2 of them failed: 6 events, in the database and the report.
    assert_eq!(pg.count(), 6);
    let report = report_json(&pg.url);
    assert_eq!(report["events"], json!(6), "{report:#}");
    assert_eq!(report["machines"], json!(1));
    let add = command(&report, "devsy provider add");
    assert_eq!((&add["runs"], &add["failures"]), (&json!(2), &json!(1)));
    let up = command(&report, "devsy up");
    assert_eq!(up["top_errors"][0]["count"], json!(1), "{up:#}");

    // The dashboard's JSON is the report's, from this store too.
    let (status, served) = get_json(&agent(), &collector.board("/api/report"));
    assert_eq!(status, 200);
    assert_eq!(served, report);
}

/// Events with ties in every list, and text that sorts differently by
/// locale than by byte ("B" before "a" in bytes, after it in en_US).
fn varied_events() -> Vec<Value> {
    let now = now_micros();
    let mut events = Vec::new();
    for (i, name) in ["devsy B", "devsy a", "devsy Ärger", "devsy up", "devsy up"]
        .iter()
        .enumerate()
    {
        let n = u32::try_from(i).expect("small");
        let mut start = start_event(n % 3, name, now - u64::from(n) * 1_000_000);
        start["event"]["properties"]["provider"] = json!(["docker", "ssh", "B", "a"][i % 4]);
        start["event"]["properties"]["version"] = json!(format!("v0.{}.0", i % 2));
        events.push(start.clone());
        if i % 2 == 0 {
            events.push(finished_event(
                start,
                100 * (u64::from(n) + 1),
                Some("no source"),
            ));
        }
    }
    // Two runs on 2024-06-01, which `--since 2025-01-01` leaves out.
    for n in 0..2 {
        events.push(start_event(n, "devsy old", OLD + u64::from(n)));
    }
    events
}

/// 2024-06-01T00:00:00Z, in microseconds.
const OLD: u64 = 1_717_200_000_000_000;

#[test]
fn the_report_is_the_same_from_sqlite_and_postgres() {
    let Some(pg) = postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = dir.path().join("t.db");
    let body = batch(&varied_events());
    for db in [sqlite.as_os_str(), pg.url.as_ref()] {
        let collector = Collector::start(db);
        let (status, answer) = post(&agent(), &collector.endpoint(), &body);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["stored"], json!(10));
        // Sent again: stored once, by the same unique key.
        let (_, again) = post(&agent(), &collector.endpoint(), &body);
        assert_eq!(again, json!({"stored": 0, "duplicates": 10}));
    }
    for args in [&[][..], &["--top", "2"][..], &["--since", "2025-01-01"][..]] {
        let from_sqlite = report_json_with(&sqlite, args);
        let from_postgres = report_json_with(&pg.url, args);
        assert_eq!(from_sqlite, from_postgres, "report {args:?}");
    }
    assert_eq!(report_json(&pg.url)["events"], json!(10));
    assert_eq!(
        report_json_with(&pg.url, &["--since", "2025-01-01"])["events"],
        json!(8),
        "the two runs of 2024 are left out"
    );
}

#[test]
fn a_batch_of_more_than_one_statement_is_stored_whole_in_either_store() {
    let Some(pg) = postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = dir.path().join("t.db");
    // 2,500 events: three inserts (of at most 1,000) in one transaction.
    let events = client_batch(7, 0, 2_500, now_micros() - 3_600_000_000);
    let body = batch(&events);
    for db in [sqlite.as_os_str(), pg.url.as_ref()] {
        let collector = Collector::start(db);
        let (status, answer) = post(&agent(), &collector.endpoint(), &body);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer, json!({"stored": 2_500, "duplicates": 0}));
        let (_, again) = post(&agent(), &collector.endpoint(), &body);
        assert_eq!(again, json!({"stored": 0, "duplicates": 2_500}));
    }
    assert_eq!(pg.count(), 2_500);
    assert_eq!(support::stored(&sqlite), 2_500);
}

/// Polls `/healthz` (at most 10 s) until it answers `status`.
fn health_becomes(collector: &Collector, status: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (now, answer) = get_json(&agent(), &collector.url("/healthz"));
        if now == status || Instant::now() > deadline {
            assert_eq!(now, status, "{answer}");
            return answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Behind a load balancer, `/healthz` says whether the server answers now:
/// it turns 503 when PostgreSQL goes away and 200 when it is back, with no
/// batch in between to prove it.
#[test]
fn healthz_follows_the_server_without_a_batch() {
    let Some(pg) = postgres::database() else {
        return;
    };
    let (authority, database) = pg
        .url
        .strip_prefix("postgres://")
        .and_then(|rest| rest.split_once('/'))
        .expect("a URL with a database");
    let (user, host) = authority.rsplit_once('@').expect("user@host:port");
    let server: std::net::SocketAddr = host.parse().expect("host:port");
    // The root benches' relay, without delay: dropped, the server is gone
    // for the collector; started again on its address, it is back.
    let gate = DelayProxy::start(server, Duration::ZERO);
    let address = gate.address();
    let through = format!("postgres://{user}@{address}/{database}");
    let collector = Collector::start(&through);
    health_becomes(&collector, 200);
    drop(gate);
    let answer = health_becomes(&collector, 503);
    assert!(
        answer["reason"]
            .as_str()
            .is_some_and(|r| r.contains("database")),
        "{answer}"
    );
    let _gate = DelayProxy::start_at(address, server, Duration::ZERO);
    health_becomes(&collector, 200);
    let events = [start_event(1, "devsy up", now_micros())];
    assert_eq!(
        post(&agent(), &collector.endpoint(), &batch(&events)).0,
        200
    );
}

/// A collector whose whole pool waits on ingest is busy, not cut off from
/// its server: `/healthz` stays 200 (the watcher has its own connection).
#[test]
fn a_pool_busy_with_ingest_leaves_healthz_at_200() {
    let Some(pg) = postgres::database() else {
        return;
    };
    let collector = Collector::start_with(pg.url.as_str(), &["--pool-size", "1"], Stderr::Piped);
    health_becomes(&collector, 200);
    // Inserts wait while this holds the table; reads do not.
    let _lock = pg.hold("BEGIN; LOCK TABLE events IN SHARE MODE; SELECT pg_sleep(8); COMMIT;");
    let waits = |sql: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while pg.query(sql) != "1" {
            assert!(Instant::now() < deadline, "not within 10 s: {sql}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // This database's alone: other tests run beside this one.
    waits(
        "SELECT count(*) FROM pg_locks WHERE relation = 'events'::regclass \
         AND mode = 'ShareLock' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    let endpoint = collector.endpoint();
    let sent = std::thread::spawn(move || {
        // Longer than the lock is held.
        let patient: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        post(
            &patient,
            &endpoint,
            &batch(&[start_event(1, "devsy up", now_micros())]),
        )
        .0
    });
    // The pool's one connection is inside that insert, waiting.
    waits(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO events%' \
         AND datname = current_database()",
    );
    // Longer than a look's wait (2 s) and its period (1 s) together.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let (status, answer) = get_json(&agent(), &collector.url("/healthz"));
        assert_eq!(status, 200, "{answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        sent.join().expect("the post"),
        200,
        "stored once the lock goes"
    );
    assert_eq!(pg.count(), 1);
}

/// A look the server cannot answer (the table locked whole) is cancelled
/// when its 2 s are up: the watcher keeps its one connection, it does not
/// open one more every few seconds while the server stalls.
#[test]
fn a_stalled_look_is_cancelled_and_the_watcher_keeps_one_connection() {
    let Some(pg) = postgres::database() else {
        return;
    };
    let collector = Collector::start_with(pg.url.as_str(), &["--pool-size", "1"], Stderr::Piped);
    health_becomes(&collector, 200);
    let backends = || -> i64 {
        pg.query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND backend_type = 'client backend' AND application_name <> 'psql'",
        )
        .parse()
        .expect("a count")
    };
    let before = backends();
    let _lock =
        pg.hold("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(15); COMMIT;");
    // Looks that run out of time: each is cancelled.
    let answer = health_becomes(&collector, 503);
    assert!(
        answer["reason"].as_str().is_some_and(|r| r.contains("2s")),
        "{answer}"
    );
    // Two more looks' worth of stall, the table still locked.
    std::thread::sleep(Duration::from_secs(5));
    let during = backends();
    assert!(
        during <= before,
        "{during} connections from the collector while stalled, {before} before"
    );
}

/// The events of client `c`'s batch `b`: unique to both.
fn client_batch(c: u32, b: u64, size: u64, base: u64) -> Vec<Value> {
    (0..size)
        .map(|i| start_event(c, "devsy up", base + b * 1_000 + i))
        .collect()
}

#[test]
fn three_collectors_and_eight_clients_store_every_event_once() {
    const CLIENTS: u32 = 8;
    const BATCHES: u64 = 20;
    const SIZE: u64 = 25;
    let Some(pg) = postgres::database() else {
        return;
    };
    let collectors: Vec<Collector> = (0..3).map(|_| Collector::start(&pg.url)).collect();
    let endpoints: Vec<String> = collectors.iter().map(Collector::endpoint).collect();
    let base = now_micros() - 3_600_000_000;
    let stored = AtomicUsize::new(0);
    let duplicates = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for c in 0..CLIENTS {
            let (endpoints, stored, duplicates) = (&endpoints, &stored, &duplicates);
            scope.spawn(move || {
                let agent = agent();
                for b in 0..BATCHES {
                    let body = batch(&client_batch(c, b, SIZE, base));
                    let first = usize::try_from(u64::from(c) + b).expect("small") % 3;
                    // Sent to one collector, then again to the next, and
                    // every third batch to two at the same moment.
                    let targets = [first, (first + 1) % 3];
                    let answers: Vec<(u16, Value)> = if b % 3 == 0 {
                        std::thread::scope(|race| {
                            let sends: Vec<_> = targets
                                .iter()
                                .map(|t| {
                                    let (url, body) = (&endpoints[*t], &body);
                                    race.spawn(move || post(&support::agent(), url, body))
                                })
                                .collect();
                            sends.into_iter().map(|s| s.join().expect("sent")).collect()
                        })
                    } else {
                        targets
                            .iter()
                            .map(|t| post(&agent, &endpoints[*t], &body))
                            .collect()
                    };
                    for (status, answer) in answers {
                        assert_eq!(status, 200, "{answer}");
                        let n = |key: &str| {
                            usize::try_from(answer[key].as_u64().expect("a count")).expect("fits")
                        };
                        stored.fetch_add(n("stored"), Ordering::Relaxed);
                        duplicates.fetch_add(n("duplicates"), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let unique = usize::try_from(u64::from(CLIENTS) * BATCHES * SIZE).expect("fits");
    assert_eq!(
        stored.load(Ordering::Relaxed),
        unique,
        "each event stored once"
    );
    assert_eq!(
        duplicates.load(Ordering::Relaxed),
        unique,
        "each resend a duplicate"
    );
    assert_eq!(pg.count(), i64::try_from(unique).expect("fits"));
    assert_eq!(
        pg.query(
            "SELECT COUNT(*) FROM (SELECT 1 FROM events \
             GROUP BY machine_id, timestamp_us, command, finished HAVING COUNT(*) > 1) twice"
        ),
        "0"
    );
    drop(collectors);
    let report = report_json(&pg.url);
    assert_eq!(report["events"], json!(unique));
    assert_eq!(report["machines"], json!(CLIENTS));
}

#[cfg(unix)]
#[test]
fn a_collector_killed_under_load_loses_no_event_it_acknowledged() {
    const CLIENTS: u32 = 4;
    const SIZE: u64 = 10;
    let Some(pg) = postgres::database() else {
        return;
    };
    let victim = Collector::start(&pg.url);
    let survivor = Collector::start(&pg.url);
    let (to_victim, to_survivor) = (victim.endpoint(), survivor.endpoint());
    let base = now_micros() - 3_600_000_000;
    let acknowledged: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
    let killed = AtomicBool::new(false);
    let refused = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for c in 0..CLIENTS {
            let (acknowledged, killed, refused) = (&acknowledged, &killed, &refused);
            let (to_victim, to_survivor) = (&to_victim, &to_survivor);
            scope.spawn(move || {
                let agent = agent();
                let mut after_kill = 0;
                // Bounded: at most 2,000 batches, and 20 s.
                let started = Instant::now();
                for b in 0..2_000 {
                    if after_kill >= 20 || started.elapsed() > Duration::from_secs(20) {
                        break;
                    }
                    if killed.load(Ordering::Relaxed) {
                        after_kill += 1;
                    }
                    let events = client_batch(c, b, SIZE, base);
                    let body = batch(&events);
                    // As the runtime does: a batch not acknowledged is sent
                    // again, here to the other collector.
                    let answer = try_post(&agent, to_victim, &body).or_else(|| {
                        refused.fetch_add(1, Ordering::Relaxed);
                        try_post(&agent, to_survivor, &body)
                    });
                    if let Some((200, _)) = answer {
                        let mut acked = acknowledged.lock().expect("lock");
                        acked.extend(events.iter().map(|e| {
                            (
                                support::machine(c),
                                e["event"]["timestamp"].as_u64().expect("ts"),
                            )
                        }));
                    }
                }
            });
        }
        // Killed once it acknowledged a few hundred events, mid-stream.
        let deadline = Instant::now() + Duration::from_secs(15);
        while acknowledged.lock().expect("lock").len() < 400 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        victim.kill();
        killed.store(true, Ordering::Relaxed);
    });
    let acknowledged = acknowledged.into_inner().expect("lock");
    assert!(
        acknowledged.len() >= 400,
        "only {} acknowledged",
        acknowledged.len()
    );
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "the kill came before the clients ended"
    );
    let present: HashSet<(String, u64)> = pg
        .query("SELECT machine_id || ' ' || timestamp_us FROM events")
        .lines()
        .filter_map(|line| {
            let (machine, ts) = line.split_once(' ')?;
            Some((machine.to_string(), ts.parse().ok()?))
        })
        .collect();
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|event| !present.contains(event))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    drop(survivor);
}

#[test]
fn the_size_cap_answers_507_and_the_report_still_reads() {
    let Some(pg) = postgres::database() else {
        return;
    };
    let collector = Collector::start_with(
        &pg.url,
        &[UNLIMITED, &["--max-db-size", "1"]].concat(),
        Stderr::Piped,
    );
    let base = now_micros() - 3_600_000_000;
    let agent = agent();
    let mut full = None;
    // Bounded: 1 MiB holds a few thousand events; 200 batches of 200 are
    // far more, and the cap is read at most a second late.
    for b in 0..200 {
        let (status, answer) = post(
            &agent,
            &collector.endpoint(),
            &batch(&client_batch(1, b, 200, base)),
        );
        if status == 507 {
            full = Some(answer);
            break;
        }
        assert_eq!(status, 200, "{answer}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let answer = full.expect("507 once the events take 1 MiB");
    assert!(
        answer["error"].as_str().is_some_and(|e| e.contains("MiB")),
        "{answer}"
    );
    let (status, health) = get_json(&agent, &collector.url("/healthz"));
    assert_eq!(status, 503);
    assert!(
        health["reason"].as_str().is_some_and(|r| r.contains("cap")),
        "{health}"
    );
    assert!(
        report_json(&pg.url)["events"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
}

#[test]
fn retention_deletes_what_was_received_long_ago() {
    let Some(pg) = postgres::database() else {
        return;
    };
    let now = now_micros();
    {
        let collector = Collector::start_with(
            &pg.url,
            &[UNLIMITED, &["--retain", "forever"]].concat(),
            Stderr::Piped,
        );
        let events: Vec<Value> = (0..10)
            .map(|i| start_event(1, "devsy up", now - i))
            .collect();
        assert_eq!(
            post(&agent(), &collector.endpoint(), &batch(&events)).0,
            200
        );
    }
    // Six of them received 30 days ago.
    pg.query(&format!(
        "UPDATE events SET received_us = {} WHERE timestamp_us > {}",
        now - 30 * 86_400_000_000,
        now - 6
    ));
    let _collector = Collector::start_with(
        &pg.url,
        &[UNLIMITED, &["--retain", "7d"]].concat(),
        Stderr::Piped,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while pg.count() != 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(pg.count(), 4);
}

/// `serve --db db`, expected to refuse to start; its stderr.
fn refused_to_serve(db: &str) -> String {
    support::refused(&["serve", "--listen", "127.0.0.1:0", "--db", db], &[])
}

#[test]
fn a_newer_schema_another_database_and_a_bad_url_are_refused() {
    let Some(pg) = postgres::database() else {
        return;
    };
    // Not a collector's database yet: the report says so, creating nothing.
    let output = Command::new(BINARY)
        .args(["report", "--db", &pg.url])
        .output()
        .expect("report");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("not a devsy-collector database"),
        "{stderr}"
    );
    assert!(!stderr.contains("password"), "{stderr}");

    drop(Collector::start(&pg.url));
    pg.query("UPDATE devsy_schema SET version = 99");
    let stderr = refused_to_serve(&pg.url);
    assert!(stderr.contains("schema version 99 is newer"), "{stderr}");

    let stderr = refused_to_serve("postgres://devsy:secret@127.0.0.1:1/none");
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(
        !stderr.contains("secret"),
        "the password is not shown: {stderr}"
    );
    let stderr = refused_to_serve("postgres://");
    assert!(stderr.contains("names no host"), "{stderr}");
    // A URL that does not parse is named without its password.
    let stderr = refused_to_serve("postgres://devsy:secret@127.0.0.1:notaport/db");
    assert!(stderr.contains("--db: not a PostgreSQL URL"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
}

#[test]
fn a_test_database_url_replaces_the_admin_database() {
    use postgres::with_database;
    assert_eq!(
        with_database("postgres://u@h:5/postgres", "t"),
        "postgres://u@h:5/t"
    );
    assert_eq!(
        with_database("postgres://u@h:5/postgres?sslmode=disable", "t"),
        "postgres://u@h:5/t?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h:5", "t"), "postgres://u@h:5/t");
}
