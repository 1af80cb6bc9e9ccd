//! The `#[telemetry_command]` attribute of `devsy-telemetry`.
//!
//! Use it through the facade crate, as `devsy_telemetry::telemetry_command`.
//! This crate is split by stage: `args` parses the attribute's arguments,
//! `item` parses and validates the function, `shape` picks the rewrite by
//! the signature, `params` moves the parameters into it in order, and
//! `expand` rewrites it.
//!
#![doc = include_str!("../docs/expansions.md")]
#![forbid(unsafe_code)]

mod args;
mod expand;
mod item;
mod params;
mod shape;

use proc_macro::TokenStream;

/// Records a CLI command: a start event when it is entered, and a finished
/// event with its duration when it fails or runs past the slow threshold.
/// The function behaves exactly as before.
///
/// ```
/// use devsy_telemetry::telemetry_command;
/// # struct UpArgs { provider: Option<String>, ide: String }
/// # #[derive(Debug)] struct Error;
/// # impl std::fmt::Display for Error {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("error") }
/// # }
///
/// #[telemetry_command]                        // the name from the fn: "provider delete"
/// fn provider_delete(name: &str) -> Result<(), Error> {
///     Ok(())
/// }
///
/// #[telemetry_command("context set-options")] // an explicit name
/// fn set_options() {}
///
/// #[telemetry_command(name = "up", provider = args.provider.as_deref(), ide = &args.ide)]
/// async fn up(args: UpArgs) -> Result<(), Error> {
///     Ok(())
/// }
/// # provider_delete("x").unwrap(); set_options();
/// ```
///
/// # Arguments
///
/// - a string literal, or `name = "…"`: the command path without the app
///   name (the runtime prefixes it: `devsy provider delete`). Default: the
///   function's name with `_` read as a space.
/// - `provider = expr`, `ide = expr`, `source_type = expr`: this command's
///   properties, overriding the builder's defaults. Any expression over the
///   parameters' bindings, evaluated once at the call and only when
///   telemetry is on then; of type `&str`, `String`, anything `Display`, or
///   an `Option` of those (`None` keeps the builder's default; without one
///   the property is omitted).
/// - `crate = path`: where the facade crate is, when it is renamed in
///   `Cargo.toml` or re-exported by another crate (default
///   `::devsy_telemetry`).
///
/// # Functions
///
/// Free functions, methods (any receiver), trait impls and default methods,
/// `async fn`, functions returning `impl Future` (their statements run at
/// the call, the future is timed), and functions returning a boxed future
/// (`Pin<Box<dyn Future<…>>>`, `BoxFuture`, `LocalBoxFuture`, as
/// `#[async_trait]` and `.boxed()` make), whatever builds it. Every future
/// counts from its first poll to its completion; dropped before it
/// completes, it is a failure whose error is `cancelled`. Parameters drop
/// as they would without the attribute. Not `const fn`, `-> !`,
/// `#[track_caller]`, variadic functions, nor trait methods without a body.
///
/// The return type must implement `devsy_telemetry::CommandOutcome`: `()`,
/// `Result<T, E>` with `E: Display`, `ExitCode`, or your own. A panic is
/// recorded as a failure whose error starts with `panic` and then continues
/// unchanged.
#[proc_macro_attribute]
pub fn telemetry_command(attr: TokenStream, item: TokenStream) -> TokenStream {
    let original = proc_macro2::TokenStream::from(item);
    let parsed_args = syn::parse::<args::Args>(attr);
    let parsed_fn = item::parse(original.clone());
    match (parsed_args, parsed_fn) {
        (Ok(args), Ok(func)) if cfg!(feature = "telemetry") => {
            expand::for_build_and_clippy(&args, &func).into()
        }
        (Ok(args), Ok(func)) => expand::compiled_out(&args, &func).into(),
        // One mistake, one error: the error, and the item as it was, so
        // nothing else fails because the function went missing.
        (Err(error), Ok(_)) | (Ok(_), Err(error)) => with_item(&error, original),
        (Err(mut error), Err(item_error)) => {
            error.combine(item_error);
            with_item(&error, original)
        }
    }
}

fn with_item(error: &syn::Error, item: proc_macro2::TokenStream) -> TokenStream {
    let mut tokens = error.to_compile_error();
    tokens.extend(item);
    tokens.into()
}
