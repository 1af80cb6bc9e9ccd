//! The worker thread: it turns records into the wire format, sends batches
//! with retries and backoff, and keeps in the spool what it could not send.
//!
//! Everything to send goes through one ordered backlog of [`Batch`]es:
//! first the batches that earlier runs left in the spool, then this run's.
//! The front of the backlog is sent until it is delivered, refused, or must
//! wait (backoff, or the server's `Retry-After`); a batch of this run that
//! must wait is moved to the spool at once, so a flush never waits for a
//! server that is down, and the next run (or the courier) sends it.
//!
//! Requests never outlive the exit budget: during the exit's flush each
//! request is given the time left before the flush's deadline, less a
//! margin in which the batch can still be written to the spool.
//!
//! - [`batch`]: a batch's states and their moves;
//! - [`retry`]: which failures are retried, the backoff, `Retry-After`;
//! - [`encode`]: records to wire events.

pub(crate) mod batch;
pub(crate) mod encode;
pub(crate) mod retry;

use std::collections::VecDeque;
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use self::batch::{Batch, Outcome};
use self::encode::{CommandNames, build, machine_id, serialize};
use self::retry::{RetryState, Verdict};
use crate::exit::Exit;
use crate::queue::{BATCH_SIZE, Next, Record, Settled, Shared, Sink, SpoolCount};
use crate::spool;
use crate::transport::{HttpTransport, Transport};

/// Attempts at one batch outside a flush, before it goes to the spool.
pub(crate) const BACKGROUND_ATTEMPTS: u32 = 3;
/// Attempts at one batch during a flush (time bounds them first).
const FLUSH_ATTEMPTS: u32 = 10;
/// Kept free before a flush's deadline to write the spool.
const SPOOL_MARGIN: Duration = Duration::from_millis(30);
/// A request given less time than this is not worth starting.
const MIN_REQUEST: Duration = Duration::from_millis(5);

/// Starts the worker thread.
pub(crate) fn spawn(shared: &Arc<Shared>, sink: Sink) -> std::io::Result<()> {
    let worker = Worker::new(Arc::clone(shared), sink);
    thread::Builder::new()
        .name("devsy-telemetry".into())
        .spawn(move || worker.run())?;
    Ok(())
}

/// How one try at a batch ended.
enum Sent {
    Done(Outcome),
    /// Try again at this time.
    Later(Instant),
}

struct Worker {
    shared: Arc<Shared>,
    sink: Sink,
    /// Built on first use, so `start()` stays cheap.
    transport: Option<Box<dyn Transport>>,
    backlog: VecDeque<Batch>,
    /// When the backlog's front may be tried again (the backoff).
    retry_at: Option<Instant>,
    retry: RetryState,
}

impl Worker {
    fn new(shared: Arc<Shared>, sink: Sink) -> Self {
        Self {
            shared,
            sink,
            transport: None,
            backlog: VecDeque::new(),
            retry_at: None,
            retry: RetryState::default(),
        }
    }

    fn run(mut self) {
        // Registered before the first look at the queue, so a record pushed
        // earlier is seen and one pushed later wakes this thread.
        self.shared.register_worker();
        if let Sink::Debug = self.sink {
            self.debug_diagnostics();
        }
        // Computed now, off the caller's thread; kept where the exit can
        // reach it, to keep what the worker could not take.
        machine_id(&self.shared);
        self.load_spool();
        let mut records = Vec::with_capacity(BATCH_SIZE);
        loop {
            match self.shared.next(&mut records, self.backlog_at()) {
                Next::Records { flush } => self.take(&records, flush),
                Next::Backlog { flush } => self.send_front(flush),
                Next::FirstRecord => self.prepare(),
                Next::Exit => {
                    self.exit();
                    return;
                }
            }
            records.clear();
        }
    }

    /// When the backlog's front may be tried: now, after a backoff, or after
    /// the server's `Retry-After`; `None` when the backlog is empty.
    fn backlog_at(&self) -> Option<Instant> {
        if self.backlog.is_empty() {
            return None;
        }
        let now = Instant::now();
        let server = self.retry.server_wait().map(|wait| now + wait);
        Some(self.retry_at.into_iter().chain(server).max().unwrap_or(now))
    }

