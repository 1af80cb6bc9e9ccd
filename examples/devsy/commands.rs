//! The commands. Each one that loads the configuration is a
//! `#[telemetry_command]`; `version` loads nothing and sends nothing.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use devsy_telemetry::context::TELEMETRY_OPTION;
use devsy_telemetry::{ContextStore, Telemetry, telemetry_command};
use serde_json::json;

use crate::cli::{Cli, Command, ContextCommand, ProviderCommand, TelemetryCommand, UpArgs};
use crate::config::Config;
use crate::error::CliError;

/// Where events go unless `DEVSY_TELEMETRY_ENDPOINT` says otherwise: a
/// collector on this machine.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8787/v1/insert";

/// Starts telemetry, then parses the command line and runs the command.
/// Errors print as `error: <message>` and exit 1.
pub fn run(version: &'static str) -> ExitCode {
    // Telemetry starts before anything is printed or done: in a courier
    // (this binary started again to deliver what a run left) `start()`
    // delivers and exits the process. Reading the arguments and the config
    // file has no effect yet, so the builder can use them; what the
    // arguments mean is acted on only after `start()` returned.
    let parsed = Cli::try_parse();
    let config = Config::load().map_err(|e| CliError::from(e).0);
    let context = parsed.as_ref().ok().and_then(|cli| cli.context.as_deref());
    let telemetry = start_telemetry(version, context, config.as_ref().ok());
    let cli = match parsed {
        Ok(cli) => cli,
        // `--help`, or a usage error: clap prints it and exits.
        Err(error) => {
            drop(telemetry);
            error.exit()
        }
    };
    if let Command::Version = cli.command {
        println!("devsy {version}");
        return ExitCode::SUCCESS;
    }
    let mut session = Session {
        config,
        context: cli.context,
        telemetry: &telemetry,
    };
    if let Command::Context(ContextCommand::SetOptions { options }) = &cli.command
        && session.opts_out(options)
    {
        // The user opts out: resolved before the command is entered, so its
        // start event is never recorded and no early send can race the
        // opt-out; this command sends nothing, even if the file cannot be
        // written.
        devsy_telemetry::disable();
    }
    let result = match &cli.command {
        Command::Provider(ProviderCommand::Add { name }) => provider_add(&mut session, name),
        Command::Provider(ProviderCommand::List) => provider_list(&mut session),
        Command::Provider(ProviderCommand::Use { name }) => provider_use(&mut session, name),
        Command::Provider(ProviderCommand::Delete { name }) => provider_delete(&mut session, name),
        Command::Up(args) => up(&mut session, args),
        Command::Context(ContextCommand::SetOptions { options }) => {
            context_set_options(&mut session, options)
        }
        Command::Context(ContextCommand::Options) => context_options(&mut session),
        Command::Telemetry(TelemetryCommand::Status) => telemetry_status(&session),
        Command::Version => unreachable!("handled before any command is entered"),
    };
    match result {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
    // `telemetry` drops here: what is queued is delivered within 500 ms.
}

/// The builder: the default properties come from the configuration (the
/// default provider, and the most recent workspace's source type and IDE).
fn start_telemetry(version: &str, context: Option<&str>, config: Option<&Config>) -> Telemetry {
    let mut builder = Telemetry::builder("devsy")
        .version(version)
        .endpoint(DEFAULT_ENDPOINT)
        // Named by the first-run notice, beside DEVSY_DISABLE_TELEMETRY.
        .opt_out_command("devsy context set-options -o TELEMETRY=false");
    if let Some(context) = context {
        builder = builder.context(context);
    }
    if let Some(config) = config {
        if let Some(provider) = config.default_provider() {
            builder = builder.provider(provider);
        }
        let (source_type, ide) = config.last_workspace();
        if let Some(source_type) = source_type {
            builder = builder.source_type(source_type);
        }
        if let Some(ide) = ide {
            builder = builder.ide(ide);
        }
    }
    builder.start()
}

/// What a command works with.
pub struct Session<'t> {
    /// The configuration, or why it could not be loaded.
    config: Result<Config, String>,
    /// `--context`, if given.
    context: Option<String>,
    telemetry: &'t Telemetry,
}

