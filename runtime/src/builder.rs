//! Configuration: the [`Builder`], and the [`Telemetry`] guard it starts.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use devsy_telemetry_wire::limits::{self, Field, fit_owned};

use crate::app::{App, CONFIG_FILE, Env, Variables};
use crate::command::CommandBuilder;
use crate::exit::{self, Exit, ExitMode};
use crate::notice::Notice;
use crate::policy::{self, ContextSource, DisabledBy, Inputs, Status};
use crate::queue::{Config, Props, Shared, Sink, Stats};
use crate::scrub::Scrubber;
use crate::spool::Spool;
use crate::transport::{Transport, check_endpoint};
use crate::{courier, files, global, notice, worker};

/// The default slow threshold: a command that runs this long sends a
/// finished event even when it succeeds.
pub const DEFAULT_SLOW_THRESHOLD: Duration = devsy_telemetry_wire::DEFAULT_SLOW_THRESHOLD;
/// The default exit budget: the longest that dropping the guard waits for
/// delivery.
pub const DEFAULT_EXIT_BUDGET: Duration = Duration::from_millis(500);
/// The default number of events the queue holds before it drops new ones.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1000;

/// Configures telemetry for one app; [`start`](Self::start) applies the
/// opt-out rules and, if telemetry is on, starts the background worker.
///
/// ```no_run
/// let _telemetry = devsy_telemetry_runtime::Telemetry::builder("devsy")
///     .version("v0.5.29")
///     .endpoint("https://telemetry.devsy.sh/v1/insert") // DEVSY_TELEMETRY_ENDPOINT overrides it
///     .start(); // dropping the guard flushes within the exit budget
/// ```
#[must_use = "telemetry does nothing until `start` is called"]
pub struct Builder {
    /// The name as given; checked by `start`.
    name: String,
    version: String,
    endpoint: Option<String>,
    context: Option<String>,
    context_option: Option<Option<String>>,
    defaults: Props,
    desktop: Option<bool>,
    slow_threshold: Duration,
    exit_budget: Duration,
    exit: Option<Exit>,
    queue_capacity: usize,
    transport: Option<Box<dyn Transport>>,
    enabled: bool,
    env: Option<HashMap<String, String>>,
    config_dir: Option<PathBuf>,
    notice: Notice,
    opt_out_command: Option<String>,
    notice_before_sending: bool,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("app", &self.name)
            .field("version", &self.version)
            .field("endpoint", &self.endpoint)
            .field("context", &self.context)
            .field("enabled", &self.enabled)
            .field("custom_transport", &self.transport.is_some())
            .finish_non_exhaustive()
    }
}

