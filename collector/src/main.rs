//! `devsy-collector`: a self-hosted backend for devsy-telemetry.
//!
//! - `serve`: receives batches on `POST /v1/insert`, checks them against the
//!   wire format and stores them in SQLite before answering;
//! - `report`: what the stored events say, as tables or JSON;
//! - `demo`: a collector, a few runs of the `devsy` example against it, and
//!   the report: the whole system in one command.

mod demo;
mod ingest;
mod report;
mod server;
mod store;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Parser, Subcommand};

/// A self-hosted backend for devsy-telemetry: receives the events, keeps
/// them in SQLite and reports on them.
#[derive(Debug, Parser)]
#[command(name = "devsy-collector", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive events on POST /v1/insert until SIGINT or SIGTERM
    Serve {
        /// The address to listen on (port 0: any free port)
        #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDRESS")]
        listen: SocketAddr,
        /// The SQLite database, created if missing
        #[arg(long, default_value = "./devsy-telemetry.db", value_name = "PATH")]
        db: PathBuf,
        /// How durable a commit is: `normal` survives the collector being
        /// killed; `full` survives a power loss too, at one fsync per batch
        #[arg(long, value_enum, default_value = "normal")]
        durability: store::Durability,
    },
    /// Print what the stored events say
    Report {
        /// The SQLite database
        #[arg(long, default_value = "./devsy-telemetry.db", value_name = "PATH")]
        db: PathBuf,
        /// Only events from then on: 2026-11-01, 2026-11-01T08:30:00Z, 7d or 12h
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Print JSON instead of tables
        #[arg(long)]
        json: bool,
    },
    /// Start a collector, run the devsy example against it, print the report
    Demo {
        /// The devsy example binary (default: next to this one, as built by
        /// `cargo build --example devsy`)
        #[arg(long, value_name = "PATH")]
        devsy: Option<PathBuf>,
        /// Leave out the slow run (it takes just over 10 seconds)
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
        } => serve(listen, db, durability),
        Command::Report { db, since, json } => report(&db, since.as_deref(), json),
        Command::Demo { devsy, quick } => demo::run(devsy, quick),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("devsy-collector: {error}");
            ExitCode::FAILURE
        }
    }
}

fn serve(
    listen: SocketAddr,
    db: PathBuf,
    durability: store::Durability,
) -> Result<(), Box<dyn std::error::Error>> {
    let options = server::Options {
        listen,
        db,
        durability,
    };
    let summary = server::serve(
        &options,
        |address| {
            // The first line of output, for scripts and tests to read the port.
            println!(
                "listening on http://{address} (database {})",
                options.db.display()
            );
            let _ = std::io::stdout().flush();
        },
        server::signal,
    )?;
    eprintln!(
        "devsy-collector: stopped; events stored since start: {}",
        summary.stored
    );
    Ok(())
}

fn report(
    db: &std::path::Path,
    since: Option<&str>,
    json: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let since = since
        .map(|text| report::parse_since(text, SystemTime::now()))
        .transpose()?;
    let conn = store::open_for_reading(db)?;
    let report = report::build(&conn, since)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", report::render(&report))?;
    }
    Ok(())
}
