//! The caller's side: the queue between the caller's thread and the
//! background worker, the flush that holds the exit budget, and the
//! counters. The worker thread's side, batches, retries and the spool, is
//! in [`worker`](crate::worker).
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
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::app::App;
use crate::exit::ExitMode;
use crate::scrub::Scrubber;
use crate::spool::Spool;
use crate::transport::Transport;

/// Most events in one request.
pub(crate) const BATCH_SIZE: usize = 100;
/// How long the first event of a batch waits for company.
pub(crate) const BATCH_WINDOW: Duration = Duration::from_secs(1);
/// How long the first event of the process waits: sent early, so that a
/// command that runs longer than a few round trips has its start event
/// delivered while it runs. Long enough that a command of a few
/// milliseconds exits first, with no request in flight, and hands its
/// events to the courier (nothing sent twice); see BENCHMARKS.md for the
/// measurement behind the figure.
pub(crate) const FIRST_WINDOW: Duration = Duration::from_millis(75);
/// The longest the exit waits for the worker to finish turning records it
/// has taken from the queue into a batch (CPU only, no network).
const TRANSIT_WAIT: Duration = Duration::from_millis(100);

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
    pub app: App,
    /// Fitted to the wire's limit.
    pub version: String,
    pub defaults: Props,
    pub desktop: bool,
    pub slow_threshold: Duration,
    /// What dropping the guard does with what is not yet delivered, and
    /// the exit budget.
    pub exit: ExitMode,
    pub capacity: usize,
    /// Where the fallback machine id and the spool are kept.
    pub config_dir: Option<PathBuf>,
    /// Undelivered batches: `None` without a config dir, and in debug mode.
    pub spool: Option<Spool>,
    /// The context whose options applied: a courier checks the same one.
    pub context: String,
    /// Where batches go, as `Telemetry::destination` tells it: an
    /// endpoint's scheme and host, never its path or query.
    pub destination: String,
    /// Cleans error messages of personal data before they are sent.
    pub scrubber: Scrubber,
}

/// Where batches go.
pub(crate) enum Sink {
    /// The HTTP transport, built on the worker so `start()` stays cheap,
    /// to a checked endpoint; `origin` is what may be shown of it.
    Http {
        endpoint: String,
        origin: String,
    },
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
    /// Couriers that should have been started at exit and could not be
    /// (the executable was replaced, spawning is forbidden): their batches
    /// wait in the spool for the next run. Reported by
    /// [`Telemetry::finish`](crate::Telemetry::finish).
    pub courier_unavailable: u64,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} recorded, {} delivered, {} spooled; dropped: {} queue full, {} rejected, \
             {} failed, {} discarded; spool: {} delivered, {} rejected, {} dropped full, \
             {} dropped too old, {} corrupt files; {} couriers unavailable",
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
            self.spool_corrupt_files,
            self.courier_unavailable
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
    courier_unavailable: AtomicU64,
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
    /// The process's first batch has been taken: later ones wait the full
    /// [`BATCH_WINDOW`], not [`FIRST_WINDOW`].
    first_taken: bool,
    /// The worker was told of the process's first record (to open its
    /// connection ahead): once.
    first_seen: bool,
    /// Records the worker has taken out and not yet made into an
    /// [`Unsent`] batch: the exit waits for them, briefly.
    in_transit: usize,
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
    /// This run's batches that exist only in memory (waiting, or being
    /// sent): the exit can keep them in the spool. Whoever takes one out
    /// settles it.
    unsent: Mutex<Vec<Unsent>>,
    next_batch: AtomicU64,
    /// Held while writing the spool, and by [`disable`](Self::disable)
    /// while it deletes it: nothing written survives an opt-out.
    spool_gate: Mutex<()>,
    /// The spool's lock, while this process sends what earlier runs left.
    /// Released by the exit before it starts a courier.
    spool_lock: Mutex<Option<File>>,
    disabled: AtomicBool,
    counters: Counters,
}

/// A batch of this run that exists only in memory.
#[derive(Debug)]
pub(crate) struct Unsent {
    pub id: u64,
    pub body: Arc<Vec<u8>>,
    pub events: usize,
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
            unsent: Mutex::new(Vec::new()),
            next_batch: AtomicU64::new(0),
            spool_gate: Mutex::new(()),
            spool_lock: Mutex::new(None),
            disabled: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
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

