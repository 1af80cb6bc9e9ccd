//! The queue between the caller's thread and the background worker, the
//! worker's batching loop, and the flush that holds the exit budget.
//!
//! The caller's side only moves a small [`Record`] into a bounded queue under
//! a short lock. It never blocks on the worker, never serialises, never reads
//! the machine id, and wakes the worker only when a batch begins or fills, so
//! a busy host does not pay a wake-up per event. The worker turns records into
//! the wire format, sends a batch of up to [`BATCH_SIZE`] events once the
//! batch is full or [`BATCH_WINDOW`] after its first event, and sends at once
//! when somebody flushes.
//!
//! Every accepted record ends in exactly one counter: delivered, failed,
//! discarded (by [`disable`](crate::disable)) or unsent (still queued when the
//! guard's exit budget ran out). Records refused because the queue was full
//! are counted too.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::event::{Batch, Envelope, Event, Properties, User};
use crate::identity;
use crate::transport::{HttpTransport, Transport};

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
    /// `None` for a start event.
    pub finish: Option<Finish>,
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
    pub version: String,
    pub defaults: Props,
    pub desktop: bool,
    pub slow_threshold: Duration,
    pub exit_budget: Duration,
    pub capacity: usize,
    /// Where the fallback machine id is kept.
    pub config_dir: Option<PathBuf>,
}

/// Where batches go.
pub(crate) enum Sink {
    /// The HTTP transport, built on the worker so `start()` stays cheap.
    Http(String),
    Custom(Box<dyn Transport>),
    /// Print each event to stderr; send nothing.
    Debug,
}

/// Counts of what happened to events. Every recorded event ends in exactly
/// one of `delivered`, `failed`, `discarded` or `unsent`, or is still queued.
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
    /// Events in batches the transport failed to deliver.
    pub failed: u64,
    /// Events refused because the queue was full.
    pub dropped_queue_full: u64,
    /// Events thrown away by [`disable`](crate::disable).
    pub discarded: u64,
    /// Events still queued when the exit budget ran out.
    pub unsent: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped_queue_full: AtomicU64,
    discarded: AtomicU64,
    unsent: AtomicU64,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Record>,
    /// When the current batch began.
    first_queued: Option<Instant>,
    /// Records ever accepted, and records that reached a final counter:
    /// a flush waits for `settled` to catch up with `accepted`.
    accepted: u64,
    settled: u64,
    /// The earliest deadline of a pending flush: send now, and time requests
    /// out by then.
    flush_deadline: Option<Instant>,
    /// No more sending: the guard was dropped or telemetry was disabled.
    closed: bool,
}

