//! `report`: what the events say, per command and across the fleet.
//!
//! A run is a start event. A failure is a finished event with an error. A
//! slow run is a finished success (the library sends one only when a
//! command ran at least its slow threshold, 10 s by default) or a failure
//! that ran 10 s or more. Durations exist only on finished events, so the
//! percentiles describe failures and slow runs, not quick successes.
//!
//! `mod.rs` holds the report's types and the queries that fill them;
//! `render.rs` prints them as tables, `dates.rs` reads `--since` and writes
//! dates, `series.rs` counts runs per day for the dashboard. The queries
//! run on either store through [`Source`].

pub mod dates;
pub mod render;
pub mod series;

use std::collections::BTreeMap;

use devsy_telemetry_wire::DEFAULT_SLOW_THRESHOLD;
use serde::Serialize;

use crate::store::{QueryError, Source, sql};

pub use dates::parse_since;
pub use render::render;

/// A failure that ran this long counts as slow too (the library's default
/// threshold; successes are only sent when slow).
// 10 000 fits an i64, the databases' integer; `as` because `try_from` is not const.
const SLOW_MS: i64 = DEFAULT_SLOW_THRESHOLD.as_millis() as i64;
/// Error messages listed per command.
const TOP_ERRORS: usize = 3;

/// The whole report: what `--json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Only events at or after this time (microseconds since the epoch).
    pub since_us: Option<u64>,
    /// Events considered, start and finished.
    pub events: u64,
    /// Runs among them (start events): what the breakdowns' shares are of.
    pub runs: u64,
    /// Distinct machines among them.
    pub machines: u64,
    /// One entry per command, most runs first.
    pub commands: Vec<CommandStats>,
    /// Runs (start events) by property.
    pub breakdowns: Breakdowns,
    /// How many more values each list had than the top N shown.
    pub left_out: LeftOut,
}

/// The values past the top N, by list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    pub commands: u64,
    pub version: u64,
    pub platform: u64,
    pub provider: u64,
    pub ide: u64,
    pub client: u64,
}

/// The default of `--top`: the rows of each table.
pub const DEFAULT_TOP: usize = 20;

/// The figures of one command.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandStats {
    pub command: String,
    /// Start events.
    pub runs: u64,
    /// Distinct machines that ran it.
    pub machines: u64,
    /// Finished events with an error.
    pub failures: u64,
    /// `failures / runs`; `None` without runs.
    pub failure_rate: Option<f64>,
    /// Finished successes, and failures that ran 10 s or more.
    pub slow: u64,
    /// Median `duration_ms` over finished events.
    pub p50_ms: Option<u64>,
    /// 95th percentile of `duration_ms` over finished events.
    pub p95_ms: Option<u64>,
    /// The most frequent error messages, most frequent first.
    pub top_errors: Vec<Count>,
}

/// A value and how often it was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    pub value: String,
    pub count: u64,
}

/// Runs by version, platform, provider, IDE and by who ran them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Breakdowns {
    pub version: Vec<Count>,
    /// `os/arch`.
    pub platform: Vec<Count>,
    pub provider: Vec<Count>,
    pub ide: Vec<Count>,
    /// `desktop` or `cli`.
    pub client: Vec<Count>,
}

