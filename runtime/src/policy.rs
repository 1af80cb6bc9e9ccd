//! The opt-out rules: whether telemetry may run, and if not, which rule said so.
//!
//! Telemetry is off when any of these holds; the first that matches, in this
//! order, is the one [`Status`] names:
//!
//! 1. `<APP>_DISABLE_TELEMETRY` is set to anything but empty, `0`, `false`,
//!    `no` or `off` (any case);
//! 2. `DO_NOT_TRACK` is set likewise (<https://consoledonottrack.com>);
//! 3. the current context's option `TELEMETRY` is `false` (or anything but
//!    `true`: a value nobody can read is not consent);
//! 4. the version is empty or `v0.0.0` (a development build);
//! 5. the config store exists but cannot be read or parsed;
//! 6. the app called [`Builder::enabled(false)`](crate::Builder::enabled).
//!
//! Before any of these, the app's name must be one
//! ([`DisabledBy::InvalidAppName`]). Delivery needs an endpoint too: without
//! one, or with one that is not an `http(s)` URL, telemetry is off ([`DisabledBy::NoEndpoint`],
//! [`DisabledBy::InvalidEndpoint`]). [`disable`](crate::disable) turns it off
//! for the rest of the process, clients started later included
//! ([`DisabledBy::Runtime`]).

use std::fmt;
use std::path::Path;

use crate::app::{Env, Variables, is_truthy};
use crate::context::{self, ContextStore, TELEMETRY_OPTION};

/// Whether telemetry runs, as decided when [`Builder::start`](crate::Builder::start) ran.
///
/// ```
/// use devsy_telemetry_runtime::{DisabledBy, Status, Telemetry};
///
/// let telemetry = Telemetry::builder("devsy")
///     .version("v0.0.0")
///     .env([("PATH", "/usr/bin")]) // read these instead of the process environment
///     .start();
/// assert_eq!(telemetry.status(), Status::Disabled(DisabledBy::DevelopmentBuild { version: "v0.0.0".into() }));
/// assert_eq!(telemetry.status().to_string(), "disabled: development build (version 'v0.0.0')");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Events are recorded and sent.
    Enabled,
    /// `<APP>_TELEMETRY_DEBUG` is set: events are printed to stderr, as the
    /// exact JSON that would be posted, and nothing is sent.
    Debug,
    /// Nothing is recorded, read, written or sent.
    Disabled(DisabledBy),
}

impl Status {
    /// True when events are recorded (sent, or printed in debug mode).
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        !matches!(self, Self::Disabled(_))
    }

    /// The rule that turned telemetry off, if it is off.
    #[must_use]
    pub fn disabled_by(&self) -> Option<&DisabledBy> {
        match self {
            Self::Disabled(rule) => Some(rule),
            Self::Enabled | Self::Debug => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Enabled => f.write_str("enabled"),
            Self::Debug => f.write_str("debug: events are printed to stderr and not sent"),
            Self::Disabled(rule) => write!(f, "disabled: {rule}"),
        }
    }
}

/// The rule that turned telemetry off. See the [module docs](self) for the order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisabledBy {
    /// `<APP>_DISABLE_TELEMETRY` is set.
    EnvVar {
        /// The variable's name, for example `DEVSY_DISABLE_TELEMETRY`.
        name: String,
        /// Its value.
        value: String,
    },
    /// `DO_NOT_TRACK` is set.
    DoNotTrack {
        /// Its value.
        value: String,
    },
    /// The context's `TELEMETRY` option is not `true`.
    ContextOption {
        /// The context whose option applied.
        context: String,
        /// The option's value.
        value: String,
    },
    /// The version is empty or `v0.0.0`.
    DevelopmentBuild {
        /// The version given to the builder.
        version: String,
    },
    /// The config store exists but could not be read or parsed.
    UnreadableConfig {
        /// What went wrong, naming the file.
        error: String,
    },
    /// The app called `.enabled(false)`.
    App,
    /// The name given to [`Telemetry::builder`](crate::Telemetry::builder)
    /// is not an app name: lowercase ASCII letters, digits, `-` and `_`,
    /// starting with a letter. Nothing else is read.
    InvalidAppName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No endpoint was configured and no custom transport was given.
    NoEndpoint {
        /// The variable that would provide one, for example `DEVSY_TELEMETRY_ENDPOINT`.
        variable: String,
    },
    /// The endpoint is not an `http(s)` URL.
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was refused.
        reason: String,
    },
    /// [`disable`](crate::disable) was called in this process.
    Runtime,
    /// The first-run notice was shown in this run, and the app asked for
    /// nothing to be sent by the run that shows it
    /// ([`Builder::notice_before_sending`](crate::Builder::notice_before_sending)).
    /// The next run sends.
    FirstRunNotice,
    /// The crate was built without its `telemetry` feature.
    CompiledOut,
    /// The background thread could not be started.
    WorkerUnavailable {
        /// The OS error.
        reason: String,
    },
}