/// The state shared by the caller's side and the worker.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    queue: Mutex<Queue>,
    settled: Condvar,
    worker: OnceLock<Thread>,
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

    /// Queues a record; never blocks on the worker. `false` if it was dropped
    /// (queue full, or telemetry closed), which is counted.
    pub(crate) fn push(&self, record: Record) -> bool {
        let mut queue = self.lock();
        if queue.closed {
            drop(queue);
            self.counters.discarded.fetch_add(1, Ordering::Relaxed);
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
        drop(queue);
        // Wake the worker only to start the batch timer or to send a full batch.
        if len == 1 || len == BATCH_SIZE {
            self.wake_worker();
        }
        true
    }

    /// Waits until every record queued before this call is settled, or until
    /// `timeout`. `true` if everything settled.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        let mut queue = self.lock();
        let target = queue.accepted;
        if queue.settled >= target {
            return true;
        }
        if let Some(deadline) = deadline {
            queue.flush_deadline = Some(queue.flush_deadline.map_or(deadline, |d| d.min(deadline)));
        } else {
            queue.flush_deadline = queue.flush_deadline.or(Some(start));
        }
        self.wake_worker();
        loop {
            if queue.settled >= target {
                return true;
            }
            let remaining = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
                None => Duration::from_secs(3600),
            };
            queue = self
                .settled
                .wait_timeout(queue, remaining)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Stops sending; what is still queued is counted as unsent. Does not wait.
    pub(crate) fn close(&self) {
        let mut queue = self.lock();
        queue.closed = true;
        drop(queue);
        self.wake_worker();
    }

    /// Stops at once and throws away everything queued (counted as discarded).
    pub(crate) fn disable(&self) {
        self.disabled.store(true, Ordering::Relaxed);
        let mut queue = self.lock();
        queue.closed = true;
        let dropped = queue.items.len();
        queue.items.clear();
        Self::settle(&mut queue, dropped, &self.counters.discarded);
        drop(queue);
        self.settled.notify_all();
        self.wake_worker();
    }

    pub(crate) fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> Stats {
        let recorded = self.lock().accepted;
        let c = &self.counters;
        Stats {
            recorded,
            delivered: c.delivered.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped_queue_full: c.dropped_queue_full.load(Ordering::Relaxed),
            discarded: c.discarded.load(Ordering::Relaxed),
            unsent: c.unsent.load(Ordering::Relaxed),
        }
    }

    fn settle(queue: &mut Queue, count: usize, counter: &AtomicU64) {
        counter.fetch_add(count as u64, Ordering::Relaxed);
        queue.settled += count as u64;
        if queue.items.is_empty() {
            queue.flush_deadline = None;
            queue.first_queued = None;
        }
    }

    /// Blocks the worker until a batch is due; moves it into `batch`.
    /// Returns the pending flush deadline, or `None` when the worker must exit.
    fn next_batch(&self, batch: &mut Vec<Record>) -> Option<Option<Instant>> {
        let mut queue = self.lock();
        loop {
            if queue.closed {
                let left = queue.items.len();
                queue.items.clear();
                Self::settle(&mut queue, left, &self.counters.unsent);
                drop(queue);
                self.settled.notify_all();
                return None;
            }
            let Some(first) = queue.first_queued.filter(|_| !queue.items.is_empty()) else {
                drop(queue);
                thread::park();
                queue = self.lock();
                continue;
            };
            let now = Instant::now();
            let due = first + BATCH_WINDOW;
            if queue.flush_deadline.is_some() || queue.items.len() >= BATCH_SIZE || now >= due {
                let n = queue.items.len().min(BATCH_SIZE);
                batch.extend(queue.items.drain(..n));
                // The rest form the next batch, due a window from now at the latest.
                queue.first_queued = (!queue.items.is_empty()).then_some(now);
                return Some(queue.flush_deadline.filter(|d| *d > now));
            }
            drop(queue);
            thread::park_timeout(due - now);
            queue = self.lock();
        }
    }

    fn batch_done(&self, count: usize, delivered: bool) {
        let counter = if delivered {
            &self.counters.delivered
        } else {
            &self.counters.failed
        };
        let mut queue = self.lock();
        Self::settle(&mut queue, count, counter);
        drop(queue);
        self.settled.notify_all();
    }
}

/// Starts the worker thread.
pub(crate) fn spawn(shared: &Arc<Shared>, sink: Sink) -> std::io::Result<()> {
    let worker_shared = Arc::clone(shared);
    thread::Builder::new()
        .name("devsy-telemetry".into())
        .spawn(move || Worker::new(worker_shared, sink).run())?;
    Ok(())
}

struct Worker {
    shared: Arc<Shared>,
    sink: Sink,
    transport: Option<Box<dyn Transport>>,
    /// Computed on first use, once for this worker.
    machine_id: Option<String>,
    kind: String,
}

impl Worker {
    fn new(shared: Arc<Shared>, sink: Sink) -> Self {
        let kind = format!("{}_cli", shared.config.app);
        Self {
            shared,
            sink,
            transport: None,
            machine_id: None,
            kind,
        }
    }

    fn run(mut self) {
        // Registered before the first look at the queue, so a record pushed
        // earlier is seen and one pushed later wakes this thread.
        let _ = self.shared.worker.set(thread::current());
        let mut batch = Vec::with_capacity(BATCH_SIZE);
        while let Some(flush_deadline) = self.shared.next_batch(&mut batch) {
            let count = batch.len();
            let delivered = catch_unwind(AssertUnwindSafe(|| self.deliver(&batch, flush_deadline)))
                .unwrap_or(false);
            batch.clear();
            self.shared.batch_done(count, delivered);
        }
    }

