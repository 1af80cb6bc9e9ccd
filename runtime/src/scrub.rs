//! The scrubber every error string passes through before it leaves the
//! process: it removes what could identify the user or leak a secret, and
//! bounds the length.
//!
//! The rules run one after the other, each over the previous one's output:
//!
//! 1. control characters are removed; `\n`, `\r` and `\t` become a space;
//! 2. credentials in URLs (`scheme://user:token@host`) become `<redacted>`;
//! 3. e-mail addresses become `<redacted>`;
//! 4. secret-looking tokens become `<redacted>`;
//! 5. the home directory, as a path prefix, becomes `~`;
//! 6. the user name, as a whole word, becomes `<user>`;
//! 7. the result is cut at [`MAX_LEN`] bytes.
//!
//! Why this order:
//!
//! - Control characters go first, so that the other rules see the text a
//!   reader would see: a line break is a word boundary for them, and a
//!   control character cannot hide a secret by splitting it in two.
//! - URL credentials go before e-mails: in `https://alice:tok@host.com` the
//!   e-mail rule would take `tok@host.com` (losing the host) and leave
//!   `alice:` behind.
//! - E-mails go before tokens and the user name, so an address disappears
//!   whole rather than as `<user>@example.com`.
//! - Secrets go before the home and the user name: those rules insert `~`
//!   and `<user>`, characters outside every token alphabet, which could cut
//!   a secret into pieces too short to be recognized.
//! - The home goes before the user name, which it usually contains:
//!   `/home/alice` must become `~`, not `/home/<user>` that no longer
//!   matches the home.
//! - The cut goes last, so every rule sees the whole text (half a secret cut
//!   at the limit might not be recognized, and would leak) and the limit
//!   holds after replacements that lengthen the text (`<redacted>` is longer
//!   than a short e-mail address).
//!
//! No regular expressions: each rule is a hand-written scan over the bytes
//! that returns the byte ranges to replace (`Vec<Range<usize>>`, sorted and
//! disjoint), and [`replace_spans`] rebuilds the string. The patterns are
//! ASCII or (home, user name) whole UTF-8 strings, so a range never starts or
//! ends inside a multi-byte character; and bytes are read with `get`, never
//! by indexing or slicing, so no input can make a rule panic. Each scan is
//! linear in the input (the home and user rules: times the length of the
//! home or the name).

use std::ops::Range;

/// The most bytes a scrubbed string keeps.
pub(crate) const MAX_LEN: usize = 1024;

/// What replaces a credential, an e-mail address or a secret.
const REDACTED: &str = "<redacted>";
/// What replaces the user name.
const USER: &str = "<user>";
/// What replaces the home directory.
const HOME: &str = "~";

/// A run of this many hex digits, or base64 characters, is a secret.
const MIN_SECRET_RUN: usize = 32;

/// What to scrub that depends on the machine: the user's home directory and
/// user name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scrubber {
    /// The home directory without trailing separators; `None`: no home rule.
    home: Option<String>,
    /// The user name; `None`: no user rule.
    user: Option<String>,
}

impl Scrubber {
    /// `home`: the home directory (e.g. "/home/alice"); `user`: the user
    /// name (e.g. "alice"). Either may be `None` or empty (then that rule is
    /// skipped).
    pub(crate) fn new(home: Option<&str>, user: Option<&str>) -> Self {
        // "/home/alice/" and "/home/alice" are the same directory. A home
        // made only of separators ("/") would match every path: skipped.
        let home = home
            .map(|home| home.trim_end_matches(['/', '\\']))
            .filter(|home| !home.is_empty())
            .map(str::to_owned);
        // A name with no letter or digit (" ", "-") would replace
        // punctuation, not a name: skipped.
        let user = user
            .map(str::trim)
            .filter(|user| user.chars().any(char::is_alphanumeric))
            .map(str::to_owned);
        Self { home, user }
    }

    /// The scrubbed string.
    pub(crate) fn scrub(&self, input: &str) -> String {
        // Each rule runs only when its trigger is there (cheap substring
        // checks), and rebuilds the text only when it found something: a
        // typical error message is left as it came, in one copy.
        let mut text = if input.chars().any(char::is_control) {
            replace_controls(input)
        } else {
            input.to_owned()
        };
        if text.contains("://") {
            let spans = url_credentials(text.as_bytes());
            text = replace_spans(text, &spans, REDACTED);
        }
        if text.contains('@') {
            let spans = emails(text.as_bytes());
            text = replace_spans(text, &spans, REDACTED);
        }
        let spans = secret_tokens(text.as_bytes());
        text = replace_spans(text, &spans, REDACTED);
        if let Some(home) = &self.home {
            // `/` and `\` match each other in a home: look for its last part.
            let last = home.rsplit(['/', '\\']).next().unwrap_or(home);
            if text.contains(last) {
                let spans = home_paths(text.as_bytes(), home.as_bytes());
                text = replace_spans(text, &spans, HOME);
            }
        }
        if let Some(user) = self.user.as_deref().filter(|user| text.contains(user)) {
            let spans = whole_words(&text, user);
            text = replace_spans(text, &spans, USER);
        }
        truncate(text)
    }
}

