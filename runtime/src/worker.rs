//! The queue between the caller's thread and the background worker, and
//! the flush that holds the exit budget. The worker thread's side, batches,
//! retries and the spool, is in [`delivery`](crate::delivery).
//!
//! The caller's side only moves a small [`Record`] into a bounded queue under
//! a short lock. It never blocks on the worker, never serialises, never reads
//! the machine id, and wakes the worker only when it sleeps without a timer
//! or the queue is half full, so a busy host does not pay a wake-up (which
//! costs more than recording a hundred events) per event or per batch.
//!
//! Every accepted record ends in exactly one counter of [`Stats`]:
//! delivered, spooled (kept on disk for a later run), rejected (by the
//! server), failed (neither delivered nor kept) or discarded (by
//! [`disable`](crate::disable)). Records refused because the queue was full
//! are counted too.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::scrub::Scrubber;
use crate::transport::Transport;

/// Most events in one request.
pub(crate) const BATCH_SIZE: usize = 100;
/// How long the first event of a batch waits for company.
pub(crate) const BATCH_WINDOW: Duration = Duration::from_secs(1);

/// What the caller's thread records: moved into the queue as is.
#[derive(Debug)]
pub(crate) struct Record {
    /// When it happened: the command's entry for a start event, its return
    /// for a finished one. The wall-clock timestamp is derived from it on the
    /// worker, so the caller reads one clock, once.
    pub at: Instant,
    pub command: Cow<'static, str>,
    /// Per-command overrides of the builder's default properties.
    pub props: Option<Arc<Props>>,
    /// `None` for a start event. Boxed: finished events are the rare ones
    /// (failed or slow), and a smaller record is cheaper to queue.
    pub finish: Option<Box<Finish>>,
}

/// The outcome part of a finished event.
#[derive(Debug)]
pub(crate) struct Finish {
    pub duration: Duration,
    pub error: Option<String>,
}

/// The optional properties of an event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Props {
    pub provider: Option<String>,
    pub ide: Option<String>,
    pub source_type: Option<String>,
}

/// Everything the worker needs to build events; fixed at start.
#[derive(Debug)]
pub(crate) struct Config {
    pub app: String,
    /// The events' `type`: `<app>_cli`.
    pub event_type: String,
    pub version: String,
    pub defaults: Props,
    pub desktop: bool,
    pub slow_threshold: Duration,
    pub exit_budget: Duration,
    pub capacity: usize,
    /// Where the fallback machine id and the spool are kept.
    pub config_dir: Option<PathBuf>,
    /// Cleans error messages of personal data before they are sent.
    pub scrubber: Scrubber,
}

/// Where batches go.
pub(crate) enum Sink {
    /// The HTTP transport, built on the worker so `start()` stays cheap.
    Http(String),
    Custom(Box<dyn Transport>),
    /// Print each event to stderr; send nothing.
    Debug,
}

/// Counts of what happened to events in this process.
///
/// Every recorded event ends in exactly one of `delivered`, `spooled`,
/// `rejected`, `failed` or `discarded`, or is still on its way. The
/// `spool_*` counts are about batches read back from the spool, which
/// may have been left by earlier runs.
///
/// ```
/// use devsy_telemetry_runtime::{RecordingTransport, Telemetry};
///
/// let telemetry = Telemetry::builder("devsy")
///     .version("v1.0.0")
///     .env([("HOME", "/nonexistent")])
///     .config_dir(tempfile::tempdir()?.path())
///     .transport(RecordingTransport::new())
///     .start();
/// telemetry.command("provider list").start().finish_ok();
/// assert!(telemetry.flush(std::time::Duration::from_secs(5)));
/// let stats = telemetry.stats();
/// assert_eq!((stats.recorded, stats.delivered, stats.dropped_queue_full), (1, 1, 0));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Events accepted into the queue.
    pub recorded: u64,
    /// Events the backend acknowledged (printed, in debug mode).
    pub delivered: u64,
    /// Events kept in the spool for a later run.
    pub spooled: u64,
    /// Events the backend refused with a 4xx other than 408 and 429: dropped.
    pub rejected: u64,
    /// Events neither delivered nor kept (no usable config dir for the
    /// spool, or a transport that cannot be built).
    pub failed: u64,
    /// Events thrown away by [`disable`](crate::disable), or recorded after
    /// the guard was dropped.
    pub discarded: u64,
    /// Events refused because the queue was full: dropped.
    pub dropped_queue_full: u64,
    /// Events from the spool (kept by an earlier run, or earlier in this
    /// one) delivered now.
    pub spool_delivered: u64,
    /// Events from the spool the backend refused (a 4xx): dropped.
    pub spool_rejected: u64,
    /// Spooled events dropped because the spool was full.
    pub spool_full: u64,
    /// Spooled events dropped because they were older than 7 days.
    pub spool_too_old: u64,
    /// Spool files removed because they were corrupt or truncated.
    pub spool_corrupt_files: u64,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} recorded, {} delivered, {} spooled; dropped: {} queue full, {} rejected, \
             {} failed, {} discarded; spool: {} delivered, {} rejected, {} dropped full, \
             {} dropped too old, {} corrupt files",
            self.recorded,
            self.delivered,
            self.spooled,
            self.dropped_queue_full,
            self.rejected,
            self.failed,
            self.discarded,
            self.spool_delivered,
            self.spool_rejected,
            self.spool_full,
            self.spool_too_old,
            self.spool_corrupt_files
        )
    }
}

