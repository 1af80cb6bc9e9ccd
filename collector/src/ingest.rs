//! Ingest: checking a request body against the wire format, before
//! anything of it is stored.
//!
//! The types and the shared rules come from `devsy-telemetry-wire`, which
//! the runtime sends with, so the two ends cannot drift apart: the event
//! type of a valid app name, the machine id's shape, the field limits.
//! This module adds what only a receiver checks: a timestamp is plausible,
//! an error comes only with a duration. The first problem rejects the
//! whole batch, named by the event's index and the field.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use devsy_telemetry_wire::event::first_positional_event;
use devsy_telemetry_wire::limits::{self, Field};
use devsy_telemetry_wire::{Batch, Envelope, MACHINE_ID_LEN, app, is_machine_id};

use crate::store::Row;
use serde::Serialize;
use serde_path_to_error::Segment;

/// The largest request body accepted (413 above).
pub const MAX_BODY: usize = 1024 * 1024;

/// Timestamps before this (2020-01-01) are not from this library.
const EARLIEST_MICROS: u64 = 1_577_836_800_000_000;
/// Clocks run ahead: a day of skew is accepted, more is not.
const FUTURE_SKEW: Duration = Duration::from_secs(24 * 3600);
/// A command that ran for more than a year did not.
const MAX_DURATION_MS: u64 = 365 * 24 * 3600 * 1000;

/// Why a batch was refused: the 400's JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// What is wrong, for a person.
    pub error: String,
    /// The index in `data` of the first bad event; `None` when the batch
    /// itself is malformed.
    pub index: Option<usize>,
    /// The field within that event (`event.machine_id`), or within the
    /// batch when `index` is `None`.
    pub field: Option<String>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.index, &self.field) {
            (Some(i), Some(field)) => write!(f, "event {i}, {field}: {}", self.error),
            (None, Some(field)) => write!(f, "{field}: {}", self.error),
            _ => f.write_str(&self.error),
        }
    }
}

impl Rejection {
    fn at(index: usize, field: &str, error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            index: Some(index),
            field: Some(field.to_string()),
        }
    }
}

/// Parses and checks a whole batch: every event, or a rejection naming the
/// first bad one.
pub fn validate(body: &[u8], now: SystemTime) -> Result<Vec<Row>, Rejection> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let batch: Batch<'_> =
        serde_path_to_error::deserialize(&mut deserializer).map_err(from_serde)?;
    deserializer.end().map_err(|e| Rejection {
        error: format!("not a single JSON document: {e}"),
        index: None,
        field: None,
    })?;
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(Rejection {
            error: "a batch is a JSON object, {\"data\": [...]}, not an array".into(),
            index: None,
            field: None,
        });
    }
    if let Some(index) = first_positional_event(body) {
        return Err(Rejection {
            error: "an event and its parts are JSON objects, not arrays".into(),
            index: Some(index),
            field: None,
        });
    }
    let latest = now
        .checked_add(FUTURE_SKEW)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(u64::MAX, |d| {
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
        });
    batch
        .data
        .iter()
        .enumerate()
        .map(|(i, envelope)| check(i, envelope, latest))
        .collect()
}

/// A type error from serde, named by its path: `data[3].event.machine_id`
/// becomes index 3, field `event.machine_id`.
fn from_serde(error: serde_path_to_error::Error<serde_json::Error>) -> Rejection {
    let mut index = None;
    let mut names = Vec::new();
    for segment in error.path().iter() {
        match segment {
            Segment::Seq { index: i } if index.is_none() && names == ["data"] => {
                index = Some(*i);
                names.clear();
            }
            Segment::Seq { index: i } => names.push(format!("[{i}]")),
            Segment::Map { key } => names.push(key.clone()),
            Segment::Enum { variant } => names.push(variant.clone()),
            Segment::Unknown => names.push("?".into()),
        }
    }
    let inner = error.into_inner();
    let message = inner.to_string();
    // serde names a missing field in its message, not in the path.
    if let Some(missing) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        names.push(missing.to_string());
    }
    if inner.is_syntax() || inner.is_eof() {
        // Not JSON at all: no event to blame, whatever the parser was in.
        return Rejection {
            error: format!("not valid JSON: {message}"),
            index: None,
            field: None,
        };
    }
    let field = names.join(".").replace(".[", "[");
    let error = {
        // serde's message ends with the position, which the field replaces.
        message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string()
    };
    Rejection {
        error,
        index,
        field: (!field.is_empty()).then_some(field),
    }
}

