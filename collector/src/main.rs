//! `devsy-collector`: a self-hosted backend for devsy-telemetry.
//!
//! - `serve`: receives batches on `POST /v1/insert`, checks them against the
//!   wire format and stores them in SQLite or PostgreSQL before answering;
//!   with `--dashboard`, serves the dashboard on an address of its own;
//! - `report`: what the stored events say, as tables or JSON;
//! - `demo`: a collector, a few runs of the `devsy` example against it, and
//!   the report: the whole system in one command.

mod dashboard;
mod demo;
mod ingest;
mod listener;
mod log;
mod quota;
mod report;
mod respond;
mod server;
mod store;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use store::Database;

use clap::{Parser, Subcommand};

/// The unit of the size flags.
const MIB: u64 = 1024 * 1024;

/// A self-hosted backend for devsy-telemetry: receives the events, keeps
/// them in SQLite or PostgreSQL, and reports on them.
#[derive(Debug, Parser)]
#[command(name = "devsy-collector", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What a client of the public endpoint may take.
#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// A request's head must arrive within this many seconds; an idle
    /// keep-alive connection is closed after it
    #[arg(long, default_value_t = listener::Limits::DEFAULT.header_timeout.as_secs_f64(),
          value_name = "SECONDS", value_parser = seconds)]
    header_timeout: f64,
    /// A request's body must arrive within this many seconds
    #[arg(long, default_value_t = listener::Limits::DEFAULT.body_deadline.as_secs_f64(),
          value_name = "SECONDS", value_parser = seconds)]
    body_deadline: f64,
    /// Connections open at once; more are closed at accept (at most the
    /// open-file limit, which is raised to its hard limit at start)
    #[arg(long, default_value_t = listener::Limits::DEFAULT.max_connections, value_name = "N")]
    max_connections: usize,
    /// Connections open at once from one address
    #[arg(long, default_value_t = listener::Limits::DEFAULT.max_per_address, value_name = "N")]
    max_connections_per_address: usize,
    /// Request bodies held in memory at once, in MiB; past it, 503
    #[arg(long, default_value_t = server::DEFAULT_BODY_BUDGET / MIB as usize, value_name = "MIB")]
    body_budget: usize,
    /// The largest the database may grow, in MiB (with PostgreSQL, the
    /// events table and its indexes); past it, ingest answers 507 and the
    /// report still works
    #[arg(long, default_value_t = store::DEFAULT_MAX_BYTES / MIB, value_name = "MIB")]
    max_db_size: u64,
    /// Below this many MiB free on the database's disk, ingest answers 507
    /// (SQLite; a PostgreSQL server watches its own disk)
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    min_free_disk: u64,
    /// Requests per second from one client address, and its burst
    #[arg(long, default_value_t = quota::DEFAULT_REQUESTS.per_second, value_name = "N")]
    rate_requests: f64,
    /// Events per second from one client address (the burst is ten
    /// seconds' worth, as for requests)
    #[arg(long, default_value_t = quota::DEFAULT_EVENTS.per_second, value_name = "N")]
    rate_events: f64,
    /// Delete events older than this, in the background: `400d`, `12h`, or
    /// `forever`
    #[arg(long, default_value = "400d", value_name = "AGE", value_parser = retention)]
    retain: Retain,
    /// The longest a connection lives, in seconds: then it finishes its
    /// request and closes
    #[arg(long, default_value_t = listener::Limits::DEFAULT.max_lifetime.as_secs_f64(),
          value_name = "SECONDS", value_parser = seconds)]
    max_connection_age: f64,
    /// After SIGTERM, how many seconds requests in flight may take
    #[arg(long, default_value_t = listener::Limits::DEFAULT.shutdown_grace.as_secs_f64(),
          value_name = "SECONDS", value_parser = seconds)]
    shutdown_grace: f64,
}

/// How long events are kept.
#[derive(Debug, Clone, Copy)]
struct Retain(Option<Duration>);

fn retention(text: &str) -> Result<Retain, String> {
    if text == "forever" {
        return Ok(Retain(None));
    }
    let bad = || format!("'{text}' is not an age: 400d, 12h, or forever");
    match report::dates::span(text) {
        Some(Ok(age)) if !age.is_zero() => Ok(Retain(Some(age))),
        _ => Err(bad()),
    }
}

fn rate(per_second: f64) -> Result<quota::Rate, String> {
    if per_second.is_finite() && per_second > 0.0 {
        Ok(quota::Rate {
            per_second,
            burst: per_second * 10.0,
        })
    } else {
        Err(format!(
            "a rate is a positive number per second, not {per_second}"
        ))
    }
}

fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!(
            "'{text}' is not a number of seconds between 0 and 86400"
        )),
    }
}

