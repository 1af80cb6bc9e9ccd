use devsy_telemetry::telemetry_command;

#[telemetry_command]
fn count() -> u32 {
    3
}

#[telemetry_command]
async fn count_later() -> Option<u32> {
    Some(3)
}

fn main() {
    let _ = count();
    drop(count_later());
}
