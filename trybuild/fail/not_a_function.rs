use devsy_telemetry::telemetry_command;

#[telemetry_command]
struct Up {
    provider: String,
}

fn main() {
    let up = Up { provider: "docker".into() };
    let _ = up.provider;
}
