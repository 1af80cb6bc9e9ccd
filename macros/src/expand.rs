//! Rewriting the function: the same signature, attributes and statements,
//! with the body run through the runtime's `__private` entry points.
//!
//! Four shapes, chosen by the signature ([`Shape`]):
//!
//! - a plain `fn`: the body becomes a closure that `__private::run` calls, so
//!   `return` and `?` still leave the body, and a panic can be recorded;
//! - an `async fn`: the body becomes an `async move` block wrapped in
//!   `__private::Instrumented`;
//! - a `fn` returning `impl Future`: its statements run at the call as
//!   before, and the future they return is wrapped;
//! - a `fn` returning a boxed future (`#[async_trait]`, `.boxed()`): the
//!   box it returns is wrapped, whatever built it.
//!
//! Every async shape decides whether the command counts at its first poll.
//! Every shape moves the parameters whole into the body and binds them again
//! in order ([`params::params`]), so they drop as they would without the
//! attribute.
//!
//! Generated code names only `::core` and `::devsy_telemetry::__private` (or
//! the path given as `crate = …`), and its locals are hygienic
//! (`Span::mixed_site`), so the user can neither shadow nor name them.
//!
//! With the facade's `telemetry` feature off, [`compiled_out`] emits the
//! function as written, with one dead branch that mentions the property
//! expressions, so the parameters they use are not unused in that build.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;
use syn::visit_mut::VisitMut;
use syn::{Expr, Ident, LitStr, ReturnType, Stmt, Type};

use crate::args::Args;
use crate::item::CommandFn;
use crate::params::{self, Params};
use crate::shape::{self, Shape};

/// The instrumented function for the build, and the function as written
/// for clippy, which then lints exactly what the user wrote: the lints a
/// rewritten body loses (`manual_async_fn`, `unused_async`,
/// `needless_pass_by_value`, print lints on top-level statements, …) and
/// those it would invent. Clippy sets `cfg(clippy)` on the crates it
/// checks. So that `cargo clippy` still reports what `cargo build` would,
/// the function it sees also checks, in a branch never taken and never
/// linted, the property expressions and the return type as the
/// instrumented function does.
pub(crate) fn for_build_and_clippy(args: &Args, func: &CommandFn) -> TokenStream {
    let instrumented = expand(args, func);
    let as_written = as_written(args, func, clippy_checks(args, func));
    quote! {
        #[cfg(not(clippy))]
        #instrumented
        #[cfg(clippy)]
        #as_written
    }
}

