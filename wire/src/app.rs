//! What an app name may be, and the event type it sends.
//!
//! An app name is 1 to [`MAX_LEN`] bytes of lowercase ASCII letters, digits,
//! `-` and `_`, starting with a letter: `devsy`, `my-cli`, `tool2`. It names
//! the app's environment variables (`MY_CLI_DISABLE_TELEMETRY`), its config
//! dir (`~/.my-cli`) and its event type (`my-cli_cli`), so it must read the
//! same in all three; other input is refused, not normalised, because a
//! quietly changed name would move the config dir and the variables.

use std::fmt;

use crate::limits;

/// What every event type ends with: `devsy` sends `devsy_cli`.
pub const EVENT_TYPE_SUFFIX: &str = "_cli";

/// The longest app name: its event type must fit [`limits::TYPE`].
pub const MAX_LEN: usize = limits::TYPE - EVENT_TYPE_SUFFIX.len();

/// Why a string is not an app name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_LEN`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name starts with something other than a lowercase letter.
    FirstCharacter {
        /// What it starts with.
        found: char,
    },
    /// The name holds a character other than `a-z`, `0-9`, `-` and `_`.
    Character {
        /// The character.
        found: char,
        /// Its byte offset.
        at: usize,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const RULE: &str = "an app name is lowercase ASCII letters, digits, `-` and `_`, \
                            starting with a letter";
        match self {
            Self::Empty => write!(f, "the name is empty; {RULE}"),
            Self::TooLong { len } => write!(f, "{len} bytes, more than the {MAX_LEN} allowed"),
            Self::FirstCharacter { found } => write!(f, "it starts with {found:?}; {RULE}"),
            Self::Character { found, at } => {
                write!(f, "{found:?} at byte {at} is not allowed; {RULE}")
            }
        }
    }
}

impl std::error::Error for NameError {}

/// Checks `name` against the rule of the [module docs](self).
///
/// ```
/// use devsy_telemetry_wire::app::{NameError, check_name};
///
/// assert_eq!(check_name("my-cli"), Ok(()));
/// assert_eq!(check_name("MyCli"), Err(NameError::FirstCharacter { found: 'M' }));
/// assert_eq!(check_name("my cli"), Err(NameError::Character { found: ' ', at: 2 }));
/// ```
///
/// # Errors
///
/// The first thing that breaks the rule.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let mut chars = name.char_indices();
    let Some((_, first)) = chars.next() else {
        return Err(NameError::Empty);
    };
    if !first.is_ascii_lowercase() {
        return Err(NameError::FirstCharacter { found: first });
    }
    if let Some((at, found)) = chars
        .find(|&(_, c)| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
    {
        return Err(NameError::Character { found, at });
    }
    if name.len() > MAX_LEN {
        return Err(NameError::TooLong { len: name.len() });
    }
    Ok(())
}

/// The event type of app `name`: `devsy` sends `devsy_cli`. Check the name
/// first ([`check_name`]); this only appends the suffix.
///
/// ```
/// assert_eq!(devsy_telemetry_wire::app::event_type("devsy"), "devsy_cli");
/// ```
#[must_use]
pub fn event_type(name: &str) -> String {
    format!("{name}{EVENT_TYPE_SUFFIX}")
}

/// The app whose event type `kind` is, if it is one.
///
/// ```
/// use devsy_telemetry_wire::app::of_event_type;
///
/// assert_eq!(of_event_type("my-cli_cli"), Some("my-cli"));
/// assert_eq!(of_event_type("MyCli_cli"), None);
/// assert_eq!(of_event_type("devsy"), None);
/// ```
#[must_use]
pub fn of_event_type(kind: &str) -> Option<&str> {
    kind.strip_suffix(EVENT_TYPE_SUFFIX)
        .filter(|name| check_name(name).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_pass_and_why_others_fail() {
        for good in [
            "devsy",
            "my-cli",
            "my_cli",
            "a",
            "tool2",
            &"a".repeat(MAX_LEN),
        ] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(
            check_name("2fa"),
            Err(NameError::FirstCharacter { found: '2' })
        );
        assert_eq!(
            check_name("-x"),
            Err(NameError::FirstCharacter { found: '-' })
        );
        assert_eq!(
            check_name("devsé"),
            Err(NameError::Character { found: 'é', at: 4 })
        );
        let long = "a".repeat(MAX_LEN + 1);
        assert_eq!(
            check_name(&long),
            Err(NameError::TooLong { len: MAX_LEN + 1 })
        );
    }

    #[test]
    fn every_valid_name_makes_an_event_type_that_maps_back() {
        for name in ["devsy", "my-cli", "x_cli"] {
            let kind = event_type(name);
            assert!(kind.len() <= limits::TYPE);
            assert_eq!(of_event_type(&kind), Some(name));
        }
        assert_eq!(of_event_type("_cli"), None);
    }

    #[test]
    fn errors_state_the_rule() {
        let message = NameError::FirstCharacter { found: 'M' }.to_string();
        assert!(message.contains("lowercase ASCII letters"), "{message}");
    }
}
