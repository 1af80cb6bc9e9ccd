//! The charts, as inline SVG: stacked bars per day with their legend and
//! the table behind them, and the small bars inside table cells. Every
//! string that came from an event goes through [`text`].

use std::fmt::Write as _;

use crate::report::render::visible;
use crate::report::series::{Line, Series};

/// Colours told apart with any colour vision (Okabe and Ito); "(other)" is
/// grey.
const PALETTE: [&str; 7] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#7f6d00",
];
const GREY: &str = "#8c8c8c";

/// `raw` as HTML text: what moves or hides text shown escaped (as the
/// text report shows it), then `&`, `<`, `>` and quotes as entities, so
/// that nothing stored can become markup.
pub fn text(raw: &str) -> String {
    let shown = visible(raw);
    let mut out = String::with_capacity(shown.len());
    for c in shown.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn colour(i: usize, line: &Line) -> &'static str {
    if line.other {
        GREY
    } else {
        PALETTE[i % PALETTE.len()]
    }
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 10.0;
const RIGHT: f64 = 8.0;

/// Stacked bars, one per day, of each line of `series`; with `shares`,
/// each day's bar is its runs split by share (so a version's adoption
/// reads as a part of the whole). Then a legend, and the table of the
/// same figures.
pub fn stacked_days(id: &str, title: &str, unit: &str, series: &Series, shares: bool) -> String {
    let mut out = String::new();
    let _ = write!(out, "<figure class=\"chart\" id=\"{id}\">");
    if series.days.is_empty() {
        let _ = write!(
            out,
            "<p class=\"empty\">No runs in this window.</p></figure>"
        );
        return out;
    }
    let days = series.days.len();
    let totals: Vec<u64> = (0..days)
        .map(|d| series.lines.iter().map(|l| l.runs[d]).sum())
        .collect();
    let most = totals.iter().copied().max().unwrap_or(1).max(1);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    #[allow(clippy::cast_precision_loss)] // days and counts far below 2^52
    let slot = plot_w / days as f64;
    // Narrow even over a few days: a bar reads as a day, not a block.
    let bar = (slot * 0.8).clamp(1.0, 48.0);
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"{id}-title\" \
         preserveAspectRatio=\"xMinYMin meet\"><title id=\"{id}-title\">{}</title>",
        text(title)
    );
    // The axis: the top value, half of it, and zero, with grid lines.
    let top_label = if shares {
        "100 %".to_string()
    } else {
        most.to_string()
    };
    let half_label = if shares {
        "50 %".to_string()
    } else {
        format!("{:.0}", most as f64 / 2.0)
    };
    for (label, y) in [
        (top_label, TOP),
        (half_label, TOP + plot_h / 2.0),
        ("0".to_string(), TOP + plot_h),
    ] {
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
    }
    for (d, day) in series.days.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let x = LEFT + slot * d as f64 + (slot - bar) / 2.0;
        let scale = if shares { totals[d].max(1) } else { most };
        let mut base = TOP + plot_h;
        for (i, line) in series.lines.iter().enumerate() {
            let runs = line.runs[d];
            if runs == 0 {
                continue;
            }
            #[allow(clippy::cast_precision_loss)]
            let h = plot_h * runs as f64 / scale as f64;
            base -= h;
            let _ = write!(
                out,
                "<rect class=\"bar\" data-series=\"{name}\" data-day=\"{day}\" data-value=\"{runs}\" \
                 x=\"{x:.2}\" y=\"{base:.2}\" width=\"{bar:.2}\" height=\"{h:.2}\" fill=\"{fill}\">\
                 <title>{name}, {day}: {runs} {unit}</title></rect>",
                name = text(&line.name),
                fill = colour(i, line),
            );
        }
    }
    // Days under the axis: the first at the left edge, the last at the
    // right, the middle one under its bar; a single day under its bar.
    #[allow(clippy::cast_precision_loss)]
    let under = |d: usize| (d, LEFT + slot * (d as f64 + 0.5), "middle");
    let labels = match days {
        1 => vec![under(0)],
        _ => {
            let mut edges = vec![(0, LEFT, "start"), (days - 1, WIDTH - RIGHT, "end")];
            if days > 2 {
                edges.push(under(days / 2));
            }
            edges
        }
    };
    for (d, x, anchor) in labels {
        let _ = write!(
            out,
            "<text class=\"axis\" x=\"{x:.2}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
            HEIGHT - 8.0,
            series.days[d]
        );
    }
    out.push_str("</svg><figcaption><ul class=\"legend\">");
    for (i, line) in series.lines.iter().enumerate() {
        let _ = write!(
            out,
            "<li><span class=\"swatch\" style=\"background:{}\"></span><bdi>{}</bdi> \
             <span class=\"muted\">{} {unit}</span></li>",
            colour(i, line),
            text(&line.name),
            line.total
        );
    }
    out.push_str("</ul></figcaption>");
    out.push_str(&day_table(id, title, unit, series));
    out.push_str("</figure>");
    out
}