/// What the instrumented function requires of the user's tokens, stated
/// without running anything: the properties' types, the return type's
/// bound. `None` for `-> impl Future`, whose bounds are the build's to
/// report: its checks are those of the build without telemetry. A return
/// type that hides an `impl Trait` is left to the build too.
fn clippy_checks(args: &Args, func: &CommandFn) -> Option<TokenStream> {
    let shape = Shape::of(func);
    if shape == Shape::ReturnsFuture {
        return None;
    }
    let private = private_path(args, Span::call_site());
    let properties: Vec<TokenStream> = properties(args)
        .into_iter()
        .map(|(_, expr)| property(&private, expr))
        .collect();
    let unpacked = unpacked(shape, func);
    let bound = match &func.sig.output {
        ReturnType::Type(_, ty) if !has_impl_trait(ty) => Some(if shape == Shape::Boxed {
            quote_spanned!(ty.span()=> #private::boxed_outcome::<#ty>();)
        } else {
            quote_spanned!(ty.span()=> #private::outcome::<#ty>();)
        }),
        ReturnType::Type(..) | ReturnType::Default => None,
    };
    if properties.is_empty() && bound.is_none() {
        return Some(TokenStream::new());
    }
    Some(quote! {
        #unpacked
        let _ = (#(#properties,)*);
        #bound
    })
}

/// Whether `ty` names an `impl Trait` anywhere.
fn has_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type(&mut self, ty: &'ast Type) {
            if let Type::ImplTrait(_) = ty {
                self.0 = true;
            } else {
                syn::visit::visit_type(self, ty);
            }
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
}

/// The patterns `#[async_trait]` moved into a boxed future, bound again
/// for the property expressions; nothing for the other shapes.
fn unpacked(shape: Shape, func: &CommandFn) -> Option<TokenStream> {
    (shape == Shape::Boxed).then(|| params::unpacked(&func.sig, &func.body))
}

/// The instrumented function.
pub(crate) fn expand(args: &Args, func: &CommandFn) -> TokenStream {
    let CommandFn { sig, body, .. } = func;
    let shape = Shape::of(func);
    let inner_attrs = &body.inner_attrs;
    let command = local("devsy_command");
    let exprs: Vec<&Expr> = properties(args).into_iter().map(|(_, expr)| expr).collect();
    let params = params::params(sig, &params::names_in(&exprs));
    let deferred = deferred(args, func, shape, &params.for_properties);
    let (return_span, erased_return) = return_type(&sig.output, sig.ident.span());
    // Located at the return type, like the calls it starts: see below.
    let private = private_path(args, return_span);
    let Params { sig, rebind, .. } = params;
    let user_block = body.block();
    let fake_return = fake_return(return_span, &erased_return);

    // The calls that require `CommandOutcome` name the return type as a
    // generic argument, so a type that is not one is reported over it.
    let new_body = match shape {
        Shape::Sync => {
            let span = local("devsy_span");
            let call = quote_spanned! {return_span=>
                #private::run::<#erased_return, _>(#span, move || {
                    #rebind
                    #fake_return
                    #user_block
                })
            };
            quote! {
                let #span = #deferred.start();
                #call
            }
        }
        Shape::Async => {
            let call = quote_spanned! {return_span=>
                #private::instrument::<#erased_return, _>(#command, async move {
                    #rebind
                    #fake_return
                    #user_block
                })
            };
            quote! {
                let #command = #deferred;
                #call.await
            }
        }
        Shape::ReturnsFuture => {
            let future_output = match &func.sig.output {
                ReturnType::Type(_, ty) => shape::future_output(ty)
                    .map(|ty| {
                        let mut ty = ty.clone();
                        ImplTraitEraser.visit_type_mut(&mut ty);
                        quote!(#ty)
                    })
                    .unwrap_or_else(|| quote!(_)),
                ReturnType::Default => quote!(_),
            };
            let call = quote_spanned! {return_span=>
                #private::instrument::<#future_output, _>(#command, #private::call(move || {
                    #rebind
                    #user_block
                }))
            };
            quote! {
                let #command = #deferred;
                #call
            }
        }
        Shape::Boxed => {
            let call = quote_spanned! {return_span=>
                #private::boxed::<#erased_return>(#command, #private::call(move || {
                    #rebind
                    #fake_return
                    #user_block
                }))
            };
            quote! {
                let #command = #deferred;
                #call
            }
        }
    };

    rebuilt(func, &sig, quote! { #(#inner_attrs)* #new_body })
}

/// The function again: the user's attributes, visibility, `sig` and the
/// user's own braces around `inside`, so that the item spans the user's
/// tokens from first to last and lints about it (`dead_code`) still fire.
fn rebuilt(func: &CommandFn, sig: &syn::Signature, inside: TokenStream) -> TokenStream {
    let CommandFn {
        outer_attrs, vis, ..
    } = func;
    let mut braced_body = TokenStream::new();
    func.body
        .brace
        .surround(&mut braced_body, |tokens| tokens.extend(inside));
    quote! {
        #(#outer_attrs)*
        #vis #sig #braced_body
    }
}

/// The function as written, for the build without telemetry: its only
/// addition is a branch never taken that mentions the property
/// expressions, at no cost, so that what they use is used in this build.
pub(crate) fn compiled_out(args: &Args, func: &CommandFn) -> TokenStream {
    as_written(args, func, None)
}

/// The function as written, with a branch never taken that mentions the
/// property expressions, or runs `checks` when given. The branch goes after
/// the body's leading items (`clippy::items_after_statements`), and not at
/// all into a body that is one `async` block (`clippy::manual_async_fn`
/// would be lost; a parameter used only in a property is then unused).
fn as_written(args: &Args, func: &CommandFn, checks: Option<TokenStream>) -> TokenStream {
    let CommandFn { sig, body, .. } = func;
    let inner_attrs = &body.inner_attrs;
    let properties: Vec<&Expr> = properties(args).into_iter().map(|(_, expr)| expr).collect();
    let inside = checks.unwrap_or_else(|| {
        if properties.is_empty() {
            return TokenStream::new();
        }
        let unpacked = unpacked(Shape::of(func), func);
        quote! {
            #unpacked
            let _ = (#(&(#properties),)*);
        }
    });
    let lone_async_block = matches!(&body.stmts[..], [Stmt::Expr(Expr::Async(_), None)]);
    let dead_branch = (!inside.is_empty() && !lone_async_block).then(|| {
        quote! {
            #[allow(
                unreachable_code,
                clippy::all,
                clippy::pedantic,
                clippy::nursery,
                clippy::restriction
            )]
            if false {
                #inside
            }
        }
    });
    let items = body
        .stmts
        .iter()
        .take_while(|stmt| matches!(stmt, Stmt::Item(_)))
        .count();
    let (leading_items, stmts) = body.stmts.split_at(items);
    rebuilt(
        func,
        sig,
        quote! {
            #(#inner_attrs)*
            #(#leading_items)*
            #dead_branch
            #(#stmts)*
        },
    )
}

