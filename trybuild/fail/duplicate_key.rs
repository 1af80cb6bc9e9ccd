use devsy_telemetry::telemetry_command;

const NAME: &str = "up";

#[telemetry_command(ide = "vscode", ide = "idea")]
fn up() -> Result<(), String> {
    let _ = NAME;
    Ok(())
}

fn main() {
    let _ = up();
}