    /// Stops at once, throws away everything queued (counted as discarded)
    /// and deletes the spool.
    pub(crate) fn disable(&self) {
        {
            // After a write in progress, before any other.
            let _gate = lock(&self.spool_gate);
            self.disabled.store(true, Ordering::SeqCst);
            // The spool with the rest: `config.spool` is always this dir's.
            if let Some(dir) = &self.config.config_dir {
                crate::files::forget(dir);
            }
        }
        let mut queue = self.lock();
        queue.closed = true;
        let dropped = queue.items.len();
        queue.items.clear();
        self.settle_locked(&mut queue, Settled::Discarded, dropped);
        drop(queue);
        let unsent: usize = lock(&self.unsent).drain(..).map(|b| b.events).sum();
        self.settle(Settled::Discarded, unsent);
        self.wake_worker();
    }

    /// Runs `write` on the spool, unless telemetry was disabled (or there
    /// is no spool): then `None`.
    pub(crate) fn with_spool<R>(&self, write: impl FnOnce(&Spool) -> R) -> Option<R> {
        let _gate = lock(&self.spool_gate);
        if self.is_disabled() {
            return None;
        }
        self.config.spool.as_ref().map(write)
    }

    /// Takes `spool`'s lock and keeps it for as long as this process sends
    /// what earlier runs left; `false` when another process holds it, or
    /// once the exit has begun, which releases it for the next run or a
    /// courier. The exit closes the queue before it takes this mutex, and
    /// the file is locked only under it after that check: a worker that
    /// starts late (after the exit) never touches the lock, not even for a
    /// moment in which the next run would find it taken.
    pub(crate) fn take_spool_lock(&self, spool: &Spool) -> bool {
        let mut held = lock(&self.spool_lock);
        if self.is_closed() {
            return false;
        }
        let Some(file) = spool.lock() else {
            return false;
        };
        *held = Some(file);
        true
    }

    /// Lets the spool's lock go, for a courier; `true` if this process held it.
    pub(crate) fn release_spool_lock(&self) -> bool {
        lock(&self.spool_lock).take().is_some()
    }

    /// Registers a batch of this run that exists only in memory.
    pub(crate) fn lend(&self, body: Arc<Vec<u8>>, events: usize) -> u64 {
        let id = self.next_batch.fetch_add(1, Ordering::Relaxed);
        lock(&self.unsent).push(Unsent { id, body, events });
        id
    }