impl fmt::Display for DisabledBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EnvVar { name, value } => write!(f, "{name}={value}"),
            Self::DoNotTrack { value } => write!(f, "DO_NOT_TRACK={value}"),
            Self::ContextOption { context, value } => {
                write!(
                    f,
                    "option {TELEMETRY_OPTION}={value} of context '{context}'"
                )
            }
            Self::DevelopmentBuild { version } => {
                write!(f, "development build (version '{version}')")
            }
            Self::UnreadableConfig { error } => write!(f, "unreadable config: {error}"),
            Self::App => f.write_str("turned off by the application"),
            Self::InvalidAppName { name, reason } => {
                write!(f, "invalid app name '{name}': {reason}")
            }
            Self::NoEndpoint { variable } => write!(f, "no endpoint configured (set {variable})"),
            Self::InvalidEndpoint { endpoint, reason } => {
                write!(f, "invalid endpoint '{endpoint}': {reason}")
            }
            Self::Runtime => f.write_str("turned off while running"),
            Self::FirstRunNotice => {
                f.write_str("the first-run notice was shown: this run sends nothing")
            }
            Self::CompiledOut => f.write_str("built without the `telemetry` feature"),
            Self::WorkerUnavailable { reason } => {
                write!(f, "background thread could not start: {reason}")
            }
        }
    }
}

/// Where the current context's `TELEMETRY` value comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ContextSource<'a> {
    /// Read the store at this path (none: no store).
    Store(Option<&'a Path>),
    /// The app keeps its own config and passed the value.
    Given(Option<&'a str>),
}

/// What the rules read.
pub(crate) struct Inputs<'a> {
    pub vars: &'a Variables,
    pub env: &'a Env,
    pub version: &'a str,
    pub enabled: bool,
    pub context: Option<&'a str>,
    pub source: ContextSource<'a>,
}