/// The figures behind a chart of days: a row per day, a column per line.
fn day_table(id: &str, title: &str, unit: &str, series: &Series) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<details><summary>{} as a table</summary><table id=\"{id}-table\">\
         <caption>{} ({unit} per day, UTC)</caption><thead><tr><th scope=\"col\">Day</th>",
        text(title),
        text(title)
    );
    for line in &series.lines {
        let _ = write!(
            out,
            "<th scope=\"col\"><bdi>{}</bdi></th>",
            text(&line.name)
        );
    }
    out.push_str("</tr></thead><tbody>");
    for (d, day) in series.days.iter().enumerate() {
        let _ = write!(out, "<tr><th scope=\"row\">{day}</th>");
        for line in &series.lines {
            let _ = write!(out, "<td>{}</td>", line.runs[d]);
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></details>");
    out
}

/// A bar for a table cell, `share` of its width (0 to 1), labelled for a
/// screen reader by the cell's own text beside it.
pub fn bar(share: f64, fill: &str) -> String {
    let width = (share.clamp(0.0, 1.0) * 100.0).max(0.5);
    format!(
        "<svg class=\"cellbar\" viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" aria-hidden=\"true\">\
         <rect width=\"100\" height=\"10\" fill=\"#eeeeee\"/>\
         <rect width=\"{width:.2}\" height=\"10\" fill=\"{fill}\"/></svg>"
    )
}

/// Two bars on one scale: p50 over p95.
pub fn pair(p50: u64, p95: u64, most: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let scale = |v: u64| (v as f64 / most.max(1) as f64 * 100.0).max(0.5);
    format!(
        "<svg class=\"cellbar\" viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" aria-hidden=\"true\">\
         <rect width=\"100\" height=\"10\" fill=\"#eeeeee\"/>\
         <rect width=\"{:.2}\" height=\"10\" fill=\"{}\"/>\
         <rect width=\"{:.2}\" height=\"10\" fill=\"{}\"/></svg>",
        scale(p95),
        PALETTE[4],
        scale(p50),
        PALETTE[0]
    )
}

/// The colour of the n-th series, for bars that stand alone.
pub fn accent(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::series::OTHER;

    #[test]
    fn stored_strings_cannot_become_markup() {
        assert_eq!(
            text("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(text("a\"b'c&d"), "a&quot;b&#39;c&amp;d");
        assert_eq!(text("\u{202e}evil"), "\\u{202e}evil");
    }

    #[test]
    fn each_day_has_a_bar_per_line_with_runs() {
        let series = Series {
            days: vec!["2026-11-30".into(), "2026-12-01".into()],
            lines: vec![
                Line {
                    name: "<b>up</b>".into(),
                    runs: vec![2, 0],
                    total: 2,
                    other: false,
                },
                Line {
                    name: OTHER.into(),
                    runs: vec![1, 3],
                    total: 4,
                    other: true,
                },
            ],
        };
        let svg = stacked_days("runs", "Runs per day", "runs", &series, false);
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 3);
        assert!(
            svg.contains("data-series=\"&lt;b&gt;up&lt;/b&gt;\""),
            "{svg}"
        );
        assert!(!svg.contains("<b>"), "{svg}");
        assert!(svg.contains("<td>3</td>"), "the table has the figures");
        let empty = Series {
            days: vec![],
            lines: vec![],
        };
        assert!(stacked_days("v", "Versions", "runs", &empty, true).contains("No runs"));
    }
}
