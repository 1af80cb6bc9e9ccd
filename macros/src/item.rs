//! Parsing and validating the item the attribute is on: a function with a
//! body, free, in an `impl`, or a trait's default method.
//!
//! The function is kept as the user's own tokens (attributes, signature,
//! statements), so that what is emitted again carries the user's spans.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Block, Signature, Stmt, Token, Visibility, braced, token};

/// A function, as written.
pub(crate) struct CommandFn {
    pub outer_attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub sig: Signature,
    pub body: Body,
}

/// A function's braced body: its inner attributes, then its statements.
pub(crate) struct Body {
    pub brace: token::Brace,
    pub inner_attrs: Vec<Attribute>,
    pub stmts: Vec<Stmt>,
}

impl Body {
    /// The statements as a block of their own: what they declare (`use`,
    /// items) is visible inside it only. Its braces are the macro's, so
    /// `unused_braces` does not fire on the user's one-line bodies, but
    /// located at the user's braces, so an error about the block's type
    /// (an extra `;`) points at the body, not at the attribute.
    pub fn block(&self) -> Block {
        Block {
            brace_token: token::Brace(Span::mixed_site().located_at(self.brace.span.join())),
            stmts: self.stmts.clone(),
        }
    }
}

/// Parses `tokens` as a function the attribute can instrument.
pub(crate) fn parse(tokens: TokenStream) -> syn::Result<CommandFn> {
    syn::parse2::<MaybeFn>(tokens)?.validate()
}

/// What was parsed before validation: the body may be missing.
struct MaybeFn {
    outer_attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    body: Option<Body>,
    semi: Option<Token![;]>,
}

impl Parse for MaybeFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let outer_attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig = match input.parse::<Signature>() {
            Ok(sig) => sig,
            Err(_) => return Err(not_a_function(input)),
        };
        if input.peek(Token![;]) {
            let semi = input.parse()?;
            return Ok(Self {
                outer_attrs,
                vis,
                sig,
                body: None,
                semi: Some(semi),
            });
        }
        let content;
        let brace = braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let stmts = content.call(Block::parse_within)?;
        Ok(Self {
            outer_attrs,
            vis,
            sig,
            body: Some(Body {
                brace,
                inner_attrs,
                stmts,
            }),
            semi: None,
        })
    }
}

fn not_a_function(input: ParseStream<'_>) -> syn::Error {
    let span = input
        .cursor()
        .token_tree()
        .map_or_else(Span::call_site, |(tt, _)| tt.span());
    syn::Error::new(span, "`#[telemetry_command]` applies to functions only")
}

impl MaybeFn {
    fn validate(self) -> syn::Result<CommandFn> {
        if let Some(constness) = &self.sig.constness {
            return Err(syn::Error::new(
                constness.span,
                "`#[telemetry_command]` cannot instrument a `const fn`: telemetry runs at run time",
            ));
        }
        if let Some(track_caller) = self
            .outer_attrs
            .iter()
            .find(|a| a.path().is_ident("track_caller"))
        {
            return Err(syn::Error::new_spanned(
                track_caller,
                "`#[telemetry_command]` cannot keep `#[track_caller]`: the instrumented body runs \
                 in a closure, which would report its own location; remove one of the two",
            ));
        }
        if let syn::ReturnType::Type(_, ty) = &self.sig.output
            && let syn::Type::Never(never) = &**ty
        {
            return Err(syn::Error::new_spanned(
                never,
                "`#[telemetry_command]` cannot instrument a function that never returns (`-> !`): \
                     there is no outcome to record; instrument the command that calls it",
            ));
        }
        if let Some(variadic) = &self.sig.variadic {
            return Err(syn::Error::new_spanned(
                variadic,
                "`#[telemetry_command]` cannot instrument a variadic function",
            ));
        }
        let Some(body) = self.body else {
            let span = self.semi.map_or(self.sig.ident.span(), |semi| semi.span);
            return Err(syn::Error::new(
                span,
                "`#[telemetry_command]` needs a function body: put it on the implementation, \
                 not on the trait's declaration",
            ));
        };
        Ok(CommandFn {
            outer_attrs: self.outer_attrs,
            vis: self.vis,
            sig: self.sig,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(source: &str) -> String {
        match parse(source.parse().expect("tokens")) {
            Ok(_) => panic!("{source:?} parsed"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_functions_of_every_kind() {
        for source in [
            "fn a() {}",
            "pub(crate) async fn b(&self) -> u8 { #![allow(unused)] 1 }",
            "#[inline] unsafe fn c<T: Clone>(t: T) -> T where T: Copy { t }",
            "/// docs\npub extern \"C\" fn d() {}",
        ] {
            let parsed = parse(source.parse().expect("tokens"));
            assert!(
                parsed.is_ok(),
                "{source}: {:?}",
                parsed.err().map(|e| e.to_string())
            );
        }
        let parsed = parse(
            "fn e() { #![allow(dead_code)] let x = 1; x; }"
                .parse()
                .expect("tokens"),
        )
        .expect("parses");
        assert_eq!(parsed.body.inner_attrs.len(), 1);
        assert_eq!(parsed.body.stmts.len(), 2);
    }

    #[test]
    fn refuses_what_it_cannot_instrument() {
        assert_eq!(
            error("struct S;"),
            "`#[telemetry_command]` applies to functions only"
        );
        assert!(error("const fn f() {}").contains("cannot instrument a `const fn`"));
        assert!(error("fn f(&self);").contains("needs a function body"));
        assert!(error("#[track_caller] fn f() {}").contains("cannot keep `#[track_caller]`"));
        assert!(error("fn f() -> ! { loop {} }").contains("never returns"));
    }
}
