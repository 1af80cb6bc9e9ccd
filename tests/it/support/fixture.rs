//! A crate of its own, made in a temporary directory from a source file of
//! this repository, that depends on the facade by path: for what only a
//! separate crate shows (its lints, another edition). Built offline with
//! this workspace's lock file, in a target dir of its own under this one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::process::wait_bounded;

/// The first build compiles the facade's dependencies.
const LIMIT: Duration = Duration::from_secs(600);

/// This repository.
pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes the crate in `dir`: `source` at `path` (`src/lib.rs` or
/// `src/main.rs`), and a manifest of `edition` with a `telemetry` feature
/// that turns the facade's on, and the `extra` manifest text.
pub fn write(dir: &Path, edition: &str, path: &str, source: &str, extra: &str) {
    let manifest = format!(
        r#"[package]
name = "fixture"
version = "0.0.0"
edition = "{edition}"
publish = false

[workspace]

[features]
telemetry = ["devsy-telemetry/telemetry"]

[dependencies]
devsy-telemetry = {{ path = {root:?}, default-features = false }}
async-trait = "0.1.89"

{extra}"#,
        root = repository().display().to_string()
    );
    let file = dir.join(path);
    std::fs::create_dir_all(file.parent().expect("a source path")).expect("fixture dir");
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("fixture manifest");
    std::fs::copy(repository().join("Cargo.lock"), dir.join("Cargo.lock")).expect("lock file");
    std::fs::write(file, source).expect("fixture source");
}

/// `cargo <args>` on the crate in `dir`, bounded in time.
pub fn cargo(dir: &Path, args: &[&str]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let child = Command::new(cargo)
        .current_dir(dir)
        .args(args)
        .args(["--offline", "--quiet", "--target-dir"])
        .arg(repository().join("target/fixture"))
        .env_remove("RUSTFLAGS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cargo");
    wait_bounded(child, LIMIT)
}
