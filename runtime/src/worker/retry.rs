//! Whether a failed request may be tried again, and when: the
//! classification of errors, the backoff, and the server's `Retry-After`.
//! The worker and the courier both keep one [`RetryState`].

use std::time::{Duration, Instant, SystemTime};

use crate::spool::Spool;
use crate::transport::TransportError;

/// The first wait after a failure; it doubles up to [`MAX_BACKOFF`].
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(50);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The longest `Retry-After` honoured.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What to do about a batch after one attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Refused for good (a 4xx other than 408 and 429): drop it.
    Rejected,
    /// Cannot be sent at all (the request cannot be built): keep it for a
    /// run that can.
    Impossible,
    /// Try again, not before this.
    RetryAt(Instant),
}

/// The retry state of one sender: failures in a row (for the backoff) and
/// the time before which the server asked not to be sent anything.
#[derive(Debug, Default)]
pub(crate) struct RetryState {
    failures: u32,
    /// The server asked not to be sent anything before this (kept in the
    /// spool across runs).
    not_before: Option<SystemTime>,
}

impl RetryState {
    /// Starts from what earlier runs kept in `spool`, capped.
    pub(crate) fn resume(spool: Option<&Spool>) -> Self {
        let latest = SystemTime::now() + MAX_RETRY_AFTER;
        Self {
            failures: 0,
            not_before: spool.and_then(Spool::not_before).map(|t| t.min(latest)),
        }
    }

    /// How long the server still wants to be left alone, if at all.
    pub(crate) fn server_wait(&self) -> Option<Duration> {
        self.not_before
            .and_then(|t| t.duration_since(SystemTime::now()).ok())
            .filter(|wait| !wait.is_zero())
    }

    /// The current backoff: 50 ms after the first failure, doubling.
    pub(crate) fn backoff(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(20);
        FIRST_BACKOFF
            .saturating_mul(1 << doublings)
            .min(MAX_BACKOFF)
    }

    /// A request was acknowledged: failures and any server wait are over.
    pub(crate) fn succeeded(&mut self, spool: Option<&Spool>) {
        self.failures = 0;
        if self.not_before.take().is_some()
            && let Some(spool) = spool
        {
            spool.clear_not_before();
        }
    }

    /// A request failed with `error`: what to do, and the state for the
    /// next attempt. A `Retry-After` is kept in `spool` for later runs.
    pub(crate) fn failed(&mut self, error: &TransportError, spool: Option<&Spool>) -> Verdict {
        match classify(error) {
            Retry::Never => Verdict::Rejected,
            Retry::Impossible => Verdict::Impossible,
            Retry::After(wait) => {
                // Never sooner than the backoff: a server that keeps
                // answering `Retry-After: 0` is not hammered.
                self.failures = self.failures.saturating_add(1);
                let wait = wait.clamp(self.backoff(), MAX_RETRY_AFTER);
                let until = SystemTime::now() + wait;
                self.not_before = Some(until);
                if let Some(spool) = spool {
                    let _ = spool.set_not_before(until);
                }
                Verdict::RetryAt(Instant::now() + wait)
            }
            Retry::Backoff => {
                self.failures = self.failures.saturating_add(1);
                Verdict::RetryAt(Instant::now() + self.backoff())
            }
        }
    }
}

/// Whether and when a failed request may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Backoff,
    After(Duration),
    Never,
    Impossible,
}

fn classify(error: &TransportError) -> Retry {
    match error {
        TransportError::Status { code, retry_after } => match code {
            429 | 503 => retry_after
                .as_deref()
                .and_then(parse_retry_after)
                .map_or(Retry::Backoff, Retry::After),
            408 | 500..=599 => Retry::Backoff,
            _ => Retry::Never,
        },
        TransportError::Connect(_) | TransportError::Timeout | TransportError::Io(_) => {
            Retry::Backoff
        }
        TransportError::Config(_) => Retry::Impossible,
    }
}

/// `Retry-After`: whole seconds, or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, retry_after: Option<&str>) -> TransportError {
        TransportError::Status {
            code,
            retry_after: retry_after.map(str::to_string),
        }
    }

    #[test]
    fn retry_classes() {
        assert_eq!(classify(&status(500, None)), Retry::Backoff);
        assert_eq!(classify(&status(503, None)), Retry::Backoff);
        assert_eq!(classify(&status(408, None)), Retry::Backoff);
        assert_eq!(classify(&status(429, None)), Retry::Backoff);
        assert_eq!(
            classify(&status(429, Some("7"))),
            Retry::After(Duration::from_secs(7))
        );
        assert_eq!(classify(&status(503, Some("soon"))), Retry::Backoff);
        assert_eq!(classify(&status(400, None)), Retry::Never);
        assert_eq!(classify(&status(413, None)), Retry::Never);
        assert_eq!(classify(&status(301, None)), Retry::Never);
        assert_eq!(classify(&TransportError::Timeout), Retry::Backoff);
        assert_eq!(
            classify(&TransportError::Connect("refused".into())),
            Retry::Backoff
        );
        assert_eq!(
            classify(&TransportError::Config("bad".into())),
            Retry::Impossible
        );
    }

    #[test]
    fn retry_after_as_seconds_or_http_date() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        let in_a_minute = SystemTime::now() + Duration::from_secs(60);
        let wait = parse_retry_after(&httpdate::fmt_http_date(in_a_minute)).expect("an HTTP date");
        assert!(
            wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("later"), None);
    }

    #[test]
    fn the_backoff_doubles_and_a_success_resets_it() {
        let mut state = RetryState::default();
        let error = status(500, None);
        let waits: Vec<Duration> = (0..4)
            .map(|_| {
                state.failed(&error, None);
                state.backoff()
            })
            .collect();
        assert_eq!(
            waits,
            [50, 100, 200, 400].map(Duration::from_millis).to_vec()
        );
        state.succeeded(None);
        assert_eq!(state.backoff(), FIRST_BACKOFF);
    }

    #[test]
    fn a_zero_retry_after_still_backs_off_and_a_refusal_is_final() {
        let mut state = RetryState::default();
        let before = Instant::now();
        let Verdict::RetryAt(at) = state.failed(&status(429, Some("0")), None) else {
            panic!("429 is retried");
        };
        assert!(at >= before + FIRST_BACKOFF);
        assert!(state.server_wait().is_some(), "the server's wait is kept");
        assert_eq!(state.failed(&status(400, None), None), Verdict::Rejected);
        assert_eq!(
            state.failed(&TransportError::Config("x".into()), None),
            Verdict::Impossible
        );
    }
}
