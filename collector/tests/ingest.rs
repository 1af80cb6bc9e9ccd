//! `POST /v1/insert` against the real binary: what is stored, what is
//! refused (and that nothing of a refused batch is stored), resends, and
//! concurrent clients with exact counts.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;
use support::{
    Collector, agent, batch, finished_event, now_micros, post, report_json, start_event, stored,
};

fn collector() -> (tempfile::TempDir, Collector) {
    let dir = tempfile::tempdir().expect("temp dir");
    let collector = Collector::start(&dir.path().join("t.db"));
    (dir, collector)
}

#[test]
fn a_batch_is_stored_and_a_resend_is_counted_as_duplicates() {
    let (_dir, collector) = collector();
    let agent = agent();
    let t = now_micros();
    let start = start_event(1, "devsy up", t);
    let events = [
        start.clone(),
        finished_event(start, 1_200, Some("no provider")),
        start_event(1, "devsy provider list", t + 1),
    ];
    let (status, body) = post(&agent, &collector.endpoint(), &batch(&events));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"stored": 3, "duplicates": 0}));
    assert_eq!(stored(&collector.db), 3);

    let (status, body) = post(&agent, &collector.endpoint(), &batch(&events));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"stored": 0, "duplicates": 3}));
    assert_eq!(stored(&collector.db), 3);
}

#[test]
fn every_rejection_names_the_problem_and_stores_nothing() {
    let (_dir, collector) = collector();
    let agent = agent();
    let url = collector.endpoint();
    let good = start_event(1, "devsy up", now_micros());
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut bad = good.clone();
        edit(&mut bad);
        batch(&[good.clone(), bad])
    };
    // What is wrong, the body, the index and the field the answer names.
    type Case<'a> = (&'a str, Vec<u8>, Option<usize>, Option<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        (
            "a machine id that is not 64 hex digits",
            with(&|e| e["event"]["machine_id"] = json!("3ed2c7aa")),
            Some(1),
            Some("event.machine_id"),
        ),
        (
            "a timestamp in seconds, not microseconds",
            with(&|e| e["event"]["timestamp"] = json!(1_683_878_643_u64)),
            Some(1),
            Some("event.timestamp"),
        ),
        (
            "a command over 256 bytes",
            with(&|e| e["event"]["properties"]["command"] = json!("x".repeat(300))),
            Some(1),
            Some("event.properties.command"),
        ),
        (
            "a boolean where the format has a string",
            with(&|e| e["event"]["properties"]["desktop"] = json!(false)),
            Some(1),
            Some("event.properties.desktop"),
        ),
        (
            "a missing field",
            with(&|e| {
                e["user"].as_object_mut().map(|o| o.remove("arch"));
            }),
            Some(1),
            Some("user.arch"),
        ),
        (
            "an unknown field",
            with(&|e| e["user"]["email"] = json!("alice@example.com")),
            Some(1),
            Some("user.email"),
        ),
        (
            "an error on a start event",
            with(&|e| e["event"]["properties"]["error"] = json!("boom")),
            Some(1),
            Some("event.properties.error"),
        ),
        (
            "a bidi override in a command",
            with(&|e| e["event"]["properties"]["command"] = json!("devsy \u{202e}pu")),
            Some(1),
            Some("event.properties.command"),
        ),
        (
            "a zero-width space in a provider",
            with(&|e| e["event"]["properties"]["provider"] = json!("docker\u{200b}")),
            Some(1),
            Some("event.properties.provider"),
        ),
        (
            "an event written as an array",
            {
                let id = "00000001".repeat(8);
                let positional = json!([
                    [
                        "devsy_cli",
                        id,
                        now_micros(),
                        ["devsy up", null, null, null, "false", "v0.5.29", null, null]
                    ],
                    [id, "amd64", "linux"]
                ]);
                serde_json::to_vec(&json!({ "data": [good.clone(), positional] })).expect("json")
            },
            Some(1),
            None,
        ),
        ("not JSON", b"{\"data\": [".to_vec(), None, None),
        (
            "no data",
            br#"{"events": []}"#.to_vec(),
            None,
            Some("events"),
        ),
    ];
    for (what, body, index, field) in cases {
        let (status, answer) = post(&agent, &url, &body);
        assert_eq!(status, 400, "{what}: {answer}");
        assert_eq!(answer["index"], json!(index), "{what}: {answer}");
        assert_eq!(answer["field"], json!(field), "{what}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {answer}"
        );
    }
    assert_eq!(stored(&collector.db), 0, "a refused batch stores nothing");
}

