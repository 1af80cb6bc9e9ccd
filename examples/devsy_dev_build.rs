//! The `devsy` example as a development build: the same CLI with the
//! version `v0.0.0`, which the runtime treats as a development build and
//! never sends telemetry from.
//!
//! ```text
//! cargo run --example devsy_dev_build -- telemetry status
//! ```

#[path = "devsy/cli.rs"]
mod cli;
#[path = "devsy/commands.rs"]
mod commands;
#[path = "devsy/config.rs"]
mod config;
#[path = "devsy/error.rs"]
mod error;

fn main() -> std::process::ExitCode {
    commands::run("v0.0.0")
}
