//! The collector's one way to say something on stderr. A write that fails
//! (stderr closed or full) is dropped: logging never panics, so it can
//! never take down the thread that logs, the database writer least of all.

use std::io::Write as _;

/// Writes `devsy-collector: <message>` to stderr, or nothing.
pub fn log(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "devsy-collector: {message}");
}
