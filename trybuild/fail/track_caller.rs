use devsy_telemetry::telemetry_command;

#[track_caller]
#[telemetry_command]
fn up() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = up();
}