// ---------------------------------------------------------------------------
// Rule 1: control characters.

/// Removes control characters; a line break or tab becomes a space, so the
/// words on either side stay apart.
fn replace_controls(input: &str) -> String {
    input
        .chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Rule 2: credentials in URLs.

/// The user information of every URL (`user:token` in
/// `https://user:token@host/path`), whatever the scheme.
fn url_credentials(b: &[u8]) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(separator) = find(b, from, b"://") {
        let start = separator + "://".len();
        let end = run_end(b, start, is_authority_byte);
        // The last '@': a password may contain an '@' that was not encoded.
        let at = b
            .get(start..end)
            .and_then(|authority| authority.iter().rposition(|&c| c == b'@'));
        if let Some(at) = at.filter(|&at| at > 0) {
            spans.push(start..start + at);
        }
        from = end;
    }
    spans
}

/// Bytes of a URL's authority (`user:token@host:port`): it ends at the
/// path, query or fragment, and at what ends a URL in a message (space,
/// quotes, angle brackets).
fn is_authority_byte(c: u8) -> bool {
    !(c.is_ascii_whitespace()
        || c.is_ascii_control()
        || matches!(
            c,
            b'/' | b'\\' | b'?' | b'#' | b'"' | b'\'' | b'`' | b'<' | b'>'
        ))
}

// ---------------------------------------------------------------------------
// Rule 3: e-mail addresses.

/// Every `local@domain.tld`.
fn emails(b: &[u8]) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    // The end of the last address found: nothing before it is read again.
    let mut done = 0;
    for (at, _) in b.iter().enumerate().filter(|&(_, &c)| c == b'@') {
        if at < done {
            continue;
        }
        let start = local_part_start(b, done, at);
        if start == at {
            continue;
        }
        if let Some(end) = domain_end(b, at + 1) {
            spans.push(start..end);
            done = end;
        }
    }
    spans
}

/// Where the local part before the '@' at `at` starts (`at`: there is
/// none). It never reaches back past `floor`, nor past another '@'.
fn local_part_start(b: &[u8], floor: usize, at: usize) -> usize {
    let is_local =
        |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-');
    let mut start = at;
    while start > floor && b.get(start - 1).copied().is_some_and(is_local) {
        start -= 1;
    }
    // A dot before the address is punctuation ("see:.alice@…" is rare, but
    // "….alice" is not an address that starts with a dot).
    while start < at && b.get(start) == Some(&b'.') {
        start += 1;
    }
    start
}

/// The end of the domain that starts at `from`, if it is one: labels
/// separated by dots, the last one (the TLD) of 2 or more letters.
fn domain_end(b: &[u8], from: usize) -> Option<usize> {
    let mut end = run_end(b, from, |c| {
        c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
    });
    // A dot or dash right after the address is punctuation: "write to a@b.org."
    while end > from && matches!(b.get(end - 1), Some(b'.' | b'-')) {
        end -= 1;
    }
    let domain = b.get(from..end)?;
    let tld = domain.split(|&c| c == b'.').next_back()?;
    let valid = domain.contains(&b'.')
        && domain.split(|&c| c == b'.').all(|label| !label.is_empty())
        && tld.len() >= 2
        && tld.iter().all(u8::is_ascii_alphabetic);
    valid.then_some(end)
}

// ---------------------------------------------------------------------------
// Rule 4: secret-looking tokens.

/// A token format: the end of the token that starts at the given byte, if
/// one does.
type TokenMatcher = fn(&[u8], usize) -> Option<usize>;

/// Every format a secret is recognized by.
const TOKEN_MATCHERS: [TokenMatcher; 7] = [
    github_token,
    gitlab_token,
    slack_token,
    aws_key_id,
    jwt,
    hex_run,
    base64_run,
];

/// Every secret-looking token. Where several formats match at the same
/// place, the longest match wins, so no piece of a secret is left behind.
fn secret_tokens(b: &[u8]) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        // Every token starts with a base64 character, and no format starts
        // right after a letter or digit (each checks its own boundary): skip
        // those positions quickly.
        let after_alphanumeric = i
            .checked_sub(1)
            .and_then(|p| b.get(p))
            .is_some_and(u8::is_ascii_alphanumeric);
        if after_alphanumeric || !b.get(i).copied().is_some_and(is_base64) {
            i += 1;
            continue;
        }
        let longest = TOKEN_MATCHERS
            .iter()
            .filter_map(|matches| matches(b, i))
            .max();
        match longest {
            Some(end) if end > i => {
                spans.push(i..end);
                i = end;
            }
            _ => i += 1,
        }
    }
    spans
}