/// Applies the rules in their documented order. Reads the config file (never
/// writes anything); returns the context whose options applied when allowed.
pub(crate) fn decide(inputs: &Inputs<'_>) -> Result<String, DisabledBy> {
    let env = inputs.env;
    if let Some(value) = env.get(&inputs.vars.disable).filter(|v| is_truthy(v)) {
        return Err(DisabledBy::EnvVar {
            name: inputs.vars.disable.clone(),
            value,
        });
    }
    if let Some(value) = env.get("DO_NOT_TRACK").filter(|v| is_truthy(v)) {
        return Err(DisabledBy::DoNotTrack { value });
    }

    let (context, option, store_error) = match inputs.source {
        ContextSource::Given(value) => (
            inputs
                .context
                .unwrap_or(context::DEFAULT_CONTEXT)
                .to_string(),
            value.map(str::to_string),
            None,
        ),
        ContextSource::Store(path) => match path.map(ContextStore::open).transpose() {
            Ok(store) => {
                let context = inputs
                    .context
                    .map(str::to_string)
                    .or_else(|| store.as_ref().map(|s| s.default_context().to_string()))
                    .unwrap_or_else(|| context::DEFAULT_CONTEXT.to_string());
                let option = store
                    .as_ref()
                    .and_then(|s| s.option(&context, TELEMETRY_OPTION))
                    .map(str::to_string);
                (context, option, None)
            }
            Err(e) => (String::new(), None, Some(e.to_string())),
        },
    };
    if let Some(value) = option
        && context::parse_telemetry_option(&value) != Some(true)
    {
        return Err(DisabledBy::ContextOption { context, value });
    }

    let version = inputs.version.trim();
    if version.is_empty() || version.trim_start_matches('v') == "0.0.0" {
        return Err(DisabledBy::DevelopmentBuild {
            version: inputs.version.to_string(),
        });
    }
    if let Some(error) = store_error {
        return Err(DisabledBy::UnreadableConfig { error });
    }
    if !inputs.enabled {
        return Err(DisabledBy::App);
    }
    Ok(context)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fs;

    use super::*;

    struct Case {
        env: HashMap<&'static str, &'static str>,
        version: &'static str,
        enabled: bool,
        file: Option<&'static str>,
        given: Option<Option<&'static str>>,
        context: Option<&'static str>,
    }

    impl Default for Case {
        fn default() -> Self {
            Self {
                env: HashMap::new(),
                version: "v1.2.3",
                enabled: true,
                file: None,
                given: None,
                context: None,
            }
        }
    }

    fn run(case: &Case) -> Result<String, DisabledBy> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.json");
        if let Some(text) = case.file {
            fs::write(&path, text).expect("write config");
        }
        let vars = Variables::of("devsy");
        let env = Env::new(Some(
            case.env
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        ));
        decide(&Inputs {
            vars: &vars,
            env: &env,
            version: case.version,
            enabled: case.enabled,
            context: case.context,
            source: case
                .given
                .map_or(ContextSource::Store(Some(&path)), ContextSource::Given),
        })
    }

    #[test]
    fn enabled_by_default_with_the_default_context() {
        assert_eq!(run(&Case::default()), Ok("default".into()));
    }

    #[test]
    fn env_var_wins_over_everything_else() {
        let case = Case {
            env: HashMap::from([("DEVSY_DISABLE_TELEMETRY", "true"), ("DO_NOT_TRACK", "1")]),
            version: "",
            enabled: false,
            file: Some("not json"),
            ..Case::default()
        };
        assert_eq!(
            run(&case),
            Err(DisabledBy::EnvVar {
                name: "DEVSY_DISABLE_TELEMETRY".into(),
                value: "true".into()
            })
        );
    }

    #[test]
    fn falsy_env_values_do_not_disable() {
        let case = Case {
            env: HashMap::from([("DEVSY_DISABLE_TELEMETRY", "false"), ("DO_NOT_TRACK", "0")]),
            ..Case::default()
        };
        assert!(run(&case).is_ok());
    }

    #[test]
    fn do_not_track() {
        let case = Case {
            env: HashMap::from([("DO_NOT_TRACK", "1")]),
            ..Case::default()
        };
        assert_eq!(
            run(&case),
            Err(DisabledBy::DoNotTrack { value: "1".into() })
        );
    }

    #[test]
    fn context_option_of_the_default_context() {
        let case = Case {
            file: Some(
                r#"{"defaultContext": "work", "contexts": {"work": {"options": {"TELEMETRY": "False"}}}}"#,
            ),
            ..Case::default()
        };
        assert_eq!(
            run(&case),
            Err(DisabledBy::ContextOption {
                context: "work".into(),
                value: "False".into()
            })
        );
    }

    #[test]
    fn context_option_of_another_context_does_not_apply() {
        let case = Case {
            file: Some(r#"{"contexts": {"work": {"options": {"TELEMETRY": "false"}}}}"#),
            ..Case::default()
        };
        assert_eq!(run(&case), Ok("default".into()));
        let chosen = Case {
            context: Some("work"),
            ..case
        };
        assert!(matches!(
            run(&chosen),
            Err(DisabledBy::ContextOption { .. })
        ));
    }

    #[test]
    fn an_unreadable_option_value_is_not_consent() {
        let case = Case {
            given: Some(Some("maybe")),
            ..Case::default()
        };
        assert!(
            matches!(run(&case), Err(DisabledBy::ContextOption { value, .. }) if value == "maybe")
        );
    }

    #[test]
    fn a_given_option_skips_the_store() {
        let case = Case {
            given: Some(Some("true")),
            file: Some("not json"),
            ..Case::default()
        };
        assert_eq!(run(&case), Ok("default".into()));
    }

    #[test]
    fn development_builds() {
        for version in ["", "v0.0.0", "0.0.0", " "] {
            let case = Case {
                version,
                ..Case::default()
            };
            assert!(
                matches!(run(&case), Err(DisabledBy::DevelopmentBuild { .. })),
                "{version:?}"
            );
        }
    }

    #[test]
    fn unparsable_config() {
        let case = Case {
            file: Some("{\"contexts\": "),
            ..Case::default()
        };
        let Err(DisabledBy::UnreadableConfig { error }) = run(&case) else {
            panic!("expected UnreadableConfig");
        };
        assert!(
            error.contains("config.json") && error.contains("line 1"),
            "{error}"
        );
    }

    #[test]
    fn app_switch_comes_last() {
        let case = Case {
            enabled: false,
            ..Case::default()
        };
        assert_eq!(run(&case), Err(DisabledBy::App));
    }
}