/// Builds the report from the database: the `top` most run commands, and
/// the `top` most frequent values of each breakdown. The same queries run
/// on either store.
pub fn build(
    db: &mut impl Source,
    since_us: Option<u64>,
    top: usize,
) -> Result<Report, QueryError> {
    let top = top.max(1);
    let since = Since::new(since_us);
    let time = since.column;
    let (mut events, mut machines, mut runs) = (0, 0, 0);
    db.each(
        &format!(
            "SELECT COUNT(*), COUNT(DISTINCT machine_id), COUNT(*) FILTER (WHERE finished = 0)
             FROM events WHERE {time} >= $1"
        ),
        &[since.us],
        &mut |r| {
            (events, machines, runs) = (r.count(0)?, r.count(1)?, r.count(2)?);
            Ok(())
        },
    )?;
    let mut commands = ByCommand::default();
    commands.add_runs(db, since)?;
    commands.add_finishes(db, since)?;
    commands.add_percentiles(db, since)?;
    commands.add_top_errors(db, since)?;
    let (version, version_left) = counts(db, "version", since, top)?;
    let (platform, platform_left) = counts(db, PLATFORM, since, top)?;
    let (provider, provider_left) = counts(db, "COALESCE(provider, '(none)')", since, top)?;
    let (ide, ide_left) = counts(db, "COALESCE(ide, '(none)')", since, top)?;
    let (client, client_left) = counts(
        db,
        "CASE desktop WHEN 1 THEN 'desktop' ELSE 'cli' END",
        since,
        top,
    )?;
    let mut commands = commands.most_run_first();
    let commands_left = commands.len().saturating_sub(top) as u64;
    commands.truncate(top);
    Ok(Report {
        since_us,
        events,
        runs,
        machines,
        commands,
        breakdowns: Breakdowns {
            version,
            platform,
            provider,
            ide,
            client,
        },
        left_out: LeftOut {
            commands: commands_left,
            version: version_left,
            platform: platform_left,
            provider: provider_left,
            ide: ide_left,
            client: client_left,
        },
    })
}

/// `os/arch`, as the platform breakdown shows it.
const PLATFORM: &str = "os || '/' || arch";

/// The figures of each command, filled in one query at a time.
#[derive(Default)]
struct ByCommand(BTreeMap<String, CommandStats>);

impl ByCommand {
    fn get(&mut self, command: String) -> &mut CommandStats {
        self.0
            .entry(command.clone())
            .or_insert_with(|| CommandStats {
                command,
                runs: 0,
                machines: 0,
                failures: 0,
                failure_rate: None,
                slow: 0,
                p50_ms: None,
                p95_ms: None,
                top_errors: Vec::new(),
            })
    }

    /// Runs and machines, from start events.
    fn add_runs(&mut self, db: &mut impl Source, since: Since) -> Result<(), QueryError> {
        db.each(
            &format!(
                "SELECT command, COUNT(*), COUNT(DISTINCT machine_id) FROM events
                 WHERE finished = 0 AND {} >= $1 GROUP BY command",
                since.column
            ),
            &[since.us],
            &mut |row| {
                let stats = self.get(row.text(0)?);
                stats.runs = row.count(1)?;
                stats.machines = row.count(2)?;
                Ok(())
            },
        )
    }

    /// Failures and slow runs, from finished events.
    fn add_finishes(&mut self, db: &mut impl Source, since: Since) -> Result<(), QueryError> {
        db.each(
            &format!(
                "SELECT command, COUNT(error),
                        COUNT(*) FILTER (WHERE error IS NULL OR duration_ms >= $2)
                 FROM events WHERE finished = 1 AND {} >= $1 GROUP BY command",
                since.column
            ),
            &[since.us, SLOW_MS],
            &mut |row| {
                let stats = self.get(row.text(0)?);
                stats.failures = row.count(1)?;
                stats.slow = row.count(2)?;
                Ok(())
            },
        )
    }

    /// p50 and p95 by nearest rank over each command's sorted durations.
    fn add_percentiles(&mut self, db: &mut impl Source, since: Since) -> Result<(), QueryError> {
        let mut durations: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        db.each(
            &format!(
                "SELECT command, duration_ms FROM events
                 WHERE finished = 1 AND {} >= $1 ORDER BY command, duration_ms",
                since.column
            ),
            &[since.us],
            &mut |row| {
                durations
                    .entry(row.text(0)?)
                    .or_default()
                    .push(row.count(1)?);
                Ok(())
            },
        )?;
        for (command, sorted) in durations {
            let stats = self.get(command);
            stats.p50_ms = percentile(&sorted, 50);
            stats.p95_ms = percentile(&sorted, 95);
        }
        Ok(())
    }

