//! One batch's states, and the moves between them. Each move settles the
//! batch's events in [`Stats`](crate::Stats) exactly once: a batch of this
//! run is counted when it is delivered, refused, dropped or kept in the
//! spool; a batch read back from the spool was counted by the run that
//! kept it, and is counted again only in the `spool_*` counts.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use crate::queue::{Settled, Shared, SpoolCount};
use crate::spool::{Entry, Spool};

/// A batch waiting to be sent.
#[derive(Debug)]
pub(crate) enum Batch {
    /// This run's, in memory only. Registered with [`Shared::lend`] under
    /// `id`, so that the exit can keep it; whoever reclaims it settles it.
    Memory {
        id: u64,
        body: Arc<Vec<u8>>,
        events: usize,
    },
    /// This run's, written ahead to the spool as in flight by the exit's
    /// flush ([`Exit::Wait`](crate::Exit::Wait)): other runs leave the file
    /// alone, and it is sent from memory without reading it back.
    Ahead { entry: Entry, body: Arc<Vec<u8>> },
    /// In the spool for any run to send: an earlier run's, or this run's
    /// and already counted as spooled.
    Spooled { entry: Entry },
}

/// How an attempt at a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Delivered,
    /// Refused for good (a 4xx other than 408 and 429).
    Rejected,
    /// Cannot be sent at all (the transport cannot be built).
    Impossible,
}

impl Batch {
    /// A new batch of this run, lent to `shared` where the exit finds it.
    pub(crate) fn fresh(shared: &Shared, body: Vec<u8>, events: usize) -> Self {
        let body = Arc::new(body);
        let id = shared.lend(Arc::clone(&body), events);
        Self::Memory { id, body, events }
    }

    /// A batch an earlier run (or this one) left in the spool.
    pub(crate) fn spooled(entry: Entry) -> Self {
        Self::Spooled { entry }
    }

    pub(crate) fn events(&self) -> usize {
        match self {
            Self::Memory { events, .. } => *events,
            Self::Ahead { entry, .. } | Self::Spooled { entry } => entry.events,
        }
    }

    pub(crate) fn is_memory(&self) -> bool {
        matches!(self, Self::Memory { .. })
    }

