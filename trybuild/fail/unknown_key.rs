use devsy_telemetry::telemetry_command;

const NAME: &str = "up";

#[telemetry_command(providr = "docker")]
fn up() -> Result<(), String> {
    let _ = NAME;
    Ok(())
}

fn main() {
    let _ = up();
}
