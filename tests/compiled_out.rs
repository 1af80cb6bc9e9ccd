//! The build without the `telemetry` feature, for packagers who ship no
//! telemetry: `cargo test --no-default-features --test compiled_out`
//! (CI runs it). The attribute emits functions as written, with only a
//! branch never taken that mentions the property expressions, and
//! `start()` starts nothing. Warnings are denied: what the properties use
//! is used in this build too.

#![cfg(not(feature = "telemetry"))]
#![deny(warnings)]

use devsy_telemetry::{DisabledBy, RecordingTransport, Status, Telemetry, telemetry_command};

#[telemetry_command(provider = unreachable_if_evaluated(), ide = ide)]
fn provider_delete(name: &str, ide: &str) -> Result<(), String> {
    Err(format!("provider '{name}' does not exist"))
}

// Only the attribute uses it (and `ide` above): neither is dead nor unused
// without the feature, and neither is evaluated.
fn unreachable_if_evaluated() -> &'static str {
    panic!("properties are compiled out with the rest")
}

#[test]
fn nothing_is_started_recorded_or_sent() {
    let home = tempfile::tempdir().expect("temp dir");
    let recording = RecordingTransport::new();
    let telemetry = Telemetry::builder("devsy")
        .version("v1.0.0")
        .env([("HOME", home.path().to_string_lossy())])
        .config_dir(home.path())
        .transport(recording.clone())
        .start();
    assert_eq!(
        telemetry.status(),
        Status::Disabled(DisabledBy::CompiledOut)
    );
    assert_eq!(
        provider_delete("docker", "vscode"),
        Err("provider 'docker' does not exist".to_string())
    );
    devsy_telemetry::command("provider list")
        .start()
        .finish_ok();
    drop(telemetry);
    assert!(recording.events().is_empty());
    assert_eq!(std::fs::read_dir(home.path()).expect("read dir").count(), 0);
}
