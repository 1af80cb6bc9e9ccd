//! The user's code gets exactly the lints it gets without the attribute:
//! clippy (default and pedantic groups, and a few restriction lints) runs
//! on the fixture crate `tests/lint_fixture` three times: with the
//! attribute, compiled out, and with the attribute's lines blanked out (the
//! code as written without it). The lints must be the same, line by line.
//! And `cargo check` with the attribute, which builds the instrumented
//! code clippy does not see, must give the same rustc lints.
//!
//! The fixture is copied to a temporary crate (`support::fixture`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::support::fixture;

/// The fixture in `dir`; `blank_attribute`: with the attribute's lines
/// (and its `use`) empty, as the code would be written without it.
fn lint_fixture(dir: &Path, blank_attribute: bool) {
    let source =
        std::fs::read_to_string(fixture::repository().join("tests/lint_fixture/src/lib.rs"))
            .expect("fixture source");
    let source = if blank_attribute {
        let lines: Vec<&str> = source
            .lines()
            .map(|line| {
                let code = line.trim_start();
                if code.starts_with("#[telemetry_command")
                    || code == "use devsy_telemetry::telemetry_command;"
                {
                    ""
                } else {
                    line
                }
            })
            .collect();
        lines.join("\n") + "\n"
    } else {
        source
    };
    let lints = r#"[lints.clippy]
pedantic = { level = "warn", priority = -1 }
print_stdout = "warn"
print_stderr = "warn"
todo = "warn"
panic = "warn"
"#;
    fixture::write(dir, "2024", "src/lib.rs", &source, lints);
}

/// Each lint `cargo <tool>` (clippy or check) reports on the fixture's
/// source, by line: how many times it fires there.
fn lints(dir: &Path, tool: &str, telemetry: bool) -> BTreeMap<(u64, String), usize> {
    let features: &[&str] = if telemetry {
        &["--features", "telemetry"]
    } else {
        &[]
    };
    let mut args = vec![tool, "--message-format=json"];
    args.extend_from_slice(features);
    let output = fixture::cargo(dir, &args);
    assert!(
        output.status.success(),
        "cargo {tool} failed (telemetry: {telemetry}):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut found = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-message" {
            continue;
        }
        let message = &message["message"];
        let Some(code) = message["code"]["code"].as_str() else {
            continue;
        };
        let primary = message["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|span| span["is_primary"] == true && span["file_name"] == "src/lib.rs");
        if let Some(line) = primary.and_then(|span| span["line_start"].as_u64()) {
            *found.entry((line, code.to_string())).or_insert(0) += 1;
        }
    }
    found
}

#[test]
fn clippy_finds_the_same_lints_with_the_attribute_and_without() {
    let dir = tempfile::tempdir().expect("temp dir");
    lint_fixture(dir.path(), true);
    let plain = lints(dir.path(), "clippy", false);
    // The fixture draws what it was written to draw: the comparison is
    // not between two empty lists.
    for expected in [
        "clippy::println_empty_string",
        "clippy::print_with_newline",
        "clippy::print_literal",
        "clippy::print_stdout",
        "clippy::print_stderr",
        "clippy::todo",
        "clippy::panic",
        "clippy::missing_panics_doc",
        "clippy::missing_errors_doc",
        "clippy::manual_async_fn",
        "clippy::unused_async",
        "clippy::unnecessary_wraps",
        "clippy::needless_pass_by_value",
        "clippy::semicolon_if_nothing_returned",
        "clippy::used_underscore_binding",
        "clippy::needless_return",
        "clippy::len_zero",
        "unused_variables",
    ] {
        assert!(
            plain.keys().any(|(_, code)| code == expected),
            "the fixture no longer draws {expected}: {plain:#?}"
        );
    }
    lint_fixture(dir.path(), false);
    let with = lints(dir.path(), "clippy", true);
    assert_eq!(
        with, plain,
        "clippy with the attribute (left), without it (right)"
    );
    let compiled_out = lints(dir.path(), "clippy", false);
    assert_eq!(
        compiled_out, plain,
        "clippy with the attribute compiled out (left), without it (right)"
    );
    // What rustc alone says of the instrumented code: the same as of the
    // code without the attribute.
    let rustc_only = |lints: &BTreeMap<(u64, String), usize>| -> BTreeMap<(u64, String), usize> {
        lints
            .iter()
            .filter(|((_, code), _)| !code.starts_with("clippy::"))
            .map(|(key, count)| (key.clone(), *count))
            .collect()
    };
    let built = lints(dir.path(), "check", true);
    assert_eq!(
        rustc_only(&built),
        rustc_only(&plain),
        "rustc building the instrumented code (left), the code without the attribute (right)"
    );
}
