//! Instrumented functions of every shape leave no warning and no lint behind
//! in the user's crate: this file denies them all. Rustc checks it in
//! `cargo test`; `cargo clippy --all-targets` (CI) checks the clippy part.
//! That lints still fire on the user's own code is shown by the trybuild
//! cases `dead_code` and `unused_must_use`.

#![deny(warnings, clippy::all, clippy::pedantic)]

mod support;

use std::fmt;
use std::future::Future;
use std::process::ExitCode;

use devsy_telemetry::telemetry_command;

/// A user's error type.
#[derive(Debug)]
pub struct CliError(String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The arguments of `up`.
pub struct UpArgs {
    provider: Option<String>,
    ide: String,
}

/// Deletes a provider.
///
/// # Errors
///
/// When the provider does not exist.
#[telemetry_command]
pub fn provider_delete(name: &str) -> Result<(), CliError> {
    if name == "docker" {
        return Err(CliError(format!("provider '{name}' does not exist")));
    }
    Ok(())
}

/// Lists providers.
#[telemetry_command("provider list")]
pub fn list() {
    println!("docker");
}

/// Refreshes, asynchronously.
#[telemetry_command]
pub async fn refresh() {
    println!("refreshed");
}

/// Its inner attribute still applies to its body: without it, the unused
/// variable would be an error here.
#[telemetry_command]
pub fn inner_attribute() {
    #![allow(unused_variables)]
    let unused = 1;
}

/// Exits with a code.
#[must_use]
#[telemetry_command]
pub fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}

/// Starts a workspace.
///
/// # Errors
///
/// Without a provider.
#[telemetry_command(name = "up", provider = args.provider.as_deref(), ide = &args.ide)]
pub async fn up(args: UpArgs) -> Result<String, CliError> {
    let provider = args
        .provider
        .ok_or_else(|| CliError("no provider".into()))?;
    Ok(format!("{provider} with {}", args.ide))
}

/// Returns a future.
#[telemetry_command("logs")]
pub fn logs(lines: usize) -> impl Future<Output = Result<usize, CliError>> {
    async move {
        if lines == 0 {
            Err(CliError("no lines".into()))
        } else {
            Ok(lines)
        }
    }
}

/// A generic command.
///
/// # Errors
///
/// On an empty list.
#[telemetry_command]
pub fn count<T>(items: &[T]) -> Result<usize, CliError>
where
    T: fmt::Debug,
{
    if items.is_empty() {
        return Err(CliError("nothing to count".into()));
    }
    Ok(items.len())
}

/// A CLI with methods.
pub struct Cli {
    names: Vec<String>,
}

impl Cli {
    /// Adds a name.
    ///
    /// # Errors
    ///
    /// On a duplicate.
    #[telemetry_command("name add")]
    pub fn add(&mut self, name: &str) -> Result<&str, CliError> {
        if self.names.iter().any(|n| n == name) {
            return Err(CliError(format!("'{name}' exists")));
        }
        self.names.push(name.to_string());
        Ok(&self.names[self.names.len() - 1])
    }
}

#[test]
fn strict_lints_pass_and_the_functions_run() {
    let ((), events) = support::record(std::time::Duration::from_secs(10), || {
        assert!(provider_delete("docker").is_err());
        list();
        assert_eq!(exit(0), ExitCode::SUCCESS);
        let args = UpArgs {
            provider: Some("ssh".into()),
            ide: "vscode".into(),
        };
        assert_eq!(
            support::block_on(up(args)).map_err(|e| e.to_string()),
            Ok("ssh with vscode".to_string())
        );
        assert!(support::block_on(logs(0)).is_err());
        support::block_on(refresh());
        inner_attribute();
        assert!(one_line(1).is_ok());
        assert!(support::block_on(one_line_async(0)).is_err());
        assert_eq!(count(&[1, 2]).map_err(|e| e.to_string()), Ok(2));
        let mut cli = Cli { names: Vec::new() };
        assert!(cli.add("a").is_ok());
    });
    assert_eq!(events.len(), 14);
}

/// One-line bodies leave no `unused_braces` behind.
///
/// # Errors
///
/// On zero.
#[telemetry_command]
pub fn one_line(n: u32) -> Result<u32, CliError> {
    if n > 0 {
        Ok(n)
    } else {
        Err(CliError("zero".into()))
    }
}

/// Nor do one-line async bodies.
///
/// # Errors
///
/// On zero.
#[telemetry_command]
pub async fn one_line_async(n: u32) -> Result<u32, CliError> {
    if n > 0 {
        Ok(n)
    } else {
        Err(CliError("zero".into()))
    }
}
