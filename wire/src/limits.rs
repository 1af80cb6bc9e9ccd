//! How long each string of an event may be, in bytes, and which characters
//! it may hold; no string may be empty. The collector refuses a batch that
//! breaks them; the sender makes every field [`fit`] first and sends no
//! empty one, so a long provider name, an empty error or a control
//! character in a version cannot cost the whole batch.
//!
//! Three kinds of field ([`Field`]):
//!
//! - an identifier (`command`, `provider`, `source_type`, `ide`,
//!   `version`) is one line with no control character and no invisible
//!   one: no Unicode format character (bidi controls such as U+202E,
//!   zero-width characters such as U+200B, the BOM) and no line or
//!   paragraph separator (U+2028, U+2029). `devsy up` and `devsy
//!   up\u{200b}` would otherwise be two commands that look the same;
//! - a line (`type`, `arch`, `os`): one line with no control character;
//! - a message (`error`): control characters but `\n` refused.

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

/// What a field may hold: see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `command`, `provider`, `source_type`, `ide`, `version`.
    Identifier,
    /// `type`, `arch`, `os`.
    Line,
    /// `error`: `\n` allowed.
    Message,
}

impl Field {
    /// Whether `c` may appear in a field of this kind.
    #[must_use]
    pub fn allows(self, c: char) -> bool {
        match self {
            Self::Identifier => !c.is_control() && !is_invisible(c),
            Self::Line => !c.is_control(),
            Self::Message => !c.is_control() || c == '\n',
        }
    }
}

/// A Unicode format character (general category Cf: bidi controls,
/// zero-width characters, the BOM, tags), a line or paragraph separator
/// (Zl, Zp), or another default-ignorable one (the Hangul fillers, the
/// combining grapheme joiner, variation selectors): shown as nothing, or
/// as something else than it is.
///
/// ```
/// use devsy_telemetry_wire::limits::is_invisible;
///
/// assert!(is_invisible('\u{202e}') && is_invisible('\u{200b}') && is_invisible('\u{2028}'));
/// assert!(!is_invisible('a') && !is_invisible('é') && !is_invisible(' '));
/// ```
#[must_use]
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{034F}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061C}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
        | '\u{115F}'..='\u{1160}'
        | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FFA0}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}'
        | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}'
        | '\u{E0100}'..='\u{E01EF}')
}

/// `value` as a field of at most `max` bytes may carry it: an invisible
/// character an identifier may not hold is left out, any other character
/// `field` does not allow becomes a space, and the result is cut at `max`
/// bytes on a character boundary. Borrowed when nothing needed to change,
/// which is almost always.
///
/// ```
/// use devsy_telemetry_wire::limits::{Field, fit};
///
/// assert_eq!(fit("docker", 128, Field::Identifier), "docker");
/// assert_eq!(fit("dock\ter", 128, Field::Identifier), "dock er");
/// assert_eq!(fit("up\u{200b}", 128, Field::Identifier), "up");
/// assert_eq!(fit("a\nb", 128, Field::Message), "a\nb");
/// assert_eq!(fit("€€€", 7, Field::Identifier), "€€"); // never half a character
/// ```
#[must_use]
pub fn fit(value: &str, max: usize, field: Field) -> Cow<'_, str> {
    if fits(value, max, field) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len().min(max));
    for c in value.chars() {
        let c = if field.allows(c) {
            c
        } else if field == Field::Identifier && is_invisible(c) {
            continue;
        } else {
            ' '
        };
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
/// use devsy_telemetry_wire::limits::{Field, fit_owned};
///
/// assert_eq!(fit_owned("no\u{7}bell".to_string(), 64, Field::Message), "no bell");
/// ```
#[must_use]
pub fn fit_owned(value: String, max: usize, field: Field) -> String {
    if fits(&value, max, field) {
        value
    } else {
        fit(&value, max, field).into_owned()
    }
}

/// `value` is a valid field of at most `max` bytes as it is: [`fits`], and
/// not empty.
///
/// ```
/// use devsy_telemetry_wire::limits::{Field, accepts};
///
/// assert!(accepts("docker", 128, Field::Identifier));
/// assert!(!accepts("", 128, Field::Identifier));
/// ```
#[must_use]
pub fn accepts(value: &str, max: usize, field: Field) -> bool {
    !value.is_empty() && fits(value, max, field)
}

/// `value` is at most `max` bytes, with only characters `field` allows:
/// what [`fit`] leaves unchanged.
#[must_use]
pub fn fits(value: &str, max: usize, field: Field) -> bool {
    value.len() <= max && value.chars().all(|c| field.allows(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_fits_is_borrowed_and_what_does_not_is_cut_and_cleaned() {
        assert!(matches!(
            fit("v0.5.29", VERSION, Field::Identifier),
            Cow::Borrowed(_)
        ));
        let long = "x".repeat(PROPERTY + 10);
        assert_eq!(fit(&long, PROPERTY, Field::Identifier).len(), PROPERTY);
        assert_eq!(fit("a\r\nb\u{7}", 16, Field::Message), "a \nb ");
        assert_eq!(fit("a\nb", 16, Field::Line), "a b");
    }

    #[test]
    fn identifiers_refuse_what_cannot_be_seen_and_lines_and_messages_keep_it() {
        for c in [
            '\u{202E}', '\u{2066}', '\u{2069}', '\u{200B}', '\u{2028}', '\u{FEFF}',
        ] {
            let value = format!("devsy up{c}");
            assert!(!fits(&value, COMMAND, Field::Identifier), "{c:?}");
            assert_eq!(fit(&value, COMMAND, Field::Identifier), "devsy up");
            assert!(fits(&value, COMMAND, Field::Line), "{c:?} is not a control");
            assert!(
                fits(&value, COMMAND, Field::Message),
                "{c:?} is not a control"
            );
        }
        assert!(fits("provider 'dockér' ✓", PROPERTY, Field::Identifier));
    }
}