    /// Takes a batch back from the registry to settle or store it; `false`
    /// when the exit (or `disable`) already took and settled it.
    pub(crate) fn reclaim(&self, id: u64) -> bool {
        let mut unsent = lock(&self.unsent);
        match unsent.iter().position(|b| b.id == id) {
            Some(i) => {
                unsent.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Stores a lent batch through `store` (a spool write) while the exit
    /// cannot take it: `None` when the exit took it first; else what `store`
    /// returned, and after an `Ok` the batch is no longer lent. So a batch
    /// is written by the exit or by the worker, never by both.
    pub(crate) fn store_lent<T, E>(
        &self,
        id: u64,
        store: impl FnOnce() -> Result<T, E>,
    ) -> Option<Result<T, E>> {
        let mut unsent = lock(&self.unsent);
        let i = unsent.iter().position(|b| b.id == id)?;
        let stored = store();
        if stored.is_ok() {
            unsent.swap_remove(i);
        }
        Some(stored)
    }

    /// For the exit: the worker is told to stop, then everything of this
    /// run not yet delivered or kept is taken out of its hands: the records
    /// still queued, and the batches that exist only in memory. Waits
    /// briefly for records the worker is turning into a batch.
    pub(crate) fn take_undelivered(&self) -> (Vec<Record>, Vec<Unsent>) {
        let mut queue = self.lock();
        queue.closed = true;
        let deadline = Instant::now() + TRANSIT_WAIT;
        while queue.in_transit > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            queue = self
                .settled
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        queue.first_queued = None;
        let records = queue.items.drain(..).collect();
        drop(queue);
        let unsent = std::mem::take(&mut *lock(&self.unsent));
        self.wake_worker();
        (records, unsent)
    }

    /// The worker made the records it took into batches (or gave up on them).
    pub(crate) fn arrived(&self, count: usize) {
        let mut queue = self.lock();
        queue.in_transit = queue.in_transit.saturating_sub(count);
        drop(queue);
        self.settled.notify_all();
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
            courier_unavailable: load(&c.courier_unavailable),
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

    /// A courier should have been started and could not be.
    pub(crate) fn count_courier_unavailable(&self) {
        self.counters
            .courier_unavailable
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Records accepted and not yet settled: what the exit has to deliver,
    /// hand off or keep.
    pub(crate) fn unsettled(&self) -> u64 {
        let queue = self.lock();
        queue.accepted.saturating_sub(queue.settled)
    }

    /// Blocks the worker until there is something to do: records to send
    /// (moved into `out`; the worker reports them with
    /// [`arrived`](Self::arrived) once they are batches), the backlog to try
    /// (`backlog_at` has come), or nothing more (closed).
    pub(crate) fn next(&self, out: &mut Vec<Record>, backlog_at: Option<Instant>) -> Next {
        let mut queue = self.lock();
        // Once the first batch is out, the first sleep on an empty queue is
        // one batch window on a timer, so a busy caller's next record need
        // not wake the worker; after that, the worker asks to be woken by
        // the next record. Before the first batch, the first record wakes
        // it: that batch is sent early.
        let mut grace = queue.first_taken;
        loop {
            if queue.closed {
                return Next::Exit;
            }
            let now = Instant::now();
            let urgent = queue.flush_deadline.is_some();
            // Only the exit's deadline bounds requests.
            let flush = queue.flush_deadline.filter(|_| queue.exiting);
            if urgent && !queue.items.is_empty() {
                // Somebody waits: everything goes now.
                Self::take(&mut queue, out, usize::MAX);
                queue.first_queued = None;
                return Next::Records { flush };
            }
            if backlog_at.is_some_and(|at| at <= now) {
                return Next::Backlog { flush };
            }
            if !queue.first_seen && !queue.items.is_empty() {
                queue.first_seen = true;
                return Next::FirstRecord;
            }
            let window = if queue.first_taken {
                BATCH_WINDOW
            } else {
                FIRST_WINDOW
            };
            let due = queue
                .first_queued
                .filter(|_| !queue.items.is_empty())
                .map(|first| first + window);
            if due.is_some_and(|due| now >= due) || queue.items.len() >= self.batch_size() {
                Self::take(&mut queue, out, BATCH_SIZE);
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

    /// Moves up to `most` records into `out`, in transit until they arrive
    /// as a batch.
    fn take(queue: &mut Queue, out: &mut Vec<Record>, most: usize) {
        let n = queue.items.len().min(most);
        out.extend(queue.items.drain(..n));
        queue.in_transit += n;
        queue.first_taken = true;
        queue.first_seen = true;
    }
}

/// Locks a mutex whatever a panic elsewhere left in it: every critical
/// section in the runtime is a few field updates, which a panic cannot
/// leave half done.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the worker does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Send these records; `flush`: somebody waits until then.
    Records { flush: Option<Instant> },
    /// Try the backlog.
    Backlog { flush: Option<Instant> },
    /// The process recorded its first event: the first batch follows
    /// within [`FIRST_WINDOW`], so open its connection now.
    FirstRecord,
    /// Closed: the exit took what was left; the worker keeps its own
    /// batches, and ends.
    Exit,
}

/// A client with a spool in a temporary directory, and no worker: for the
/// unit tests of the batch states.
#[cfg(test)]
pub(crate) fn test_shared() -> (Shared, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Config {
        app: App::new("devsy").expect("a valid name"),
        version: "v1.0.0".into(),
        defaults: Props::default(),
        desktop: false,
        slow_threshold: Duration::from_secs(10),
        exit: crate::exit::choose(
            None,
            false,
            true,
            &crate::app::Env::new(Some(std::collections::HashMap::new())),
            Duration::from_millis(500),
        ),
        capacity: 1000,
        config_dir: Some(dir.path().to_path_buf()),
        spool: Some(Spool::new(dir.path())),
        context: "default".into(),
        destination: "a custom transport".into(),
        scrubber: Scrubber::new(None, None),
    };
    (Shared::new(config), dir)
}