fn check(i: usize, envelope: &Envelope<'_>, latest_micros: u64) -> Result<Row, Rejection> {
    let event = &envelope.event;
    let props = &event.properties;
    let user = &envelope.user;

    let kind = bounded(i, "event.type", &event.kind, limits::TYPE, Field::Line)?;
    let Some(name) = kind.strip_suffix(app::EVENT_TYPE_SUFFIX) else {
        return Err(Rejection::at(i, "event.type", "expected `<app>_cli`"));
    };
    if let Err(error) = app::check_name(name) {
        return Err(Rejection::at(
            i,
            "event.type",
            format!("expected `<app>_cli`, but as an app name '{name}' breaks the rule: {error}"),
        ));
    }
    let machine_id = &*event.machine_id;
    if !is_machine_id(machine_id) {
        return Err(Rejection::at(
            i,
            "event.machine_id",
            format!("expected {MACHINE_ID_LEN} lowercase hex digits"),
        ));
    }
    if *user.machine_id != *machine_id {
        return Err(Rejection::at(
            i,
            "user.machine_id",
            "differs from event.machine_id",
        ));
    }
    if !(EARLIEST_MICROS..=latest_micros).contains(&event.timestamp) {
        return Err(Rejection::at(
            i,
            "event.timestamp",
            "expected microseconds since the Unix epoch, after 2020 and not over a day ahead",
        ));
    }
    let command = bounded(
        i,
        "event.properties.command",
        &props.command,
        limits::COMMAND,
        Field::Identifier,
    )?;
    let optional = |field: &str, value: Option<&str>| {
        value
            .map(|v| bounded(i, field, v, limits::PROPERTY, Field::Identifier))
            .transpose()
    };
    let provider = optional("event.properties.provider", props.provider.as_deref())?;
    let source_type = optional("event.properties.source_type", props.source_type.as_deref())?;
    let ide = optional("event.properties.ide", props.ide.as_deref())?;
    let version = bounded(
        i,
        "event.properties.version",
        &props.version,
        limits::VERSION,
        Field::Identifier,
    )?;
    let error = props
        .error
        .as_deref()
        .map(|e| {
            bounded(
                i,
                "event.properties.error",
                e,
                limits::ERROR,
                Field::Message,
            )
        })
        .transpose()?;
    if error.is_some() && props.duration_ms.is_none() {
        return Err(Rejection::at(
            i,
            "event.properties.error",
            "only a finished event (with duration_ms) has an error",
        ));
    }
    if props.duration_ms.is_some_and(|ms| ms > MAX_DURATION_MS) {
        return Err(Rejection::at(
            i,
            "event.properties.duration_ms",
            "longer than a year",
        ));
    }
    let arch = bounded(i, "user.arch", &user.arch, limits::PLATFORM, Field::Line)?;
    let os = bounded(i, "user.os", &user.os, limits::PLATFORM, Field::Line)?;
    Ok(Row {
        kind,
        machine_id: machine_id.to_string(),
        timestamp_us: event.timestamp,
        command,
        provider,
        source_type,
        ide,
        desktop: props.desktop,
        version,
        error,
        duration_ms: props.duration_ms,
        arch,
        os,
    })
}

