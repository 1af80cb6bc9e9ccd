use std::future::Future;
use std::pin::Pin;

use devsy_telemetry::telemetry_command;

#[telemetry_command]
fn count() -> Pin<Box<dyn Future<Output = u32> + Send>> {
    Box::pin(async { 3 })
}

fn main() {
    drop(count());
}
