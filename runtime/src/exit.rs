//! What dropping the guard does with events not yet delivered: the
//! [`Exit`] modes, and how the one in force is chosen ([`ExitMode`]).

use std::fmt;
use std::time::Duration;

use crate::app::Env;

/// What dropping the [`Telemetry`](crate::Telemetry) guard does with
/// events that are not yet delivered.
///
/// ```no_run
/// use devsy_telemetry_runtime::{Exit, Telemetry};
///
/// let _telemetry = Telemetry::builder("devsy")
///     .version("v0.5.29")
///     .endpoint("https://telemetry.devsy.sh/v1/insert")
///     .exit(Exit::NextRun) // never start a courier; the next run sends
///     .start();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Exit {
    /// The default: what is not yet acknowledged is written to the spool
    /// and a detached courier (this executable, started again with a
    /// marker) delivers it. The exit waits for no network.
    #[default]
    Handoff,
    /// Deliver before exiting, waiting at most the exit budget
    /// ([`Builder::exit_budget`](crate::Builder::exit_budget)); what is
    /// left is kept in the spool for the next run. The default in CI, and
    /// with [`Builder::env`](crate::Builder::env).
    Wait,
    /// Keep what is not yet delivered in the spool and start nothing: the
    /// next run sends it. The cheapest.
    NextRun,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Handoff => "hand off to a courier",
            Self::Wait => "wait for delivery",
            Self::NextRun => "keep for the next run",
        })
    }
}

/// Why an [`Exit`] mode is in force.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitReason {
    /// Nothing asked for another mode.
    Default,
    /// The app chose it with [`Builder::exit`](crate::Builder::exit).
    Builder,
    /// A CI system was detected through this variable: CI runners and
    /// `docker run --rm` kill the processes a job leaves behind, so the
    /// process waits instead of handing off.
    Ci {
        /// The variable that said so, for example `GITHUB_ACTIONS`.
        variable: String,
    },
    /// The app gave its own environment with
    /// [`Builder::env`](crate::Builder::env): a courier would read the
    /// process environment instead, so the process waits.
    CustomEnv,
    /// Debug mode prints events and never starts a courier.
    Debug,
    /// There is no config dir (no `HOME`): nowhere to keep events for a
    /// courier or a later run, so the process waits.
    NoConfigDir,
}

/// The exit mode in force for a running client, and why.
///
/// ```
/// use devsy_telemetry_runtime::{Exit, ExitReason, RecordingTransport, Telemetry};
///
/// let telemetry = Telemetry::builder("devsy")
///     .version("v1.0.0")
///     .env([("HOME", "/nonexistent")])
///     .config_dir(tempfile::tempdir()?.path())
///     .transport(RecordingTransport::new())
///     .start();
/// let exit = telemetry.exit_mode().expect("telemetry is on");
/// assert_eq!((exit.mode, exit.reason), (Exit::Wait, ExitReason::CustomEnv));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExitMode {
    /// The mode.
    pub mode: Exit,
    /// Why it is the one in force.
    pub reason: ExitReason,
    /// The longest the exit waits in [`Exit::Wait`].
    pub budget: Duration,
}

impl fmt::Display for ExitMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            Exit::Wait => write!(f, "{} (at most {} ms)", self.mode, self.budget.as_millis())?,
            Exit::Handoff | Exit::NextRun => write!(f, "{}", self.mode)?,
        }
        match &self.reason {
            ExitReason::Default => f.write_str(", the default"),
            ExitReason::Builder => f.write_str(", chosen by the app"),
            ExitReason::Ci { variable } => write!(f, ", because CI was detected ({variable})"),
            ExitReason::CustomEnv => f.write_str(
                ", because the app gave its own environment (a courier would read the process's)",
            ),
            ExitReason::Debug => f.write_str(", because debug mode never starts a courier"),
            ExitReason::NoConfigDir => {
                f.write_str(", because there is no config dir to keep events in")
            }
        }
    }
}

/// The variables that mean "this runs in CI" when set (to anything but
/// empty), besides `CI` itself (anything but empty, `0` or `false`).
pub const CI_VARIABLES: &[&str] = &[
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "BUILDKITE",
    "CIRCLECI",
    "TF_BUILD",
    "JENKINS_URL",
    "TEAMCITY_VERSION",
    "BITBUCKET_BUILD_NUMBER",
];