impl LimitArgs {
    fn options(&self) -> (listener::Limits, usize, u64) {
        // (limits, body budget in bytes, database cap in bytes)
        (
            listener::Limits {
                header_timeout: Duration::from_secs_f64(self.header_timeout),
                body_deadline: Duration::from_secs_f64(self.body_deadline),
                max_connections: self.max_connections.max(1),
                max_per_address: self.max_connections_per_address.max(1),
                shutdown_grace: Duration::from_secs_f64(self.shutdown_grace),
                max_lifetime: Duration::from_secs_f64(self.max_connection_age),
            },
            self.body_budget.max(1).saturating_mul(MIB as usize),
            self.max_db_size.max(1).saturating_mul(MIB),
        )
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive events on POST /v1/insert until SIGINT or SIGTERM
    Serve {
        /// The address to listen on (port 0: any free port)
        #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDRESS")]
        listen: SocketAddr,
        /// The database: a SQLite file, created if missing, or a
        /// `postgres://user@host/dbname` URL (several collectors may share
        /// one; its schema is created if missing)
        #[arg(long, default_value = "./devsy-telemetry.db", value_name = "PATH|URL")]
        db: String,
        /// How durable a commit is: `normal` survives the collector being
        /// killed; `full` survives a power loss too, at one fsync per batch
        /// (SQLite; PostgreSQL's own `synchronous_commit` decides there)
        #[arg(long, value_enum, default_value = "normal")]
        durability: store::Durability,
        /// PostgreSQL connections this collector holds at most
        #[arg(long, default_value_t = store::DEFAULT_POOL, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=1024))]
        pool_size: u32,
        /// Serve the dashboard on this address (without a value, on
        /// 127.0.0.1:8788); never on the ingest address
        #[arg(long, value_name = "ADDRESS", num_args = 0..=1,
              default_missing_value = dashboard::DEFAULT_ADDRESS)]
        dashboard: Option<SocketAddr>,
        /// The dashboard's token: requests must carry it as
        /// `Authorization: Bearer <token>` (a browser asks for it as the
        /// password). Needed when the dashboard is not on loopback
        #[arg(
            long,
            env = "DEVSY_DASHBOARD_TOKEN",
            hide_env_values = true,
            value_name = "TOKEN"
        )]
        dashboard_token: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Print what the stored events say
    Report {
        /// The database: a SQLite file or a `postgres://` URL
        #[arg(long, default_value = "./devsy-telemetry.db", value_name = "PATH|URL")]
        db: String,
        /// Only events from then on: 2026-11-01, 2026-11-01T08:30:00Z, 7d or 12h
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Print JSON instead of tables
        #[arg(long)]
        json: bool,
        /// Rows per table (commands, and each breakdown): the most
        /// frequent, then how many more there are
        #[arg(long, default_value_t = report::DEFAULT_TOP, value_name = "N")]
        top: usize,
    },
    /// Start a collector, run the devsy example against it, print the report
    Demo {
        /// The devsy example binary (default: next to this one, as built by
        /// `cargo build --example devsy`)
        #[arg(long, value_name = "PATH")]
        devsy: Option<PathBuf>,
        /// Leave out the slow run (it takes just over 10 seconds), and end
        /// after the report instead of serving the dashboard
        #[arg(long)]
        quick: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            listen,
            db,
            durability,
            pool_size,
            dashboard,
            dashboard_token,
            limits,
        } => {
            let store = store::Settings {
                durability,
                pool_size,
                ..store::Settings::default()
            };
            let board = dashboard.map(|listen| dashboard::Options {
                listen,
                any_port_if_taken: false,
                token: dashboard_token.filter(|t| !t.is_empty()),
            });
            database(&db).and_then(|db| serve(listen, db, store, board, &limits))
        }
        Command::Report {
            db,
            since,
            json,
            top,
        } => database(&db).and_then(|db| report(&db, since.as_deref(), json, top)),
        Command::Demo { devsy, quick } => demo::run(devsy, quick),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            log::log_now(&error.to_string());
            ExitCode::FAILURE
        }
    }
}

/// `--db`, read here rather than by clap, whose error would quote the
/// argument, a URL's password with it.
fn database(text: &str) -> Result<Database, Box<dyn std::error::Error>> {
    text.parse::<Database>()
        .map_err(|e| format!("--db: {e}").into())
}

fn serve(
    listen: SocketAddr,
    db: Database,
    mut store: store::Settings,
    dashboard: Option<dashboard::Options>,
    limits: &LimitArgs,
) -> Result<(), Box<dyn std::error::Error>> {
    let requests = rate(limits.rate_requests)?;
    let events = rate(limits.rate_events)?;
    let retain = limits.retain.0;
    store.min_free_bytes = limits.min_free_disk.saturating_mul(MIB);
    let (limits, body_budget, max_db_bytes) = limits.options();
    store.max_bytes = max_db_bytes;
    if let Some(board) = &dashboard {
        if board.listen == listen && listen.port() != 0 {
            return Err("the dashboard needs an address of its own, not the ingest address".into());
        }
        if board.token.is_none() && !board.listen.ip().is_loopback() {
            return Err(format!(
                "the dashboard on {} is reachable from other hosts: give it a token \
                 (--dashboard-token or DEVSY_DASHBOARD_TOKEN), or serve it on loopback",
                board.listen
            )
            .into());
        }
    }
    let options = server::Options {
        listen,
        db,
        store,
        limits,
        body_budget,
        requests,
        events,
        retain,
        dashboard,
    };
    let summary = server::serve(
        &options,
        |addresses| {
            // The first line of output, for scripts and tests to read the
            // port; a closed stdout is not a reason to stop.
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(
                stdout,
                "listening on http://{} (database {})",
                addresses.ingest, options.db
            );
            if let Some(board) = addresses.dashboard {
                let _ = writeln!(stdout, "dashboard on http://{board}/");
            }
            let _ = stdout.flush();
        },
        server::signal,
    )?;
    log::log_now(&format!(
        "stopped; events stored since start: {}",
        summary.stored
    ));
    Ok(())
}

fn report(
    db: &Database,
    since: Option<&str>,
    json: bool,
    top: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let since = since
        .map(|text| report::parse_since(text, SystemTime::now()))
        .transpose()?;
    let mut reader = store::Reader::open(db)?;
    let report = reader.snapshot(|reader| report::build(reader, since, top))?;
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", report::render(&report))?;
    }
    Ok(())
}
