//! Telemetry without the attribute: a tiny CLI that records its command by
//! hand with [`Telemetry::command`].
//!
//! ```text
//! cargo run --example manual -- provider list
//! cargo run --example manual -- provider delete docker      # fails, as in the docs
//! cargo run --example manual -- up github.com/devsy-sh/devsy --provider kubernetes --ide vscode
//! cargo run --example manual -- telemetry status
//! cargo run --example manual -- telemetry off               # TELEMETRY=false for the current context
//! ```
//!
//! Events go to `DEVSY_TELEMETRY_ENDPOINT` (default: a collector on
//! `127.0.0.1:8787`); `DEVSY_TELEMETRY_DEBUG=1` prints them instead.

use std::process::ExitCode;

use devsy_telemetry::{ContextStore, Telemetry};

/// The providers this example pretends to know.
const PROVIDERS: &[&str] = &["kubernetes", "ssh"];

fn main() -> ExitCode {
    let telemetry = Telemetry::builder("devsy")
        .version(concat!("v", env!("CARGO_PKG_VERSION")))
        .endpoint("http://127.0.0.1:8787/v1/insert")
        .provider("kubernetes") // the default provider
        // Consent first: the run that shows the first-run notice sends
        // nothing (the `devsy` example sends from its first run).
        .notice_before_sending(true)
        .start();

    let args: Vec<String> = std::env::args().skip(1).collect();
    let (words, flags) = split_flags(&args);
    if words == ["telemetry", "off"] {
        // The user opts out: before the command is recorded, so that it
        // sends nothing and opens no connection.
        devsy_telemetry::disable();
    }
    let span = telemetry
        .command(command_path(&words))
        .provider(flag(&flags, "--provider"))
        .ide(flag(&flags, "--ide"))
        .source_type(
            words
                .get(1)
                .filter(|_| words[0] == "up")
                .map(|s| source_type(s)),
        )
        .start();
    match run(&telemetry, &words, &flags) {
        Ok(output) => {
            println!("{output}");
            span.finish_ok();
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            span.finish_err(&error);
            ExitCode::FAILURE
        }
    }
    // `telemetry` drops here: what is left goes to a courier.
}

fn run(telemetry: &Telemetry, words: &[&str], flags: &[(&str, &str)]) -> Result<String, String> {
    match words {
        ["provider", "list"] => Ok(PROVIDERS.join("\n")),
        ["provider", "delete", name] if !PROVIDERS.contains(name) => {
            Err(format!("provider '{name}' does not exist"))
        }
        ["provider", "delete", name] => Ok(format!("deleted provider '{name}'")),
        ["up", source] => match flag(flags, "--provider") {
            Some(provider) if !PROVIDERS.contains(&provider) => {
                Err(format!("provider '{provider}' does not exist"))
            }
            _ => Ok(format!("workspace for {source} is up")),
        },
        ["telemetry", "status"] => Ok(format!("telemetry: {}", telemetry.status())),
        ["telemetry", "off"] => {
            let path = ContextStore::default_path("devsy").ok_or("no home directory")?;
            let mut store = ContextStore::open(path).map_err(|e| e.to_string())?;
            let context = store.default_context().to_string();
            store
                .set_option(&context, "TELEMETRY", "false")
                .and_then(|()| store.save())
                .map_err(|e| e.to_string())?;
            Ok(format!("telemetry is off for context '{context}'"))
        }
        _ => Err(
            "usage: manual (provider list | provider delete <name> | up <source> \
                  [--provider <name>] [--ide <name>] | telemetry status | telemetry off)"
                .into(),
        ),
    }
}

/// The command's path: its words, never its arguments (a source URL or a
/// name is the user's data, not the command).
fn command_path(words: &[&str]) -> &'static str {
    match words {
        ["provider", "list", ..] => "provider list",
        ["provider", "delete", ..] => "provider delete",
        ["up", ..] => "up",
        ["telemetry", "status", ..] => "telemetry status",
        ["telemetry", "off", ..] => "telemetry off",
        _ => "",
    }
}

/// Splits `--flag value` pairs from the positional words.
fn split_flags(args: &[String]) -> (Vec<&str>, Vec<(&str, &str)>) {
    let mut words = Vec::new();
    let mut flags = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg.starts_with("--") {
            flags.push((arg.as_str(), iter.next().map_or("", String::as_str)));
        } else {
            words.push(arg.as_str());
        }
    }
    (words, flags)
}

fn flag<'a>(flags: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    flags.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn source_type(source: &str) -> &'static str {
    if source.starts_with("git@") || source.starts_with("github.com/") || source.ends_with(".git") {
        "git:"
    } else if source.starts_with("image:") {
        "image:"
    } else {
        "unknown:"
    }
}