impl Builder {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            version: String::new(),
            endpoint: None,
            context: None,
            context_option: None,
            defaults: Props::default(),
            desktop: None,
            slow_threshold: DEFAULT_SLOW_THRESHOLD,
            exit_budget: DEFAULT_EXIT_BUDGET,
            exit: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            transport: None,
            enabled: true,
            env: None,
            config_dir: None,
            notice: Notice::Default,
            opt_out_command: None,
            notice_before_sending: false,
        }
    }

    /// The app's version, sent as `properties.version`. Empty or `v0.0.0`
    /// (the default) means a development build: telemetry stays off.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Where the HTTP transport posts. `<APP>_TELEMETRY_ENDPOINT` overrides it.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The context whose options apply (default: the store's
    /// `defaultContext`, else `"default"`).
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// For an app that keeps its own config: the current context's
    /// `TELEMETRY` value, passed in. The context store is then not read.
    pub fn context_option(mut self, telemetry: Option<&str>) -> Self {
        self.context_option = Some(telemetry.map(str::to_string));
        self
    }

    /// The default `provider` of every event.
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.defaults.provider = Some(provider.into());
        self
    }

    /// The default `ide` of every event.
    pub fn ide(mut self, ide: impl Into<String>) -> Self {
        self.defaults.ide = Some(ide.into());
        self
    }

    /// The default `source_type` of every event.
    pub fn source_type(mut self, source_type: impl Into<String>) -> Self {
        self.defaults.source_type = Some(source_type.into());
        self
    }

    /// Whether the desktop app runs this command. Default: true when
    /// `<APP>_UI` is set (to anything but empty, 0, false, no or off).
    pub fn desktop(mut self, desktop: bool) -> Self {
        self.desktop = Some(desktop);
        self
    }

    /// A successful command that runs at least this long sends a finished
    /// event (default 10 s).
    pub fn slow_threshold(mut self, threshold: Duration) -> Self {
        self.slow_threshold = threshold;
        self
    }

    /// The longest that dropping the guard waits for delivery in
    /// [`Exit::Wait`] (default 500 ms). No request outlives it.
    pub fn exit_budget(mut self, budget: Duration) -> Self {
        self.exit_budget = budget;
        self
    }

    /// How many events may wait for the worker (default 1000, at least 1);
    /// more are dropped and counted, never waited for.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Sends batches through `transport` instead of HTTP. No endpoint is then needed.
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Box::new(transport));
        self
    }

    /// `false` turns telemetry off (the app's own switch).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Reads every variable the runtime reads from `vars` instead of the
    /// process environment: for a host that runs commands on behalf of a
    /// client with its own environment, and for tests. Those are
    /// `<APP>_DISABLE_TELEMETRY`, `DO_NOT_TRACK`, `<APP>_TELEMETRY_ENDPOINT`,
    /// `<APP>_TELEMETRY_DEBUG`, `<APP>_HOME`, `<APP>_UI`; `HOME` and
    /// `USERPROFILE` (the config dir, and the home path scrubbed from
    /// errors); `USER`, `USERNAME` and `LOGNAME` (the user name scrubbed
    /// from errors); and the CI variables of
    /// [`CI_VARIABLES`](crate::CI_VARIABLES). Empty values count as unset.
    /// Proxy variables are always read from the process environment.
    ///
    /// A courier would read the process environment, not `vars`, so with a
    /// custom environment the exit is [`Exit::Wait`] (or
    /// [`Exit::NextRun`], if chosen), never [`Exit::Handoff`].
    pub fn env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// The directory of the context store (`config.json`) and of the kept
    /// machine id, instead of `$<APP>_HOME` or `~/.<app>`.
    pub fn config_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.config_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// What the first run with telemetry on tells the person at the
    /// terminal, once (default: [`Notice::Default`], the library's text;
    /// [`Notice::Off`] for an app that shows its own). It is printed on
    /// stderr only when stderr is a terminal and not in CI; never when
    /// telemetry is off, in debug mode or in a courier. That it was shown
    /// is kept in the config dir (`telemetry-notice-shown`), and forgotten
    /// with everything else when telemetry is turned off.
    ///
    /// ```no_run
    /// use devsy_telemetry_runtime::{Notice, Telemetry};
    ///
    /// let _telemetry = Telemetry::builder("devsy")
    ///     .version("v0.5.29")
    ///     .endpoint("https://telemetry.devsy.sh/v1/insert")
    ///     .notice(Notice::Default)
    ///     .opt_out_command("devsy context set-options -o TELEMETRY=false")
    ///     .start();
    /// ```
    pub fn notice(mut self, notice: Notice) -> Self {
        self.notice = notice;
        self
    }

    /// The app's own command that turns telemetry off, named by the
    /// default notice.
    pub fn opt_out_command(mut self, command: impl Into<String>) -> Self {
        self.opt_out_command = Some(command.into());
        self
    }

    /// `true`: the run that shows the notice sends nothing (its status is
    /// [`DisabledBy::FirstRunNotice`]), so that nothing is sent before the
    /// person has read how to opt out; the next run sends. The default,
    /// `false`, sends from the first run, as Next.js and Turborepo do: the
    /// notice says how to stop, and a first run is most of what a
    /// short-lived CLI's telemetry sees. Homebrew and the .NET CLI wait.
    pub fn notice_before_sending(mut self, wait: bool) -> Self {
        self.notice_before_sending = wait;
        self
    }

    /// What dropping the guard does with events not yet delivered:
    /// [`Exit::Handoff`] (the default) writes them to the spool and starts
    /// a detached courier that delivers them, so the exit waits for no
    /// network; [`Exit::Wait`] delivers within the exit budget;
    /// [`Exit::NextRun`] leaves them for the next run. In CI, and with
    /// [`env`](Self::env), the default is [`Exit::Wait`]; see [`ExitMode`].
    pub fn exit(mut self, exit: Exit) -> Self {
        self.exit = Some(exit);
        self
    }

    /// Applies the opt-out rules and, when telemetry is on, starts the
    /// background worker and makes this the process's current client.
    ///
    /// Call it first in `main`, before parsing arguments or doing any other
    /// work: in a courier (this executable started again to deliver what
    /// an earlier run left) it delivers the spool and exits the process
    /// instead of returning.
    ///
    /// Never fails: when telemetry cannot run, the guard says why in
    /// [`Telemetry::status`]. When off, nothing is read but the environment
    /// and the config file; no thread, file or connection is made.
    pub fn start(self) -> Telemetry {
        match self.launch() {
            Ok((shared, debug)) => Telemetry {
                inner: Inner::On { shared, debug },
            },
            Err(rule) => Telemetry {
                inner: Inner::Off(rule),
            },
        }
    }

    fn launch(mut self) -> Result<(Arc<Shared>, bool), DisabledBy> {
        if cfg!(not(feature = "telemetry")) {
            return Err(DisabledBy::CompiledOut);
        }
        let env = Env::new(self.env.take());
        let app = App::new(&self.name);
        // A courier never returns into the host, whatever its name says.
        if let Some(invocation) = courier::Invocation::of_process() {
            courier::run(self, app.ok(), invocation.as_ref());
        }
        let app = match app {
            Ok(app) => app,
            Err(error) => return Err(refuse_name(&self.name, &error, &env)),
        };
        let config_dir = self.config_dir.take().or_else(|| app.config_dir(&env));
        let run = Run::new(app, env, config_dir);
        let started = if global::is_disabled() {
            Err(DisabledBy::Runtime)
        } else {
            self.consent(&run, None)
                .and_then(|context| Ok((context, self.sink(&run)?)))
                .and_then(|(context, sink)| {
                    self.first_run_notice(&run)?;
                    self.start_worker(&run, context, sink)
                })
        };
        started.inspect_err(|rule| {
            if run.debug {
                eprintln!("devsy-telemetry: telemetry is off: {rule}");
            }
            // Telemetry is off: what an earlier run left unsent goes too,
            // and the fallback id and the notice's mark.
            if !matches!(
                rule,
                DisabledBy::WorkerUnavailable { .. } | DisabledBy::FirstRunNotice
            ) && let Some(dir) = &run.config_dir
            {
                files::forget(dir);
            }
        })
    }

    /// The opt-out rules, against `context` when given instead of the
    /// builder's. Returns the context whose options applied.
    pub(crate) fn consent(&self, run: &Run, context: Option<&str>) -> Result<String, DisabledBy> {
        let store_path = run.config_dir.as_ref().map(|dir| dir.join(CONFIG_FILE));
        let source = match &self.context_option {
            Some(value) => ContextSource::Given(value.as_deref()),
            None => ContextSource::Store(store_path.as_deref()),
        };
        policy::decide(&Inputs {
            vars: run.app.vars(),
            env: &run.env,
            version: &self.version,
            enabled: self.enabled,
            context: context.or(self.context.as_deref()),
            source,
        })
    }

    /// Where batches go: printed in debug mode, the custom transport, or
    /// HTTP to the endpoint (`<APP>_TELEMETRY_ENDPOINT` first).
    pub(crate) fn sink(&mut self, run: &Run) -> Result<Sink, DisabledBy> {
        if run.debug {
            return Ok(Sink::Debug);
        }
        if let Some(transport) = self.transport.take() {
            return Ok(Sink::Custom(transport));
        }
        let variable = &run.app.vars().endpoint;
        let endpoint = run
            .env
            .non_empty(variable)
            .or_else(|| self.endpoint.clone());
        let Some(endpoint) = endpoint else {
            let variable = variable.clone();
            return Err(DisabledBy::NoEndpoint { variable });
        };
        match check_endpoint(&endpoint) {
            Ok(origin) => Ok(Sink::Http { endpoint, origin }),
            Err(reason) => Err(DisabledBy::InvalidEndpoint { endpoint, reason }),
        }
    }

    /// Shows the notice if this is the first run that may: telemetry is
    /// on, not in debug mode, a person at the terminal, not CI. With
    /// [`notice_before_sending`](Self::notice_before_sending), the run that
    /// shows it goes no further.
    ///
    /// Not for a host that gave its own environment (`Builder::env`): its
    /// client is not at this terminal. Without a config dir, or where the
    /// mark cannot be kept, it is shown on every run that may, and the run
    /// sends: waiting for a consent that can never be kept would send
    /// nothing, ever.
    fn first_run_notice(&self, run: &Run) -> Result<(), DisabledBy> {
        if matches!(self.notice, Notice::Off) {
            return Ok(());
        }
        // Cheapest first: the file is looked at, and the text made, only on
        // a run that may show it.
        let dir = run.config_dir.as_deref();
        if run.debug
            || run.env.is_given()
            || exit::ci_variable(&run.env).is_some()
            || !notice::may_show()
            || dir.is_some_and(notice::shown)
        {
            return Ok(());
        }
        let text = match &self.notice {
            Notice::Off => return Ok(()),
            Notice::Default => std::borrow::Cow::Owned(notice::default_text(
                &run.app,
                self.opt_out_command.as_deref(),
            )),
            Notice::Text(text) => std::borrow::Cow::Borrowed(text.as_str()),
        };
        match notice::show(dir, &text) {
            notice::Shown::Kept if self.notice_before_sending => Err(DisabledBy::FirstRunNotice),
            notice::Shown::Kept | notice::Shown::NotKept | notice::Shown::NotPrinted => Ok(()),
        }
    }

    /// The client's configuration, its worker, and the process's current
    /// client.
    fn start_worker(
        self,
        run: &Run,
        context: String,
        sink: Sink,
    ) -> Result<(Arc<Shared>, bool), DisabledBy> {
        let Run {
            app,
            env,
            config_dir,
            debug,
        } = run;
        let exit = exit::choose(
            self.exit,
            *debug,
            config_dir.is_some(),
            env,
            self.exit_budget,
        );
        if *debug {
            eprintln!("devsy-telemetry: debug mode: events are printed, not sent; exit: {exit}");
        }
        let property = |v: Option<String>| {
            v.filter(|v| !v.is_empty())
                .map(|v| fit_owned(v, limits::PROPERTY, Field::Identifier))
        };
        let defaults = Props {
            provider: property(self.defaults.provider),
            ide: property(self.defaults.ide),
            source_type: property(self.defaults.source_type),
        };
        let shared = Arc::new(Shared::new(Config {
            app: app.clone(),
            version: fit_owned(self.version, limits::VERSION, Field::Identifier),
            defaults,
            desktop: self.desktop.unwrap_or_else(|| env.flag(&app.vars().ui)),
            slow_threshold: self.slow_threshold,
            exit,
            capacity: self.queue_capacity,
            config_dir: config_dir.clone(),
            spool: config_dir.as_deref().filter(|_| !debug).map(Spool::new),
            context,
            destination: match &sink {
                Sink::Http { origin, .. } => origin.clone(),
                Sink::Custom(_) => "a custom transport".into(),
                Sink::Debug => "stderr (debug mode: printed, not sent)".into(),
            },
            scrubber: Scrubber::new(env.home().as_deref(), env.user().as_deref()),
        }));
        if let Err(e) = worker::spawn(&shared, sink) {
            let reason = e.to_string();
            return Err(DisabledBy::WorkerUnavailable { reason });
        }
        global::install(&shared);
        Ok((shared, *debug))
    }
}

