//! The app's identity and the environment it runs in: the one place that
//! knows the app's name, the names of its variables, its event type and
//! its config dir, and the one view of the environment that every rule
//! reads through (the process's, or the map given to [`Builder::env`]).
//!
//! [`Builder::env`]: crate::Builder::env

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use devsy_telemetry_wire::app::{self, NameError};

/// The config file inside the config dir.
pub(crate) const CONFIG_FILE: &str = "config.json";

/// One app: its checked name and everything derived from it, made once by
/// [`Telemetry::builder`](crate::Telemetry::builder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct App {
    name: String,
    event_type: String,
    vars: Variables,
}

impl App {
    /// The app named `name`, if it follows the rule of
    /// [`devsy_telemetry_wire::app`].
    pub(crate) fn new(name: &str) -> Result<Self, NameError> {
        app::check_name(name)?;
        Ok(Self {
            name: name.to_string(),
            event_type: app::event_type(name),
            vars: Variables::of(name),
        })
    }

    /// The name, as it starts every command (`devsy provider list`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `<app>_cli`.
    pub(crate) fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The names of the app's environment variables.
    pub(crate) fn vars(&self) -> &Variables {
        &self.vars
    }

    /// `$<APP>_HOME`, else `~/.<app>`; `None` when neither is known.
    pub(crate) fn config_dir(&self, env: &Env) -> Option<PathBuf> {
        env.non_empty(&self.vars.home)
            .map(PathBuf::from)
            .or_else(|| Some(Path::new(&env.home()?).join(format!(".{}", self.name))))
    }
}

/// The names of the environment variables of one app: `<APP>_…`, with the
/// name upper-cased and `-` as `_` (`my-cli` reads `MY_CLI_DISABLE_TELEMETRY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Variables {
    pub disable: String,
    pub debug: String,
    pub endpoint: String,
    pub home: String,
    pub ui: String,
}

impl Variables {
    /// Also made for a name that [`App::new`] refuses, so that its debug
    /// variable can still say why telemetry is off.
    pub(crate) fn of(name: &str) -> Self {
        let prefix: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            disable: format!("{prefix}_DISABLE_TELEMETRY"),
            debug: format!("{prefix}_TELEMETRY_DEBUG"),
            endpoint: format!("{prefix}_TELEMETRY_ENDPOINT"),
            home: format!("{prefix}_HOME"),
            ui: format!("{prefix}_UI"),
        }
    }
}

/// The environment the runtime reads: the process's, or the map given to
/// [`Builder::env`](crate::Builder::env). Proxy variables are the HTTP
/// client's business and are always the process's.
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    given: Option<HashMap<String, String>>,
}

impl Env {
    /// The process environment.
    pub(crate) fn process() -> Self {
        Self { given: None }
    }

    /// `given` if some, else the process environment.
    pub(crate) fn new(given: Option<HashMap<String, String>>) -> Self {
        Self { given }
    }

    /// Whether this is a map given by the host rather than the process's.
    pub(crate) fn is_given(&self) -> bool {
        self.given.is_some()
    }

    /// A variable's value; one that is not UTF-8 still counts as set.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        match &self.given {
            Some(map) => map.get(name).cloned(),
            None => std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()),
        }
    }

    /// A variable's value, unless it is empty or only space.
    pub(crate) fn non_empty(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// A flag variable is on (see [`is_truthy`]).
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| is_truthy(&v))
    }

    /// The user's home: `HOME`, else `USERPROFILE` (Windows).
    pub(crate) fn home(&self) -> Option<String> {
        self.non_empty("HOME")
            .or_else(|| self.non_empty("USERPROFILE"))
    }

    /// The user's login name: `USER`, `USERNAME` (Windows) or `LOGNAME`,
    /// else the last part of the home path.
    pub(crate) fn user(&self) -> Option<String> {
        ["USER", "USERNAME", "LOGNAME"]
            .iter()
            .find_map(|name| self.non_empty(name))
            .or_else(|| {
                Path::new(&self.home()?)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
    }
}

/// A flag variable is on when set to anything but empty, `0`, `false`, `no`
/// or `off` (any case, surrounding space ignored).
pub(crate) fn is_truthy(value: &str) -> bool {
    let value = value.trim();
    !(value.is_empty()
        || ["0", "false", "no", "off"]
            .iter()
            .any(|f| value.eq_ignore_ascii_case(f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env::new(Some(
            vars.iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        ))
    }

    #[test]
    fn names_follow_the_app_name() -> Result<(), NameError> {
        let app = App::new("my-cli")?;
        let vars = app.vars();
        assert_eq!(vars.disable, "MY_CLI_DISABLE_TELEMETRY");
        assert_eq!(vars.endpoint, "MY_CLI_TELEMETRY_ENDPOINT");
        assert_eq!(vars.debug, "MY_CLI_TELEMETRY_DEBUG");
        assert_eq!(vars.home, "MY_CLI_HOME");
        assert_eq!(vars.ui, "MY_CLI_UI");
        assert_eq!(app.event_type(), "my-cli_cli");
        Ok(())
    }

    #[test]
    fn a_name_the_collector_would_refuse_is_refused_here() {
        assert_eq!(
            App::new("MyCli"),
            Err(NameError::FirstCharacter { found: 'M' })
        );
        assert!(App::new("my cli").is_err());
        assert_eq!(Variables::of("MyCli").debug, "MYCLI_TELEMETRY_DEBUG");
    }

    #[test]
    fn truthiness() {
        for on in ["true", "1", "yes", "TRUE", "on", "anything"] {
            assert!(is_truthy(on), "{on}");
        }
        for off in ["", " ", "0", "false", "FALSE", "no", "Off"] {
            assert!(!is_truthy(off), "{off:?}");
        }
    }

    #[test]
    fn the_config_dir_is_app_home_else_under_home_and_empty_means_unset() -> Result<(), NameError> {
        let app = App::new("devsy")?;
        let dir = |vars: &[(&str, &str)]| app.config_dir(&env(vars));
        assert_eq!(
            dir(&[("DEVSY_HOME", "/d"), ("HOME", "/h")]),
            Some(PathBuf::from("/d"))
        );
        assert_eq!(
            dir(&[("DEVSY_HOME", " "), ("HOME", "/h")]),
            Some(Path::new("/h").join(".devsy"))
        );
        assert_eq!(
            dir(&[("HOME", ""), ("USERPROFILE", "C:/u")]),
            Some(Path::new("C:/u").join(".devsy"))
        );
        assert_eq!(dir(&[("HOME", "")]), None);
        Ok(())
    }

    #[test]
    fn the_user_is_a_variable_else_the_home_dir_name() {
        assert_eq!(env(&[("USER", "alice")]).user().as_deref(), Some("alice"));
        assert_eq!(
            env(&[("USER", ""), ("LOGNAME", "bob")]).user().as_deref(),
            Some("bob")
        );
        assert_eq!(
            env(&[("HOME", "/home/carol")]).user().as_deref(),
            Some("carol")
        );
        assert_eq!(env(&[]).user(), None);
    }
}
