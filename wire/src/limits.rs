//! How long each string of an event may be, in bytes, and which may span
//! lines; no string may be empty. The collector refuses a batch that breaks
//! them; the sender makes every field [`fit`] first and sends no empty
//! one, so a long provider name, an empty error or a control character in
//! a version cannot cost the whole batch.

use std::borrow::Cow;

/// `event.type`.
pub const TYPE: usize = 64;
/// `event.properties.command`.
pub const COMMAND: usize = 256;
/// `provider`, `source_type` and `ide`.
pub const PROPERTY: usize = 128;
/// `event.properties.version`.
pub const VERSION: usize = 64;
/// `event.properties.error`, the only field that may span lines.
pub const ERROR: usize = 4096;
/// `user.arch` and `user.os`.
pub const PLATFORM: usize = 32;

/// Whether line breaks are allowed: only in an error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// One line: every control character is refused.
    One,
    /// `\n` is allowed; every other control character is refused.
    Many,
}

impl Lines {
    /// Whether `c` may appear in a field of this kind.
    #[must_use]
    pub fn allows(self, c: char) -> bool {
        !c.is_control() || (self == Self::Many && c == '\n')
    }
}

/// `value` as a field of at most `max` bytes may carry it: each control
/// character that `lines` does not allow becomes a space, and the result
/// is cut at `max` bytes on a character boundary. Borrowed when nothing
/// needed to change, which is almost always.
///
/// ```
/// use devsy_telemetry_wire::limits::{Lines, fit};
///
/// assert_eq!(fit("docker", 128, Lines::One), "docker");
/// assert_eq!(fit("dock\ter", 128, Lines::One), "dock er");
/// assert_eq!(fit("a\nb", 128, Lines::Many), "a\nb");
/// assert_eq!(fit("€€€", 7, Lines::One), "€€"); // never half a character
/// ```
#[must_use]
pub fn fit(value: &str, max: usize, lines: Lines) -> Cow<'_, str> {
    if fits(value, max, lines) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len().min(max));
    for c in value.chars() {
        let c = if lines.allows(c) { c } else { ' ' };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// [`fit`] for a value already owned: returned as it is when it fits.
///
/// ```
/// use devsy_telemetry_wire::limits::{Lines, fit_owned};
///
/// assert_eq!(fit_owned("no\u{7}bell".to_string(), 64, Lines::Many), "no bell");
/// ```
#[must_use]
pub fn fit_owned(value: String, max: usize, lines: Lines) -> String {
    if fits(&value, max, lines) {
        value
    } else {
        fit(&value, max, lines).into_owned()
    }
}

/// `value` is a valid field of at most `max` bytes as it is: [`fits`], and
/// not empty.
///
/// ```
/// use devsy_telemetry_wire::limits::{Lines, accepts};
///
/// assert!(accepts("docker", 128, Lines::One));
/// assert!(!accepts("", 128, Lines::One));
/// ```
#[must_use]
pub fn accepts(value: &str, max: usize, lines: Lines) -> bool {
    !value.is_empty() && fits(value, max, lines)
}

/// `value` is at most `max` bytes, without a control character that
/// `lines` forbids: what [`fit`] leaves unchanged.
#[must_use]
pub fn fits(value: &str, max: usize, lines: Lines) -> bool {
    value.len() <= max && value.chars().all(|c| lines.allows(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_fits_is_borrowed_and_what_does_not_is_cut_and_cleaned() {
        assert!(matches!(
            fit("v0.5.29", VERSION, Lines::One),
            Cow::Borrowed(_)
        ));
        let long = "x".repeat(PROPERTY + 10);
        assert_eq!(fit(&long, PROPERTY, Lines::One).len(), PROPERTY);
        assert_eq!(fit("a\r\nb\u{7}", 16, Lines::Many), "a \nb ");
        assert_eq!(fit("a\nb", 16, Lines::One), "a b");
    }
}
