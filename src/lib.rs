//! Honest, privacy-respecting usage telemetry for Rust command-line tools.
//!
//! This is the crate to depend on: it re-exports the runtime
//! (`devsy-telemetry-runtime`). See the README for the wire format and the
//! opt-out rules.
//!
//! ```no_run
//! let _telemetry = devsy_telemetry::Telemetry::builder("devsy")
//!     .version("v0.5.29")
//!     .endpoint("https://telemetry.devsy.sh/v1/insert") // DEVSY_TELEMETRY_ENDPOINT overrides it
//!     .start(); // dropping the guard flushes within the exit budget
//!
//! let span = devsy_telemetry::command("provider list").start();
//! // ... the command ...
//! span.finish_ok();
//! ```

pub use devsy_telemetry_runtime::*;

#[doc(inline)]
pub use devsy_telemetry_macros::telemetry_command;

/// The README's Rust examples, compiled as doc tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
