//! The worker thread: it turns records into the wire format, sends batches
//! with retries and backoff, and keeps in the spool what it could not send.
//!
//! Everything to send goes through one ordered backlog: first the batches
//! that earlier runs left in the spool, then this run's. The front of the
//! backlog is sent until it is delivered, refused, or must wait (backoff, or
//! the server's `Retry-After`); a batch of this run that must wait is moved
//! to the spool at once, so a flush never waits for a server that is down,
//! and the next run sends it.
//!
//! Requests never outlive the exit budget: during a flush each request is
//! given the time left before the flush's deadline, less a margin in which
//! the batch can still be written to the spool.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::event::{Batch, Envelope, Event, Properties, User};
use crate::identity;
use crate::spool::{self, Entry, Spool};
use crate::transport::{HttpTransport, Transport, TransportError};
use crate::worker::{
    BATCH_SIZE, Config, InFlight, Next, Record, Settled, Shared, Sink, SpoolCount,
};

/// Locks a mutex whatever a panic elsewhere left in it: every critical
/// section here is a single assignment.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Attempts at one batch outside a flush, before it goes to the spool.
const BACKGROUND_ATTEMPTS: u32 = 3;
/// Attempts at one batch during a flush (time bounds them first).
const FLUSH_ATTEMPTS: u32 = 10;
/// The first wait after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Kept free before a flush's deadline to write the spool.
const SPOOL_MARGIN: Duration = Duration::from_millis(30);
/// A request given less time than this is not worth starting.
const MIN_REQUEST: Duration = Duration::from_millis(5);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Starts the worker thread.
pub(crate) fn spawn(shared: &Arc<Shared>, sink: Sink) -> std::io::Result<()> {
    let worker = Worker::new(Arc::clone(shared), sink);
    thread::Builder::new()
        .name("devsy-telemetry".into())
        .spawn(move || worker.run())?;
    Ok(())
}

/// A batch waiting to be sent.
struct Pending {
    body: Stored,
    /// Events in the batch.
    events: usize,
    /// How many of them are this run's and not yet settled.
    owned: usize,
}

enum Stored {
    Memory(Arc<Vec<u8>>),
    Disk {
        entry: Entry,
        /// The bytes too, for a batch the exit wrote ahead to the spool:
        /// sent without reading the file back.
        bytes: Option<Arc<Vec<u8>>>,
    },
}

/// How one attempt at a batch ended.
enum Sent {
    Delivered,
    /// Refused for good (a 4xx other than 408 and 429): dropped.
    Rejected,
    /// Cannot be sent at all (the transport cannot be built): dropped.
    Failed,
    /// Try again at this time.
    Later(Instant),
}

struct Worker {
    shared: Arc<Shared>,
    sink: Sink,
    /// Built on first use, so `start()` stays cheap.
    transport: Option<Box<dyn Transport>>,
    /// `None` without a config dir, and in debug mode.
    spool: Option<Spool>,
    backlog: VecDeque<Pending>,
    /// When the backlog's front may be tried again.
    retry_at: Option<Instant>,
    /// The server asked not to be sent anything before this.
    not_before: Option<SystemTime>,
    /// Failures in a row, for the backoff.
    failures: u32,
    /// Held while this process sends the batches earlier runs left.
    spool_lock: Option<std::fs::File>,
}