#[test]
fn a_report_of_a_thousand_commands_prints_the_top_and_counts_the_rest() {
    let (_dir, collector) = collector();
    let agent = agent();
    let now = now_micros();
    for chunk in 0..11_u32 {
        let events: Vec<_> = (0..100)
            .map(|i| {
                start_event(
                    chunk * 100 + i,
                    &format!("devsy command {}", chunk * 100 + i),
                    now,
                )
            })
            .collect();
        assert_eq!(post(&agent, &collector.endpoint(), &batch(&events)).0, 200);
    }
    let output = std::process::Command::new(support::BINARY)
        .args(["report", "--top", "20", "--db"])
        .arg(&collector.db)
        .output()
        .expect("run report");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("… and 1080 more commands"), "{text}");
    assert!(text.lines().count() < 60, "{} lines", text.lines().count());
}

#[test]
fn size_media_type_method_and_path_are_checked_first() {
    let (_dir, collector) = collector();
    let agent = agent();
    let url = collector.endpoint();
    let event = start_event(1, "devsy up", now_micros());

    // Over 1 MiB, declared: refused before any of it is sent.
    let head = format!(
        "POST /v1/insert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        1024 * 1024 + 1
    );
    let answer = raw_request(&collector, &head, |_| {});
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Over 1 MiB, chunked (no length declared): refused while reading.
    let head = "POST /v1/insert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let answer = raw_request(&collector, head, |stream| {
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..17 {
            let sent = stream
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .and_then(|()| stream.write_all(&chunk))
                .and_then(|()| stream.write_all(b"\r\n"));
            if sent.is_err() {
                return; // the server answered and closed: fine
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n");
    });
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // A body that cannot be read (a broken chunk size): 400, not 413.
    let answer = raw_request(&collector, head, |stream| {
        let _ = stream.write_all(b"zz\r\n{}\r\n0\r\n\r\n");
    });
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("cannot read the body"), "{answer}");

    let response = agent
        .post(&url)
        .header("Content-Type", "text/plain")
        .send(batch(std::slice::from_ref(&event)).as_slice())
        .expect("response");
    assert_eq!(response.status().as_u16(), 415);

    let response = agent.get(&url).call().expect("response");
    assert_eq!(response.status().as_u16(), 405);
    let response = agent
        .post(collector.url("/v1/events"))
        .header("Content-Type", "application/json")
        .send(batch(&[event]).as_slice())
        .expect("response");
    assert_eq!(response.status().as_u16(), 404);

    assert_eq!(stored(&collector.db), 0);

    let mut response = agent
        .get(collector.url("/healthz"))
        .call()
        .expect("response");
    assert_eq!(response.status().as_u16(), 200);
    let body = response.body_mut().read_to_string().expect("body");
    assert_eq!(body, r#"{"status":"ok"}"#);
}

/// Sends `head`, then whatever `body` writes, on a raw connection; the
/// answer is read meanwhile, so that a server that answers early and
/// closes is heard before the connection is reset.
fn raw_request(collector: &Collector, head: &str, body: impl FnOnce(&mut TcpStream)) -> String {
    let mut stream = TcpStream::connect(collector.address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut reader = stream.try_clone().expect("clone");
    let answer = std::thread::spawn(move || {
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer); // a reset after the answer is fine
        answer
    });
    stream.write_all(head.as_bytes()).expect("write the head");
    body(&mut stream);
    let answer = answer.join().expect("reader");
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn concurrent_clients_are_all_stored_exactly() {
    const CLIENTS: u32 = 8;
    const BATCHES: u64 = 25;
    const EVENTS: u64 = 40;
    let (_dir, collector) = collector();
    let url = collector.endpoint();
    let t0 = now_micros();
    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            let url = &url;
            scope.spawn(move || {
                let agent = agent();
                for b in 0..BATCHES {
                    let events: Vec<_> = (0..EVENTS)
                        .map(|e| start_event(client, "devsy provider list", t0 + b * EVENTS + e))
                        .collect();
                    let (status, answer) = post(&agent, url, &batch(&events));
                    assert_eq!(status, 200, "{answer}");
                    assert_eq!(answer, json!({"stored": EVENTS, "duplicates": 0}));
                }
            });
        }
    });
    let total = u64::from(CLIENTS) * BATCHES * EVENTS;
    assert_eq!(stored(&collector.db), i64::try_from(total).expect("fits"));
    let report = report_json(&collector.db);
    assert_eq!(report["events"], json!(total));
    assert_eq!(report["machines"], json!(CLIENTS));
    assert_eq!(report["commands"][0]["runs"], json!(total));
}
