#![deny(unused_must_use)]

use std::process::ExitCode;

use devsy_telemetry::telemetry_command;

/// `#[must_use]` stays on the instrumented function.
#[must_use = "the exit code is the command's result"]
#[telemetry_command]
fn exit() -> ExitCode {
    ExitCode::SUCCESS
}

fn main() {
    exit();
}
