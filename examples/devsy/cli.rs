//! The command line: names, flags and help text.

use clap::{Args, Parser, Subcommand};

/// Devsy: reproducible developer workspaces (an example CLI instrumented
/// with devsy-telemetry).
#[derive(Debug, Parser)]
#[command(name = "devsy", disable_version_flag = true)]
pub struct Cli {
    /// The context whose options apply (default: the config's default context)
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage providers
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// Create a workspace from a source
    Up(UpArgs),
    /// Manage contexts and their options
    #[command(subcommand)]
    Context(ContextCommand),
    /// Inspect telemetry
    #[command(subcommand)]
    Telemetry(TelemetryCommand),
    /// Print the version
    Version,
}

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Add a provider
    Add {
        /// The provider's name, for example `docker`
        name: String,
    },
    /// List the providers
    List,
    /// Make a provider the default
    Use {
        /// The provider's name
        name: String,
    },
    /// Delete a provider
    Delete {
        /// The provider's name
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// A git URL, a local path, `image:<ref>` or `container:<id>`
    pub source: String,
    /// The provider to use (default: the default provider)
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// The IDE to open the workspace in
    #[arg(long, value_name = "NAME")]
    pub ide: Option<String>,
    /// Simulated provisioning time, in seconds (fractions allowed)
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0, value_parser = parse_delay)]
    pub delay: f64,
}

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Set options of the current context (`--context` selects another)
    SetOptions {
        /// An option to set, as KEY=VALUE; may be repeated
        #[arg(
            short = 'o',
            long = "option",
            value_name = "KEY=VALUE",
            required = true
        )]
        options: Vec<String>,
    },
    /// Print the options of the current context
    Options,
}

#[derive(Debug, Subcommand)]
pub enum TelemetryCommand {
    /// Print whether telemetry is on and, if off, which rule turned it off
    Status,
}

fn parse_delay(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && (0.0..=3600.0).contains(&seconds) => Ok(seconds),
        Ok(_) => Err("expected a number of seconds from 0 to 3600".into()),
        Err(e) => Err(format!("expected a number of seconds: {e}")),
    }
}
