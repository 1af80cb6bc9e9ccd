//! A cheap monotonic clock, a few milliseconds coarse, for one question
//! only: was a successful command slow? A quick success sends nothing but
//! its start event, so its end needs no precise reading; the precise clock
//! (about 27 ns a reading on a VM, against a few for this one) is read only
//! when a duration will be sent.
//!
//! On Linux and FreeBSD this is `CLOCK_MONOTONIC_COARSE`, read through the
//! vDSO by `rustix`; elsewhere it falls back to [`Instant`], which is
//! correct, only not cheaper.

use std::time::Duration;

/// Well above the coarse clock's resolution (a scheduler tick: 1 to 10 ms):
/// a command whose coarse duration is shorter than the slow threshold by
/// this much was not slow.
pub(crate) const MARGIN: Duration = Duration::from_millis(50);

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
mod imp {
    use std::time::Duration;

    use rustix::time::{ClockId, clock_gettime};

    /// A reading of `CLOCK_MONOTONIC_COARSE`.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct CoarseInstant(Duration);

    impl CoarseInstant {
        #[inline]
        pub(crate) fn now() -> Self {
            let t = clock_gettime(ClockId::MonotonicCoarse);
            let secs = u64::try_from(t.tv_sec).unwrap_or(0);
            let nanos = u32::try_from(t.tv_nsec).unwrap_or(0);
            Self(Duration::new(secs, nanos))
        }

        #[inline]
        pub(crate) fn elapsed(self) -> Duration {
            Self::now().0.saturating_sub(self.0)
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
mod imp {
    use std::time::{Duration, Instant};

    /// Without a coarse clock, the precise one.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct CoarseInstant(Instant);

    impl CoarseInstant {
        #[inline]
        pub(crate) fn now() -> Self {
            Self(Instant::now())
        }

        #[inline]
        pub(crate) fn elapsed(self) -> Duration {
            self.0.elapsed()
        }
    }
}

pub(crate) use imp::CoarseInstant;

/// True if a command started at `started` certainly ran for less than
/// `threshold`, judged by the coarse clock. `false` means "read the precise
/// clock to know".
#[inline]
pub(crate) fn surely_shorter(started: CoarseInstant, threshold: Duration) -> bool {
    started.elapsed() < threshold.saturating_sub(MARGIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quick_span_is_surely_shorter_than_the_threshold() {
        let started = CoarseInstant::now();
        assert!(surely_shorter(started, Duration::from_secs(10)));
    }

    #[test]
    fn a_threshold_within_the_margin_always_asks_the_precise_clock() {
        let started = CoarseInstant::now();
        assert!(!surely_shorter(started, MARGIN));
        assert!(!surely_shorter(started, Duration::ZERO));
    }

    #[test]
    fn the_coarse_clock_moves_forward() {
        let started = CoarseInstant::now();
        std::thread::sleep(Duration::from_millis(60));
        assert!(started.elapsed() >= Duration::from_millis(40));
        assert!(!surely_shorter(started, Duration::from_millis(100)));
    }
}
