//! Stopping the collector: SIGTERM and SIGINT finish the requests in
//! flight; SIGKILL under load loses no acknowledged event.
#![cfg(unix)]

mod support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use support::{Collector, agent, batch, now_micros, post, start_event, stored};

#[test]
fn sigterm_finishes_a_request_in_flight_then_exits_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let collector = Collector::start(&dir.path().join("t.db"));
    // An idle keep-alive connection must not hold the exit up.
    let idle = agent();
    let (status, _) = post(&idle, &collector.url("/v1/insert"), &batch(&[]));
    assert_eq!(status, 200);
    let body = batch(&[start_event(1, "devsy up", now_micros())]);
    let (first, rest) = body.split_at(body.len() / 2);

    let mut stream = TcpStream::connect(collector.address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST /v1/insert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(first).expect("write half the body");
    // Let the server take the request in before the signal.
    std::thread::sleep(Duration::from_millis(200));

    let stopping = std::thread::spawn(move || collector.stop_with(Signal::TERM));
    std::thread::sleep(Duration::from_millis(200));
    stream.write_all(rest).expect("write the rest");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with(r#"{"stored":1,"duplicates":0}"#),
        "{answer}"
    );

    let (status, stderr) = stopping.join().expect("stopped");
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(stderr.contains("events stored since start: 1"), "{stderr}");
    assert_eq!(stored(&dir.path().join("t.db")), 1);
    drop(idle);
}

#[test]
fn sigint_stops_an_idle_collector() {
    let dir = tempfile::tempdir().expect("temp dir");
    let collector = Collector::start(&dir.path().join("t.db"));
    let (status, stderr) = collector.stop_with(Signal::INT);
    assert!(status.success(), "exit {status}: {stderr}");
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("t.db");
    let collector = Collector::start(&db);
    let url = collector.endpoint();
    let acknowledged = Arc::new(Mutex::new(Vec::<(u32, u64)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = now_micros();

    let clients: Vec<_> = (0..4_u32)
        .map(|client| {
            let (url, acknowledged, stop) =
                (url.clone(), Arc::clone(&acknowledged), Arc::clone(&stop));
            std::thread::spawn(move || {
                let agent = agent();
                // Bounded: at most 10,000 batches, and the flag.
                for b in 0..10_000_u64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let stamps: Vec<u64> = (0..20).map(|e| t0 + b * 20 + e).collect();
                    let events: Vec<_> = stamps
                        .iter()
                        .map(|t| start_event(client, "devsy up", *t))
                        .collect();
                    let Ok(mut response) = agent
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .send(batch(&events).as_slice())
                    else {
                        break; // the collector is gone
                    };
                    if response.status().as_u16() == 200 {
                        let _ = response.body_mut().read_to_string();
                        let mut acked = acknowledged.lock().expect("lock");
                        acked.extend(stamps.iter().map(|t| (client, *t)));
                    }
                }
            })
        })
        .collect();

    // Kill it mid-load, once a few hundred events are acknowledged.
    let started = Instant::now();
    while acknowledged.lock().expect("lock").len() < 400
        && started.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    collector.kill();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client");
    }

    let acked = acknowledged.lock().expect("lock").clone();
    assert!(
        acked.len() >= 400,
        "only {} acknowledged before the kill",
        acked.len()
    );
    let conn = rusqlite::Connection::open(&db).expect("open after the kill");
    let mut query = conn
        .prepare("SELECT machine_id, timestamp_us FROM events")
        .expect("query");
    let kept: HashSet<(String, u64)> = query
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("read rows");
    let lost: Vec<_> = acked
        .iter()
        .filter(|(client, t)| !kept.contains(&(support::machine(*client), *t)))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost: {lost:?}",
        lost.len()
    );

    // The database opens again for a new collector, with everything in it.
    let again = Collector::start(&db);
    let (status, _) = post(
        &agent(),
        &again.endpoint(),
        &batch(&[start_event(9, "devsy up", now_micros())]),
    );
    assert_eq!(status, 200);
    assert_eq!(stored(&db), i64::try_from(kept.len() + 1).expect("fits"));
}
