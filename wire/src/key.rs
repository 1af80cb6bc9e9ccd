//! What makes two events the same event.

use crate::event::{Envelope, Event};

/// The identity of an event: the machine, the microsecond, the command, and
/// whether it is the start or the finish. A sender may send a batch again
/// when it did not see the answer (a courier re-sends what a run cut off at
/// exit), so a receiver keeps one event per key and answers the rest as
/// duplicates.
///
/// ```
/// use devsy_telemetry_wire::event::Batch;
///
/// let body = r#"{"data": [{"event": {"type": "devsy_cli",
///     "machine_id": "3ed2c7aa00000000000000000000000000000000000000000000000000e308e6",
///     "timestamp": 1683878643781772,
///     "properties": {"command": "devsy up", "desktop": "false", "version": "v0.5.29",
///                    "error": "no provider", "duration_ms": 12}},
///   "user": {"machine_id": "3ed2c7aa00000000000000000000000000000000000000000000000000e308e6",
///            "arch": "amd64", "os": "linux"}}]}"#;
/// let batch: Batch<'_> = serde_json::from_str(body)?;
/// let key = batch.data[0].key();
/// assert_eq!((key.command, key.timestamp, key.finished), ("devsy up", 1683878643781772, true));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventKey<'a> {
    /// [`Event::machine_id`].
    pub machine_id: &'a str,
    /// [`Event::timestamp`], in microseconds.
    pub timestamp: u64,
    /// The full command, `devsy provider list`.
    pub command: &'a str,
    /// A finished event (it has a duration), else a start event.
    pub finished: bool,
}

impl Event<'_> {
    /// A finished event carries its duration; a start event does not.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.properties.duration_ms.is_some()
    }
}

impl Envelope<'_> {
    /// The event's identity; see [`EventKey`].
    #[must_use]
    pub fn key(&self) -> EventKey<'_> {
        let event = &self.event;
        EventKey {
            machine_id: &event.machine_id,
            timestamp: event.timestamp,
            command: &event.properties.command,
            finished: event.is_finished(),
        }
    }
}
