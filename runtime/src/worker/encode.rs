//! Records to wire events: the request body of a batch, built on the
//! worker (or, for what the exit keeps, on the exiting thread).

use std::borrow::Cow;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use devsy_telemetry_wire::limits::{self, Field, fit, fit_owned};

use crate::event::{Batch, Envelope, Event, Properties, User};
use crate::identity;
use crate::queue::{Config, Props, Record, Shared};
use crate::scrub::Scrubber;

/// A batch's request body, `{"data": [...]}`.
pub(crate) fn serialize(shared: &Shared, records: &[Record]) -> Option<Vec<u8>> {
    let machine_id = machine_id(shared);
    let names = CommandNames::of(shared.config.app.name(), records);
    let batch = Batch {
        data: build(&machine_id, &shared.config, records, &names),
    };
    serde_json::to_vec(&batch).ok()
}

/// The machine id, computed once per client (by the worker, as it starts).
pub(crate) fn machine_id(shared: &Shared) -> String {
    let config = &shared.config;
    shared
        .machine_id
        .get_or_init(|| identity::machine_id(config.app.name(), config.config_dir.as_deref()))
        .clone()
}

/// The full command names of a batch (`devsy provider list`), made once
/// per distinct command rather than once per event, and fitted to the
/// wire's limit.
pub(crate) struct CommandNames(Vec<(String, String)>);

impl CommandNames {
    pub(crate) fn of(app: &str, records: &[Record]) -> Self {
        let mut names: Vec<(String, String)> = Vec::new();
        for record in records {
            if !names.iter().any(|(path, _)| *path == *record.command) {
                let full = if record.command.is_empty() {
                    app.to_string()
                } else {
                    format!("{app} {}", record.command)
                };
                let full = fit_owned(full, limits::COMMAND, Field::Identifier);
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

/// What a failed command's error message says, when it says nothing: the
/// collector refuses an empty field.
pub(crate) const EMPTY_ERROR: &str = "(no message)";

/// An error as it is sent: scrubbed, fitted, and never empty.
fn error_field(scrubber: &Scrubber, error: &str) -> String {
    let fitted = fit_owned(scrubber.scrub(error), limits::ERROR, Field::Message);
    if fitted.trim().is_empty() {
        EMPTY_ERROR.to_string()
    } else {
        fitted
    }
}

/// Turns records into the wire format.
pub(crate) fn build<'a>(
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
            // The defaults were fitted at start; a command's own values
            // are fitted here.
            let pick = |get: fn(&Props) -> &Option<String>| {
                props
                    .and_then(|p| get(p).as_deref())
                    .filter(|v| !v.is_empty())
                    .map(|v| fit(v, limits::PROPERTY, Field::Identifier))
                    .or_else(|| get(&config.defaults).as_deref().map(Cow::Borrowed))
            };
            let command = Cow::Borrowed(names.get(&record.command));
            Envelope {
                event: Event {
                    kind: Cow::Borrowed(config.app.event_type()),
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
                            .map(|error| Cow::Owned(error_field(&config.scrubber, error))),
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