/// One run's view of where it is: the app, the environment it reads, its
/// config dir, and whether debug mode is on. Resolved once by `start`.
#[derive(Debug)]
pub(crate) struct Run {
    pub app: App,
    pub env: Env,
    pub config_dir: Option<PathBuf>,
    pub debug: bool,
}

impl Run {
    pub(crate) fn new(app: App, env: Env, config_dir: Option<PathBuf>) -> Self {
        let debug = env.flag(&app.vars().debug);
        Self {
            app,
            env,
            config_dir,
            debug,
        }
    }
}

/// An app name that breaks the rule turns telemetry off, loudly: the
/// status names it, debug mode prints it, and so does every debug build,
/// because it is the CLI author's mistake and they should see it at once.
fn refuse_name(name: &str, error: &devsy_telemetry_wire::app::NameError, env: &Env) -> DisabledBy {
    let rule = DisabledBy::InvalidAppName {
        name: name.to_string(),
        reason: error.to_string(),
    };
    if cfg!(debug_assertions) || env.flag(&Variables::of(name).debug) {
        eprintln!("devsy-telemetry: telemetry is off: {rule}");
    }
    rule
}

/// The running telemetry of one app. Dropping it stops the worker and does
/// with what is not yet delivered what the [`ExitMode`] says: by default,
/// hands it to a detached courier, waiting for no network.
///
/// Keep it alive for the whole of `main`:
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     let telemetry = devsy_telemetry_runtime::Telemetry::builder("devsy")
///         .version("v0.5.29")
///         .endpoint("https://telemetry.devsy.sh/v1/insert")
///         .start();
///     let span = telemetry.command("provider list").start();
///     println!("docker");
///     span.finish_ok();
///     std::process::ExitCode::SUCCESS
///     // `telemetry` drops here: what is left goes to a courier
/// }
/// ```
#[must_use = "dropping the guard stops telemetry at once"]
#[derive(Debug)]
pub struct Telemetry {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    On {
        shared: Arc<Shared>,
        debug: bool,
    },
    Off(DisabledBy),
    /// [`Telemetry::finish`] ended it.
    Ended,
}