    /// The batches earlier runs left, oldest first, within the limits; only
    /// in the one process that holds the spool's lock, so that two runs at
    /// once do not send them twice. Not when the exit hands off: the
    /// courier sends them, and a run that records nothing connects nowhere.
    fn load_spool(&mut self) {
        let Some(spool) = self.shared.config.spool.clone() else {
            return;
        };
        self.retry = RetryState::resume(Some(&spool));
        if self.shared.config.exit.mode == Exit::Handoff {
            return;
        }
        if !self.shared.take_spool_lock(&spool) {
            return;
        }
        let dropped = spool.enforce_limits(SystemTime::now(), None);
        count_dropped(&self.shared, dropped);
        let (entries, corrupt) = spool.entries();
        self.shared.count_spool(SpoolCount::CorruptFiles, corrupt);
        self.backlog.extend(entries.into_iter().map(Batch::spooled));
    }

    /// New records: in debug mode they are printed; otherwise they join the
    /// backlog as batches, behind what earlier runs left.
    fn take(&mut self, records: &[Record], flush: Option<Instant>) {
        if let Sink::Debug = self.sink {
            self.print(records);
            self.shared.arrived(records.len());
            return;
        }
        for chunk in records.chunks(BATCH_SIZE) {
            match serialize(&self.shared, chunk) {
                Some(body) => self
                    .backlog
                    .push_back(Batch::fresh(&self.shared, body, chunk.len())),
                None => self.shared.settle(Settled::Failed, chunk.len()),
            }
        }
        self.shared.arrived(records.len());
        if flush.is_some() {
            // The exit waits: no backoff left over from earlier. Its
            // batches are on disk before they are sent: a process that
            // ends mid-request (the budget ran out, or it was killed) leaves
            // them for the next run; until then other runs leave them alone.
            self.retry_at = None;
            self.write_ahead();
        }
        if self.retry.server_wait().is_some() {
            // The server asked for a pause: keep the batches for after it.
            self.persist();
        }
        self.cap_memory_backlog();
    }

    /// Without a spool, batches that cannot be sent wait in memory: while
    /// the server is failing, keep at most the spool's worth (or a queue's
    /// worth, if larger), dropping (and counting) the oldest.
    fn cap_memory_backlog(&mut self) {
        if self.retry_at.is_none() {
            // Fresh batches, about to be sent: not waiting.
            return;
        }
        let cap = spool::MAX_EVENTS.max(self.shared.config.capacity);
        let mut in_memory: usize = self
            .backlog
            .iter()
            .filter(|b| b.is_memory())
            .map(Batch::events)
            .sum();
        while in_memory > cap {
            let Some(i) = self.backlog.iter().position(Batch::is_memory) else {
                break;
            };
            let Some(dropped) = self.backlog.remove(i) else {
                break;
            };
            in_memory -= dropped.events();
            dropped.abandon(&self.shared, Settled::Failed);
        }
    }

    /// Tries the backlog's front once (with retries during a flush).
    fn send_front(&mut self, flush: Option<Instant>) {
        let Some(front) = self.backlog.pop_front() else {
            return;
        };
        let Some(body) = front.body(&self.shared) else {
            // A corrupt spool file, removed and counted: nothing of this run.
            return;
        };
        let attempts = if flush.is_some() {
            FLUSH_ATTEMPTS
        } else {
            BACKGROUND_ATTEMPTS
        };
        let sent = self.send(&body, flush, attempts);
        drop(body);
        match sent {
            Sent::Later(at) => {
                self.backlog.push_front(front);
                self.retry_at = Some(at);
                // A server that is down is not waited for: this run's
                // batches go to the spool now, for the next try.
                self.persist();
            }
            Sent::Done(outcome) => front.finish(&self.shared, outcome),
        }
    }