/// The variable that shows this runs in CI, if any.
pub(crate) fn ci_variable(env: &Env) -> Option<String> {
    // `CI=no` or `CI=off` is read as off too: the same words as every flag.
    if env.flag("CI") {
        return Some("CI".to_string());
    }
    CI_VARIABLES
        .iter()
        .find(|name| env.non_empty(name).is_some())
        .map(|name| (*name).to_string())
}

/// The mode in force for a run reading `env`: see [`mode_for`].
pub(crate) fn choose(
    chosen: Option<Exit>,
    debug: bool,
    has_config_dir: bool,
    env: &Env,
    budget: Duration,
) -> ExitMode {
    let (mode, reason) = mode_for(chosen, debug, has_config_dir, env.is_given(), || {
        ci_variable(env)
    });
    ExitMode {
        mode,
        reason,
        budget,
    }
}

/// Debug mode and a missing config dir wait (nothing to hand off); an
/// explicit choice wins, then a custom environment and CI mean waiting;
/// else the default.
fn mode_for(
    chosen: Option<Exit>,
    debug: bool,
    has_config_dir: bool,
    given_env: bool,
    ci: impl FnOnce() -> Option<String>,
) -> (Exit, ExitReason) {
    if debug {
        (Exit::Wait, ExitReason::Debug)
    } else if !has_config_dir {
        (Exit::Wait, ExitReason::NoConfigDir)
    } else if given_env && chosen != Some(Exit::NextRun) {
        // Handoff would re-check the rules against another environment.
        (Exit::Wait, ExitReason::CustomEnv)
    } else if let Some(mode) = chosen {
        (mode, ExitReason::Builder)
    } else if let Some(variable) = ci() {
        (Exit::Wait, ExitReason::Ci { variable })
    } else {
        (Exit::Handoff, ExitReason::Default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `vars` stand in for the process environment's CI variables.
    fn choose_with(
        chosen: Option<Exit>,
        debug: bool,
        custom: bool,
        vars: &[(&str, &str)],
    ) -> (Exit, ExitReason) {
        let map = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let env = Env::new(Some(map));
        mode_for(chosen, debug, true, custom, || ci_variable(&env))
    }

    #[test]
    fn ci_is_detected_by_its_variables() {
        for (name, value) in [
            ("CI", "true"),
            ("CI", "1"),
            ("GITHUB_ACTIONS", "true"),
            ("JENKINS_URL", "http://ci"),
        ] {
            assert_eq!(
                choose_with(None, false, false, &[(name, value)]),
                (
                    Exit::Wait,
                    ExitReason::Ci {
                        variable: name.to_string()
                    }
                ),
                "{name}={value}"
            );
        }
        for value in ["", "0", "false", "FALSE"] {
            assert_eq!(
                choose_with(None, false, false, &[("CI", value)]),
                (Exit::Handoff, ExitReason::Default),
                "CI={value:?}"
            );
        }
    }

    #[test]
    fn an_explicit_mode_wins_over_ci_but_not_over_debug_or_a_custom_env() {
        let ci = [("CI", "true")];
        assert_eq!(
            choose_with(Some(Exit::Handoff), false, false, &ci),
            (Exit::Handoff, ExitReason::Builder)
        );
        assert_eq!(
            choose_with(Some(Exit::Handoff), true, false, &[]),
            (Exit::Wait, ExitReason::Debug)
        );
        assert_eq!(
            choose_with(Some(Exit::Handoff), false, true, &[]),
            (Exit::Wait, ExitReason::CustomEnv)
        );
        assert_eq!(
            choose_with(None, false, true, &[]),
            (Exit::Wait, ExitReason::CustomEnv)
        );
        assert_eq!(
            choose_with(Some(Exit::NextRun), false, true, &[]),
            (Exit::NextRun, ExitReason::Builder)
        );
    }

    #[test]
    fn without_a_config_dir_the_exit_waits() {
        let mode = choose(
            Some(Exit::Handoff),
            false,
            false,
            &Env::process(),
            Duration::ZERO,
        );
        assert_eq!(
            (mode.mode, mode.reason),
            (Exit::Wait, ExitReason::NoConfigDir)
        );
    }

    #[test]
    fn the_mode_says_why() {
        let mode = ExitMode {
            mode: Exit::Wait,
            reason: ExitReason::Ci {
                variable: "GITLAB_CI".into(),
            },
            budget: Duration::from_millis(500),
        };
        assert_eq!(
            mode.to_string(),
            "wait for delivery (at most 500 ms), because CI was detected (GITLAB_CI)"
        );
    }
}