impl Telemetry {
    /// Configures telemetry for `app`. The name drives the environment
    /// variables (`DEVSY_DISABLE_TELEMETRY` for `devsy`), the event type
    /// (`devsy_cli`) and the config dir (`~/.devsy`), so it must be
    /// lowercase ASCII letters, digits, `-` and `_`, starting with a letter
    /// (see [`event::app`](crate::event::app)). Any other name is refused
    /// when [`start`](Builder::start) runs: telemetry is off, with
    /// [`DisabledBy::InvalidAppName`] as the reason, printed to stderr in
    /// debug builds and in debug mode.
    ///
    /// ```
    /// use devsy_telemetry_runtime::{DisabledBy, Telemetry};
    ///
    /// let telemetry = Telemetry::builder("MyCli").version("v1.0.0").start();
    /// assert!(matches!(
    ///     telemetry.status().disabled_by(),
    ///     Some(DisabledBy::InvalidAppName { name, .. }) if name == "MyCli"
    /// ));
    /// ```
    pub fn builder(app: &str) -> Builder {
        Builder::new(app)
    }

    /// Whether telemetry is on, and if not, the rule that turned it off.
    #[must_use]
    pub fn status(&self) -> Status {
        match &self.inner {
            Inner::On { shared, .. } if shared.is_disabled() => {
                Status::Disabled(DisabledBy::Runtime)
            }
            Inner::On { debug: true, .. } => Status::Debug,
            Inner::On { debug: false, .. } => Status::Enabled,
            Inner::Off(rule) => Status::Disabled(rule.clone()),
            Inner::Ended => Status::Disabled(DisabledBy::Runtime),
        }
    }

