//! The couriers a test's runs started: found by their argument and their
//! current directory (the config dir the test gave them), waited for with a
//! bound, and killed by id if they outlive it. Linux: read from `/proc`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// The argument a courier is started with.
pub const ARGUMENT: &str = "__devsy-telemetry-courier";

/// The ids of the couriers running with `home` as their current directory.
pub fn couriers_in(home: &Path) -> Vec<u32> {
    let home = home.canonicalize().unwrap_or_else(|_| home.to_path_buf());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let is_courier = cmdline
                .split(|b| *b == 0)
                .nth(1)
                .is_some_and(|arg| arg == ARGUMENT.as_bytes());
            is_courier
                && std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == home)
        })
        .collect()
}

/// Waits until no courier runs in `home`, at most `limit`; kills those left
/// (by id) and returns `false` if any was.
pub fn finish_couriers(home: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let left = couriers_in(home);
        if left.is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            for pid in left {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Kills, on drop, any courier still running in its directory: no test
/// leaves one behind, even when it fails half-way.
pub struct NoCourierLeft(pub PathBuf);

impl Drop for NoCourierLeft {
    fn drop(&mut self) {
        finish_couriers(&self.0, Duration::ZERO);
    }
}

/// The batch files waiting in the spool of `home`.
pub fn spooled_batches(home: &Path) -> usize {
    std::fs::read_dir(home.join("telemetry-spool")).map_or(0, |dir| {
        dir.flatten()
            .filter(|f| {
                let name = f.file_name();
                let name = name.to_string_lossy();
                name.ends_with(".json") && !name.starts_with('.')
            })
            .count()
    })
}
