use devsy_telemetry::telemetry_command;

const NAME: &str = "up";

#[telemetry_command(name = NAME)]
fn up() -> Result<(), String> {
    let _ = NAME;
    Ok(())
}

fn main() {
    let _ = up();
}