/// The property expressions given, each with its name (the builder's
/// setter), in the order `provider`, `ide`, `source_type`.
fn properties(args: &Args) -> Vec<(&'static str, &Expr)> {
    [
        ("provider", &args.provider),
        ("ide", &args.ide),
        ("source_type", &args.source_type),
    ]
    .into_iter()
    .filter_map(|(name, expr)| Some((name, expr.as_ref()?)))
    .collect()
}

/// The facade's hidden module: `::devsy_telemetry::__private`, or under the
/// path given as `crate = …`. The default path is located at `span`, so an
/// error about the call it starts is reported there.
fn private_path(args: &Args, span: Span) -> TokenStream {
    match &args.krate {
        Some(krate) => quote!(#krate::__private),
        None => quote_spanned!(span=> ::devsy_telemetry::__private),
    }
}

/// A local the user's code cannot see.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// `__private::command("name")`, with the property expressions given to
/// `with`, which evaluates them only when telemetry is on: a `Deferred`.
/// The patterns the signature no longer binds (`for_properties`, and those
/// `#[async_trait]` moved into its future) are bound for them first.
fn deferred(
    args: &Args,
    func: &CommandFn,
    shape: Shape,
    for_properties: &TokenStream,
) -> TokenStream {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&derive_name(&func.sig.ident), func.sig.ident.span()));
    let overrides = local("devsy_overrides");
    let private = private_path(args, Span::call_site());
    let setters: Vec<TokenStream> = properties(args)
        .into_iter()
        .map(|(setter, expr)| {
            let setter = Ident::new(setter, Span::mixed_site());
            let value = property(&private, expr);
            quote!(.#setter(#value))
        })
        .collect();
    let command = quote!(#private::command(#name));
    if setters.is_empty() {
        return command;
    }
    let unpacked = unpacked(shape, func);
    quote! {
        #command.with(|#overrides| {
            #for_properties
            #unpacked
            #overrides #(#setters)*
        })
    }
}

