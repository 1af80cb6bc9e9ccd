//! The commands' error type.

use std::fmt;

/// A command's error, printed as `error: <message>`.
#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

impl From<devsy_telemetry::ContextError> for CliError {
    fn from(error: devsy_telemetry::ContextError) -> Self {
        Self(error.to_string())
    }
}