    fn deliver(&mut self, records: &[Record], flush_deadline: Option<Instant>) -> bool {
        let config = &self.shared.config;
        let machine_id = self
            .machine_id
            .get_or_insert_with(|| identity::machine_id(&config.app, config.config_dir.as_deref()));
        let batch = Batch {
            data: build(&self.kind, machine_id, config, records),
        };
        match &self.sink {
            Sink::Debug => {
                let mut out = String::new();
                for envelope in &batch.data {
                    if let Ok(line) = serde_json::to_string(envelope) {
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
                std::io::stderr().lock().write_all(out.as_bytes()).is_ok()
            }
            Sink::Http(endpoint) => {
                if self.transport.is_none() {
                    match HttpTransport::new(endpoint.clone()) {
                        Ok(http) => self.transport = Some(Box::new(http)),
                        Err(_) => return false,
                    }
                }
                let Some(transport) = &self.transport else {
                    return false;
                };
                post(
                    transport.as_ref(),
                    &batch,
                    config.exit_budget,
                    flush_deadline,
                )
            }
            Sink::Custom(transport) => post(
                transport.as_ref(),
                &batch,
                config.exit_budget,
                flush_deadline,
            ),
        }
    }
}

fn post(
    transport: &dyn Transport,
    batch: &Batch<'_>,
    budget: Duration,
    flush_deadline: Option<Instant>,
) -> bool {
    let Ok(body) = serde_json::to_vec(batch) else {
        return false;
    };
    // Requests never outlive the exit budget, nor a pending flush's deadline.
    let timeout = flush_deadline
        .and_then(|d| d.checked_duration_since(Instant::now()))
        .map_or(budget, |left| left.min(budget))
        .max(Duration::from_millis(1));
    transport.send(&body, timeout).is_ok()
}

/// Turns records into the wire format.
fn build<'a>(
    kind: &'a str,
    machine_id: &'a str,
    config: &'a Config,
    records: &'a [Record],
) -> Vec<Envelope<'a>> {
    // One wall-clock reading per batch; each record's timestamp is derived
    // from its monotonic instant.
    let now_instant = Instant::now();
    let now_micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let user = User {
        machine_id: Cow::Borrowed(machine_id),
        arch: Cow::Borrowed(identity::arch()),
        os: Cow::Borrowed(identity::os()),
    };
    records
        .iter()
        .map(|record| {
            let age = u64::try_from(now_instant.saturating_duration_since(record.at).as_micros())
                .unwrap_or(u64::MAX);
            let props = record.props.as_deref();
            let pick = |get: fn(&Props) -> &Option<String>| {
                props
                    .and_then(|p| get(p).as_deref())
                    .or_else(|| get(&config.defaults).as_deref())
                    .map(Cow::Borrowed)
            };
            let command = if record.command.is_empty() {
                Cow::Borrowed(config.app.as_str())
            } else {
                Cow::Owned(format!("{} {}", config.app, record.command))
            };
            Envelope {
                event: Event {
                    kind: Cow::Borrowed(kind),
                    machine_id: Cow::Borrowed(machine_id),
                    timestamp: now_micros.saturating_sub(age),
                    properties: Properties {
                        command,
                        provider: pick(|p| &p.provider),
                        source_type: pick(|p| &p.source_type),
                        ide: pick(|p| &p.ide),
                        desktop: config.desktop,
                        version: Cow::Borrowed(&config.version),
                        error: record
                            .finish
                            .as_ref()
                            .and_then(|f| f.error.as_deref())
                            .map(Cow::Borrowed),
                        duration_ms: record
                            .finish
                            .as_ref()
                            .map(|f| u64::try_from(f.duration.as_millis()).unwrap_or(u64::MAX)),
                    },
                },
                user: user.clone(),
            }
        })
        .collect()
}