    /// Sends `body`, retrying retryable failures with backoff while
    /// `attempts` and the flush's deadline allow.
    fn send(&mut self, body: &[u8], flush: Option<Instant>, attempts: u32) -> Sent {
        let budget = self.shared.config.exit.budget;
        for attempt in 1..=attempts {
            let now = Instant::now();
            if let Some(wait) = self.retry.server_wait() {
                return Sent::Later(now + wait);
            }
            let timeout = match flush {
                Some(deadline) => deadline
                    .saturating_duration_since(now)
                    .saturating_sub(SPOOL_MARGIN)
                    .min(budget),
                None => budget,
            };
            if timeout < MIN_REQUEST {
                return Sent::Later(now + self.retry.backoff());
            }
            let Some(transport) = self.transport() else {
                return Sent::Done(Outcome::Impossible);
            };
            let Ok(result) = catch_unwind(AssertUnwindSafe(|| transport.send(body, timeout)))
            else {
                // A transport that panics would panic again: not retried.
                return Sent::Done(Outcome::Impossible);
            };
            let spool = self.shared.config.spool.as_ref();
            let error = match result {
                Ok(()) => {
                    self.retry.succeeded(spool);
                    self.retry_at = None;
                    return Sent::Done(Outcome::Delivered);
                }
                Err(error) => error,
            };
            let retry_at = match self.retry.failed(&error, spool) {
                Verdict::Rejected => return Sent::Done(Outcome::Rejected),
                Verdict::Impossible => return Sent::Done(Outcome::Impossible),
                // The server asked for a pause: the backlog waits for it.
                Verdict::RetryAt(at) if self.retry.server_wait().is_some() => {
                    return Sent::Later(at);
                }
                Verdict::RetryAt(at) => at,
            };
            let past_deadline = flush.is_some_and(|deadline| retry_at + SPOOL_MARGIN >= deadline);
            if attempt == attempts || past_deadline || !self.sleep_until(retry_at, flush) {
                return Sent::Later(retry_at);
            }
        }
        Sent::Later(Instant::now() + self.retry.backoff())
    }

    /// Sleeps until `at`, however often a push or a flush wakes this
    /// thread meanwhile. `false` when it must stop waiting instead: the
    /// queue was closed, or the exit's flush began (it does not wait for a
    /// background send's retries: what is left is kept for the next run).
    fn sleep_until(&self, at: Instant, flush: Option<Instant>) -> bool {
        loop {
            if self.shared.is_closed() || (flush.is_none() && self.shared.is_exiting()) {
                return false;
            }
            let Some(left) = at.checked_duration_since(Instant::now()) else {
                return true;
            };
            if left.is_zero() {
                return true;
            }
            thread::park_timeout(left);
        }
    }

    /// Opens the connection the first batch will use, while its window
    /// runs; not when the backlog's own sends open one anyway.
    fn prepare(&mut self) {
        if !self.backlog.is_empty() {
            return;
        }
        let timeout = self.shared.config.exit.budget;
        if let Some(transport) = self.transport() {
            // A transport that panics here fails again when it sends.
            let _ = catch_unwind(AssertUnwindSafe(|| transport.prepare(timeout)));
        }
    }

    fn transport(&mut self) -> Option<&dyn Transport> {
        match &self.sink {
            Sink::Http { endpoint, .. } => {
                if self.transport.is_none() {
                    let http = HttpTransport::new(endpoint.clone()).ok();
                    self.transport = http.map(|t| Box::new(t) as Box<dyn Transport>);
                }
                self.transport.as_deref()
            }
            Sink::Custom(transport) => Some(transport.as_ref()),
            Sink::Debug => None,
        }
    }

    /// Applies `step` to every batch of the backlog, in order; a batch it
    /// returns `None` for leaves the backlog.
    fn each_batch(&mut self, mut step: impl FnMut(&Shared, Batch) -> Option<Batch>) {
        let shared = Arc::clone(&self.shared);
        let old = std::mem::take(&mut self.backlog);
        self.backlog = old.into_iter().filter_map(|b| step(&shared, b)).collect();
    }

    /// This run's batches still in memory are written to the spool as in
    /// flight: left alone by other runs, sent by this one.
    fn write_ahead(&mut self) {
        self.each_batch(|shared, batch| batch.write_ahead(shared));
    }

