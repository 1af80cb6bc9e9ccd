//! The wire format of `devsy-telemetry`: exactly what a CLI posts to its
//! backend, and the rules that the sender (`devsy-telemetry-runtime`) and
//! the receiver (`devsy-collector`) must agree on. Both depend on this
//! crate, so neither can drift from the other.
//!
//! - [`event`]: the serde types of a request body, in the field order of
//!   the source document's payload;
//! - [`app`]: what an app name may be, and the event type it sends
//!   (`devsy` sends `devsy_cli`);
//! - [`limits`]: how long each field may be, and [`limits::fit`], which
//!   the sender applies so that the receiver never refuses a batch for it;
//! - [`EventKey`]: what makes two events the same event, so that a batch
//!   sent twice is stored once;
//! - [`is_machine_id`] and [`DEFAULT_SLOW_THRESHOLD`].
//!
//! ```
//! use devsy_telemetry_wire::{app, event::Batch};
//!
//! let body = r#"{"data": [{"event": {"type": "devsy_cli",
//!     "machine_id": "3ed2c7aa00000000000000000000000000000000000000000000000000e308e6",
//!     "timestamp": 1683878643781772,
//!     "properties": {"command": "devsy provider list", "desktop": "false", "version": "v0.5.29"}},
//!   "user": {"machine_id": "3ed2c7aa00000000000000000000000000000000000000000000000000e308e6",
//!            "arch": "amd64", "os": "linux"}}]}"#;
//! let batch: Batch<'_> = serde_json::from_str(body)?;
//! let event = &batch.data[0].event;
//! assert_eq!(app::of_event_type(&event.kind), Some("devsy"));
//! assert!(devsy_telemetry_wire::is_machine_id(&event.machine_id));
//! assert!(!batch.data[0].key().finished);
//! # Ok::<(), serde_json::Error>(())
//! ```

#![forbid(unsafe_code)]

pub mod app;
pub mod event;
mod key;
pub mod limits;

use std::time::Duration;

pub use event::{Batch, Envelope, Event, Properties, User};
pub use key::EventKey;

/// A command that runs at least this long sends a finished event even when
/// it succeeds (the sender's default; the collector counts failures that
/// ran this long as slow too).
pub const DEFAULT_SLOW_THRESHOLD: Duration = Duration::from_secs(10);

/// The length of a machine id: 64 lowercase hex digits (HMAC-SHA256).
pub const MACHINE_ID_LEN: usize = 64;

/// `value` has the shape of a machine id: [`MACHINE_ID_LEN`] lowercase hex
/// digits.
///
/// ```
/// assert!(devsy_telemetry_wire::is_machine_id(&"ab".repeat(32)));
/// assert!(!devsy_telemetry_wire::is_machine_id(&"AB".repeat(32)));
/// ```
#[must_use]
pub fn is_machine_id(value: &str) -> bool {
    value.len() == MACHINE_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