/// Where a record ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    Delivered,
    Spooled,
    Rejected,
    Failed,
    Discarded,
}

/// Counts about the spool of earlier runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpoolCount {
    Delivered,
    Rejected,
    Full,
    TooOld,
    CorruptFiles,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    spooled: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    discarded: AtomicU64,
    dropped_queue_full: AtomicU64,
    spool_delivered: AtomicU64,
    spool_rejected: AtomicU64,
    spool_full: AtomicU64,
    spool_too_old: AtomicU64,
    spool_corrupt_files: AtomicU64,
}

impl Counters {
    fn settled(&self, how: Settled) -> &AtomicU64 {
        match how {
            Settled::Delivered => &self.delivered,
            Settled::Spooled => &self.spooled,
            Settled::Rejected => &self.rejected,
            Settled::Failed => &self.failed,
            Settled::Discarded => &self.discarded,
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Record>,
    /// When the current batch began.
    first_queued: Option<Instant>,
    /// Records ever accepted, and records that reached their end (see
    /// [`Settled`]): a flush waits for `settled` to catch up with `accepted`.
    accepted: u64,
    settled: u64,
    /// The earliest deadline of a pending flush: send now.
    flush_deadline: Option<Instant>,
    /// The pending flush is the exit's: requests are timed out by its
    /// deadline, and what is not delivered by then goes to the spool. An
    /// ordinary flush only stops waiting at its deadline.
    exiting: bool,
    /// No more sending: the guard was dropped or telemetry was disabled.
    closed: bool,
    /// The worker sleeps with nothing to do and no timer for new records:
    /// the next record must wake it.
    wake_on_push: bool,
}

/// The state shared by the caller's side and the worker.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    queue: Mutex<Queue>,
    settled: Condvar,
    worker: OnceLock<Thread>,
    /// Set by the worker once computed, for the exit to use too.
    pub machine_id: OnceLock<String>,
    /// A batch of this run the worker is sending from memory: the exit
    /// keeps it in the spool if the worker is still at it when the budget
    /// ends. Whoever takes it out settles it.
    pub in_flight: Mutex<Option<InFlight>>,
    disabled: AtomicBool,
    counters: Counters,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            queue: Mutex::new(Queue {
                items: VecDeque::with_capacity(config.capacity.min(BATCH_SIZE)),
                ..Queue::default()
            }),
            config,
            settled: Condvar::new(),
            worker: OnceLock::new(),
            machine_id: OnceLock::new(),
            in_flight: Mutex::new(None),
            disabled: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock cannot leave the queue inconsistent
        // (every critical section is a few field updates), so keep going.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_worker(&self) {
        if let Some(worker) = self.worker.get() {
            worker.unpark();
        }
    }

    /// Registers the calling thread as the worker, to be woken by `push`.
    pub(crate) fn register_worker(&self) {
        let _ = self.worker.set(thread::current());
    }

