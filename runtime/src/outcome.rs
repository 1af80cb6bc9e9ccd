//! What a command's return value says about how it went.

use std::fmt::Display;
use std::process::ExitCode;

/// How a command's return value tells success from failure.
///
/// `#[telemetry_command]` requires it of the function's return type, so the
/// decision is made by type, never by the name `Result`. Implemented for
/// `()`, for [`Result<T, E>`] where `E: Display` (so `anyhow::Result`,
/// `io::Result`, `Box<dyn Error>` and any alias work) and for
/// [`ExitCode`]. Implement it for your own return types:
///
/// ```
/// use devsy_telemetry_runtime::CommandOutcome;
///
/// enum Status { Done, Refused(&'static str) }
///
/// impl CommandOutcome for Status {
///     fn failure(&self) -> Option<String> {
///         match self {
///             Status::Done => None,
///             Status::Refused(why) => Some(format!("refused: {why}")),
///         }
///     }
/// }
///
/// assert_eq!(Status::Refused("no quota").failure().as_deref(), Some("refused: no quota"));
/// assert_eq!(Ok::<u8, String>(1).failure(), None);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command outcome",
    label = "`#[telemetry_command]` cannot tell success from failure for `{Self}`",
    note = "return `()`, `Result<T, E>` with `E: Display`, or `std::process::ExitCode`, \
            or implement `devsy_telemetry::CommandOutcome` for `{Self}`"
)]
pub trait CommandOutcome {
    /// `None` when the command succeeded; the error message when it failed.
    /// Called only when telemetry is on, on the command's thread.
    fn failure(&self) -> Option<String>;
}

impl CommandOutcome for () {
    #[inline]
    fn failure(&self) -> Option<String> {
        None
    }
}

impl<T, E: Display> CommandOutcome for Result<T, E> {
    #[inline]
    fn failure(&self) -> Option<String> {
        self.as_ref().err().map(ToString::to_string)
    }
}

impl CommandOutcome for ExitCode {
    fn failure(&self) -> Option<String> {
        // `ExitCode` does not expose its number on every platform.
        (*self != ExitCode::SUCCESS).then(|| "exited with a failure code".to_string())
    }
}