    /// The request body: `None` for a spool file that turned out corrupt
    /// (removed, and counted).
    pub(crate) fn body(&self, shared: &Shared) -> Option<Cow<'_, [u8]>> {
        match self {
            Self::Memory { body, .. } | Self::Ahead { body, .. } => Some(Cow::Borrowed(body)),
            Self::Spooled { entry } => {
                let body = Spool::read(entry).map(Cow::Owned);
                if body.is_none() {
                    shared.count_spool(SpoolCount::CorruptFiles, 1);
                }
                body
            }
        }
    }

    /// Memory → Ahead: on disk as in flight before it is sent, so that a
    /// process that ends mid-request leaves it for the next run. `None`
    /// when the exit took the batch meanwhile.
    pub(crate) fn write_ahead(self, shared: &Shared) -> Option<Self> {
        let Self::Memory { id, body, events } = self else {
            return Some(self);
        };
        match shared.store_lent(id, || write(shared, &body, events, true)) {
            None => None,
            Some(Ok(entry)) => Some(Self::Ahead { entry, body }),
            // No spool, or it cannot be written: stays in memory.
            Some(Err(())) => Some(Self::Memory { id, body, events }),
        }
    }

    /// Memory | Ahead → Spooled, counted as spooled: it waits in the spool
    /// for any run to send. `Err` with the batch unchanged when the spool
    /// cannot take it (none, unwritable, or telemetry was disabled); `None`
    /// when the exit took the batch meanwhile.
    pub(crate) fn keep(self, shared: &Shared) -> Result<Option<Self>, Self> {
        match self {
            Self::Memory { id, body, events } => {
                match shared.store_lent(id, || write(shared, &body, events, false)) {
                    None => Ok(None),
                    Some(Ok(entry)) => {
                        shared.settle(Settled::Spooled, events);
                        Ok(Some(Self::Spooled { entry }))
                    }
                    Some(Err(())) => Err(Self::Memory { id, body, events }),
                }
            }
            Self::Ahead { entry, body } => match shared.with_spool(|spool| spool.publish(&entry)) {
                Some(Ok(published)) => {
                    shared.settle(Settled::Spooled, published.events);
                    Ok(Some(Self::Spooled { entry: published }))
                }
                _ => Err(Self::Ahead { entry, body }),
            },
            Self::Spooled { .. } => Ok(Some(self)),
        }
    }

    /// An attempt ended for good: the batch leaves the backlog, counted.
    /// One that cannot be sent at all stays on disk for a run that can.
    pub(crate) fn finish(self, shared: &Shared, outcome: Outcome) {
        let settled = match outcome {
            Outcome::Delivered => Settled::Delivered,
            Outcome::Rejected => Settled::Rejected,
            Outcome::Impossible => Settled::Failed,
        };
        match self {
            Self::Memory { id, events, .. } => {
                if shared.reclaim(id) {
                    shared.settle(settled, events);
                }
            }
            Self::Ahead { entry, .. } => {
                if outcome == Outcome::Impossible {
                    let _ = shared.with_spool(|spool| spool.publish(&entry));
                } else {
                    Spool::remove(&entry);
                }
                shared.settle(settled, entry.events);
            }
            Self::Spooled { entry } => match outcome {
                Outcome::Delivered => {
                    Spool::remove(&entry);
                    shared.count_spool(SpoolCount::Delivered, entry.events);
                }
                Outcome::Rejected => {
                    Spool::remove(&entry);
                    shared.count_spool(SpoolCount::Rejected, entry.events);
                }
                Outcome::Impossible => {}
            },
        }
    }

    /// The batch leaves the backlog unsent and unkept: this run's events
    /// are counted `how` (discarded after `disable()`, whose spool deletion
    /// took the files too; failed when the in-memory backlog is full).
    pub(crate) fn abandon(self, shared: &Shared, how: Settled) {
        match self {
            Self::Memory { id, events, .. } => {
                if shared.reclaim(id) {
                    shared.settle(how, events);
                }
            }
            Self::Ahead { entry, .. } => {
                Spool::remove(&entry);
                shared.settle(how, entry.events);
            }
            Self::Spooled { .. } => {}
        }
    }

    /// Whether its spool file is gone (removed by the spool's limits).
    pub(crate) fn vanished(&self) -> bool {
        match self {
            Self::Memory { .. } => false,
            Self::Ahead { entry, .. } | Self::Spooled { entry } => !entry.path.exists(),
        }
    }
}

