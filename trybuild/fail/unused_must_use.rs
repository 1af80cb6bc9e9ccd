#![deny(unused_must_use)]

use devsy_telemetry::telemetry_command;

fn fallible() -> Result<(), String> {
    Ok(())
}

#[telemetry_command]
fn up() -> Result<(), String> {
    fallible();
    Ok(())
}

fn main() {
    let _ = up();
}
