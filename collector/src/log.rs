//! The collector's one way to say something on stderr. Lines go through a
//! bounded queue to a thread of their own that writes them: a write that
//! fails (stderr closed, a broken pipe) is dropped, and one that blocks (a
//! full pipe nobody reads) blocks only that thread; when the queue is
//! full, the line is dropped. So logging never panics and never stalls
//! the thread that logs, the database writer least of all.

use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::{Duration, Instant};

/// Lines waiting for stderr; more are dropped.
const QUEUE: usize = 256;

/// Queues `devsy-collector: <message>` for stderr, or drops it.
pub fn log(message: &str) {
    static LINES: OnceLock<Option<SyncSender<String>>> = OnceLock::new();
    let lines = LINES.get_or_init(|| {
        let (tx, rx) = sync_channel::<String>(QUEUE);
        std::thread::Builder::new()
            .name("collector-log".into())
            .spawn(move || {
                for line in rx {
                    let _ = writeln!(std::io::stderr().lock(), "devsy-collector: {line}");
                }
            })
            .ok()
            .map(|_| tx)
    });
    match lines {
        Some(lines) => {
            let _ = lines.try_send(message.to_string());
        }
        // No thread: write here, errors ignored.
        None => {
            let _ = writeln!(std::io::stderr().lock(), "devsy-collector: {message}");
        }
    }
}

/// Writes a last line itself, after the queue (at exit, when the log
/// thread may not get to run again).
pub fn log_now(message: &str) {
    std::thread::sleep(Duration::from_millis(20));
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