    /// The most frequent errors of each command.
    fn add_top_errors(&mut self, db: &mut impl Source, since: Since) -> Result<(), QueryError> {
        db.each(
            &format!(
                "SELECT command, error, COUNT(*) AS n FROM events
                 WHERE error IS NOT NULL AND {} >= $1
                 GROUP BY command, error ORDER BY command, n DESC, error",
                since.column
            ),
            &[since.us],
            &mut |row| {
                let stats = self.get(row.text(0)?);
                if stats.top_errors.len() < TOP_ERRORS {
                    stats.top_errors.push(Count {
                        value: row.text(1)?,
                        count: row.count(2)?,
                    });
                }
                Ok(())
            },
        )
    }

    /// Every command with its failure rate, most runs first.
    fn most_run_first(self) -> Vec<CommandStats> {
        let mut commands: Vec<CommandStats> = self
            .0
            .into_values()
            .map(|mut stats| {
                #[allow(clippy::cast_precision_loss)] // counts far below 2^52
                let rate = (stats.runs > 0).then(|| stats.failures as f64 / stats.runs as f64);
                stats.failure_rate = rate;
                stats
            })
            .collect();
        commands.sort_by(|a, b| b.runs.cmp(&a.runs).then_with(|| a.command.cmp(&b.command)));
        commands
    }
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// The time bound every query takes as `$1`, and the column text it is
/// compared with. With a window, the indexed `timestamp_us`. Without one,
/// `+timestamp_us`, which no index matches: SQLite plans the time index
/// for any bound, and a range over all of it, then each row by its id,
/// reads several times slower than the table itself (2.3 s against 0.4 s
/// for one breakdown of 1,000,000 runs).
#[derive(Debug, Clone, Copy)]
pub struct Since {
    pub us: i64,
    pub column: &'static str,
}

impl Since {
    pub fn new(since_us: Option<u64>) -> Self {
        match since_us {
            Some(us) => Self {
                us: sql::int(us),
                column: "timestamp_us",
            },
            None => Self {
                us: 0,
                column: "+timestamp_us",
            },
        }
    }
}

/// The `top` most frequent values of `expression` over runs (start
/// events), and how many other values there are. `expression` is a fixed
/// SQL expression over the columns, never user input.
fn counts(
    db: &mut impl Source,
    expression: &str,
    since: Since,
    top: usize,
) -> Result<(Vec<Count>, u64), QueryError> {
    let mut shown = Vec::new();
    // The window counts the groups before the LIMIT: one scan says both.
    let mut distinct = 0;
    db.each(
        &format!(
            "SELECT {expression} AS value, COUNT(*) AS n, COUNT(*) OVER () AS groups FROM events
             WHERE finished = 0 AND {} >= $1 GROUP BY value ORDER BY n DESC, value
             LIMIT $2",
            since.column
        ),
        &[since.us, i64::try_from(top).unwrap_or(i64::MAX)],
        &mut |r| {
            shown.push(Count {
                value: r.text(0)?,
                count: r.count(1)?,
            });
            distinct = r.count(2)?;
            Ok(())
        },
    )?;
    let left = distinct.saturating_sub(shown.len() as u64);
    Ok((shown, left))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{self, Durability, Reader, Row};

    const DAY_US: u64 = 86_400_000_000;
    const T0: u64 = 1_795_000_000_000_000;

    fn row(machine: u8, command: &str, ts: u64) -> Row {
        Row {
            machine_id: format!("{machine:02x}").repeat(32),
            provider: Some("docker".into()),
            ..Row::example(command, ts)
        }
    }

    fn finished(mut row: Row, ms: u64, error: Option<&str>) -> Row {
        row.timestamp_us += ms * 1000;
        row.duration_ms = Some(ms);
        row.error = error.map(str::to_string);
        row
    }

    fn database(rows: &[Row]) -> Result<(tempfile::TempDir, Reader), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("r.db");
        let mut conn = store::open_sqlite(&path, Durability::Normal, store::DEFAULT_MAX_BYTES)?;
        store::insert_sqlite(&mut conn, rows)?;
        Ok((dir, Reader::Sqlite(conn)))
    }

