//! The report as plain-text tables, readable whatever the events hold:
//! each cell is cut to a width in terminal columns ([`COMMAND_WIDTH`],
//! [`VALUE_WIDTH`], [`ERROR_WIDTH`], measured by `unicode-width`, so a
//! wide character counts two), and a character that prints nothing or
//! moves the text (a control, a bidi control, a zero-width character) is
//! shown escaped, `\u{202e}`.

use std::fmt::Write as _;

use devsy_telemetry_wire::limits::is_invisible;
use unicode_width::UnicodeWidthChar as _;

use super::dates::format_date;
use super::{CommandStats, Report};

/// The widest a command is shown, in columns.
pub const COMMAND_WIDTH: usize = 48;
/// The widest a breakdown's value is shown.
pub const VALUE_WIDTH: usize = 40;
/// The widest an error message is shown.
pub const ERROR_WIDTH: usize = 100;

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
                cell(&c.command, COMMAND_WIDTH),
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
    more(
        &mut out,
        "",
        report.left_out.commands,
        "command",
        "commands",
    );

    let failing: Vec<&CommandStats> = report
        .commands
        .iter()
        .filter(|c| !c.top_errors.is_empty())
        .collect();
    if !failing.is_empty() {
        out.push_str("\nTop errors\n");
        for c in failing {
            let _ = writeln!(out, "  {}", cell(&c.command, COMMAND_WIDTH));
            for e in &c.top_errors {
                let _ = writeln!(out, "    {:>5}  {}", e.count, cell(&e.value, ERROR_WIDTH));
            }
        }
    }

    let b = &report.breakdowns;
    let left = &report.left_out;
    for (title, counts, left_out) in [
        ("Runs by version", &b.version, left.version),
        ("Runs by os/arch", &b.platform, left.platform),
        ("Runs by provider", &b.provider, left.provider),
        ("Runs by IDE", &b.ide, left.ide),
        (
            "Runs by client (desktop app or CLI)",
            &b.client,
            left.client,
        ),
    ] {
        if counts.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}");
        let values: Vec<String> = counts.iter().map(|c| cell(&c.value, VALUE_WIDTH)).collect();
        let width = values.iter().map(|v| columns(v)).max().unwrap_or(0);
        for (value, c) in values.iter().zip(counts) {
            let _ = writeln!(out, "  {}  {:>6}", pad(value, width), c.count);
        }
        more(&mut out, "  ", left_out, "value", "values");
    }
    out
}

/// `… and N more commands`, when some were left out.
fn more(out: &mut String, indent: &str, n: u64, one: &str, many: &str) {
    if let Some(line) = and_more(n, one, many) {
        let _ = writeln!(out, "{indent}{line}");
    }
}

/// "… and 2 more commands" ("… and 1 more command"): what a list left
/// out, for the text report and the dashboard; `None` when nothing was.
pub fn and_more(n: u64, one: &str, many: &str) -> Option<String> {
    (n > 0).then(|| format!("… and {n} more {}", if n == 1 { one } else { many }))
}

/// One character as it is shown: a newline as ` ⏎ `, a backslash doubled
/// (so that a typed `\u{202e}` differs from an escape), and one that prints
/// nothing or moves the text (a control, a bidi control, a zero-width
/// character) escaped, `\u{202e}`.
fn shown(c: char) -> String {
    if c == '\n' {
        " ⏎ ".to_string()
    } else if c == '\\' {
        "\\\\".to_string()
    } else if c.is_control() || is_invisible(c) {
        format!("\\u{{{:x}}}", u32::from(c))
    } else {
        c.to_string()
    }
}

/// `text` on one line, with nothing hidden: what [`cell`] shows, uncut.
pub fn visible(text: &str) -> String {
    text.chars().map(shown).collect()
}

/// `text` as a cell: [`visible`], and cut to `width` columns with `…`.
pub fn cell(text: &str, width: usize) -> String {
    let mut shown_text = String::new();
    let mut used = 0;
    for c in text.chars() {
        let piece = shown(c);
        let piece_width = columns(&piece);
        if used + piece_width > width {
            // Room for the ellipsis: take back what does not fit with it.
            while used + 1 > width {
                let Some(last) = shown_text.pop() else { break };
                used -= last.width().unwrap_or(0);
            }
            shown_text.push('…');
            return shown_text;
        }
        used += piece_width;
        shown_text.push_str(&piece);
    }
    shown_text
}

/// The columns `text` takes in a terminal.
fn columns(text: &str) -> usize {
    text.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// `text` padded with spaces to `width` columns.
fn pad(text: &str, width: usize) -> String {
    let mut padded = text.to_string();
    padded.extend(std::iter::repeat_n(
        ' ',
        width.saturating_sub(columns(text)),
    ));
    padded
}

/// Columns padded to their widest cell; the first left-aligned, the rest right.
fn table<const N: usize>(out: &mut String, header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(columns);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(columns(cell));
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut first = true;
        for (cell, width) in cells.zip(widths) {
            if first {
                out.push_str(&pad(cell, width));
                first = false;
            } else {
                let _ = write!(out, "  {:>width$}", cell);
            }
        }
        // The last column is right-aligned; the first may end in spaces.
        while out.ends_with(' ') {
            out.pop();
        }
        out.push('\n');
    };
    line(out, &mut header.iter().copied());
    for row in rows {
        line(out, &mut row.iter().map(String::as_str));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_cut_by_columns_and_show_what_cannot_be_seen() {
        assert_eq!(cell("devsy up", 48), "devsy up");
        assert_eq!(cell("devsy up\u{200b}", 48), "devsy up\\u{200b}");
        assert_eq!(cell("\u{202e}pu", 48), "\\u{202e}pu");
        assert_eq!(cell("a\nb", 48), "a ⏎ b");
        assert_eq!(cell("typed \\u{202e}", 48), "typed \\\\u{202e}");
        let long = "x".repeat(100);
        let cut = cell(&long, 10);
        assert_eq!((columns(&cut), cut.ends_with('…')), (10, true));
        // Wide characters count two columns each.
        let cut = cell(&"日本".repeat(10), 9);
        assert!(columns(&cut) <= 9, "{cut}");
        assert_eq!(pad("日本", 6), "日本  ");
    }

    #[test]
    fn what_a_list_left_out_is_counted_in_words() {
        assert_eq!(and_more(0, "value", "values"), None);
        assert_eq!(
            and_more(1, "value", "values").as_deref(),
            Some("… and 1 more value")
        );
        assert_eq!(
            and_more(2, "value", "values").as_deref(),
            Some("… and 2 more values")
        );
    }
}