/// GitHub: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and 20+ alphanumerics;
/// `github_pat_` and 20+ of `[A-Za-z0-9_]`.
fn github_token(b: &[u8], i: usize) -> Option<usize> {
    let classic = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"];
    prefixed(b, i, &classic, |c| c.is_ascii_alphanumeric(), 20)
        .or_else(|| prefixed(b, i, &["github_pat_"], is_word_byte, 20))
}

/// GitLab: `glpat-` and 20+ of `[A-Za-z0-9_-]`.
fn gitlab_token(b: &[u8], i: usize) -> Option<usize> {
    prefixed(b, i, &["glpat-"], is_base64url, 20)
}

/// Slack: `xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-` and 10+ of
/// `[A-Za-z0-9-]`.
fn slack_token(b: &[u8], i: usize) -> Option<usize> {
    let prefixes = ["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-"];
    let body = |c: u8| c.is_ascii_alphanumeric() || c == b'-';
    prefixed(b, i, &prefixes, body, 10)
}

/// AWS access key id: `AKIA` or `ASIA` and exactly 16 of `[A-Z0-9]`, not
/// followed by more of a word.
fn aws_key_id(b: &[u8], i: usize) -> Option<usize> {
    let body = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    let end = prefixed(b, i, &["AKIA", "ASIA"], body, 16)?;
    let is_key = end - i == 20 && !b.get(end).copied().is_some_and(is_word_byte);
    is_key.then_some(end)
}

/// JWT: `eyJ…` header, `.`, payload, `.`, signature, all base64url. The
/// signature may be empty: an unsigned token ("alg": "none") ends in a dot.
fn jwt(b: &[u8], i: usize) -> Option<usize> {
    if !at_run_start(b, i, is_base64url) || !b.get(i..)?.starts_with(b"eyJ") {
        return None;
    }
    let header_end = run_end(b, i, is_base64url);
    if header_end - i == "eyJ".len() {
        return None;
    }
    let payload = after_dot(b, header_end)?;
    let payload_end = run_end(b, payload, is_base64url);
    if payload_end == payload {
        return None;
    }
    let signature = after_dot(b, payload_end)?;
    Some(run_end(b, signature, is_base64url))
}

/// A run of 32+ hex digits (a key, a hash, a session id).
fn hex_run(b: &[u8], i: usize) -> Option<usize> {
    let is_hex = |c: u8| c.is_ascii_hexdigit();
    if !at_run_start(b, i, is_hex) {
        return None;
    }
    let end = run_end(b, i, is_hex);
    (end - i >= MIN_SECRET_RUN).then_some(end)
}

/// A run of 32+ base64 or base64url characters with a digit, an uppercase
/// and a lowercase letter: random-looking, unlike a long word or a path
/// (`/usr/lib/x86_64-linux-gnu` has no uppercase).
fn base64_run(b: &[u8], i: usize) -> Option<usize> {
    if !at_run_start(b, i, is_base64) {
        return None;
    }
    let end = run_end(b, i, is_base64);
    let run = b.get(i..end)?;
    let random_looking = run.len() >= MIN_SECRET_RUN
        && run.iter().any(u8::is_ascii_digit)
        && run.iter().any(u8::is_ascii_uppercase)
        && run.iter().any(u8::is_ascii_lowercase);
    random_looking.then_some(end)
}

/// A token that starts at `i` with one of `prefixes`, not in the middle of a
/// longer word, followed by `min` or more bytes of `body`: its end.
fn prefixed(
    b: &[u8],
    i: usize,
    prefixes: &[&str],
    body: fn(u8) -> bool,
    min: usize,
) -> Option<usize> {
    if !at_run_start(b, i, is_word_byte) {
        return None;
    }
    let rest = b.get(i..)?;
    let prefix = prefixes
        .iter()
        .find(|prefix| rest.starts_with(prefix.as_bytes()))?;
    let body_start = i + prefix.len();
    let end = run_end(b, body_start, body);
    (end - body_start >= min).then_some(end)
}

/// The position after the dot at `pos`, if there is one.
fn after_dot(b: &[u8], pos: usize) -> Option<usize> {
    (b.get(pos) == Some(&b'.')).then_some(pos + 1)
}

/// `[A-Za-z0-9_]`: a byte that continues a word, for the token boundaries.
fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `[A-Za-z0-9+/_=-]`: the base64 and base64url alphabets together.
fn is_base64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'_' | b'=' | b'-')
}