    #[test]
    fn counts_runs_machines_failures_slow_runs_and_percentiles()
    -> Result<(), Box<dyn std::error::Error>> {
        let up = |m: u8, i: u64| row(m, "devsy up", T0 + i * 1_000_000);
        let mut rows = vec![];
        for i in 0..4 {
            rows.push(up(1, i));
        }
        rows.push(up(2, 10));
        rows.push(finished(up(1, 0), 120, Some("no source")));
        rows.push(finished(up(1, 1), 80, Some("no source")));
        rows.push(finished(up(2, 10), 20_000, Some("timeout")));
        rows.push(finished(up(1, 2), 12_000, None));
        rows.push(row(3, "devsy provider list", T0));
        let (_dir, mut conn) = database(&rows)?;

        let report = build(&mut conn, None, DEFAULT_TOP)?;
        assert_eq!((report.events, report.machines, report.runs), (10, 3, 6));
        let up = &report.commands[0];
        assert_eq!(up.command, "devsy up");
        assert_eq!((up.runs, up.machines, up.failures, up.slow), (5, 2, 3, 2));
        assert_eq!(up.failure_rate, Some(0.6));
        assert_eq!((up.p50_ms, up.p95_ms), (Some(120), Some(20_000)));
        assert_eq!(
            up.top_errors,
            [
                Count {
                    value: "no source".into(),
                    count: 2
                },
                Count {
                    value: "timeout".into(),
                    count: 1
                }
            ]
        );
        let list = &report.commands[1];
        assert_eq!((list.runs, list.failures, list.p50_ms), (1, 0, None));
        assert_eq!(
            report.breakdowns.client,
            [Count {
                value: "cli".into(),
                count: 6
            }]
        );
        assert_eq!(
            report.breakdowns.ide,
            [Count {
                value: "(none)".into(),
                count: 6
            }]
        );
        assert_eq!(
            report.breakdowns.platform,
            [Count {
                value: "linux/amd64".into(),
                count: 6
            }]
        );

        let text = render(&report);
        assert!(text.contains("devsy up"), "{text}");
        assert!(text.contains("60.0"), "{text}");
        assert!(text.contains("no source"), "{text}");
        Ok(())
    }

    #[test]
    fn since_leaves_out_older_events() -> Result<(), Box<dyn std::error::Error>> {
        let rows = [row(1, "devsy up", T0), row(1, "devsy up", T0 + 2 * DAY_US)];
        let (_dir, mut conn) = database(&rows)?;
        let report = build(&mut conn, Some(T0 + DAY_US), DEFAULT_TOP)?;
        assert_eq!(report.events, 1);
        assert_eq!(report.commands[0].runs, 1);
        assert!(render(&report).contains("since"), "names the window");
        Ok(())
    }

    #[test]
    fn a_thousand_commands_show_the_top_n_and_count_the_rest()
    -> Result<(), Box<dyn std::error::Error>> {
        let rows: Vec<Row> = (0..1_050_u64)
            .map(|i| Row {
                provider: Some(format!("provider {}", i % 30)),
                ..row(1, &format!("devsy command {i}"), T0 + i)
            })
            .collect();
        let (_dir, mut conn) = database(&rows)?;
        let report = build(&mut conn, None, 20)?;
        assert_eq!(report.commands.len(), 20);
        assert_eq!(report.left_out.commands, 1_030);
        assert_eq!(report.breakdowns.provider.len(), 20);
        assert_eq!(report.left_out.provider, 10);
        let text = render(&report);
        assert!(text.contains("… and 1030 more commands"), "{text}");
        assert!(text.contains("… and 10 more values"), "{text}");
        assert!(text.lines().count() < 80, "{} lines", text.lines().count());
        Ok(())
    }

    #[test]
    fn an_empty_database_says_so() -> Result<(), Box<dyn std::error::Error>> {
        let (_dir, mut conn) = database(&[])?;
        let report = build(&mut conn, None, DEFAULT_TOP)?;
        assert!(report.commands.is_empty());
        assert!(render(&report).contains("no events yet"));
        Ok(())
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 95), Some(7));
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 50), Some(50));
        assert_eq!(percentile(&hundred, 95), Some(95));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
    }
}