    /// Where events go: the endpoint's scheme and host (never its path or
    /// query, which may hold a key), `a custom transport`, or stderr in
    /// debug mode; `None` when telemetry is off.
    ///
    /// ```
    /// let telemetry = devsy_telemetry_runtime::Telemetry::builder("devsy")
    ///     .version("v0.5.29")
    ///     .endpoint("https://user:secret@telemetry.devsy.sh/v1/insert?key=k")
    ///     .env([("HOME", "/nonexistent")])
    ///     .start();
    /// assert_eq!(telemetry.destination().as_deref(), Some("https://telemetry.devsy.sh"));
    /// ```
    #[must_use]
    pub fn destination(&self) -> Option<String> {
        match &self.inner {
            Inner::On { shared, .. } => Some(shared.config.destination.clone()),
            Inner::Off(_) | Inner::Ended => None,
        }
    }

    /// How many events wait in the spool for a courier or a later run: 0
    /// when telemetry is off, which deletes the spool, and in debug mode,
    /// which keeps none.
    #[must_use]
    pub fn spooled_events(&self) -> usize {
        match &self.inner {
            Inner::On { shared, .. } => shared
                .config
                .spool
                .as_ref()
                .map_or(0, Spool::waiting_events),
            Inner::Off(_) | Inner::Ended => 0,
        }
    }

    /// Whether the first-run notice was shown from this config dir (this
    /// run or an earlier one). Turning telemetry off forgets it.
    #[must_use]
    pub fn notice_shown(&self) -> bool {
        match &self.inner {
            Inner::On { shared, .. } => shared
                .config
                .config_dir
                .as_deref()
                .is_some_and(notice::shown),
            Inner::Off(rule) => *rule == DisabledBy::FirstRunNotice,
            Inner::Ended => false,
        }
    }

    /// What dropping the guard will do with events not yet delivered, and
    /// why that mode is in force; `None` when telemetry is off.
    #[must_use]
    pub fn exit_mode(&self) -> Option<ExitMode> {
        match &self.inner {
            Inner::On { shared, .. } => Some(shared.config.exit.clone()),
            Inner::Off(_) | Inner::Ended => None,
        }
    }

