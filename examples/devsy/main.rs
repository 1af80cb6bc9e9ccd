//! `devsy`: a small CLI shaped like the one the telemetry document
//! describes, instrumented only through `#[telemetry_command]` and the
//! builder.
//!
//! ```text
//! DEVSY_TELEMETRY_DEBUG=1 cargo run --example devsy -- provider delete docker
//! cargo run --example devsy -- provider add docker
//! cargo run --example devsy -- up github.com/devsy-sh/devsy --ide vscode --delay 0.5
//! cargo run --example devsy -- context set-options -o TELEMETRY=false
//! cargo run --example devsy -- telemetry status
//! ```
//!
//! State lives in `$DEVSY_HOME/config.json` (default `~/.devsy/config.json`).
//! Events go to `http://127.0.0.1:8787/v1/insert` (the collector's default
//! address), or to `DEVSY_TELEMETRY_ENDPOINT`.

mod cli;
mod commands;
mod config;
mod error;

fn main() -> std::process::ExitCode {
    commands::run(concat!("v", env!("CARGO_PKG_VERSION")))
}