/// `value`, if it is a valid field of at most `max` bytes: not empty, and
/// free of the characters its `kind` forbids (the wire crate's rule:
/// control characters garble a report, and invisible ones in an identifier
/// make two commands that look the same).
fn bounded(
    i: usize,
    field: &str,
    value: &str,
    max: usize,
    kind: Field,
) -> Result<String, Rejection> {
    if value.is_empty() {
        return Err(Rejection::at(i, field, "empty"));
    }
    if value.len() > max {
        return Err(Rejection::at(
            i,
            field,
            format!("{} bytes, more than the {max} allowed", value.len()),
        ));
    }
    if let Some(c) = value.chars().find(|&c| !kind.allows(c)) {
        let what = if limits::is_invisible(c) {
            "an invisible or format character"
        } else {
            "a control character"
        };
        return Err(Rejection::at(
            i,
            field,
            format!("contains {what} (U+{:04X})", u32::from(c)),
        ));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const NOW_MICROS: u64 = 1_795_000_000_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(NOW_MICROS)
    }

    fn event(command: &str) -> Value {
        let id = "3ed2c7aa".repeat(8);
        json!({
            "event": {
                "type": "devsy_cli",
                "machine_id": id,
                "timestamp": NOW_MICROS - 1_000,
                "properties": {
                    "command": command,
                    "provider": "docker",
                    "desktop": "false",
                    "version": "v0.5.29"
                }
            },
            "user": {"machine_id": id, "arch": "amd64", "os": "linux"}
        })
    }

    fn batch(events: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({ "data": events })).expect("serializable")
    }

    fn rejected(body: &[u8]) -> Rejection {
        validate(body, now()).expect_err("must be rejected")
    }

    /// The batch `[good, good, bad]` where `bad` is a good event changed by `edit`.
    fn third_changed(edit: impl FnOnce(&mut Value)) -> Rejection {
        let mut bad = event("devsy up");
        edit(&mut bad);
        rejected(&batch(vec![event("devsy a"), event("devsy b"), bad]))
    }

    fn place(r: &Rejection) -> (Option<usize>, Option<&str>) {
        (r.index, r.field.as_deref())
    }

    #[test]
    fn a_valid_batch_becomes_rows() {
        let mut finished = event("devsy provider delete");
        finished["event"]["properties"]["error"] = json!("provider 'x' does not exist");
        finished["event"]["properties"]["duration_ms"] = json!(12);
        let rows =
            validate(&batch(vec![event("devsy provider list"), finished]), now()).expect("valid");
        assert_eq!(rows.len(), 2);
        assert!(!rows[0].key().finished);
        assert_eq!(rows[0].provider.as_deref(), Some("docker"));
        assert_eq!(rows[1].duration_ms, Some(12));
        assert_eq!(
            rows[1].error.as_deref(),
            Some("provider 'x' does not exist")
        );
    }

    #[test]
    fn an_empty_batch_is_valid_and_stores_nothing() {
        assert_eq!(validate(br#"{"data": []}"#, now()), Ok(vec![]));
    }

    #[test]
    fn type_errors_name_the_event_and_the_field() {
        let r = third_changed(|e| e["event"]["timestamp"] = json!("yesterday"));
        assert_eq!(place(&r), (Some(2), Some("event.timestamp")));
        assert!(r.error.contains("invalid type"), "{}", r.error);

        let r = third_changed(|e| e["event"]["properties"]["desktop"] = json!(true));
        assert_eq!(place(&r), (Some(2), Some("event.properties.desktop")));
    }

    #[test]
    fn a_missing_field_is_named() {
        let r = third_changed(|e| {
            e["user"].as_object_mut().map(|o| o.remove("os"));
        });
        assert_eq!(place(&r), (Some(2), Some("user.os")));
        assert!(r.error.contains("missing field"), "{}", r.error);
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let r = third_changed(|e| e["event"]["properties"]["email"] = json!("a@b.c"));
        assert_eq!(r.index, Some(2));
        assert!(r.error.contains("unknown field `email`"), "{}", r.error);
    }

    #[test]
    fn machine_ids_are_64_lowercase_hex_and_match() {
        let r = third_changed(|e| e["event"]["machine_id"] = json!("ABC"));
        assert_eq!(place(&r), (Some(2), Some("event.machine_id")));
        let r = third_changed(|e| e["event"]["machine_id"] = json!("G".repeat(64)));
        assert_eq!(place(&r), (Some(2), Some("event.machine_id")));
        let r = third_changed(|e| e["user"]["machine_id"] = json!("0".repeat(64)));
        assert_eq!(place(&r), (Some(2), Some("user.machine_id")));
    }

    #[test]
    fn timestamps_must_be_plausible() {
        let r = third_changed(|e| e["event"]["timestamp"] = json!(1_683_878_643_u64));
        assert_eq!(place(&r), (Some(2), Some("event.timestamp")));
        let two_days = 2 * 24 * 3600 * 1_000_000_u64;
        let r = third_changed(|e| e["event"]["timestamp"] = json!(NOW_MICROS + two_days));
        assert_eq!(place(&r), (Some(2), Some("event.timestamp")));
    }

    #[test]
    fn strings_are_bounded_and_single_line() {
        let r = third_changed(|e| e["event"]["properties"]["command"] = json!("x".repeat(257)));
        assert_eq!(place(&r), (Some(2), Some("event.properties.command")));
        assert!(r.error.contains("257 bytes"), "{}", r.error);
        let r = third_changed(|e| e["event"]["properties"]["command"] = json!(""));
        assert_eq!(place(&r), (Some(2), Some("event.properties.command")));
        let r = third_changed(|e| e["event"]["properties"]["ide"] = json!("vs\ncode"));
        assert_eq!(place(&r), (Some(2), Some("event.properties.ide")));
        let r = third_changed(|e| e["event"]["type"] = json!("devsy"));
        assert_eq!(place(&r), (Some(2), Some("event.type")));
    }

    #[test]
    fn identifiers_refuse_invisible_characters_and_messages_keep_them() {
        for c in ['\u{202E}', '\u{2066}', '\u{200B}', '\u{2028}', '\u{FEFF}'] {
            let r = third_changed(|e| {
                e["event"]["properties"]["command"] = json!(format!("devsy up{c}"))
            });
            assert_eq!(
                place(&r),
                (Some(2), Some("event.properties.command")),
                "{c:?}"
            );
            assert!(r.error.contains("invisible"), "{}", r.error);
            let r = third_changed(|e| {
                e["event"]["properties"]["provider"] = json!(format!("dock{c}er"))
            });
            assert_eq!(
                place(&r),
                (Some(2), Some("event.properties.provider")),
                "{c:?}"
            );
        }
        let mut failed = event("devsy up");
        failed["event"]["properties"]["error"] =
            json!("bidi \u{202E} in a message is shown escaped");
        failed["event"]["properties"]["duration_ms"] = json!(1);
        assert!(validate(&batch(vec![failed]), now()).is_ok());
    }

    #[test]
    fn events_written_as_arrays_are_refused() {
        let good = event("devsy a");
        let id = "3ed2c7aa".repeat(8);
        let positional = json!([
            [
                "devsy_cli",
                id,
                NOW_MICROS - 1_000,
                ["devsy up", null, null, null, "false", "v0.5.29", null, null]
            ],
            [id, "amd64", "linux"]
        ]);
        let body = serde_json::to_vec(&json!({ "data": [good, positional] })).expect("json");
        let r = rejected(&body);
        assert_eq!(r.index, Some(1));
        assert!(r.error.contains("not arrays"), "{}", r.error);
    }

    #[test]
    fn an_error_needs_a_duration() {
        let r = third_changed(|e| e["event"]["properties"]["error"] = json!("boom"));
        assert_eq!(place(&r), (Some(2), Some("event.properties.error")));
    }

    #[test]
    fn malformed_batches_have_no_index() {
        let r = rejected(b"{\"data\": [");
        assert_eq!(place(&r), (None, None));
        let r = rejected(b"{\"data\": [}");
        assert_eq!(place(&r), (None, None));
        assert!(r.error.starts_with("not valid JSON"), "{}", r.error);
        let r = rejected(br#"{"events": []}"#);
        assert_eq!(r.index, None);
        let r = rejected(br#"{"data": []} {"data": []}"#);
        assert_eq!(r.index, None);
        let r = rejected(br#"{"data": {}}"#);
        assert_eq!(place(&r), (None, Some("data")));
        let r = rejected(br#" [[]]"#);
        assert!(r.error.contains("not an array"), "{}", r.error);
    }
}