impl Session<'_> {
    /// The configuration: every command that needs it fails the same way
    /// when the file could not be loaded.
    fn config(&mut self) -> Result<&mut Config, CliError> {
        self.config.as_mut().map_err(|e| CliError(e.clone()))
    }

    /// What `context set-options` would save: the current context, and a
    /// copy of the store with every option applied, all or nothing, with a
    /// line for each. Nothing changes on disk.
    fn with_options(
        &mut self,
        options: &[String],
    ) -> Result<(String, ContextStore, Vec<String>), CliError> {
        let context = self.context()?;
        let mut store = self.config()?.store().clone();
        let mut lines = Vec::new();
        for option in options {
            let (key, value) = option.split_once('=').ok_or_else(|| {
                CliError(format!("invalid option '{option}': expected KEY=VALUE"))
            })?;
            store.set_option(&context, key, value)?;
            let key = key.trim().to_ascii_uppercase();
            let stored = store.option(&context, &key).unwrap_or_default();
            lines.push(format!("set {key}={stored} for context '{context}'"));
        }
        Ok((context, store, lines))
    }

    /// Whether `context set-options` with `options` would turn telemetry
    /// off: exactly what the command saves, read as the policy reads it.
    fn opts_out(&mut self, options: &[String]) -> bool {
        self.with_options(options).is_ok_and(|(context, store, _)| {
            store.option(&context, TELEMETRY_OPTION) == Some("false")
        })
    }

    /// `--context`, else the config's default context.
    fn context(&mut self) -> Result<String, CliError> {
        match &self.context {
            Some(context) => Ok(context.clone()),
            None => Ok(self.config()?.store().default_context().to_string()),
        }
    }
}

fn does_not_exist(name: &str) -> CliError {
    CliError(format!("provider '{name}' does not exist"))
}

#[telemetry_command]
fn provider_add(session: &mut Session<'_>, name: &str) -> Result<String, CliError> {
    let config = session.config()?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(CliError(format!(
            "invalid provider name '{name}': use letters, digits, '-' and '_'"
        )));
    }
    if config.has_provider(name) {
        return Err(CliError(format!("provider '{name}' already exists")));
    }
    config.add_provider(name)?;
    if config.default_provider().is_none() {
        config.use_provider(name);
    }
    config.save()?;
    Ok(format!("added provider '{name}'"))
}

#[telemetry_command]
fn provider_list(session: &mut Session<'_>) -> Result<String, CliError> {
    let config = session.config()?;
    let default = config.default_provider();
    let lines: Vec<String> = config
        .providers()
        .into_iter()
        .map(|name| {
            if Some(name) == default {
                format!("{name} (default)")
            } else {
                name.to_string()
            }
        })
        .collect();
    if lines.is_empty() {
        return Ok("no providers: add one with 'devsy provider add <name>'".into());
    }
    Ok(lines.join("\n"))
}

#[telemetry_command]
fn provider_use(session: &mut Session<'_>, name: &str) -> Result<String, CliError> {
    let config = session.config()?;
    if !config.has_provider(name) {
        return Err(does_not_exist(name));
    }
    config.use_provider(name);
    config.save()?;
    Ok(format!("default provider is now '{name}'"))
}

#[telemetry_command]
fn provider_delete(session: &mut Session<'_>, name: &str) -> Result<String, CliError> {
    let config = session.config()?;
    if !config.has_provider(name) {
        return Err(does_not_exist(name));
    }
    config.delete_provider(name)?;
    config.save()?;
    Ok(format!("deleted provider '{name}'"))
}

