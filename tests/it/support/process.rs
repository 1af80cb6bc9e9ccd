//! The example binaries run as child processes, as a CLI user runs them:
//! a clean environment, a bounded wait, their output.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

/// The path of an example binary built by `cargo test` (examples are built
/// with the tests, next to the test binaries' `deps` folder).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// An example run as a CLI user would run it, with an empty environment but
/// for `DEVSY_HOME` (a temporary directory), `CI=true` and `vars`.
///
/// `CI=true` makes the exit wait for delivery (`Exit::Wait`), so that what
/// a run sent has arrived when it returns and no courier outlives the test;
/// the courier's tests clear it with `("CI", "")`.
pub fn run_example(name: &str, args: &[&str], home: &Path, vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(example(name));
    command
        .args(args)
        .env_clear()
        .env("DEVSY_HOME", home)
        .env("CI", "true");
    for (key, value) in vars {
        command.env(key, value);
    }
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn example");
    wait_bounded(child, Duration::from_secs(60))
}

/// Waits for `child` at most `limit`, draining its pipes; kills it and panics
/// past the limit.
pub fn wait_bounded(mut child: std::process::Child, limit: Duration) -> Output {
    // Drain the pipes on their own threads so a chatty child never blocks.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("child still running after {limit:?}: killed");
        }
        thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Files and directories under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir").flatten() {
            let path = entry.path();
            found.push(
                path.strip_prefix(dir)
                    .expect("under dir")
                    .display()
                    .to_string(),
            );
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
