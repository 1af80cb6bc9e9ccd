//! A host that breaks the contract on purpose: it parses its arguments
//! before `start()`. A courier started from it stops at clap's "unrecognized
//! subcommand" (exit 2) before any of the host's code runs, and the events
//! it was to deliver wait in the spool for the next run. The tests use it to
//! show that degradation; do not copy it: call `start()` first.
//!
//! ```text
//! cargo run --example late_start -- work
//! ```

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use devsy_telemetry::Telemetry;

#[derive(Debug, Parser)]
#[command(name = "late_start")]
struct Cli {
    #[command(subcommand)]
    command: Work,
}

#[derive(Debug, Subcommand)]
enum Work {
    /// Appends a line to `$DEVSY_HOME/ran.log` and records the command `work`
    Work,
}

fn main() -> ExitCode {
    let Cli {
        command: Work::Work,
    } = Cli::parse(); // too early: see the module docs
    let telemetry = Telemetry::builder("devsy")
        .version(concat!("v", env!("CARGO_PKG_VERSION")))
        .endpoint("http://127.0.0.1:8787/v1/insert")
        .start();
    let span = telemetry.command("work").start();
    let Some(home) = std::env::var_os("DEVSY_HOME") else {
        span.finish_err("DEVSY_HOME is not set");
        return ExitCode::FAILURE;
    };
    let ran = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(std::path::Path::new(&home).join("ran.log"))
        .and_then(|mut log| log.write_all(b"ran\n"));
    match ran {
        Ok(()) => {
            span.finish_ok();
            ExitCode::SUCCESS
        }
        Err(e) => {
            span.finish_err(&e);
            ExitCode::FAILURE
        }
    }
}