    /// Queues a record; never blocks on the worker. `false` if it was dropped
    /// (queue full, or telemetry closed), which is counted.
    pub(crate) fn push(&self, record: Record) -> bool {
        let mut queue = self.lock();
        if queue.closed {
            queue.accepted += 1;
            self.settle_locked(&mut queue, Settled::Discarded, 1);
            return false;
        }
        if queue.items.len() >= self.config.capacity {
            drop(queue);
            self.counters
                .dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if queue.items.is_empty() {
            queue.first_queued = Some(record.at);
        }
        queue.items.push_back(record);
        queue.accepted += 1;
        let len = queue.items.len();
        let wake = (len == 1 && queue.wake_on_push) || len == self.high_water();
        drop(queue);
        // Waking a sleeping thread costs more than recording many events, so
        // the worker is woken only when it sleeps without a timer, or when
        // the queue is half full; otherwise it drains on its own schedule.
        if wake {
            self.wake_worker();
        }
        true
    }

    /// A full batch: [`BATCH_SIZE`], or the whole queue if it is smaller.
    fn batch_size(&self) -> usize {
        BATCH_SIZE.min(self.config.capacity)
    }

    /// The queue length at which the caller wakes the worker before the
    /// batch window ends: half the queue, and at least a full batch.
    fn high_water(&self) -> usize {
        (self.config.capacity / 2).max(self.batch_size())
    }

    /// Waits until every record queued before this call is settled, or until
    /// `timeout`. `true` if everything settled.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        self.flush_with(timeout, false)
    }

    /// The exit's flush: as [`flush`](Self::flush), and no request outlives
    /// `timeout`; what is not delivered by then is kept in the spool.
    pub(crate) fn flush_for_exit(&self, timeout: Duration) -> bool {
        self.flush_with(timeout, true)
    }

    fn flush_with(&self, timeout: Duration, exiting: bool) -> bool {
        let start = Instant::now();
        let deadline = start
            .checked_add(timeout)
            .unwrap_or(start + Duration::from_secs(3600));
        let mut queue = self.lock();
        queue.exiting |= exiting;
        let target = queue.accepted;
        if queue.settled >= target {
            return true;
        }
        queue.flush_deadline = if exiting {
            // The exit's own deadline, not one an earlier flush left.
            Some(deadline)
        } else {
            Some(queue.flush_deadline.map_or(deadline, |d| d.min(deadline)))
        };
        self.wake_worker();
        loop {
            if queue.settled >= target {
                return true;
            }
            let remaining = match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left,
                _ => {
                    // Timed out: this flush no longer hurries the worker.
                    if !queue.exiting && queue.flush_deadline == Some(deadline) {
                        queue.flush_deadline = None;
                    }
                    return false;
                }
            };
            queue = self
                .settled
                .wait_timeout(queue, remaining)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Stops taking records; the worker keeps what is left in the spool and
    /// exits. Does not wait.
    pub(crate) fn close(&self) {
        let mut queue = self.lock();
        queue.closed = true;
        drop(queue);
        self.wake_worker();
    }

    /// Stops at once, throws away everything queued (counted as discarded)
    /// and deletes the spool.
    pub(crate) fn disable(&self) {
        self.disabled.store(true, Ordering::Relaxed);
        if let Some(dir) = &self.config.config_dir {
            // The worker deletes it again if it was writing just now.
            let _ = crate::spool::Spool::delete(dir);
        }
        let mut queue = self.lock();
        queue.closed = true;
        let dropped = queue.items.len();
        queue.items.clear();
        self.settle_locked(&mut queue, Settled::Discarded, dropped);
        drop(queue);
        self.wake_worker();
    }

    pub(crate) fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The exit's flush has begun.
    pub(crate) fn is_exiting(&self) -> bool {
        self.lock().exiting
    }

    /// What is still queued, taken out (for the exit to keep).
    pub(crate) fn take_queued(&self) -> Vec<Record> {
        let mut queue = self.lock();
        queue.first_queued = None;
        queue.items.drain(..).collect()
    }

    pub(crate) fn stats(&self) -> Stats {
        let recorded = self.lock().accepted;
        let c = &self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            recorded,
            delivered: load(&c.delivered),
            spooled: load(&c.spooled),
            rejected: load(&c.rejected),
            failed: load(&c.failed),
            discarded: load(&c.discarded),
            dropped_queue_full: load(&c.dropped_queue_full),
            spool_delivered: load(&c.spool_delivered),
            spool_rejected: load(&c.spool_rejected),
            spool_full: load(&c.spool_full),
            spool_too_old: load(&c.spool_too_old),
            spool_corrupt_files: load(&c.spool_corrupt_files),
        }
    }