    /// This run's batches wait for a later try: written (or published) to
    /// the spool for any run to send, and counted as spooled. Without a
    /// spool they wait in memory. After `disable()`, they are discarded.
    fn persist(&mut self) {
        if self.shared.is_disabled() {
            self.each_batch(|shared, batch| {
                batch.abandon(shared, Settled::Discarded);
                None
            });
            return;
        }
        let mut wrote = false;
        self.each_batch(|shared, batch| {
            let was_spooled = matches!(batch, Batch::Spooled { .. });
            match batch.keep(shared) {
                Ok(kept) => {
                    wrote |= !was_spooled && kept.is_some();
                    kept
                }
                // A spool that cannot be written: the batch waits in memory.
                Err(unchanged) => Some(unchanged),
            }
        });
        if !wrote {
            return;
        }
        cap_spool(&self.shared);
        // Batches the spool's limits removed leave the backlog. (This
        // run's among them were counted as spooled; the drop itself is
        // counted as the spool being full.)
        self.backlog.retain(|batch| !batch.vanished());
    }

    /// Closed: the exit took what was still queued and this run's batches
    /// in memory; the rest of the backlog is kept in the spool, or
    /// discarded after `disable()`.
    fn exit(&mut self) {
        self.persist();
        self.each_batch(|shared, batch| {
            batch.abandon(shared, Settled::Failed);
            None
        });
    }

    fn print(&mut self, records: &[Record]) {
        let machine_id = machine_id(&self.shared);
        let config = &self.shared.config;
        let mut out = String::new();
        let names = CommandNames::of(config.app.name(), records);
        for envelope in build(&machine_id, config, records, &names) {
            if let Ok(line) = serde_json::to_string(&envelope) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        let printed = std::io::stderr().lock().write_all(out.as_bytes()).is_ok();
        let how = if printed {
            Settled::Delivered
        } else {
            Settled::Failed
        };
        self.shared.settle(how, records.len());
    }

    /// In debug mode, says where undelivered events could not be kept.
    fn debug_diagnostics(&self) {
        let message = match &self.shared.config.config_dir {
            None => Some("no config dir (HOME is not set): undelivered events cannot be kept for a later run".to_string()),
            Some(dir) => match std::fs::metadata(dir) {
                Ok(meta) if !meta.is_dir() => Some(format!(
                    "the config dir {} is not a directory: undelivered events cannot be kept",
                    dir.display()
                )),
                Ok(meta) if meta.permissions().readonly() => Some(format!(
                    "the config dir {} is read-only: undelivered events cannot be kept",
                    dir.display()
                )),
                _ => None,
            },
        };
        if let Some(message) = message {
            let _ = writeln!(std::io::stderr(), "devsy-telemetry: {message}");
        }
    }
}

/// Applies the spool's limits after a write, counting what they dropped.
pub(crate) fn cap_spool(shared: &Shared) {
    if let Some(dropped) = shared.with_spool(|spool| spool.enforce_limits(SystemTime::now(), None))
    {
        count_dropped(shared, dropped);
    }
}

fn count_dropped(shared: &Shared, dropped: spool::Dropped) {
    shared.count_spool(SpoolCount::TooOld, dropped.too_old);
    shared.count_spool(SpoolCount::Full, dropped.spool_full);
    shared.count_spool(SpoolCount::CorruptFiles, dropped.corrupt_files);
}

/// At exit, on the exiting thread: the worker is stopped, and whatever of
/// this run it has not delivered or kept (records still queued, batches
/// only in memory, sending or waiting) is written to the spool, for a
/// courier or the next run. Returns the events kept.
pub(crate) fn keep_undelivered(shared: &Shared) -> usize {
    let (records, unsent) = shared.take_undelivered();
    let keep = |body: &[u8], events: usize| -> Settled {
        match shared.with_spool(|spool| spool.write(body, events, SystemTime::now(), false)) {
            _ if shared.is_disabled() => Settled::Discarded,
            Some(Ok(_)) => Settled::Spooled,
            Some(Err(_)) | None => Settled::Failed,
        }
    };
    let mut kept = 0;
    let mut settle = |how: Settled, events: usize| {
        if how == Settled::Spooled {
            kept += events;
        }
        shared.settle(how, events);
    };
    for batch in unsent {
        settle(keep(&batch.body, batch.events), batch.events);
    }
    for chunk in records.chunks(BATCH_SIZE) {
        let how = match serialize(shared, chunk) {
            Some(body) => keep(&body, chunk.len()),
            None if shared.is_disabled() => Settled::Discarded,
            None => Settled::Failed,
        };
        settle(how, chunk.len());
    }
    kept
}
