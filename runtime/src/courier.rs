//! The courier: what a run could not deliver before it exited is handed to
//! this executable, started again detached, which delivers the spool and
//! exits, so that the exit waits for no network (the design of
//! `golang.org/x/telemetry`'s `Start`).
//!
//! The exiting run starts `<current exe> __devsy-telemetry-courier <app>
//! <context>` with `DEVSY_TELEMETRY_COURIER=1` in its environment, standard
//! streams on the null device, its own process group, and the config dir as
//! its current directory. In that process [`Builder::start`] finds both the
//! argument and the variable and, instead of returning into the host's
//! `main`, runs [`run`]: it takes the spool's lock or ends at once, re-checks
//! every opt-out rule before each send, sends with the usual retries and
//! `Retry-After`, and ends when the spool is empty, when the server stays
//! unreachable after its retries, or after [`COURIER_LIFETIME`]. It never
//! starts another courier.
//!
//! A host that parses its arguments before `start()` stops on the unknown
//! argument instead of running a default action; the batches then wait in
//! the spool for the next run.

use std::ffi::OsString;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::app::{App, Env};
use crate::builder::{Builder, Run};
use crate::queue::{Config, Sink};
use crate::spool::Spool;
use crate::transport::{HttpTransport, Transport};
use crate::worker::BACKGROUND_ATTEMPTS;
use crate::worker::retry::{RetryState, Verdict};

/// The argument that makes a process a courier (with [`MARKER`]).
pub(crate) const ARGUMENT: &str = "__devsy-telemetry-courier";
/// The environment variable that makes a process a courier (with
/// [`ARGUMENT`]). Both are needed: a user who types the argument does not
/// start a courier, nor does a program the courier's host starts, which
/// inherits the variable but not the argument.
pub(crate) const MARKER: &str = "DEVSY_TELEMETRY_COURIER";
/// The longest a courier lives. A server that accepts and stalls holds it
/// no longer; what is left waits for the next run.
pub const COURIER_LIFETIME: Duration = Duration::from_secs(30);
/// The longest one request of the courier may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A request given less time than this is not worth starting.
const MIN_REQUEST: Duration = Duration::from_millis(50);

/// How a courier was started: by the run of which app, for which context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invocation {
    app: String,
    context: String,
}

impl Invocation {
    /// `Some` when this process is a courier (`None` inside: started as
    /// one, but with arguments this version does not understand).
    pub(crate) fn of_process() -> Option<Option<Self>> {
        std::env::var_os(MARKER)?;
        Self::parse(std::env::args_os().skip(1))
    }

    fn parse(mut args: impl Iterator<Item = OsString>) -> Option<Option<Self>> {
        if args.next()? != ARGUMENT {
            return None;
        }
        let mut text = || args.next().and_then(|a| a.into_string().ok());
        Some(
            text()
                .zip(text())
                .map(|(app, context)| Self { app, context }),
        )
    }
}

/// Starts a courier for the spool of `config`. Returns once it is started;
/// it is never waited for.
pub(crate) fn spawn(config: &Config) -> io::Result<()> {
    let dir = config
        .config_dir
        .as_deref()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no config dir"))?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg(ARGUMENT)
        .arg(config.app.name())
        .arg(&config.context)
        .env(MARKER, "1")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    detach(&mut command);
    // Dropping the handle neither waits for the child nor kills it.
    command.spawn().map(drop)
}

/// Its own process group, so that a Ctrl-C in the terminal does not reach it.
/// `process_group` keeps std's fast spawn path (no `pre_exec`).
#[cfg(unix)]
fn detach(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    command.process_group(0);
}

/// No console window flashes, and Ctrl-C does not reach it.
#[cfg(windows)]
fn detach(command: &mut Command) {
    use std::os::windows::process::CommandExt as _;
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    const CREATE_NO_WINDOW: u32 = 0x0800_0000;
    command.creation_flags(CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW);
}

#[cfg(not(any(unix, windows)))]
fn detach(_command: &mut Command) {}

/// The courier's whole life: deliver, then end the process. Never returns
/// into the host.
pub(crate) fn run(builder: Builder, app: Option<App>, invocation: Option<&Invocation>) -> ! {
    if let (Some(app), Some(invocation)) = (app, invocation) {
        // A panic here must not run the host's code either.
        let _ = catch_unwind(AssertUnwindSafe(|| deliver(builder, app, invocation)));
    }
    std::process::exit(0)
}

fn deliver(mut builder: Builder, app: App, invocation: &Invocation) {
    if invocation.app != app.name() {
        return;
    }
    // The exiting run made the config dir this process's current directory.
    let Ok(dir) = std::env::current_dir() else {
        return;
    };
    // The process environment: a courier is never started for a host that
    // gave its own (see `Builder::env`).
    let run = Run::new(app, Env::process(), Some(dir.clone()));
    if run.debug {
        return;
    }
    let spool = Spool::new(&dir);
    let allowed = |builder: &Builder| builder.consent(&run, Some(&invocation.context)).is_ok();
    if !allowed(&builder) {
        crate::files::forget(&dir);
        return;
    }
    let transport: Box<dyn Transport> = match builder.sink(&run) {
        Ok(Sink::Custom(transport)) => transport,
        Ok(Sink::Http { endpoint, .. }) => match HttpTransport::new(endpoint) {
            Ok(http) => Box::new(http),
            Err(_) => return,
        },
        Ok(Sink::Debug) => return,
        Err(_) => {
            crate::files::forget(&dir);
            return;
        }
    };
    let mut courier = Courier {
        config_dir: dir,
        retry: RetryState::resume(Some(&spool)),
        spool,
        transport,
        deadline: Instant::now() + COURIER_LIFETIME,
        sent: 0,
    };
    let ended = courier.deliver(&|| allowed(&builder));
    match ended {
        // The spool is gone, and nothing may be written any more.
        Ended::OptedOut => {}
        Ended::Empty | Ended::GaveUp | Ended::Held => courier.spool.note_courier(&format!(
            "pid {}: {ended}; {} batches sent",
            std::process::id(),
            courier.sent
        )),
    }
}