/// `[A-Za-z0-9_-]`: the base64url alphabet (without padding).
fn is_base64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

// ---------------------------------------------------------------------------
// Rule 5: the home directory.

/// Every place where `home` is a path prefix: followed by the end, a
/// separator or anything that does not continue a file name, so that
/// `/home/alice2` is not `~2`. It is replaced anywhere, also inside a longer
/// path or a `file://` URL: wherever it appears, it names the user. `/` and
/// `\` match each other (`C:\Users\alice` is also written `C:/Users/alice`).
fn home_paths(b: &[u8], home: &[u8]) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    if home.is_empty() {
        return spans;
    }
    let mut i = 0;
    while i + home.len() <= b.len() {
        let end = i + home.len();
        if same_path_at(b, i, home) && !continues_file_name(b, end) {
            spans.push(i..end);
            i = end;
        } else {
            i += 1;
        }
    }
    spans
}

/// Whether `b` holds `path` at `i`, a separator matching either separator.
fn same_path_at(b: &[u8], i: usize, path: &[u8]) -> bool {
    let is_separator = |c: u8| c == b'/' || c == b'\\';
    path.iter().enumerate().all(|(k, &expected)| {
        b.get(i + k)
            .is_some_and(|&c| c == expected || (is_separator(c) && is_separator(expected)))
    })
}

/// Whether the file name goes on at `pos`: a letter, digit, `_`, `-`, any
/// non-ASCII character, or a dot followed by one of those (`alice.bak`; a
/// dot at the end of a sentence does not continue the name).
fn continues_file_name(b: &[u8], pos: usize) -> bool {
    let is_name_byte = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || !c.is_ascii();
    match b.get(pos) {
        Some(b'.') => b.get(pos + 1).copied().is_some_and(is_name_byte),
        Some(&c) => is_name_byte(c),
        None => false,
    }
}

// ---------------------------------------------------------------------------
// Rule 6: the user name.

/// Every place where `word` is a whole word, case-sensitively: not touching
/// a letter, digit, `_` or `-` on either side, so `alice2`, `malice` and
/// `alice_x` are other words. A dot joins words only between two word
/// characters (`alice.bak`, `bob.alice`); at the end of a sentence
/// (`user alice.`) it is punctuation.
fn whole_words(text: &str, word: &str) -> Vec<Range<usize>> {
    let (b, w) = (text.as_bytes(), word.as_bytes());
    let mut spans = Vec::new();
    if w.is_empty() {
        return spans;
    }
    let mut i = 0;
    while i + w.len() <= b.len() {
        let end = i + w.len();
        // A valid UTF-8 `word` can only match on character boundaries.
        if b.get(i..end) == Some(w) && !joined_before(text, i) && !joined_after(text, end) {
            spans.push(i..end);
            i = end;
        } else {
            i += 1;
        }
    }
    spans
}

/// Whether the text before `pos` continues the word that starts there.
fn joined_before(text: &str, pos: usize) -> bool {
    let mut before = text.get(..pos).unwrap_or_default().chars().rev();
    joins(before.next(), before.next())
}

/// Whether the text from `pos` on continues the word that ends there.
fn joined_after(text: &str, pos: usize) -> bool {
    let mut after = text.get(pos..).unwrap_or_default().chars();
    joins(after.next(), after.next())
}

/// Whether `next`, then `beyond` (read away from the word), continue it.
fn joins(next: Option<char>, beyond: Option<char>) -> bool {
    let is_word_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    match next {
        Some('.') => beyond.is_some_and(is_word_char),
        Some(c) => is_word_char(c),
        None => false,
    }
}

// ---------------------------------------------------------------------------
// Rule 7: the length.

/// The longest prefix of `text` of at most [`MAX_LEN`] bytes that ends on a
/// character boundary.
fn truncate(text: String) -> String {
    if text.len() <= MAX_LEN {
        return text;
    }
    let mut cut = String::with_capacity(MAX_LEN);
    for c in text.chars() {
        if cut.len() + c.len_utf8() > MAX_LEN {
            break;
        }
        cut.push(c);
    }
    cut
}

// ---------------------------------------------------------------------------
// Shared scanning helpers.

