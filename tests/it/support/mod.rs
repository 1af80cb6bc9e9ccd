//! What the integration tests share, one file per job:
//!
//! - `fault_server`: a real loopback HTTP server scripted to misbehave;
//! - `process`: the example binaries run as a user runs them;
//! - `couriers`: the couriers those runs start, found, waited for, killed;
//! - `recording`: telemetry recorded in this process, one client at a time;
//! - `readme`: the README's wire-format example and shape comparisons;
//! - `fixture`: a crate of its own that uses the facade, built with cargo.
//!
//! The benches include some of these files by path; the proxy that puts
//! a server 100 ms away is theirs (`benches/support/proxy.rs`).

#[cfg(target_os = "linux")] // read from /proc; only the Linux tests use it
pub mod couriers;
pub mod fault_server;
pub mod fixture;
pub mod process;
pub mod readme;
pub mod recording;