/// Where errors about the return type are reported, and the return type
/// with every `impl Trait` replaced by `_` (usable as a `let` type).
fn return_type(output: &ReturnType, fallback: Span) -> (Span, TokenStream) {
    match output {
        ReturnType::Default => (fallback, quote!(())),
        ReturnType::Type(_, ty) => {
            let mut erased = (**ty).clone();
            ImplTraitEraser.visit_type_mut(&mut erased);
            (ty.span(), quote!(#erased))
        }
    }
}

struct ImplTraitEraser;

impl VisitMut for ImplTraitEraser {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(impl_trait) = ty {
            *ty = Type::Infer(syn::TypeInfer {
                attrs: Vec::new(),
                underscore_token: syn::Token![_](impl_trait.impl_token.span),
            });
        } else {
            syn::visit_mut::visit_type_mut(self, ty);
        }
    }
}

/// An unreachable `return` of the declared type, first in the body: it
/// fixes the body's type before the user's statements are checked, so `?`
/// converts errors and `return` coerces exactly as in the original function.
fn fake_return(span: Span, erased: &TokenStream) -> TokenStream {
    // Located at the return type too: rustc's "return type inferred to be
    // … here" points at this `return`.
    let value = Ident::new("devsy_return", Span::mixed_site().located_at(span));
    quote_spanned! {span=>
        #[allow(unreachable_code)]
        if false {
            let #value: #erased = ::core::unreachable!();
            return #value;
        }
    }
}

/// A property value from the user's expression: an `Option` of something
/// `Display`, or something `Display`. Spanned at the expression, so a type
/// that is neither is reported there.
fn property(private: &TokenStream, expr: &Expr) -> TokenStream {
    quote_spanned! {expr.span()=>
        {
            // One of the two is used, depending on the expression's type.
            #[allow(unused_imports)]
            use #private::{DisplayProperty as _, OptionProperty as _};
            (&#private::PropertyRef(&(#expr))).devsy_property()
        }
    }
}

/// `provider_delete` -> `provider delete`
fn derive_name(ident: &Ident) -> String {
    ident
        .unraw()
        .to_string()
        .split('_')
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_function() {
        let name = |s: &str| derive_name(&syn::parse_str::<Ident>(s).expect("ident"));
        assert_eq!(name("provider_delete"), "provider delete");
        assert_eq!(name("up"), "up");
        assert_eq!(name("r#type"), "type");
        assert_eq!(name("_context__set_options_"), "context set options");
    }
}

/// The expansions shown in `docs/expansions.md` are what the macro produces.
#[cfg(test)]
mod documented_expansions {
    const PAGE: &str = include_str!("../docs/expansions.md");

    /// The `rust,ignore` blocks of the page, in order.
    fn blocks(page: &str) -> Vec<String> {
        page.split("```rust,ignore\n")
            .skip(1)
            .map(|rest| rest.split("```").next().unwrap_or_default().to_string())
            .collect()
    }

    /// Expands a block that starts with a `#[telemetry_command(..)]` line,
    /// formatted as `cargo expand` would show it.
    pub(super) fn expand_block(input: &str) -> String {
        let (attr_line, function) = input
            .split_once('\n')
            .expect("an attribute line, then the function");
        let args = attr_line
            .trim()
            .strip_prefix("#[telemetry_command")
            .and_then(|rest| rest.strip_suffix(']'))
            .expect("the first line is the attribute");
        let args = args
            .strip_prefix('(')
            .and_then(|a| a.strip_suffix(')'))
            .unwrap_or(args);
        let args: crate::args::Args = syn::parse_str(args).expect("arguments");
        let func = crate::item::parse(function.parse().expect("tokens")).expect("a function");
        let file: syn::File =
            syn::parse2(super::expand(&args, &func)).expect("the expansion parses");
        prettyplease::unparse(&file)
    }

    /// Set `UPDATE_EXPANSIONS=1` to rewrite the page from the macro's output.
    #[test]
    fn the_page_shows_the_real_expansions() {
        let blocks = blocks(PAGE);
        assert_eq!(blocks.len(), 6, "three inputs, three expansions");
        let mut page = PAGE.to_string();
        for pair in blocks.chunks(2) {
            let expanded = expand_block(&pair[0]);
            if std::env::var_os("UPDATE_EXPANSIONS").is_some() {
                let old = format!("expands to\n\n```rust,ignore\n{}```", pair[1]);
                let new = format!("expands to\n\n```rust,ignore\n{expanded}```");
                page = page.replacen(&old, &new, 1);
                continue;
            }
            assert_eq!(
                pair[1], expanded,
                "docs/expansions.md is stale (UPDATE_EXPANSIONS=1 rewrites it); the input\n{}\nexpands to\n{expanded}",
                pair[0]
            );
        }
        if std::env::var_os("UPDATE_EXPANSIONS").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/expansions.md");
            std::fs::write(path, page).expect("rewrite docs/expansions.md");
        }
    }
}