    /// Ends telemetry now, exactly as dropping the guard does, and returns
    /// the final counts. For a host that ends with `std::process::exit`,
    /// which runs no destructors: call this first.
    ///
    /// ```no_run
    /// let telemetry = devsy_telemetry_runtime::Telemetry::builder("devsy")
    ///     .version("v0.5.29")
    ///     .endpoint("https://telemetry.devsy.sh/v1/insert")
    ///     .start();
    /// // … the command, which failed …
    /// let stats = telemetry.finish(); // hands off, waits or keeps, as configured
    /// assert_eq!(stats.courier_unavailable, 0);
    /// std::process::exit(2); // no destructor runs after this
    /// ```
    pub fn finish(mut self) -> Stats {
        self.end()
    }

    /// The exit: stops recording, then delivers, hands off or keeps what
    /// is left, as the exit mode says.
    fn end(&mut self) -> Stats {
        let Inner::On { shared, debug } = std::mem::replace(&mut self.inner, Inner::Ended) else {
            return Stats::default();
        };
        global::uninstall(&shared);
        let exit = &shared.config.exit;
        // Nowhere to keep what is left (the config dir cannot be made):
        // deliver it now instead. Looked at only when something is left.
        let mode = match exit.mode {
            Exit::Handoff | Exit::NextRun
                if shared.unsettled() > 0
                    && !shared.config.spool.as_ref().is_some_and(Spool::usable) =>
            {
                Exit::Wait
            }
            mode => mode,
        };
        if mode == Exit::Wait {
            // Most of the budget for delivery; a little to keep, on this
            // thread, what the worker could not take in time.
            let budget = exit.budget;
            let _ = shared.flush_for_exit(budget.saturating_sub(budget / 10));
        }
        let kept = worker::keep_undelivered(&shared);
        let held = shared.release_spool_lock();
        // A run that recorded nothing starts nothing. One that did hands
        // off whatever waits, its own batches kept by the worker included.
        let looked_after = mode == Exit::Handoff
            && shared.stats().recorded > 0
            && !shared.is_disabled()
            && hand_off(&shared, held);
        // A courier applies the spool's limits as it goes; without one,
        // what the exit wrote must not take the spool past them.
        if kept > 0 && !looked_after {
            worker::cap_spool(&shared);
        }
        let stats = shared.stats();
        if debug {
            eprintln!("devsy-telemetry: {stats}");
        }
        stats
    }

    /// What happened to the events so far.
    #[must_use]
    pub fn stats(&self) -> Stats {
        match &self.inner {
            Inner::On { shared, .. } => shared.stats(),
            Inner::Off(_) | Inner::Ended => Stats::default(),
        }
    }

    /// A command of this app, by its path without the app name
    /// (`"provider delete"`); see [`CommandBuilder`].
    pub fn command(&self, path: impl Into<Cow<'static, str>>) -> CommandBuilder {
        match &self.inner {
            Inner::On { shared, .. } => CommandBuilder::new(Some(Arc::clone(shared)), path),
            Inner::Off(_) | Inner::Ended => CommandBuilder::off(),
        }
    }

    /// Sends everything queued now and waits until it is delivered, kept in
    /// the spool for a later run, or dropped and counted; at most `timeout`.
    /// `true` when nothing is left waiting.
    pub fn flush(&self, timeout: Duration) -> bool {
        match &self.inner {
            Inner::On { shared, .. } => shared.flush(timeout),
            Inner::Off(_) | Inner::Ended => true,
        }
    }

    /// Turns telemetry off at once, discards everything queued and deletes
    /// the spool: the command that opts out sends nothing.
    pub fn disable(&self) {
        if let Inner::On { shared, .. } = &self.inner {
            global::uninstall(shared);
            shared.disable();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.end();
    }
}

/// Starts a courier when batches wait in the spool and nobody else holds
/// its lock: a courier that holds it takes the new batches before it ends.
/// `true` when a courier looks after the spool: started now, or already
/// holding the lock (a run in `Exit::Wait` holding it applies the limits
/// on its own writes too).
fn hand_off(shared: &Shared, held_lock: bool) -> bool {
    let Some(spool) = &shared.config.spool else {
        return false;
    };
    if spool.is_empty() {
        return true;
    }
    if !held_lock {
        // Taken and let go at once: only to see that nobody holds it.
        let Some(free) = spool.lock() else {
            return true;
        };
        drop(free);
    }
    if courier::spawn(&shared.config).is_err() {
        shared.count_courier_unavailable();
        return false;
    }
    true
}
