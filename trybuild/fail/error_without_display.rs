use devsy_telemetry::telemetry_command;

#[derive(Debug)]
struct NoDisplay;

#[telemetry_command]
fn up() -> Result<(), NoDisplay> {
    Err(NoDisplay)
}

fn main() {
    let _ = up();
}
