//! Parsing the attribute's arguments:
//!
//! ```text
//! #[telemetry_command]
//! #[telemetry_command("provider delete")]
//! #[telemetry_command(name = "up", provider = expr, ide = expr, source_type = expr)]
//! #[telemetry_command(crate = path::to::devsy_telemetry)]
//! ```
//!
//! Every error is spanned at the offending token: an unknown or repeated
//! key, an empty name, a name that is not a string literal.

use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Lit, LitStr, Path, Token};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(provider);
    syn::custom_keyword!(ide);
    syn::custom_keyword!(source_type);
}

const KEYS: &str = "`name`, `provider`, `ide`, `source_type`, `crate`";

/// The attribute's arguments, as written.
#[derive(Default)]
pub(crate) struct Args {
    /// The command path without the app name; `None`: derive it from the
    /// function's name.
    pub name: Option<LitStr>,
    pub provider: Option<Expr>,
    pub ide: Option<Expr>,
    pub source_type: Option<Expr>,
    /// Where the facade crate is, when renamed or re-exported.
    pub krate: Option<Path>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Self::default();
        if input.peek(LitStr) || input.peek(Lit) {
            args.name = Some(parse_name(input)?);
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::name) {
                let key = input.parse::<kw::name>()?;
                input.parse::<Token![=]>()?;
                let name = parse_name(input)?;
                set_once(&mut args.name, name, key.span, "name")?;
            } else if lookahead.peek(kw::provider) {
                let key = input.parse::<kw::provider>()?;
                input.parse::<Token![=]>()?;
                set_once(&mut args.provider, input.parse()?, key.span, "provider")?;
            } else if lookahead.peek(kw::ide) {
                let key = input.parse::<kw::ide>()?;
                input.parse::<Token![=]>()?;
                set_once(&mut args.ide, input.parse()?, key.span, "ide")?;
            } else if lookahead.peek(kw::source_type) {
                let key = input.parse::<kw::source_type>()?;
                input.parse::<Token![=]>()?;
                set_once(
                    &mut args.source_type,
                    input.parse()?,
                    key.span,
                    "source_type",
                )?;
            } else if lookahead.peek(Token![crate]) {
                let key = input.parse::<Token![crate]>()?;
                input.parse::<Token![=]>()?;
                set_once(
                    &mut args.krate,
                    input.call(Path::parse_mod_style)?,
                    key.span,
                    "crate",
                )?;
            } else if input.peek(syn::Ident::peek_any) {
                let key: proc_macro2::Ident = input.call(proc_macro2::Ident::parse_any)?;
                return Err(syn::Error::new(
                    key.span(),
                    format!("unknown argument `{key}`; expected one of {KEYS}"),
                ));
            } else {
                return Err(lookahead.error());
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}

/// A command name: a non-empty string literal without surrounding space.
fn parse_name(input: ParseStream<'_>) -> syn::Result<LitStr> {
    let expr: Expr = input.parse()?;
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Str(name),
        ..
    }) = &expr
    else {
        return Err(syn::Error::new_spanned(
            expr,
            "the command name must be a string literal, such as \"provider delete\"",
        ));
    };
    let value = name.value();
    if value.trim().is_empty() {
        return Err(syn::Error::new(
            name.span(),
            "the command name must not be empty",
        ));
    }
    if value.trim() != value || value.chars().any(char::is_control) {
        return Err(syn::Error::new(
            name.span(),
            "the command name must not start or end with spaces, nor hold control characters",
        ));
    }
    Ok(name.clone())
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    key: proc_macro2::Span,
    name: &str,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(key, format!("duplicate argument `{name}`")));
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(tokens: &str) -> syn::Result<Args> {
        syn::parse_str(tokens)
    }

    fn error(tokens: &str) -> String {
        match parse(tokens) {
            Ok(_) => panic!("{tokens:?} parsed"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_every_form() {
        assert!(parse("").is_ok_and(|a| a.name.is_none()));
        let named = parse(r#""provider delete""#).expect("positional name");
        assert_eq!(
            named.name.map(|n| n.value()).as_deref(),
            Some("provider delete")
        );
        let all = parse(r#""up", provider = args.provider.as_deref(), ide = &args.ide, source_type = source.kind(),"#)
            .expect("all keys");
        assert!(all.provider.is_some() && all.ide.is_some() && all.source_type.is_some());
        let renamed = parse("crate = ::my_cli::telemetry").expect("crate path");
        assert!(renamed.krate.is_some());
        let keyed = parse(r#"name = "up", ide = "vscode""#).expect("keyed name");
        assert_eq!(keyed.name.map(|n| n.value()).as_deref(), Some("up"));
    }

    #[test]
    fn rejects_with_a_clear_message() {
        assert_eq!(
            error("providr = 1"),
            "unknown argument `providr`; expected one of `name`, `provider`, `ide`, `source_type`, `crate`"
        );
        assert_eq!(error("ide = 1, ide = 2"), "duplicate argument `ide`");
        assert_eq!(error(r#""a", name = "b""#), "duplicate argument `name`");
        assert_eq!(error(r#""""#), "the command name must not be empty");
        assert_eq!(error(r#"name = " ""#), "the command name must not be empty");
        assert!(error("name = NAME").starts_with("the command name must be a string literal"));
        assert!(error("42").starts_with("the command name must be a string literal"));
        assert!(error(r#"" up""#).contains("must not start or end with spaces"));
    }
}
