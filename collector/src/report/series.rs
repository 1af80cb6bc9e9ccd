//! Figures over time, for the dashboard: runs per day of the most run
//! commands, and of each version (which versions still run, before one is
//! deprecated). Days are UTC, by the event's own timestamp.

use serde::Serialize;

use super::dates::format_day;
use crate::store::{QueryError, Source};

const DAY_US: i64 = 86_400_000_000;

/// The most days a series covers: the last ones, as the default retention.
pub const MAX_DAYS: usize = 400;

/// Values per day, one line per name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Series {
    /// Every day from the first to the last with a run, `2026-11-01`.
    pub days: Vec<String>,
    /// The most frequent names first; the rest summed as [`OTHER`].
    pub lines: Vec<Line>,
}

/// One name's runs per day, as many values as [`Series::days`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub name: String,
    pub runs: Vec<u64>,
    pub total: u64,
    /// The sum of the names past the top ones (a stored name may be
    /// "(other)" too; this tells them apart).
    pub other: bool,
}

/// The line that sums the names past the top ones.
pub const OTHER: &str = "(other)";

/// Runs (start events) per day by `column` (a fixed column name, never
/// user input), with a line for each of the `top` most frequent values.
pub fn daily(
    db: &mut impl Source,
    column: &str,
    since_us: Option<u64>,
    top: usize,
) -> Result<Series, QueryError> {
    let since = super::Since::new(since_us);
    let mut cells: Vec<(String, i64, u64)> = Vec::new();
    db.each(
        &format!(
            "SELECT {column}, timestamp_us / {DAY_US} AS day, COUNT(*) FROM events
             WHERE finished = 0 AND {time} >= $1 GROUP BY {column}, day",
            time = since.column
        ),
        &[since.us],
        &mut |row| {
            cells.push((row.text(0)?, row.int(1)?, row.count(2)?));
            Ok(())
        },
    )?;
    Ok(arrange(cells, top))
}

/// Lays `(name, day, runs)` out as lines over consecutive days.
fn arrange(cells: Vec<(String, i64, u64)>, top: usize) -> Series {
    let Some(last) = cells.iter().map(|c| c.1).max() else {
        return Series {
            days: Vec::new(),
            lines: Vec::new(),
        };
    };
    let first = cells
        .iter()
        .map(|c| c.1)
        .min()
        .unwrap_or(last)
        .max(last - (MAX_DAYS as i64 - 1));
    let width = usize::try_from(last - first + 1).unwrap_or(1);
    let mut totals: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for (name, day, runs) in &cells {
        if *day >= first {
            *totals.entry(name).or_default() += runs;
        }
    }
    let mut ranked: Vec<(&str, u64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let shown: Vec<&str> = ranked.iter().take(top.max(1)).map(|r| r.0).collect();
    let mut lines: Vec<Line> = shown
        .iter()
        .map(|name| Line {
            name: (*name).to_string(),
            runs: vec![0; width],
            total: 0,
            other: false,
        })
        .collect();
    let mut other = Line {
        name: OTHER.into(),
        runs: vec![0; width],
        total: 0,
        other: true,
    };
    for (name, day, runs) in &cells {
        let Ok(at) = usize::try_from(day - first) else {
            continue;
        };
        let line = match shown.iter().position(|s| s == name) {
            Some(i) => &mut lines[i],
            None => &mut other,
        };
        line.runs[at] += runs;
        line.total += runs;
    }
    if other.total > 0 {
        lines.push(other);
    }
    Series {
        days: (first..=last).map(format_day).collect(),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_consecutive_and_the_rest_is_other() {
        let cells = vec![
            ("up".to_string(), 10, 3),
            ("up".to_string(), 12, 1),
            ("list".to_string(), 11, 2),
            ("delete".to_string(), 12, 1),
        ];
        let series = arrange(cells, 2);
        assert_eq!(series.days, ["1970-01-11", "1970-01-12", "1970-01-13"]);
        let names: Vec<&str> = series.lines.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["up", "list", OTHER]);
        assert_eq!(series.lines[0].runs, [3, 0, 1]);
        assert_eq!(series.lines[2].runs, [0, 0, 1]);
        assert_eq!(arrange(Vec::new(), 5).days.len(), 0);
    }

    #[test]
    fn a_long_history_keeps_its_last_days() {
        let cells = vec![("up".to_string(), 0, 1), ("up".to_string(), 1_000, 1)];
        let series = arrange(cells, 5);
        assert_eq!(series.days.len(), MAX_DAYS);
        assert_eq!(
            series.lines[0].total, 1,
            "the first day is out of the window"
        );
    }
}
