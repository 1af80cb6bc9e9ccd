//! The `#[telemetry_command]` attribute of `devsy-telemetry`.
//!
//! Use it through the facade crate, `devsy_telemetry::telemetry_command`;
//! its documentation is there. This crate is split by stage: [`args`]
//! parses the attribute's arguments, [`item`] parses and validates the
//! function, [`expand`] rewrites it.

#![forbid(unsafe_code)]

mod args;
mod expand;
mod item;

use proc_macro::TokenStream;

/// Records a CLI command's start, duration and outcome. See
/// `devsy_telemetry::telemetry_command` for the full syntax.
#[proc_macro_attribute]
pub fn telemetry_command(attr: TokenStream, item: TokenStream) -> TokenStream {
    let original = proc_macro2::TokenStream::from(item);
    let parsed_args = syn::parse::<args::Args>(attr);
    let parsed_fn = item::parse(original.clone());
    match (parsed_args, parsed_fn) {
        (Ok(args), Ok(func)) if cfg!(feature = "telemetry") => expand::expand(&args, &func).into(),
        (Ok(_), Ok(_)) => original.into(),
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
