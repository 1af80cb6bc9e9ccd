use devsy_telemetry::telemetry_command;

// The error points at the body, as without the attribute, not at the
// attribute.
#[telemetry_command]
fn provider_list() -> Result<(), String> {
    Ok(());
}

fn main() {
    let _ = provider_list();
}