/// How a courier ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Nothing left to send.
    Empty,
    /// The server stays unreachable, the lifetime is over, or the batch
    /// cannot be sent at all: the rest waits for the next run.
    GaveUp,
    /// Another courier holds the spool's lock.
    Held,
    /// Telemetry was turned off meanwhile: the spool was deleted (by the
    /// courier, or under it).
    OptedOut,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Empty => "the spool is empty",
            Self::GaveUp => "gave up, the rest waits for the next run",
            Self::Held => "another courier holds the spool",
            Self::OptedOut => "telemetry was turned off, the spool deleted",
        })
    }
}

/// What one attempt to send a batch came to.
enum Attempt {
    /// Delivered, or refused for good: the batch leaves the spool.
    Done,
    /// Telemetry was turned off meanwhile.
    OptedOut,
    /// The spool was deleted under it.
    Lost,
    /// The server stays unreachable, or the lifetime is over.
    GiveUp,
}

struct Courier {
    /// The config dir the spool is in: forgotten whole at an opt-out.
    config_dir: PathBuf,
    spool: Spool,
    transport: Box<dyn Transport>,
    retry: RetryState,
    deadline: Instant,
    /// Batches delivered (or refused for good) so far.
    sent: usize,
}

impl Courier {
    /// Sends the spool, oldest batch first, under its lock.
    fn deliver(&mut self, allowed: &dyn Fn() -> bool) -> Ended {
        let Some(mut lock) = self.spool.lock() else {
            return Ended::Held;
        };
        // Bounded by the lifetime; the count bounds it too, whatever the clock does.
        for _ in 0..10_000 {
            if Instant::now() >= self.deadline {
                return Ended::GaveUp;
            }
            self.spool
                .enforce_limits(std::time::SystemTime::now(), None);
            let (entries, _) = self.spool.entries();
            let Some(entry) = entries.into_iter().next() else {
                // Empty: let the lock go, then look once more. A run that
                // exited meanwhile saw the lock held and started no courier.
                drop(lock);
                if self.spool.entries().0.is_empty() {
                    return Ended::Empty;
                }
                match self.spool.lock() {
                    Some(again) => {
                        lock = again;
                        continue;
                    }
                    None => return Ended::Empty,
                }
            };
            let Some(body) = Spool::read(&entry) else {
                continue; // corrupt: removed
            };
            let spool = self.spool.clone();
            let ours = || spool.still_locked_by(&lock);
            match self.send(&body, allowed, &ours) {
                Attempt::Done => {
                    Spool::remove(&entry);
                    self.sent += 1;
                }
                Attempt::OptedOut => {
                    crate::files::forget(&self.config_dir);
                    return Ended::OptedOut;
                }
                // Deleted under it (an opt-out, maybe an opt-in since):
                // what is there now is not this courier's.
                Attempt::Lost => return Ended::OptedOut,
                Attempt::GiveUp => return Ended::GaveUp,
            }
        }
        Ended::GaveUp
    }

    /// Sends one batch with retries, re-checking before every attempt that
    /// the spool is still the one it locked, and the opt-out rules.
    fn send(
        &mut self,
        body: &[u8],
        allowed: &dyn Fn() -> bool,
        ours: &dyn Fn() -> bool,
    ) -> Attempt {
        for attempt in 1..=BACKGROUND_ATTEMPTS {
            if let Some(wait) = self.retry.server_wait()
                && !self.sleep(wait)
            {
                return Attempt::GiveUp;
            }
            if !ours() {
                return Attempt::Lost;
            }
            if !allowed() {
                return Attempt::OptedOut;
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left < MIN_REQUEST {
                return Attempt::GiveUp;
            }
            let error = match self.transport.send(body, left.min(REQUEST_TIMEOUT)) {
                Ok(()) => {
                    self.retry.succeeded(Some(&self.spool));
                    return Attempt::Done;
                }
                Err(error) => error,
            };
            match self.retry.failed(&error, Some(&self.spool)) {
                Verdict::Rejected => return Attempt::Done,
                Verdict::Impossible => return Attempt::GiveUp,
                Verdict::RetryAt(at) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    if attempt == BACKGROUND_ATTEMPTS || !self.sleep(wait) {
                        return Attempt::GiveUp;
                    }
                }
            }
        }
        Attempt::GiveUp
    }

    /// Sleeps `wait`, unless that outlives the courier: then `false`.
    fn sleep(&self, wait: Duration) -> bool {
        if Instant::now() + wait >= self.deadline {
            return false;
        }
        thread::sleep(wait);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Option<Option<Invocation>> {
        Invocation::parse(args.iter().map(OsString::from))
    }

    #[test]
    fn the_argument_must_come_first() {
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&["provider", "list"]), None);
        assert_eq!(parse(&["provider", ARGUMENT, "devsy", "default"]), None);
        assert_eq!(
            parse(&[ARGUMENT, "devsy", "work"]),
            Some(Some(Invocation {
                app: "devsy".into(),
                context: "work".into()
            }))
        );
        // A courier of another version: still a courier, that does nothing.
        assert_eq!(parse(&[ARGUMENT]), Some(None));
    }
}
