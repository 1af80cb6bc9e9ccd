use devsy_telemetry::telemetry_command;

#[telemetry_command]
const fn version() -> u32 {
    1
}

fn main() {
    let _ = version();
}
