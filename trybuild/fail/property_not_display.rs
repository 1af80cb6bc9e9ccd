use devsy_telemetry::telemetry_command;

struct Provider;

#[telemetry_command(provider = provider)]
fn up(provider: &Provider) -> Result<(), String> {
    let _ = provider;
    Ok(())
}

fn main() {
    let _ = up(&Provider);
}
