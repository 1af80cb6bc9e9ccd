//! The runtime of `devsy-telemetry`: it turns "command X started, failed or
//! was slow" into the documented events, decides whether telemetry is
//! allowed, and delivers events from a background thread without slowing
//! down or breaking the host CLI.
//!
//! Users depend on the facade crate `devsy-telemetry`, which re-exports all
//! of this. Where things live:
//!
//! - [`builder`](Builder): configuration, and the [`Telemetry`] guard;
//! - [`policy`]: the opt-out rules, deciding [`Status`];
//! - [`context`]: the config store ([`ContextStore`]);
//! - [`event`]: the wire format, and the rules the collector shares (the
//!   crate `devsy-telemetry-wire`);
//! - `app`: the app's name and what it derives (variables, event type,
//!   config dir), and the one view of the environment everything reads;
//! - `identity`: the hashed machine id, Go's arch and os names;
//! - `queue`: the caller's side: the queue to the worker thread, the flush
//!   and the exit budget, the counters;
//! - `worker`: the worker thread: a batch's states, retries and backoff,
//!   encoding;
//! - [`exit`](Exit): what the exit does with what is not yet delivered;
//! - `courier`: the detached process that delivers it;
//! - `spool`: undelivered batches on disk, for a courier or the next run;
//! - `scrub`: personal data removed from error messages;
//! - [`transport`](Transport): the trait, HTTP, and the recording transport.
//!
//! ```
//! use devsy_telemetry_runtime::{RecordingTransport, Telemetry};
//!
//! let recording = RecordingTransport::new();
//! let telemetry = Telemetry::builder("devsy")
//!     .version("v0.5.29")
//!     .env([("HOME", "/nonexistent")]) // in real use: the process environment
//!     .config_dir(tempfile::tempdir()?.path())
//!     .transport(recording.clone())
//!     .start();
//! assert!(telemetry.status().is_enabled());
//!
//! telemetry
//!     .command("provider delete")
//!     .start()
//!     .finish_err("provider 'docker' does not exist");
//! drop(telemetry); // delivers within the exit budget
//!
//! let events = recording.events();
//! assert_eq!(events.len(), 2); // started, then failed
//! assert_eq!(events[1]["event"]["properties"]["error"], "provider 'docker' does not exist");
//! # Ok::<(), std::io::Error>(())
//! ```

#![forbid(unsafe_code)]

mod app;
mod builder;
mod coarse;
mod command;
pub mod context;
mod courier;
pub use devsy_telemetry_wire as event;
mod exit;
mod files;
mod global;
mod identity;
mod notice;
mod outcome;
pub mod policy;
mod queue;
mod scrub;
mod spool;
mod transport;
mod worker;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

use std::borrow::Cow;
use std::time::Duration;

pub use builder::{
    Builder, DEFAULT_EXIT_BUDGET, DEFAULT_QUEUE_CAPACITY, DEFAULT_SLOW_THRESHOLD, Telemetry,
};
pub use command::{CommandBuilder, CommandSpan, IntoProperty};
pub use context::{ContextError, ContextStore};
pub use courier::COURIER_LIFETIME;
pub use exit::{CI_VARIABLES, Exit, ExitMode, ExitReason};
pub use notice::Notice;
pub use outcome::CommandOutcome;
pub use policy::{DisabledBy, Status};
pub use queue::Stats;
pub use transport::{HttpTransport, RecordingTransport, Transport, TransportError, USER_AGENT};

/// A command of the current app (the one whose [`Telemetry`] guard is
/// alive), by its path without the app name. Records nothing when telemetry
/// is off or not started.
///
/// ```
/// devsy_telemetry_runtime::command("provider list").start().finish_ok();
/// ```
pub fn command(path: impl Into<Cow<'static, str>>) -> CommandBuilder {
    if global::is_active() {
        CommandBuilder::new(global::current(), path)
    } else {
        CommandBuilder::off()
    }
}

/// Turns telemetry off at once for the rest of the process, discards
/// everything queued and deletes the spool, so the command that opts out
/// sends nothing. Call it right after saving `TELEMETRY=false`.
///
/// ```
/// devsy_telemetry_runtime::disable();
/// ```
pub fn disable() {
    global::disable();
}

/// Sends everything queued now and waits until it is delivered, kept in the
/// spool for a later run, or dropped and counted; at most `timeout`. `true`
/// when nothing is left waiting (also when telemetry is off).
///
/// ```
/// assert!(devsy_telemetry_runtime::flush(std::time::Duration::from_millis(100)));
/// ```
#[must_use = "`false` means some events were still waiting when the timeout passed"]
pub fn flush(timeout: Duration) -> bool {
    global::current().is_none_or(|shared| shared.flush(timeout))
}
