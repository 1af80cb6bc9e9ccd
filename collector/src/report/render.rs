//! The report as plain-text tables.

use std::fmt::Write as _;

use super::dates::format_date;
use super::{CommandStats, Report};

/// The report as plain text tables.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let since = report
        .since_us
        .map_or_else(String::new, |us| format!(" since {}", format_date(us)));
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let _ = writeln!(
        out,
        "{} from {}{since}",
        plural(report.events, "event", "events"),
        plural(report.machines, "machine", "machines")
    );
    if report.commands.is_empty() {
        out.push_str("no events yet\n");
        return out;
    }
    out.push('\n');
    let header = [
        "COMMAND", "RUNS", "MACHINES", "FAILURES", "FAIL %", "SLOW", "P50 MS", "P95 MS",
    ];
    let rows: Vec<[String; 8]> = report
        .commands
        .iter()
        .map(|c| {
            [
                c.command.clone(),
                c.runs.to_string(),
                c.machines.to_string(),
                c.failures.to_string(),
                c.failure_rate
                    .map_or_else(|| "-".into(), |r| format!("{:.1}", r * 100.0)),
                c.slow.to_string(),
                c.p50_ms.map_or_else(|| "-".into(), |v| v.to_string()),
                c.p95_ms.map_or_else(|| "-".into(), |v| v.to_string()),
            ]
        })
        .collect();
    table(&mut out, &header, &rows);

    let failing: Vec<&CommandStats> = report
        .commands
        .iter()
        .filter(|c| !c.top_errors.is_empty())
        .collect();
    if !failing.is_empty() {
        out.push_str("\nTop errors\n");
        for c in failing {
            let _ = writeln!(out, "  {}", c.command);
            for e in &c.top_errors {
                let _ = writeln!(out, "    {:>5}  {}", e.count, one_line(&e.value));
            }
        }
    }

    let b = &report.breakdowns;
    for (title, counts) in [
        ("Runs by version", &b.version),
        ("Runs by os/arch", &b.platform),
        ("Runs by provider", &b.provider),
        ("Runs by IDE", &b.ide),
        ("Runs by client (desktop app or CLI)", &b.client),
    ] {
        if counts.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}");
        let width = counts.iter().map(|c| c.value.len()).max().unwrap_or(0);
        for c in counts {
            let _ = writeln!(out, "  {:<width$}  {:>6}", c.value, c.count);
        }
    }
    out
}

/// Columns padded to their widest cell; the first left-aligned, the rest right.
fn table<const N: usize>(out: &mut String, header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut first = true;
        for (cell, width) in cells.zip(widths) {
            if first {
                let _ = write!(out, "{cell:<width$}");
                first = false;
            } else {
                let _ = write!(out, "  {cell:>width$}");
            }
        }
        out.push('\n');
    };
    line(out, &mut header.iter().copied());
    for row in rows {
        line(out, &mut row.iter().map(String::as_str));
    }
}

/// An error message on one line, for the table.
fn one_line(text: &str) -> String {
    text.replace('\n', " ⏎ ")
}
