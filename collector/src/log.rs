//! The collector's one way to say something on stderr. A write that fails
//! (stderr closed or full) is dropped: logging never panics, so it can
//! never take down the thread that logs, the database writer least of all.

use std::io::Write as _;
use std::time::{Duration, Instant};

/// Writes `devsy-collector: <message>` to stderr, or nothing.
pub fn log(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "devsy-collector: {message}");
}

/// A message logged at most once per period, with how many times it
/// happened since the last time.
pub struct RateLimited {
    period: Duration,
    last: Option<Instant>,
    count: u64,
}

impl RateLimited {
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            last: None,
            count: 0,
        }
    }

    pub fn log(&mut self, message: impl FnOnce(u64) -> String) {
        self.count += 1;
        if self.last.is_none_or(|last| last.elapsed() >= self.period) {
            log(&message(self.count));
            self.last = Some(Instant::now());
            self.count = 0;
        }
    }
}
