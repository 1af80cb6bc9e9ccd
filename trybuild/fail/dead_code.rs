#![deny(dead_code)]

use devsy_telemetry::telemetry_command;

#[telemetry_command]
fn never_called() -> Result<(), String> {
    Ok(())
}

fn main() {}
