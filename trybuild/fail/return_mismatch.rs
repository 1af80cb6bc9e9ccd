use devsy_telemetry::telemetry_command;

// "return type inferred to be … here" points at the return type.
#[telemetry_command]
fn count(fail: bool) -> Result<u8, String> {
    if fail {
        return 5;
    }
    Ok(1)
}

fn main() {
    let _ = count(true);
}