    /// `count` of this run's records reached their end, `how`.
    pub(crate) fn settle(&self, how: Settled, count: usize) {
        if count > 0 {
            let mut queue = self.lock();
            self.settle_locked(&mut queue, how, count);
        }
    }

    fn settle_locked(&self, queue: &mut Queue, how: Settled, count: usize) {
        self.counters
            .settled(how)
            .fetch_add(count as u64, Ordering::Relaxed);
        queue.settled += count as u64;
        if queue.settled >= queue.accepted && !queue.exiting {
            queue.flush_deadline = None;
        }
        self.settled.notify_all();
    }

    /// Counts what happened to batches in the spool.
    pub(crate) fn count_spool(&self, what: SpoolCount, count: usize) {
        let c = &self.counters;
        let counter = match what {
            SpoolCount::Delivered => &c.spool_delivered,
            SpoolCount::Rejected => &c.spool_rejected,
            SpoolCount::Full => &c.spool_full,
            SpoolCount::TooOld => &c.spool_too_old,
            SpoolCount::CorruptFiles => &c.spool_corrupt_files,
        };
        counter.fetch_add(count as u64, Ordering::Relaxed);
    }

    /// Blocks the worker until there is something to do: records to send
    /// (moved into `out`), the backlog to try (`backlog_at` has come), or
    /// nothing more (closed: what was queued is moved into `out`).
    pub(crate) fn next(&self, out: &mut Vec<Record>, backlog_at: Option<Instant>) -> Next {
        let mut queue = self.lock();
        // The first sleep on an empty queue is one batch window on a timer,
        // so a busy caller's next record need not wake the worker; after
        // that, the worker asks to be woken by the next record.
        let mut grace = true;
        loop {
            if queue.closed {
                out.extend(queue.items.drain(..));
                queue.first_queued = None;
                return Next::Exit;
            }
            let now = Instant::now();
            let urgent = queue.flush_deadline.is_some();
            // Only the exit's deadline bounds requests.
            let flush = queue.flush_deadline.filter(|_| queue.exiting);
            if urgent && !queue.items.is_empty() {
                // Somebody waits: everything goes now.
                out.extend(queue.items.drain(..));
                queue.first_queued = None;
                return Next::Records { flush };
            }
            if backlog_at.is_some_and(|at| at <= now) {
                return Next::Backlog { flush };
            }
            let due = queue
                .first_queued
                .filter(|_| !queue.items.is_empty())
                .map(|first| first + BATCH_WINDOW);
            if due.is_some_and(|due| now >= due) || queue.items.len() >= self.batch_size() {
                let n = queue.items.len().min(BATCH_SIZE);
                out.extend(queue.items.drain(..n));
                // The rest form the next batch, due a window from now at the latest.
                queue.first_queued = (!queue.items.is_empty()).then_some(now);
                return Next::Records { flush: None };
            }
            let mut wake = due.into_iter().chain(backlog_at).min();
            if queue.items.is_empty() {
                if grace {
                    grace = false;
                    let window = now + BATCH_WINDOW;
                    wake = Some(wake.map_or(window, |at| at.min(window)));
                } else {
                    queue.wake_on_push = true;
                }
            }
            drop(queue);
            match wake {
                Some(at) => thread::park_timeout(at.saturating_duration_since(now)),
                None => thread::park(),
            }
            queue = self.lock();
            queue.wake_on_push = false;
        }
    }
}

/// A batch being sent from memory.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub body: Arc<Vec<u8>>,
    pub events: usize,
    /// This run's records in it, not yet settled.
    pub owned: usize,
}

/// What the worker does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Send these records; `flush`: somebody waits until then.
    Records { flush: Option<Instant> },
    /// Try the backlog.
    Backlog { flush: Option<Instant> },
    /// Closed: keep what is left, and exit.
    Exit,
}