#[telemetry_command(
    provider = args.provider.as_deref(),
    ide = args.ide.as_deref(),
    source_type = source_type(&args.source)
)]
fn up(session: &mut Session<'_>, args: &UpArgs) -> Result<String, CliError> {
    let config = session.config()?;
    let provider = match args.provider.as_deref().or(config.default_provider()) {
        Some(provider) => provider.to_string(),
        None => {
            return Err(CliError(
                "no provider: pass --provider <name>, or set a default with \
                 'devsy provider use <name>'"
                    .into(),
            ));
        }
    };
    if !config.has_provider(&provider) {
        return Err(does_not_exist(&provider));
    }
    // Provisioning, simulated.
    std::thread::sleep(Duration::from_secs_f64(args.delay));
    let id = workspace_id(&args.source);
    let source_type = source_type(&args.source);
    config.add_workspace(json!({
        "id": id,
        "source": args.source,
        "sourceType": source_type,
        "provider": provider,
        "ide": args.ide,
    }))?;
    config.save()?;
    let ide = args.ide.as_deref().unwrap_or("none");
    Ok(format!(
        "workspace '{id}' is up (provider {provider}, source {source_type}, ide {ide})"
    ))
}

#[telemetry_command("context set-options")]
fn context_set_options(session: &mut Session<'_>, options: &[String]) -> Result<String, CliError> {
    // All or nothing: every option is checked on a copy before the file
    // changes. An opt-out was resolved before this command was entered.
    let (_, store, lines) = session.with_options(options)?;
    let config = session.config()?;
    *config.store_mut() = store;
    config.save()?;
    Ok(lines.join("\n"))
}

#[telemetry_command]
fn context_options(session: &mut Session<'_>) -> Result<String, CliError> {
    let context = session.context()?;
    let config = session.config()?;
    let lines: Vec<String> = config
        .store()
        .options_of(&context)
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    if lines.is_empty() {
        return Ok(format!("no options set for context '{context}'"));
    }
    Ok(lines.join("\n"))
}

/// Works with a broken config file too: it then says that the file turned
/// telemetry off.
#[telemetry_command]
fn telemetry_status(session: &Session<'_>) -> Result<String, CliError> {
    let telemetry = &session.telemetry;
    let status = telemetry.status();
    // Off: the rule says it all (and the notice is forgotten with the rest).
    let (Some(exit), Some(destination)) = (telemetry.exit_mode(), telemetry.destination()) else {
        return Ok(format!("telemetry: {status}"));
    };
    let notice = if telemetry.notice_shown() {
        "shown"
    } else {
        "not shown"
    };
    // This process's counts so far, including what the spool of earlier
    // runs held. One line each, to grep.
    Ok(format!(
        "telemetry: {status}\nexit: {exit}\nevents: {}\nendpoint: {destination}\n\
         spooled: {} events\nnotice: {notice}",
        telemetry.stats(),
        telemetry.spooled_events()
    ))
}

/// `git:` for a git URL, `local:` for an existing path, `image:` for
/// `image:<ref>`, `container:` for `container:<id>`, else `unknown:`.
pub fn source_type(source: &str) -> &'static str {
    if source.starts_with("image:") {
        "image:"
    } else if source.starts_with("container:") {
        "container:"
    } else if !source.is_empty() && Path::new(source).exists() {
        "local:"
    } else if is_git_url(source) {
        "git:"
    } else {
        "unknown:"
    }
}

fn is_git_url(source: &str) -> bool {
    let schemes = ["git@", "git://", "ssh://", "https://", "http://"];
    if schemes.iter().any(|scheme| source.starts_with(scheme)) {
        return true;
    }
    // `github.com/org/repo`: a host, then a path.
    source
        .split_once('/')
        .is_some_and(|(host, path)| host.contains('.') && !path.is_empty())
}

/// `github.com/devsy-sh/devsy.git` -> `devsy`
fn workspace_id(source: &str) -> String {
    let last = source
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(source)
        .trim_end_matches(".git");
    let id: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let id = id.trim_matches('-');
    if id.is_empty() {
        "workspace".into()
    } else {
        id.into()
    }
}
