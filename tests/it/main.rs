//! The integration tests, in one crate: one module per area, the support
//! they share in `support/`.
//!
//! The process has one current telemetry client (the one the attribute and
//! the free functions talk to, the last one started), so every test here
//! that starts a client takes a turn: `support::recording::a_client` when
//! it talks to its client only through the guard (those run side by side),
//! `support::recording::one_at_a_time` when it needs the current client to
//! be its own or none (it runs alone). The example binaries run as their
//! own processes and need no turn.
//!
//! Two tests live in crates of their own, for reasons a module cannot
//! meet: `off_cost.rs` installs a counting global allocator, and
//! `compiled_out.rs` is built without the `telemetry` feature.

mod support;

mod command_shapes;
mod context_store;
mod courier;
mod delivery;
mod devsy_cli;
mod editions;
mod fault_server;
mod faults;
mod invisible;
mod lints;
mod opt_out;
mod privacy;
mod trybuild;
mod wire_format;
