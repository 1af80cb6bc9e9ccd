//! Recording one command by hand: what `#[telemetry_command]` generates, for
//! code that does not use the attribute.
//!
//! A command records a start event when it starts, and a finished event when
//! it finishes, only if it failed or ran for at least the slow threshold.

use std::borrow::Cow;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Instant;

use crate::coarse::{self, CoarseInstant};
use crate::queue::{Finish, Props, Record, Shared};

/// A command about to start: set its properties, then [`start`](Self::start) it.
///
/// Does nothing at all when telemetry is off.
///
/// ```
/// # let telemetry = devsy_telemetry_runtime::Telemetry::builder("devsy").enabled(false).start();
/// let span = telemetry
///     .command("up")
///     .provider(Some("docker"))
///     .ide("vscode")
///     .source_type("git:")
///     .start();
/// // ... run the command ...
/// span.finish_ok();
/// ```
#[must_use = "a command is recorded only once it is started"]
#[derive(Debug)]
pub struct CommandBuilder {
    inner: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    shared: Arc<Shared>,
    command: Cow<'static, str>,
    /// Boxed and made only when a property is set: most commands set none,
    /// and a small builder is cheaper to move through the generated code.
    props: Option<Box<Props>>,
}

impl Pending {
    fn props(&mut self) -> &mut Props {
        self.props.get_or_insert_with(Box::default)
    }
}

impl CommandBuilder {
    pub(crate) fn new(shared: Option<Arc<Shared>>, command: impl Into<Cow<'static, str>>) -> Self {
        Self {
            inner: shared.map(|shared| Pending {
                shared,
                command: command.into(),
                props: None,
            }),
        }
    }

    /// A builder for the generated code, with the attribute's properties.
    pub(crate) fn with_props(
        shared: Arc<Shared>,
        command: &'static str,
        props: Option<Box<Props>>,
    ) -> Self {
        Self {
            inner: Some(Pending {
                shared,
                command: Cow::Borrowed(command),
                props,
            }),
        }
    }

    /// A builder that records nothing.
    pub(crate) const fn off() -> Self {
        Self { inner: None }
    }

    /// The provider of this command's events, instead of the builder's default.
    pub fn provider(mut self, provider: impl IntoProperty) -> Self {
        if let Some(pending) = &mut self.inner {
            pending.props().provider = provider.into_property();
        }
        self
    }

    /// The IDE of this command's events, instead of the builder's default.
    pub fn ide(mut self, ide: impl IntoProperty) -> Self {
        if let Some(pending) = &mut self.inner {
            pending.props().ide = ide.into_property();
        }
        self
    }

    /// The source type of this command's events, instead of the builder's default.
    pub fn source_type(mut self, source_type: impl IntoProperty) -> Self {
        if let Some(pending) = &mut self.inner {
            pending.props().source_type = source_type.into_property();
        }
        self
    }

    /// True when telemetry is on and this command will be recorded.
    #[must_use]
    pub fn is_recording(&self) -> bool {
        self.inner.is_some()
    }

    /// Records the start event and starts the clock.
    pub fn start(self) -> CommandSpan {
        let Some(Pending {
            shared,
            command,
            props,
        }) = self.inner
        else {
            return CommandSpan { inner: None };
        };
        let started = Instant::now();
        let coarse_started = CoarseInstant::now();
        let props = props
            .filter(|props| **props != Props::default())
            .map(|props| Arc::new(*props));
        shared.push(Record {
            at: started,
            command: command.clone(),
            props: props.clone(),
            finish: None,
        });
        CommandSpan {
            inner: Some(Running {
                shared,
                command,
                props,
                started,
                coarse_started,
            }),
        }
    }
}

/// A value for an optional event property: a string, or an `Option` of
/// one, where `None` means "unknown": the builder's default applies, and
/// without one the property is omitted.
///
/// ```
/// use devsy_telemetry_runtime::IntoProperty;
///
/// assert_eq!("docker".into_property(), Some("docker".to_string()));
/// assert_eq!(None::<String>.into_property(), None);
/// assert_eq!(Some(&"vscode".to_string()).into_property(), Some("vscode".to_string()));
/// ```
pub trait IntoProperty {
    /// The property's value, `None` when unknown.
    fn into_property(self) -> Option<String>;
}

impl IntoProperty for &str {
    fn into_property(self) -> Option<String> {
        Some(self.to_string())
    }
}

impl IntoProperty for String {
    fn into_property(self) -> Option<String> {
        Some(self)
    }
}

impl IntoProperty for &String {
    fn into_property(self) -> Option<String> {
        Some(self.clone())
    }
}

impl IntoProperty for Cow<'_, str> {
    fn into_property(self) -> Option<String> {
        Some(self.into_owned())
    }
}

impl<T: IntoProperty> IntoProperty for Option<T> {
    fn into_property(self) -> Option<String> {
        self.and_then(IntoProperty::into_property)
    }
}

/// A running command. Finish it with [`finish_ok`](Self::finish_ok),
/// [`finish_err`](Self::finish_err) or [`finish`](Self::finish); dropped
/// unfinished, it finishes as a success, or as a failure with the error
/// `panic` when dropped during a panic.
#[derive(Debug)]
pub struct CommandSpan {
    inner: Option<Running>,
}

#[derive(Debug)]
struct Running {
    shared: Arc<Shared>,
    command: Cow<'static, str>,
    props: Option<Arc<Props>>,
    started: Instant,
    /// Tells, cheaply, that a success was not slow.
    coarse_started: CoarseInstant,
}

impl CommandSpan {
    /// The command succeeded: a finished event is recorded only if it was slow.
    pub fn finish_ok(self) {
        self.finish(None::<&str>);
    }

    /// The command failed with `error`: a finished event is recorded.
    pub fn finish_err(self, error: impl Display) {
        self.finish(Some(error));
    }

    /// Finishes with an optional error. The error is formatted here, on the
    /// caller's thread, only when there is one.
    pub fn finish(mut self, error: Option<impl Display>) {
        if let Some(running) = self.inner.take() {
            running.finish(error.map(|e| e.to_string()));
        }
    }
}

impl Running {
    fn finish(self, error: Option<String>) {
        let threshold = self.shared.config.slow_threshold;
        if error.is_none() && coarse::surely_shorter(self.coarse_started, threshold) {
            // A quick success records nothing more: no precise reading.
            return;
        }
        let at = Instant::now();
        let duration = at.saturating_duration_since(self.started);
        if error.is_none() && duration < threshold {
            return;
        }
        self.shared.push(Record {
            at,
            command: self.command,
            props: self.props,
            finish: Some(Box::new(Finish { duration, error })),
        });
    }
}

impl Drop for CommandSpan {
    fn drop(&mut self) {
        if let Some(running) = self.inner.take() {
            let error = std::thread::panicking().then(|| "panic".to_string());
            running.finish(error);
        }
    }
}
