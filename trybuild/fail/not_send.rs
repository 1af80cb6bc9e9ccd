use std::rc::Rc;

use devsy_telemetry::telemetry_command;

async fn tick() {}

#[async_trait::async_trait]
trait Up {
    async fn up(&self) -> Result<(), String>;
}

struct Workspace;

// The error is at the user's `async`, about the user's value, and names
// no type of the attribute's.
#[async_trait::async_trait]
impl Up for Workspace {
    #[telemetry_command]
    async fn up(&self) -> Result<(), String> {
        let held = Rc::new(1);
        tick().await;
        drop(held);
        Ok(())
    }
}

fn main() {
    drop(Workspace.up());
}
