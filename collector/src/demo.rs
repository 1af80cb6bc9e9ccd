//! `demo`: the whole system in one command. A collector on a free loopback
//! port with a temporary database, a handful of runs of the `devsy` example
//! against it (some failing, one slow, one from the "desktop app", one
//! opted out), then the report. On a terminal (and without `--quick`), it
//! then serves the dashboard on that database until Ctrl-C.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::dashboard;
use crate::report;
use crate::server::{self, Options};
use crate::store::{self, Database, Reader};

/// One run of the example: what it shows, its arguments, and its
/// environment beyond the demo's own.
struct Run {
    why: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

const RUNS: &[Run] = &[
    Run {
        why: "fails: no provider yet",
        args: &["up", "github.com/devsy-sh/devsy"],
        env: &[],
    },
    Run {
        why: "",
        args: &["provider", "add", "docker"],
        env: &[],
    },
    Run {
        why: "",
        args: &["provider", "add", "kubernetes"],
        env: &[],
    },
    Run {
        why: "fails: already there",
        args: &["provider", "add", "docker"],
        env: &[],
    },
    Run {
        why: "",
        args: &["provider", "use", "docker"],
        env: &[],
    },
    Run {
        why: "",
        args: &["provider", "list"],
        env: &[],
    },
    Run {
        why: "",
        args: &["up", "github.com/devsy-sh/devsy", "--ide", "vscode"],
        env: &[],
    },
    Run {
        why: "",
        args: &[
            "up",
            "image:ubuntu",
            "--provider",
            "kubernetes",
            "--ide",
            "goland",
        ],
        env: &[],
    },
    Run {
        why: "fails: no such provider",
        args: &["provider", "delete", "ssh"],
        env: &[],
    },
    Run {
        why: "as the desktop app",
        args: &["provider", "list"],
        env: &[("DEVSY_UI", "true")],
    },
    Run {
        why: "opts out: the next run sends nothing",
        args: &["context", "set-options", "-o", "TELEMETRY=false"],
        env: &[],
    },
    Run {
        why: "not recorded",
        args: &["provider", "list"],
        env: &[],
    },
    Run {
        why: "opts back in",
        args: &["context", "set-options", "-o", "TELEMETRY=true"],
        env: &[],
    },
];

/// Longer than the library's slow threshold (10 s).
const SLOW: Run = Run {
    why: "slow: over the 10 s threshold",
    args: &[
        "up",
        "github.com/devsy-sh/devsy",
        "--ide",
        "vscode",
        "--delay",
        "10.2",
    ],
    env: &[],
};

/// Where `cargo build --example devsy` puts the example, seen from this
/// binary (`target/<profile>/devsy-collector`).
fn default_devsy() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let name = format!("devsy{}", std::env::consts::EXE_SUFFIX);
    // Tests and benches run from `deps/`; the binary itself from the profile dir.
    [
        dir.join("examples").join(&name),
        dir.join("../examples").join(&name),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

pub fn run(devsy: Option<PathBuf>, quick: bool) -> Result<(), Box<dyn std::error::Error>> {
    let devsy = match devsy {
        Some(path) if path.is_file() => path,
        Some(path) => return Err(format!("no devsy binary at {}", path.display()).into()),
        None => default_devsy().ok_or(
            "the devsy example was not found next to this binary: build it with \
             `cargo build --example devsy`, or pass --devsy <path>",
        )?,
    };
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("devsy-telemetry.db");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home)?;

    let linger = !quick && std::io::stdout().is_terminal();
    let options = Options {
        listen: ([127, 0, 0, 1], 0).into(),
        db: Database::Sqlite(db.clone()),
        store: store::Settings::default(),
        limits: crate::listener::Limits::default(),
        body_budget: crate::server::DEFAULT_BODY_BUDGET,
        requests: crate::quota::DEFAULT_REQUESTS,
        events: crate::quota::DEFAULT_EVENTS,
        retain: None,
        dashboard: linger.then(|| dashboard::Options {
            listen: dashboard::DEFAULT_ADDRESS
                .parse()
                .unwrap_or_else(|_| ([127, 0, 0, 1], 0).into()),
            // Another program may hold the usual port.
            any_port_if_taken: true,
            token: None,
        }),
    };
    let (address_tx, address_rx) = mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // Set by a Ctrl-C the demo catches: while it serves the dashboard,
    // the end; during the runs, a reason to stop them.
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let caught = std::sync::Arc::clone(&interrupted);
    let collector = std::thread::spawn(move || {
        server::serve(
            &options,
            |addresses| {
                let _ = address_tx.send(addresses);
            },
            move || {
                // Caught only when the demo will serve the dashboard; else
                // Ctrl-C ends the process as usual.
                let signal = linger.then(server::signal);
                async move {
                    let ctrl_c = async {
                        match signal {
                            Some(signal) => signal.await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = stopped => {}
                        () = ctrl_c => caught.store(true, std::sync::atomic::Ordering::Relaxed),
                    }
                }
            },
        )
        .map_err(|e| e.to_string())
    });
    let Ok(addresses) = address_rx.recv_timeout(Duration::from_secs(10)) else {
        return Err(match collector.join() {
            Ok(Err(e)) => e.into(),
            _ => "the collector did not start".into(),
        });
    };
    let address = addresses.ingest;
    let endpoint = format!("http://{address}/v1/insert");
    println!(
        "collector listening on http://{address}, database {}",
        db.display()
    );
    println!(
        "running the devsy example ({}) against it:\n",
        devsy.display()
    );

    let slow = (!quick).then_some(&SLOW);
    let stopped_early = || interrupted.load(std::sync::atomic::Ordering::Relaxed);
    for run in RUNS.iter().chain(slow) {
        if stopped_early() {
            break;
        }
        let status = devsy_run(&devsy, &home, &endpoint, run)?;
        if stopped_early() {
            break;
        }
        // Each run hands what it did not send to a courier as it exits;
        // the next run starts once that is delivered, so that the opt-out
        // run's deletion of the spool meets nothing in flight.
        if !courier_done(&home) {
            return Err("a courier did not deliver within 10 s".into());
        }
        let why = if run.why.is_empty() {
            String::new()
        } else {
            format!("  ({})", run.why)
        };
        println!("  $ devsy {:<60} exit {status}{why}", run.args.join(" "));
    }

    if stopped_early() {
        let _ = collector.join();
        return Err("stopped by Ctrl-C before the runs ended".into());
    }
    let mut reader = Reader::open(&Database::Sqlite(db.clone()))?;
    let report = reader.snapshot(|reader| report::build(reader, None, report::DEFAULT_TOP))?;
    drop(reader);
    println!("\nevents stored: {}. The report:\n", report.events);
    print!("{}", report::render(&report));
    if let Some(board) = addresses.dashboard {
        println!("\nthe dashboard: http://{board}/ (Ctrl-C to stop)");
    } else {
        let _ = stop.send(());
    }
    collector.join().map_err(|_| "the collector panicked")??;
    Ok(())
}

/// Waits (at most 10 s) until the spool in `home` holds no batch.
fn courier_done(home: &Path) -> bool {
    let spool = home.join("telemetry-spool");
    let pending = || {
        std::fs::read_dir(&spool).is_ok_and(|dir| {
            dir.flatten()
                .any(|f| f.file_name().to_string_lossy().ends_with(".json"))
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pending() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// Runs the example once, with a clean environment: only the demo's home,
/// endpoint and the run's own variables (so a `DO_NOT_TRACK` of the user's
/// does not silence the demo).
fn devsy_run(devsy: &Path, home: &Path, endpoint: &str, run: &Run) -> std::io::Result<i32> {
    let status = Command::new(devsy)
        .args(run.args)
        .env_clear()
        .env("HOME", home)
        .env("DEVSY_HOME", home)
        .env("DEVSY_TELEMETRY_ENDPOINT", endpoint)
        .envs(run.env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    Ok(status.code().unwrap_or(-1))
}
