//! The request body: exactly what is posted to the backend, and nothing else.
//!
//! Plain serde types, so that the format can be read in one place, checked
//! against the README, and parsed by the collector with the same
//! definitions. Field order is the order of the source document's payload
//! example; unknown fields are refused.
//!
//! ```
//! use devsy_telemetry_wire::event::Envelope;
//!
//! let json = r#"{"event": {"type": "devsy_cli",
//!                          "machine_id": "3ed2c7aa00000000000000000000000000000000000000000000000000e308e6",
//!                          "timestamp": 1683878643781772,
//!                          "properties": {"command": "devsy provider list", "desktop": "false",
//!                                         "version": "v0.5.29"}},
//!                "user": {"machine_id": "3ed2c7aa00000000000000000000000000000000000000000000000000e308e6",
//!                         "arch": "amd64", "os": "linux"}}"#;
//! let envelope: Envelope<'_> = serde_json::from_str(json)?;
//! assert_eq!(envelope.event.properties.command, "devsy provider list");
//! assert!(!envelope.event.properties.desktop);
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The request body: `{"data": [envelope, ...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch<'a> {
    /// One or more events.
    #[serde(borrow)]
    pub data: Vec<Envelope<'a>>,
}

/// One element of [`Batch::data`]: the event and the machine it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope<'a> {
    /// What happened.
    #[serde(borrow)]
    pub event: Event<'a>,
    /// Where it happened.
    #[serde(borrow)]
    pub user: User<'a>,
}

/// What happened: one command started, or one command finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event<'a> {
    /// `<app>_cli`, for example `devsy_cli`: see [`crate::app::event_type`].
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// 64 lowercase hex digits ([`crate::is_machine_id`]): HMAC-SHA256 of
    /// the app name keyed with the OS machine id. Never the raw id.
    #[serde(borrow)]
    pub machine_id: Cow<'a, str>,
    /// Microseconds since the Unix epoch, when the event was recorded.
    pub timestamp: u64,
    /// The command and its environment.
    #[serde(borrow)]
    pub properties: Properties<'a>,
}

/// The properties of an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Properties<'a> {
    /// The app name, a space, the command path: `devsy provider delete`.
    #[serde(borrow)]
    pub command: Cow<'a, str>,
    /// The provider in use; omitted when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub provider: Option<Cow<'a, str>>,
    /// The workspace source type (`git:`, `image:`, `local:`, …); omitted when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub source_type: Option<Cow<'a, str>>,
    /// The IDE in use; omitted when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub ide: Option<Cow<'a, str>>,
    /// Whether the command was run by the desktop app: the string `"true"` or `"false"`.
    #[serde(with = "bool_string")]
    pub desktop: bool,
    /// The app's version, for example `v0.5.29`.
    #[serde(borrow)]
    pub version: Cow<'a, str>,
    /// The error of a failed command; only on a finished event.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub error: Option<Cow<'a, str>>,
    /// Whole milliseconds from entry to return; only on a finished event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// The machine an [`Event`] came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User<'a> {
    /// The same value as [`Event::machine_id`].
    #[serde(borrow)]
    pub machine_id: Cow<'a, str>,
    /// Go's name of the CPU architecture: `amd64`, `arm64`, …
    #[serde(borrow)]
    pub arch: Cow<'a, str>,
    /// Go's name of the operating system: `linux`, `darwin`, `windows`, …
    #[serde(borrow)]
    pub os: Cow<'a, str>,
}

/// The document sends booleans as the strings `"true"` and `"false"`.
mod bool_string {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's `with` fixes the signature
    pub(super) fn serialize<S: Serializer>(value: &bool, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if *value { "true" } else { "false" })
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<bool, D::Error> {
        let value = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        match &*value {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(D::Error::invalid_value(
                serde::de::Unexpected::Str(other),
                &r#""true" or "false""#,
            )),
        }
    }
}

/// The index in `data` of the first event written with a JSON array where
/// the format has an object (serde reads a struct from either), in a body
/// that parsed as a [`Batch`]; `None` when every part is an object. The
/// format has no arrays but `data` itself.
///
/// ```
/// use devsy_telemetry_wire::event::first_positional_event;
///
/// assert_eq!(first_positional_event(br#"{"data": [{"event": {"type": "[x]"}}]}"#), None);
/// assert_eq!(first_positional_event(br#"{"data": [{"event": {}}, [["devsy_cli"]]]}"#), Some(1));
/// // Brackets and escaped quotes inside strings are text.
/// assert_eq!(first_positional_event(br#"{"data": [{"e": "\"["}, {"e": "\\"}]}"#), None);
/// ```
#[must_use]
pub fn first_positional_event(body: &[u8]) -> Option<usize> {
    let mut depth = 0_usize;
    let mut element = 0_usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            // Depth 1 is the batch object; its one array is `data`, at 2.
            b'[' if depth >= 2 => return Some(element),
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 2 => element += 1,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished() -> Envelope<'static> {
        Envelope {
            event: Event {
                kind: "devsy_cli".into(),
                machine_id: "ab".repeat(32).into(),
                timestamp: 1_683_878_643_781_772,
                properties: Properties {
                    command: "devsy provider delete".into(),
                    provider: Some("kubernetes".into()),
                    source_type: None,
                    ide: None,
                    desktop: true,
                    version: "v0.5.29".into(),
                    error: Some("provider 'docker' does not exist".into()),
                    duration_ms: Some(12),
                },
            },
            user: User {
                machine_id: "ab".repeat(32).into(),
                arch: "amd64".into(),
                os: "linux".into(),
            },
        }
    }

    #[test]
    fn serializes_in_document_order_and_omits_unknowns() -> Result<(), serde_json::Error> {
        let json = serde_json::to_string(&finished().event.properties)?;
        assert_eq!(
            json,
            r#"{"command":"devsy provider delete","provider":"kubernetes","desktop":"true","version":"v0.5.29","error":"provider 'docker' does not exist","duration_ms":12}"#
        );
        Ok(())
    }

    #[test]
    fn round_trips_and_rejects_a_non_boolean_desktop() -> Result<(), serde_json::Error> {
        let json = serde_json::to_string(&finished())?;
        let back: Envelope<'_> = serde_json::from_str(&json)?;
        assert_eq!(back, finished());

        let bad = json.replace(r#""desktop":"true""#, r#""desktop":"yes""#);
        let err = serde_json::from_str::<Envelope<'_>>(&bad)
            .expect_err("desktop must be \"true\" or \"false\"");
        assert!(err.to_string().contains(r#""true" or "false""#), "{err}");
        Ok(())
    }
}