/// Writes a batch to the spool, unless there is none, it cannot be
/// written, or telemetry was disabled.
fn write(shared: &Shared, body: &[u8], events: usize, inflight: bool) -> Result<Entry, ()> {
    match shared.with_spool(|spool| spool.write(body, events, SystemTime::now(), inflight)) {
        Some(Ok(entry)) => Ok(entry),
        Some(Err(_)) | None => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::queue::test_shared;

    const BODY: &[u8] = br#"{"data":[{"n":1},{"n":2}]}"#;

    fn spool_files(shared: &Shared) -> usize {
        shared
            .config
            .spool
            .as_ref()
            .map_or(0, |spool| spool.entries().0.len())
    }

    #[test]
    fn memory_delivered_is_counted_once_and_leaves_the_registry() {
        let (shared, _dir) = test_shared();
        let batch = Batch::fresh(&shared, BODY.to_vec(), 2);
        batch.finish(&shared, Outcome::Delivered);
        let stats = shared.stats();
        assert_eq!(stats.delivered, 2);
        let (_, unsent) = shared.take_undelivered();
        assert!(unsent.is_empty(), "a delivered batch stays registered");
    }

    #[test]
    fn memory_kept_becomes_spooled_and_owns_nothing_more() {
        let (shared, _dir) = test_shared();
        let batch = Batch::fresh(&shared, BODY.to_vec(), 2);
        let Ok(Some(kept)) = batch.keep(&shared) else {
            panic!("the spool is writable");
        };
        assert!(matches!(kept, Batch::Spooled { .. }));
        assert_eq!(shared.stats().spooled, 2);
        assert_eq!(spool_files(&shared), 1);
        // Delivered later: counted as the spool's, not again as this run's.
        kept.finish(&shared, Outcome::Delivered);
        let stats = shared.stats();
        assert_eq!(
            (stats.spooled, stats.delivered, stats.spool_delivered),
            (2, 0, 2)
        );
        assert_eq!(spool_files(&shared), 0);
    }

    #[test]
    fn a_batch_the_exit_took_is_not_settled_again() {
        let (shared, _dir) = test_shared();
        let batch = Batch::fresh(&shared, BODY.to_vec(), 2);
        let (_, unsent) = shared.take_undelivered();
        assert_eq!(unsent.len(), 1, "the exit finds the batch");
        shared.settle(Settled::Spooled, unsent[0].events);
        assert!(matches!(batch.keep(&shared), Ok(None)));
        assert_eq!(spool_files(&shared), 0, "written twice");
        assert_eq!(shared.stats().spooled, 2);
    }

    #[test]
    fn ahead_is_invisible_to_other_runs_until_kept() {
        let (shared, _dir) = test_shared();
        let batch = Batch::fresh(&shared, BODY.to_vec(), 2)
            .write_ahead(&shared)
            .expect("not taken by the exit");
        assert!(matches!(batch, Batch::Ahead { .. }));
        assert_eq!(
            spool_files(&shared),
            0,
            "in flight: other runs leave it alone"
        );
        assert_eq!(shared.stats().spooled, 0);
        let Ok(Some(kept)) = batch.keep(&shared) else {
            panic!("published");
        };
        assert!(matches!(kept, Batch::Spooled { .. }));
        assert_eq!(spool_files(&shared), 1);
        assert_eq!(shared.stats().spooled, 2);
    }

    #[test]
    fn after_disable_nothing_is_written_and_this_runs_events_are_discarded() {
        let (shared, _dir) = test_shared();
        let batch = Batch::fresh(&shared, BODY.to_vec(), 2);
        let ahead = Batch::fresh(&shared, BODY.to_vec(), 2);
        shared.disable();
        // `disable` took and settled the lent batch: nothing is written.
        assert!(
            matches!(batch.keep(&shared), Ok(None)),
            "written after disable"
        );
        // Abandoning what `disable` already settled does not count it twice.
        ahead.abandon(&shared, Settled::Discarded);
        assert_eq!(spool_files(&shared), 0);
        assert_eq!(shared.stats().discarded, 4);
    }

    #[test]
    fn a_batch_that_cannot_be_written_stays_lent_for_the_exit() {
        let (shared, dir) = test_shared();
        // The spool's directory is a file: every write fails.
        std::fs::write(dir.path().join(crate::spool::SPOOL_DIR), "a file").expect("write");
        let batch = Batch::fresh(&shared, BODY.to_vec(), 2);
        let Err(batch) = batch.keep(&shared) else {
            panic!("kept in a spool that cannot be written");
        };
        assert!(batch.is_memory());
        let (_, unsent) = shared.take_undelivered();
        assert_eq!(unsent.len(), 1, "the exit no longer finds it");
    }

    #[test]
    fn a_corrupt_spool_file_has_no_body_and_is_counted() {
        let (shared, _dir) = test_shared();
        let spool = shared.config.spool.clone().expect("a spool");
        let entry = spool
            .write(
                b"not json",
                2,
                SystemTime::now() - Duration::from_secs(1),
                false,
            )
            .expect("written");
        let batch = Batch::spooled(entry);
        assert!(batch.body(&shared).is_none());
        assert_eq!(shared.stats().spool_corrupt_files, 1);
    }
}