impl Worker {
    fn new(shared: Arc<Shared>, sink: Sink) -> Self {
        let spool = match sink {
            Sink::Debug => None,
            Sink::Http(_) | Sink::Custom(_) => shared.config.config_dir.as_deref().map(Spool::new),
        };
        Self {
            shared,
            sink,
            transport: None,
            spool,
            backlog: VecDeque::new(),
            retry_at: None,
            not_before: None,
            failures: 0,
            spool_lock: None,
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
                Next::Exit => {
                    self.exit(&records);
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
        let server = self
            .not_before
            .and_then(|t| t.duration_since(SystemTime::now()).ok())
            .map(|wait| now + wait);
        Some(self.retry_at.into_iter().chain(server).max().unwrap_or(now))
    }

    /// The batches earlier runs left, oldest first, within the limits; only
    /// in the one process that holds the spool's lock, so that two runs at
    /// once do not send them twice.
    fn load_spool(&mut self) {
        let Some(spool) = &self.spool else { return };
        let latest = SystemTime::now() + MAX_RETRY_AFTER;
        self.not_before = spool.not_before().map(|t| t.min(latest));
        let Some(lock) = spool.lock() else { return };
        self.spool_lock = Some(lock);
        let dropped = spool.enforce_limits(SystemTime::now(), None);
        self.count_dropped(dropped);
        let (entries, corrupt) = spool.entries();
        self.shared.count_spool(SpoolCount::CorruptFiles, corrupt);
        self.backlog
            .extend(entries.into_iter().map(|entry| Pending {
                events: entry.events,
                owned: 0,
                body: Stored::Disk { entry, bytes: None },
            }));
    }

    fn count_dropped(&self, dropped: spool::Dropped) {
        self.shared.count_spool(SpoolCount::TooOld, dropped.too_old);
        self.shared
            .count_spool(SpoolCount::Full, dropped.spool_full);
        self.shared
            .count_spool(SpoolCount::CorruptFiles, dropped.corrupt_files);
    }

    /// New records: in debug mode they are printed; otherwise they join the
    /// backlog as batches, behind what earlier runs left.
    fn take(&mut self, records: &[Record], flush: Option<Instant>) {
        if let Sink::Debug = self.sink {
            self.print(records);
            return;
        }
        for chunk in records.chunks(BATCH_SIZE) {
            match serialize(&self.shared, chunk) {
                Some(body) => self.backlog.push_back(Pending {
                    body: Stored::Memory(Arc::new(body)),
                    events: chunk.len(),
                    owned: chunk.len(),
                }),
                None => self.shared.settle(Settled::Failed, chunk.len()),
            }
        }
        if flush.is_some() {
            // The exit waits: no backoff left over from earlier. Its
            // batches are on disk before they are sent: a process that
            // ends mid-request (the budget ran out, or it was killed) leaves
            // them for the next run; until then other runs leave them alone.
            self.retry_at = None;
            self.write_ahead();
        }
        if self.not_before.is_some_and(|t| t > SystemTime::now()) {
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
            .filter(|p| matches!(p.body, Stored::Memory(_)))
            .map(|p| p.events)
            .sum();
        while in_memory > cap {
            let Some(i) = self
                .backlog
                .iter()
                .position(|p| matches!(p.body, Stored::Memory(_)))
            else {
                break;
            };
            let Some(dropped) = self.backlog.remove(i) else {
                break;
            };
            in_memory -= dropped.events;
            self.shared.settle(Settled::Failed, dropped.owned);
        }
    }

    /// Tries the backlog's front once (with retries during a flush).
    fn send_front(&mut self, flush: Option<Instant>) {
        let Some(front) = self.backlog.pop_front() else {
            return;
        };
        let body = match &front.body {
            Stored::Memory(body)
            | Stored::Disk {
                bytes: Some(body), ..
            } => Cow::Borrowed(body.as_slice()),
            Stored::Disk { entry, bytes: None } => match Spool::read(entry) {
                Some(body) => Cow::Owned(body),
                None => {
                    // Corrupt or truncated: removed by `read`.
                    self.shared.count_spool(SpoolCount::CorruptFiles, 1);
                    self.shared.settle(Settled::Failed, front.owned);
                    return;
                }
            },
        };
        let attempts = if flush.is_some() {
            FLUSH_ATTEMPTS
        } else {
            BACKGROUND_ATTEMPTS
        };
        // A batch of this run sent from memory is where the exit can keep
        // it, should this send outlast the exit budget.
        let lent = match &front.body {
            Stored::Memory(body) if front.owned > 0 => {
                *lock(&self.shared.in_flight) = Some(InFlight {
                    body: Arc::clone(body),
                    events: front.events,
                    owned: front.owned,
                });
                true
            }
            Stored::Memory(_) | Stored::Disk { .. } => false,
        };
        let sent = self.send(&body, flush, attempts);
        drop(body);
        if lent && lock(&self.shared.in_flight).take().is_none() {
            // The exit kept it in the spool, and counted it.
            return;
        }
        let (settled, counted) = match sent {
            Sent::Later(at) => {
                self.backlog.push_front(front);
                self.retry_at = Some(at);
                // A server that is down is not waited for: this run's
                // batches go to the spool now, for the next try.
                self.persist();
                return;
            }
            Sent::Delivered => (Settled::Delivered, Some(SpoolCount::Delivered)),
            Sent::Rejected => (Settled::Rejected, Some(SpoolCount::Rejected)),
            Sent::Failed => (Settled::Failed, None),
        };
        match (&front.body, counted) {
            (Stored::Disk { entry, .. }, Some(_)) => Spool::remove(entry),
            // A batch that cannot be sent at all stays on disk for a run
            // that can.
            (Stored::Disk { entry, .. }, None) => {
                if let Some(spool) = &self.spool {
                    let _ = spool.publish(entry);
                }
            }
            (Stored::Memory(_), _) => {}
        }
        self.shared.settle(settled, front.owned);
        if let Some(counted) = counted {
            self.shared.count_spool(counted, front.events - front.owned);
        }
    }

    /// Sends `body`, retrying retryable failures with backoff while
    /// `attempts` and the flush's deadline allow.
    fn send(&mut self, body: &[u8], flush: Option<Instant>, attempts: u32) -> Sent {
        let budget = self.shared.config.exit_budget;
        for attempt in 1..=attempts {
            let now = Instant::now();
            if let Some(wait) = self
                .not_before
                .and_then(|t| t.duration_since(SystemTime::now()).ok())
            {
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
                return Sent::Later(now + self.backoff());
            }
            let Some(transport) = self.transport() else {
                return Sent::Failed;
            };
            let Ok(result) = catch_unwind(AssertUnwindSafe(|| transport.send(body, timeout)))
            else {
                // A transport that panics would panic again: not retried.
                return Sent::Failed;
            };
            let error = match result {
                Ok(()) => {
                    self.failures = 0;
                    self.retry_at = None;
                    if self.not_before.take().is_some()
                        && let Some(spool) = &self.spool
                    {
                        spool.clear_not_before();
                    }
                    return Sent::Delivered;
                }
                Err(error) => error,
            };
            match classify(&error) {
                Retry::Never => return Sent::Rejected,
                Retry::Impossible => return Sent::Failed,
                Retry::After(wait) => {
                    // Never sooner than the backoff: a server that keeps
                    // answering `Retry-After: 0` is not hammered.
                    self.failures = self.failures.saturating_add(1);
                    let wait = wait.clamp(self.backoff(), MAX_RETRY_AFTER);
                    let until = SystemTime::now() + wait;
                    self.not_before = Some(until);
                    if let Some(spool) = &self.spool {
                        let _ = spool.set_not_before(until);
                    }
                    return Sent::Later(Instant::now() + wait);
                }
                Retry::Backoff => {
                    self.failures = self.failures.saturating_add(1);
                    let wait = self.backoff();
                    let retry_at = Instant::now() + wait;
                    let past_deadline =
                        flush.is_some_and(|deadline| retry_at + SPOOL_MARGIN >= deadline);
                    // The exit's flush does not wait for a background send's
                    // retries: what is left is kept for the next run.
                    let exiting = flush.is_none() && self.shared.is_exiting();
                    if attempt == attempts || past_deadline || exiting || self.shared.is_closed() {
                        return Sent::Later(retry_at);
                    }
                    // Woken early by `close`: the loop then gives up.
                    thread::park_timeout(wait);
                }
            }
        }
        Sent::Later(Instant::now() + self.backoff())
    }

    fn backoff(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(20);
        FIRST_BACKOFF
            .saturating_mul(1 << doublings)
            .min(MAX_BACKOFF)
    }

    fn transport(&mut self) -> Option<&dyn Transport> {
        match &self.sink {
            Sink::Http(endpoint) => {
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

    /// This run's batches still in memory are written to the spool as in
    /// flight: left alone by other runs, sent by this one.
    fn write_ahead(&mut self) {
        let Some(spool) = self.spool.clone() else {
            return;
        };
        if self.shared.is_disabled() {
            return;
        }
        for pending in &mut self.backlog {
            if let Stored::Memory(body) = &pending.body
                && let Ok(entry) = spool.write(body, pending.events, SystemTime::now(), true)
            {
                pending.body = Stored::Disk {
                    entry,
                    bytes: Some(Arc::clone(body)),
                };
            }
        }
    }

    /// This run's batches wait for a later try: written (or published) to
    /// the spool for any run to send, and counted as spooled. Without a
    /// spool they wait in memory. After `disable()`, they are discarded.
    fn persist(&mut self) {
        if self.shared.is_disabled() {
            for pending in &mut self.backlog {
                if let Stored::Disk { entry, .. } = &pending.body {
                    Spool::remove(entry);
                }
                self.shared.settle(Settled::Discarded, pending.owned);
                pending.owned = 0;
            }
            return;
        }
        let Some(spool) = self.spool.clone() else {
            return;
        };
        for pending in &mut self.backlog {
            if pending.owned == 0 {
                continue;
            }
            let (stored, bytes) = match &pending.body {
                Stored::Memory(body) => (
                    spool.write(body, pending.events, SystemTime::now(), false),
                    None,
                ),
                Stored::Disk { entry, bytes } => (spool.publish(entry), bytes.clone()),
            };
            // A spool that cannot be written: the batch waits in memory.
            let Ok(entry) = stored else { continue };
            pending.body = Stored::Disk { entry, bytes };
            self.shared.settle(Settled::Spooled, pending.owned);
            pending.owned = 0;
        }
        let dropped = spool.enforce_limits(SystemTime::now(), None);
        self.count_dropped(dropped);
        self.forget_removed();
    }

    /// Batches the spool's limits removed leave the backlog.
    /// (This run's among them were spooled, and are counted as such; the
    /// drop itself is counted as the spool being full.)
    fn forget_removed(&mut self) {
        let shared = &self.shared;
        self.backlog.retain(|p| match &p.body {
            Stored::Disk { entry, .. } if !entry.path.exists() => {
                shared.settle(Settled::Spooled, p.owned);
                false
            }
            Stored::Disk { .. } | Stored::Memory(_) => true,
        });
    }

    /// Closed: what is left goes to the spool, unless telemetry was
    /// disabled, which deletes the spool instead.
    fn exit(&mut self, records: &[Record]) {
        if self.shared.is_disabled() {
            let owned: usize = self.backlog.iter().map(|p| p.owned).sum();
            self.shared
                .settle(Settled::Discarded, owned + records.len());
            if let Some(dir) = &self.shared.config.config_dir {
                let _ = Spool::delete(dir);
            }
            return;
        }
        if !records.is_empty() {
            self.take(records, None);
        }
        self.persist();
        let left: usize = self.backlog.iter().map(|p| p.owned).sum();
        self.shared.settle(Settled::Failed, left);
    }

    fn print(&mut self, records: &[Record]) {
        let machine_id = machine_id(&self.shared);
        let config = &self.shared.config;
        let mut out = String::new();
        let names = CommandNames::of(&config.app, records);
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

/// A batch's request body, `{"data": [...]}`.
fn serialize(shared: &Shared, records: &[Record]) -> Option<Vec<u8>> {
    let machine_id = machine_id(shared);
    let names = CommandNames::of(&shared.config.app, records);
    let batch = Batch {
        data: build(&machine_id, &shared.config, records, &names),
    };
    serde_json::to_vec(&batch).ok()
}

/// The machine id, computed once per client (by the worker, as it starts).
fn machine_id(shared: &Shared) -> String {
    let config = &shared.config;
    shared
        .machine_id
        .get_or_init(|| identity::machine_id(&config.app, config.config_dir.as_deref()))
        .clone()
}

/// At exit, when the worker did not take everything in time (it was busy
/// with a request the budget cut short): what is still queued is written
/// to the spool here, on the exiting thread, so the next run sends it.
pub(crate) fn keep_queued(shared: &Shared) {
    let spool = shared.config.config_dir.as_deref().map(Spool::new);
    let disabled = shared.is_disabled();
    let keep = |body: &[u8], events: usize| -> Settled {
        match &spool {
            _ if disabled => Settled::Discarded,
            Some(spool) if spool.write(body, events, SystemTime::now(), false).is_ok() => {
                Settled::Spooled
            }
            Some(_) | None => Settled::Failed,
        }
    };
    if let Some(batch) = lock(&shared.in_flight).take() {
        shared.settle(keep(&batch.body, batch.events), batch.owned);
    }
    for chunk in shared.take_queued().chunks(BATCH_SIZE) {
        let how = match serialize(shared, chunk) {
            Some(body) => keep(&body, chunk.len()),
            None if disabled => Settled::Discarded,
            None => Settled::Failed,
        };
        shared.settle(how, chunk.len());
    }
}

/// Whether and when a failed request may be retried.
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

/// The full command names of a batch (`devsy provider list`), made once
/// per distinct command rather than once per event.
struct CommandNames(Vec<(String, String)>);

impl CommandNames {
    fn of(app: &str, records: &[Record]) -> Self {
        let mut names: Vec<(String, String)> = Vec::new();
        for record in records {
            if !names.iter().any(|(path, _)| *path == *record.command) {
                let full = if record.command.is_empty() {
                    app.to_string()
                } else {
                    format!("{app} {}", record.command)
                };
                names.push((record.command.to_string(), full));
            }
        }
        Self(names)
    }

    fn get(&self, path: &str) -> &str {
        self.0
            .iter()
            .find(|(p, _)| p == path)
            .map_or("", |(_, full)| full.as_str())
    }
}

/// Turns records into the wire format.
fn build<'a>(
    machine_id: &'a str,
    config: &'a Config,
    records: &'a [Record],
    names: &'a CommandNames,
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
            let pick = |get: fn(&crate::worker::Props) -> &Option<String>| {
                props
                    .and_then(|p| get(p).as_deref())
                    .or_else(|| get(&config.defaults).as_deref())
                    .map(Cow::Borrowed)
            };
            let command = Cow::Borrowed(names.get(&record.command));
            Envelope {
                event: Event {
                    kind: Cow::Borrowed(&config.event_type),
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
                            .map(|error| Cow::Owned(config.scrubber.scrub(error))),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classes() {
        let status = |code, retry_after: Option<&str>| TransportError::Status {
            code,
            retry_after: retry_after.map(str::to_string),
        };
        assert!(matches!(classify(&status(500, None)), Retry::Backoff));
        assert!(matches!(classify(&status(503, None)), Retry::Backoff));
        assert!(matches!(classify(&status(408, None)), Retry::Backoff));
        assert!(matches!(classify(&status(429, None)), Retry::Backoff));
        assert!(
            matches!(classify(&status(429, Some("7"))), Retry::After(d) if d == Duration::from_secs(7))
        );
        assert!(matches!(
            classify(&status(503, Some("soon"))),
            Retry::Backoff
        ));
        assert!(matches!(classify(&status(400, None)), Retry::Never));
        assert!(matches!(classify(&status(413, None)), Retry::Never));
        assert!(matches!(classify(&status(301, None)), Retry::Never));
        assert!(matches!(classify(&TransportError::Timeout), Retry::Backoff));
        assert!(matches!(
            classify(&TransportError::Connect("refused".into())),
            Retry::Backoff
        ));
        assert!(matches!(
            classify(&TransportError::Config("bad".into())),
            Retry::Impossible
        ));
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
}
