//! The dashboard's one page: the figures of [`Figures`] as HTML, with its
//! styles inline, readable at 100 % zoom on a laptop and in print.

use std::fmt::Write as _;

use axum::http::StatusCode;

use super::Figures;
use super::charts::{accent, bar, pair, stacked_days, text};
use crate::report::render::and_more;
use crate::report::{CommandStats, Count, Report};

const STYLE: &str = "
:root { color-scheme: light; }
body { font: 16px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif;
       margin: 0; color: #1b1b1b; background: #fafafa; }
main { max-width: 1200px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 0 0 12px; }
section { background: #fff; border: 1px solid #ddd; border-radius: 8px;
          padding: 16px 20px; margin: 0 0 20px; }
.muted { color: #555; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0 20px; padding: 0; }
.cards li { list-style: none; background: #fff; border: 1px solid #ddd; border-radius: 8px;
            padding: 10px 16px; min-width: 140px; }
.cards b { display: block; font-size: 1.5rem; }
form { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
form input { font: inherit; padding: 4px 8px; width: 12em; }
form button { font: inherit; padding: 4px 12px; }
nav a { margin-right: 10px; }
figure { margin: 0; }
svg { display: block; width: 100%; height: auto; }
svg .axis { font-size: 13px; fill: #444; }
svg .grid { stroke: #e3e3e3; stroke-width: 1; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; padding: 0; margin: 8px 0; }
.legend li { list-style: none; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px;
          margin-right: 6px; vertical-align: -1px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #eee;
         vertical-align: top; overflow-wrap: break-word; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
      white-space: nowrap; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.barcell { width: 28%; min-width: 120px; }
.cellbar { height: 12px; margin-top: 5px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 20px; }
details summary { cursor: pointer; color: #0b57a4; margin: 6px 0; }
.more, .empty { color: #555; font-style: italic; }
";

/// The whole page. `since` is the window as asked (`7d`, a date, or
/// empty for all).
pub fn render(figures: &Figures, since: &str) -> String {
    let report = &figures.report;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>devsy telemetry</title><style>{STYLE}</style></head><body><main>"
    );
    header(&mut out, report, since);
    out.push_str("<section id=\"runs\"><h2>Runs per day</h2>");
    out.push_str(&stacked_days(
        "runs-per-day",
        "Runs per day of the most run commands",
        "runs",
        &figures.runs_per_day,
        false,
    ));
    out.push_str("</section>");
    commands(&mut out, report);
    slowest(&mut out, &report.commands);
    out.push_str("<section id=\"versions\"><h2>Versions over time</h2>");
    out.push_str(&stacked_days(
        "versions-per-day",
        "Share of each day's runs by version",
        "runs",
        &figures.versions_per_day,
        true,
    ));
    shares(
        &mut out,
        "version",
        "Runs by version",
        &report.breakdowns.version,
        report.left_out.version,
        report.runs,
    );
    out.push_str("</section><section id=\"shares\"><h2>Where it runs</h2><div class=\"grid2\">");
    let b = &report.breakdowns;
    let left = &report.left_out;
    let runs = report.runs;
    shares(
        &mut out,
        "platform",
        "OS / architecture",
        &b.platform,
        left.platform,
        runs,
    );
    shares(
        &mut out,
        "provider",
        "Provider",
        &b.provider,
        left.provider,
        runs,
    );
    shares(&mut out, "ide", "IDE", &b.ide, left.ide, runs);
    shares(&mut out, "client", "Client", &b.client, left.client, runs);
    out.push_str(
        "</div></section><p class=\"muted\">Every figure is also JSON: \
         <a href=\"/api/report\">/api/report</a> (as <code>devsy-collector report --json</code>) \
         and <a href=\"/api/dashboard\">/api/dashboard</a>, with the same <code>?since=</code>.</p>\
         </main></body></html>",
    );
    out
}

fn header(out: &mut String, report: &Report, since: &str) {
    let window = if since.is_empty() {
        "all the events kept".to_string()
    } else {
        format!("since {}", text(since))
    };
    let _ = write!(
        out,
        "<h1>devsy telemetry</h1><p class=\"muted\">{window}</p>\
         <form method=\"get\" action=\"/\"><label for=\"since\">Since</label>\
         <input id=\"since\" name=\"since\" value=\"{}\" placeholder=\"7d, 12h or 2026-11-01\">\
         <button type=\"submit\">Show</button><nav aria-label=\"Windows\">\
         <a href=\"/?since=7d\">7 days</a><a href=\"/?since=30d\">30 days</a>\
         <a href=\"/?since=90d\">90 days</a><a href=\"/\">all</a></nav></form>",
        text(since)
    );
    let top_runs: u64 = report.commands.iter().map(|c| c.runs).sum();
    let failures: u64 = report.commands.iter().map(|c| c.failures).sum();
    let _ = write!(
        out,
        "<ul class=\"cards\" id=\"totals\">\
         <li><b data-value=\"{events}\">{events}</b>events</li>\
         <li><b data-value=\"{runs}\">{runs}</b>runs</li>\
         <li><b data-value=\"{machines}\">{machines}</b>machines</li>\
         <li><b data-value=\"{commands}\">{commands}</b>commands</li>\
         <li><b>{}</b>of the shown commands' runs failed</li></ul>",
        percent(failures, top_runs),
        runs = report.runs,
        events = report.events,
        machines = report.machines,
        commands = report.commands.len() as u64 + report.left_out.commands,
    );
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".into();
    }
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let share = part as f64 / whole as f64 * 100.0;
    format!("{share:.1} %")
}

fn ms(value: Option<u64>) -> String {
    match value {
        None => "–".into(),
        Some(ms) if ms < 1_000 => format!("{ms} ms"),
        #[allow(clippy::cast_precision_loss)]
        Some(ms) => format!("{:.1} s", ms as f64 / 1_000.0),
    }
}

/// Runs, machines and failure rate per command, most run first.
fn commands(out: &mut String, report: &Report) {
    out.push_str(
        "<section id=\"failures\"><h2>Failure rate per command</h2>\
         <table id=\"commands-table\"><caption>Runs and failures per command, most run first</caption>\
         <thead><tr><th scope=\"col\">Command</th><th scope=\"col\" class=\"n\">Runs</th>\
         <th scope=\"col\" class=\"n\">Machines</th><th scope=\"col\" class=\"n\">Failures</th>\
         <th scope=\"col\" class=\"n\">Failure rate</th><th scope=\"col\"><span class=\"sr\">Failure rate, as a bar</span></th>\
         <th scope=\"col\">Most frequent error</th></tr></thead><tbody>",
    );
    if report.commands.is_empty() {
        out.push_str("<tr><td colspan=\"7\" class=\"empty\">No events yet.</td></tr>");
    }
    for c in &report.commands {
        let rate = c.failure_rate.unwrap_or(0.0);
        let error = c.top_errors.first().map_or_else(String::new, |e| {
            format!("<bdi>{}</bdi> ({})", text(&e.value), e.count)
        });
        let _ = write!(
            out,
            "<tr data-command=\"{name}\"><th scope=\"row\"><bdi>{name}</bdi></th>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\" data-value=\"{rate}\">{}</td><td class=\"barcell\">{}</td><td>{error}</td></tr>",
            c.runs,
            c.machines,
            c.failures,
            percent(c.failures, c.runs),
            bar(rate, "#d55e00"),
            name = text(&c.command),
        );
    }
    out.push_str("</tbody></table>");
    more(out, report.left_out.commands, "command", "commands");
    out.push_str("</section>");
}

/// The commands with durations, slowest p95 first.
fn slowest(out: &mut String, commands: &[CommandStats]) {
    let mut timed: Vec<&CommandStats> = commands.iter().filter(|c| c.p95_ms.is_some()).collect();
    timed.sort_by(|a, b| {
        b.p95_ms
            .cmp(&a.p95_ms)
            .then_with(|| a.command.cmp(&b.command))
    });
    let most = timed.first().and_then(|c| c.p95_ms).unwrap_or(1);
    out.push_str(
        "<section id=\"slowest\"><h2>Slowest commands</h2>\
         <p class=\"muted\">Durations are sent for failures and for runs over the slow \
         threshold (10 s by default), so these describe those runs, not quick successes.</p>\
         <table id=\"slowest-table\"><caption>p50 and p95 duration per command, slowest first</caption>\
         <thead><tr><th scope=\"col\">Command</th><th scope=\"col\" class=\"n\">p50</th>\
         <th scope=\"col\" class=\"n\">p95</th><th scope=\"col\" class=\"n\">Slow runs</th>\
         <th scope=\"col\">p50 (dark) and p95 (light)</th></tr></thead><tbody>",
    );
    if timed.is_empty() {
        out.push_str("<tr><td colspan=\"5\" class=\"empty\">No durations yet.</td></tr>");
    }
    for c in timed {
        let (p50, p95) = (c.p50_ms.unwrap_or(0), c.p95_ms.unwrap_or(0));
        let _ = write!(
            out,
            "<tr data-command=\"{name}\"><th scope=\"row\"><bdi>{name}</bdi></th>\
             <td class=\"n\" data-value=\"{p50}\">{}</td><td class=\"n\" data-value=\"{p95}\">{}</td>\
             <td class=\"n\">{}</td><td class=\"barcell\">{}</td></tr>",
            ms(c.p50_ms),
            ms(c.p95_ms),
            c.slow,
            pair(p50, p95, most),
            name = text(&c.command),
        );
    }
    out.push_str("</tbody></table></section>");
}

/// A breakdown's values with their share of all `total` runs (not of the
/// rows shown: with values left out, those shown add up to less).
fn shares(out: &mut String, id: &str, title: &str, counts: &[Count], left: u64, total: u64) {
    let _ = write!(
        out,
        "<div><table id=\"{id}-table\"><caption>{title}</caption><thead><tr>\
         <th scope=\"col\">Value</th><th scope=\"col\" class=\"n\">Runs</th>\
         <th scope=\"col\" class=\"n\">Share</th><th scope=\"col\"><span class=\"sr\">Share, as a bar</span></th></tr></thead><tbody>"
    );
    for (i, c) in counts.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let share = c.count as f64 / total.max(1) as f64;
        let _ = write!(
            out,
            "<tr><th scope=\"row\"><bdi>{}</bdi></th><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"barcell\">{}</td></tr>",
            text(&c.value),
            c.count,
            percent(c.count, total),
            bar(share, accent(i)),
        );
    }
    out.push_str("</tbody></table>");
    more(out, left, "value", "values");
    out.push_str("</div>");
}

/// `one` and `many` are constants: nothing stored reaches this text.
fn more(out: &mut String, n: u64, one: &str, many: &str) {
    if let Some(line) = and_more(n, one, many) {
        let _ = write!(out, "<p class=\"more\">{line}</p>");
    }
}

/// A page that says what went wrong.
pub fn error(status: StatusCode, problem: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>devsy telemetry: {status}</title><style>{STYLE}</style></head><body><main>\
         <h1>{status}</h1><p>{}</p><p><a href=\"/\">Back to the dashboard</a></p></main></body></html>",
        text(problem)
    )
}
