//! Async functions, functions returning futures, and `#[async_trait]`.
use std::future::Future;

use devsy_telemetry::telemetry_command;

#[telemetry_command(name = "up", provider = provider.as_deref(), ide = ide)]
async fn up(provider: Option<String>, ide: &str) -> Result<(), String> {
    if provider.is_none() {
        return Err(format!("no provider for {ide}"));
    }
    Ok(())
}

#[telemetry_command]
fn logs(n: usize) -> impl Future<Output = Result<usize, String>> + Send {
    let doubled = n * 2;
    async move { Ok(doubled) }
}

trait Workspace {
    async fn status(&self) -> Result<u8, String>;
}

struct Local;

impl Workspace for Local {
    #[telemetry_command]
    async fn status(&self) -> Result<u8, String> {
        Ok(1)
    }
}

#[async_trait::async_trait]
trait Remote {
    async fn ssh(&self, host: &str) -> Result<String, String>;
}

struct Ssh;

#[async_trait::async_trait]
impl Remote for Ssh {
    #[telemetry_command]
    async fn ssh(&self, host: &str) -> Result<String, String> {
        Ok(host.to_string())
    }
}

fn assert_send<T: Send>(_: &T) {}

fn main() {
    let future = up(None, "vscode");
    assert_send(&future);
    drop(future);
    drop(logs(1));
    drop(Local.status());
    let remote = Ssh.ssh("box");
    assert_send(&remote);
}