/// `input` with each of `spans` (sorted, disjoint, non-empty byte ranges)
/// replaced by `with`. It walks characters and never slices, so even a
/// range that is not on a character boundary cannot make it panic.
fn replace_spans(input: String, spans: &[Range<usize>], with: &str) -> String {
    if spans.is_empty() {
        return input;
    }
    let mut out = String::with_capacity(input.len());
    let mut spans = spans.iter().peekable();
    let mut skip_until = 0;
    for (i, c) in input.char_indices() {
        if i < skip_until {
            continue;
        }
        if let Some(span) = spans.next_if(|span| span.start <= i) {
            out.push_str(with);
            skip_until = span.end;
            if i < span.end {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// The first position of `needle` in `b` at or after `from`.
fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let position = b
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)?;
    Some(from + position)
}

/// The end of the run of `in_run` bytes that starts at `from`.
fn run_end(b: &[u8], from: usize, in_run: impl Fn(u8) -> bool) -> usize {
    let mut end = from;
    while b.get(end).copied().is_some_and(&in_run) {
        end += 1;
    }
    end
}

/// Whether a run of `in_run` bytes may start at `i`: the byte before is not
/// one of them, so a match never starts in the middle of a longer run.
fn at_run_start(b: &[u8], i: usize, in_run: impl Fn(u8) -> bool) -> bool {
    let before = i.checked_sub(1).and_then(|p| b.get(p)).copied();
    !before.is_some_and(in_run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The scrubber of a Linux user "alice".
    fn alice() -> Scrubber {
        Scrubber::new(Some("/home/alice"), Some("alice"))
    }

    /// Asserts that `input` scrubs to `expected`, for alice.
    #[track_caller]
    fn check(input: &str, expected: &str) {
        assert_eq!(alice().scrub(input), expected, "input: {input:?}");
    }

    /// Asserts that `input` comes out unchanged, for alice.
    #[track_caller]
    fn unchanged(input: &str) {
        check(input, input);
    }

    const GITHUB_TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
                       eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.\
                       SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    // Rule 1 ----------------------------------------------------------------

    #[test]
    fn control_characters_are_removed_and_line_breaks_become_spaces() {
        check(
            "line 1\nline 2\r\n\tat main.rs",
            "line 1 line 2   at main.rs",
        );
        check(
            "\u{1b}[31merror\u{1b}[0m: bad\u{0}\u{7f}\u{85} input",
            "[31merror[0m: bad input",
        );
    }

    #[test]
    fn a_control_character_cannot_split_a_secret() {
        let split = format!("token {}\u{0}{}", &GITHUB_TOKEN[..10], &GITHUB_TOKEN[10..]);
        check(&split, "token <redacted>");
    }

    // Rule 2 ----------------------------------------------------------------

    #[test]
    fn url_credentials_are_redacted_keeping_scheme_and_host() {
        check(
            &format!("clone https://alice:{GITHUB_TOKEN}@github.com/org/repo failed"),
            "clone https://<redacted>@github.com/org/repo failed",
        );
        check(
            "git fetch git+ssh://deploy-key@gitlab.example.com:2222/group/app.git: refused",
            "git fetch git+ssh://<redacted>@gitlab.example.com:2222/group/app.git: refused",
        );
        check(
            "GET http://u:p@ss@proxy:8080?x=1",
            "GET http://<redacted>@proxy:8080?x=1",
        );
        check("'https://x-token:abc@host'", "'https://<redacted>@host'");
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        unchanged("GET https://github.com/org/repo/releases/latest: 404 Not Found");
        unchanged("see https://example.com/@user/post and ftp://mirror/pub");
        unchanged("https://@host/path");
    }

    // Rule 3 ----------------------------------------------------------------

    #[test]
    fn emails_are_redacted() {
        check("contact alice@example.com.", "contact <redacted>.");
        check(
            "author: <Jane.Doe+ci@mail.example.co.uk>",
            "author: <<redacted>>",
        );
        check(
            "git@github.com: Permission denied (publickey)",
            "<redacted>: Permission denied (publickey)",
        );
        check("a@b.io,c@d.org", "<redacted>,<redacted>");
    }

    #[test]
    fn things_that_are_not_emails_are_unchanged() {
        unchanged("image devsy@sha256 not found");
        unchanged("root@localhost refused");
        unchanged("x @ y.com and @decorator and a@b.c");
    }

    // Rule 4 ----------------------------------------------------------------

    #[test]
    fn github_tokens_are_redacted() {
        check(
            &format!("bad credentials: {GITHUB_TOKEN}"),
            "bad credentials: <redacted>",
        );
        for prefix in ["gho_", "ghu_", "ghs_", "ghr_"] {
            check(
                &format!("token {prefix}abcdefghijklmnopqrstuvwx rejected"),
                "token <redacted> rejected",
            );
        }
        check(
            "push failed: github_pat_11ABCDEFG0abcdefghij_klmnopqrstuvwxyz",
            "push failed: <redacted>",
        );
        // `_` and `=` are base64 characters: a variable's name goes with its value.
        check(
            "GITHUB_TOKEN=github_pat_11ABCDEFG0abcdefghij_klmnopqrstuvwxyz",
            "<redacted>",
        );
    }

    #[test]
    fn gitlab_and_slack_tokens_are_redacted() {
        check("401 for glpat-zzzzzzzzzzzzzzzzzzzz", "401 for <redacted>");
        check(
            "slack: invalid_auth (xoxb-1234567890-abcdefghij)",
            "slack: invalid_auth (<redacted>)",
        );
        check("token=xoxp-zzzzzzzzzz", "token=<redacted>");
    }

    #[test]
    fn aws_key_ids_are_redacted() {
        check(
            "InvalidClientTokenId: AKIAIOSFODNN7EXAMPLE is not valid",
            "InvalidClientTokenId: <redacted> is not valid",
        );
        check("key ASIAY34FZKBOKMUTVV7A expired", "key <redacted> expired");
    }

    #[test]
    fn jwts_are_redacted() {
        check(
            &format!("401: token {JWT} expired"),
            "401: token <redacted> expired",
        );
        check(
            "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0. rejected",
            "Bearer <redacted> rejected",
        );
    }

    #[test]
    fn long_hex_runs_are_redacted() {
        check(
            "fatal: reference is not a tree: 3f786850e387550fdab836ed7e6dc881de23001b",
            "fatal: reference is not a tree: <redacted>",
        );
        check(
            "pull sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855 failed",
            "pull sha256:<redacted> failed",
        );
    }

    #[test]
    fn random_looking_base64_runs_are_redacted() {
        check(
            "decode failed for wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY: bad padding",
            "decode failed for <redacted>: bad padding",
        );
        check(
            "secret Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MEFCQ0RFRg== leaked",
            "secret <redacted> leaked",
        );
    }

    #[test]
    fn things_that_are_not_secrets_are_unchanged() {
        unchanged("object deadbeef not found; commit 3f78685 is short");
        unchanged("supercalifragilisticexpialidocious is a long word");
        unchanged("container 550e8400-e29b-41d4-a716-446655440000 not found");
        unchanged("cannot load /usr/local/lib/x86_64-linux-gnu/libssl.so.3");
        unchanged("the ghp_ prefix and AKIA alone are fine, so is eyJ.x.y");
    }

    #[test]
    fn tokens_in_the_middle_of_a_longer_word_are_not_matched() {
        // Lowercase bodies, so that the base64 rule does not catch them either.
        let z = |n: usize| "z".repeat(n);
        check(&format!("ghp_{}", z(20)), "<redacted>");
        unchanged(&format!(
            "myghp_{} noglpat-{} ghp_{} is one short",
            z(24),
            z(20),
            z(19)
        ));
        unchanged("xAKIAIOSFODNN7EXAMPLE and AKIAIOSFODNN7EXAMPLEX and AKIAIOSFODNN7EXAMPLEx");
    }

    // Rule 5 ----------------------------------------------------------------

    #[test]
    fn the_home_directory_becomes_a_tilde() {
        check(
            "failed to read /home/alice/.devsy/config.json: permission denied",
            "failed to read ~/.devsy/config.json: permission denied",
        );
        check("HOME is /home/alice.", "HOME is ~.");
        check("cd '/home/alice': no such file", "cd '~': no such file");
        check("open file:///home/alice/x.txt", "open file://~/x.txt");
    }

    #[test]
    fn the_home_is_compared_with_and_without_a_trailing_slash() {
        let scrubber = Scrubber::new(Some("/Users/bob/"), None);
        assert_eq!(
            scrubber.scrub("/Users/bob/Library and /Users/bob"),
            "~/Library and ~"
        );
    }

    #[test]
    fn a_windows_home_matches_either_separator() {
        let scrubber = Scrubber::new(Some(r"C:\Users\bob"), None);
        assert_eq!(
            scrubber.scrub(r"C:\Users\bob\AppData\devsy and C:/Users/bob/.devsy"),
            r"~\AppData\devsy and ~/.devsy"
        );
    }

    #[test]
    fn a_longer_name_than_the_home_is_not_the_home() {
        unchanged("failed to read /home/alice2/x: not found");
        unchanged("/home/alice.bak/x and /home/alice_old and /home/alice-2");
        unchanged("failed to read /home/bob/.devsy/config.json and /var/lib/devsy");
    }

    // Rule 6 ----------------------------------------------------------------

    #[test]
    fn the_user_name_becomes_a_placeholder() {
        check(
            "user alice is not in the docker group",
            "user <user> is not in the docker group",
        );
        check(
            "owner (alice), not root: alice.",
            "owner (<user>), not root: <user>.",
        );
        check(
            "/srv/alice/app and C:\\alice",
            "/srv/<user>/app and C:\\<user>",
        );
    }

    #[test]
    fn the_user_name_inside_a_longer_word_is_kept() {
        unchanged("malice alice2 alice_x alice-x x-alice alice.bak bob.alice Alice ALICE");
    }

    #[test]
    fn the_home_goes_before_the_user_name() {
        check("/home/alice/alice.txt", "~/alice.txt");
        check("/home/alice/alice", "~/<user>");
    }

    // Rule 7 and the whole ----------------------------------------------------

    #[test]
    fn the_output_is_cut_at_max_len_on_a_char_boundary() {
        assert_eq!(alice().scrub(&"z".repeat(2 * MAX_LEN)).len(), MAX_LEN);
        let euros = alice().scrub(&"€".repeat(MAX_LEN)); // 3 bytes each
        assert_eq!(euros.len(), MAX_LEN / 3 * 3);
        assert!(euros.chars().all(|c| c == '€'));
    }

    #[test]
    fn a_secret_across_the_limit_is_redacted_before_the_cut() {
        let input = format!("{} {GITHUB_TOKEN}", "x ".repeat((MAX_LEN - 10) / 2));
        let out = alice().scrub(&input);
        assert!(out.len() <= MAX_LEN);
        assert!(!out.contains("ghp_"), "{out}");
    }

    #[test]
    fn ordinary_messages_are_unchanged() {
        unchanged("provider 'docker' does not exist");
        unchanged("error: unexpected argument '--foo' found; usage: devsy up <source>");
        unchanged("connection refused (os error 111) after 3 retries, 2.5s");
        unchanged("");
    }

    #[test]
    fn missing_or_empty_home_and_user_skip_their_rules() {
        let input = "/home/alice/x alice";
        for scrubber in [
            Scrubber::default(),
            Scrubber::new(None, None),
            Scrubber::new(Some(""), Some("")),
            Scrubber::new(Some("/"), Some(" ")),
        ] {
            assert_eq!(scrubber.scrub(input), input, "{scrubber:?}");
        }
    }

    #[test]
    fn pathological_inputs_take_linear_time() {
        // Each would take many seconds with a quadratic scan.
        let n = 30_000;
        for piece in [
            "@",
            "a@",
            "a.",
            "://",
            "://@",
            "eyJ.",
            "eyJa.",
            "ghp_",
            "glpat-",
            "a",
            "A1",
            "/home/alice",
            "alice",
        ] {
            let out = alice().scrub(&piece.repeat(n / piece.len()));
            assert!(out.len() <= MAX_LEN);
        }
    }

    // Properties ------------------------------------------------------------

    /// Up to `max` characters, mixing those that the rules look for with
    /// arbitrary ones (control characters included).
    fn tricky_text(max: usize) -> impl Strategy<Value = String> {
        let tricky = prop::sample::select(vec![
            '@', ':', '/', '\\', '.', '-', '_', '=', '+', 'e', 'y', 'J', 'g', 'h', 'p', 'A', 'K',
            'I', 'a', 'l', 'i', 'c', '0', 'f', ' ', '\n', '\0', '\u{7f}', 'é', '€', '😀',
        ]);
        prop::collection::vec(prop_oneof![3 => tricky, 1 => any::<char>()], 0..=max)
            .prop_map(String::from_iter)
    }

    /// Any input at all, control characters included, often longer than
    /// [`MAX_LEN`].
    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,400}",
            prop::collection::vec(any::<char>(), 0..1200).prop_map(String::from_iter),
            tricky_text(MAX_LEN + 200),
        ]
    }

    /// Any scrubber, with a home and user that sometimes match the input.
    fn any_scrubber() -> impl Strategy<Value = Scrubber> {
        let part = prop_oneof![
            Just(None),
            Just(Some(String::new())),
            "\\PC{0,8}".prop_map(Some),
            tricky_text(6).prop_map(Some),
        ];
        (part.clone(), part)
            .prop_map(|(home, user)| Scrubber::new(home.as_deref(), user.as_deref()))
    }

    /// A user name, and a home directory on Linux or macOS.
    fn name_and_home() -> impl Strategy<Value = (String, String)> {
        (
            "[a-z][a-z0-9]{2,11}",
            prop::sample::select(vec!["/home/", "/Users/"]),
        )
            .prop_map(|(name, root)| (name.clone(), format!("{root}{name}")))
    }

    /// An ordinary word, with some punctuation but no separator of a path,
    /// URL or e-mail.
    fn filler_word() -> impl Strategy<Value = String> {
        "[a-z0-9,:'()=]{1,8}"
    }

    /// Whether `word` is in `text` as a whole word, as rule 6 defines it. The
    /// placeholders themselves (`<user>` when the name is "user") do not count.
    fn has_word(text: &str, word: &str) -> bool {
        let text = text.replace(USER, " ").replace(REDACTED, " ");
        text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .any(|piece| piece.trim_matches('.') == word)
    }

    /// A secret in one of the formats of rule 4.
    fn secret() -> impl Strategy<Value = String> {
        let classic = (
            prop::sample::select(vec!["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]),
            "[A-Za-z0-9]{20,40}",
        )
            .prop_map(|(prefix, body)| format!("{prefix}{body}"));
        let slack = (
            prop::sample::select(vec!["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-"]),
            "[A-Za-z0-9-]{10,40}",
        )
            .prop_map(|(prefix, body)| format!("{prefix}{body}"));
        let aws = (prop::sample::select(vec!["AKIA", "ASIA"]), "[A-Z0-9]{16}")
            .prop_map(|(prefix, body)| format!("{prefix}{body}"));
        let jwt = (
            "[A-Za-z0-9_-]{5,40}",
            "[A-Za-z0-9_-]{1,60}",
            "[A-Za-z0-9_-]{0,43}",
        )
            .prop_map(|(header, payload, signature)| format!("eyJ{header}.{payload}.{signature}"));
        let base64 = "[A-Za-z0-9+/_=-]{32,64}".prop_filter("digit, upper and lower", |run| {
            run.bytes().any(|c| c.is_ascii_digit())
                && run.bytes().any(|c| c.is_ascii_uppercase())
                && run.bytes().any(|c| c.is_ascii_lowercase())
        });
        prop_oneof![
            classic,
            "github_pat_[A-Za-z0-9_]{20,82}",
            "glpat-[A-Za-z0-9_-]{20,30}",
            slack,
            aws,
            jwt,
            "[0-9a-fA-F]{32,64}",
            base64,
        ]
    }

    /// Words, some of them the user name or a path in the home directory,
    /// with the punctuation of a message around them: the name, the home and
    /// the text.
    fn text_with_name_and_home() -> impl Strategy<Value = (String, String, String)> {
        name_and_home().prop_flat_map(|(name, home)| {
            let named = (
                prop::sample::select(vec!["", "'", "\"", "(", "user=", "~"]),
                prop::sample::select(vec!["", "'", "\"", ")", ":", ",", "."]),
            )
                .prop_map({
                    let name = name.clone();
                    move |(before, after)| format!("{before}{name}{after}")
                });
            let in_home = (
                prop::sample::select(vec!["", "'", "--dir=", "file://"]),
                prop::sample::select(vec![
                    "",
                    "/",
                    "/.devsy/config.json",
                    "/src/app",
                    "\\x",
                    ":",
                    ".",
                    "'",
                ]),
            )
                .prop_map({
                    let home = home.clone();
                    move |(before, after)| format!("{before}{home}{after}")
                });
            let words = prop::collection::vec(
                prop_oneof![3 => filler_word(), 1 => named, 1 => in_home],
                1..20,
            );
            (
                Just(name),
                Just(home),
                words.prop_map(|words| words.join(" ")),
            )
        })
    }

    /// Words, some of them secrets: each word, and whether it is a secret.
    fn words_and_secrets() -> impl Strategy<Value = Vec<(String, bool)>> {
        prop::collection::vec(
            prop_oneof![
                2 => filler_word().prop_map(|word| (word, false)),
                1 => secret().prop_map(|secret| (secret, true)),
            ],
            1..20,
        )
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_within_max_len(scrubber in any_scrubber(), input in any_text()) {
            let out = scrubber.scrub(&input);
            prop_assert!(out.len() <= MAX_LEN);
        }

        #[test]
        fn no_control_character_remains(scrubber in any_scrubber(), input in any_text()) {
            let out = scrubber.scrub(&input);
            prop_assert!(!out.chars().any(char::is_control), "{:?}", out);
        }

        #[test]
        fn neither_the_home_nor_the_user_name_remains((name, home, text) in text_with_name_and_home()) {
            let out = Scrubber::new(Some(&home), Some(&name)).scrub(&text);
            prop_assert!(!out.contains(&home), "{:?} -> {:?}", text, out);
            prop_assert!(!has_word(&out, &name), "{:?} -> {:?}", text, out);
        }

        #[test]
        fn no_secret_remains(words in words_and_secrets()) {
            let text = words.iter().map(|(word, _)| word.as_str()).collect::<Vec<_>>().join(" ");
            let out = Scrubber::default().scrub(&text);
            for (secret, _) in words.iter().filter(|(_, is_secret)| *is_secret) {
                prop_assert!(!out.contains(secret.as_str()), "{:?} -> {:?}", text, out);
            }
        }

        #[test]
        fn ordinary_words_are_unchanged(words in prop::collection::vec("[a-z0-9,.:;'()!?-]{1,12}", 0..20)) {
            // No uppercase letter, '@', '/' or run of 32: nothing to scrub.
            let text = words.join(" ");
            prop_assert_eq!(Scrubber::default().scrub(&text), text);
        }
    }
}
