//! The parameters: moved whole into the instrumented body, in their order,
//! so that they drop when and in the order they would without the
//! attribute; and the bindings the property expressions may name.

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::quote;
use syn::visit::{self, Visit};
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, FnArg, Ident, Pat, PatType, Signature, Stmt};

use crate::item::Body;

/// The parameters, ready for the instrumented function.
pub(crate) struct Params {
    /// The signature to emit: a `mut` binding loses its `mut` (it moves to
    /// the binding inside), and a parameter that is not a plain binding
    /// (`_`, `(a, b)`, `ref x`) is named `_devsy_argN`, so that all of it
    /// can be moved.
    pub sig: Signature,
    /// What opens the instrumented body, one parameter after the other:
    /// `let a = a;`, or `let _devsy_arg1 = _devsy_arg1; let (b, _) =
    /// _devsy_arg1;`, and `let _ = &self;` for a receiver.
    pub rebind: TokenStream,
    /// What the property expressions need bound, before the body: each
    /// renamed pattern, bound by reference (`let (b, _) = &_devsy_arg1;`).
    pub for_properties: TokenStream,
}

/// A closure or an async block would otherwise capture only what the body
/// uses, and only the fields it uses (edition 2021), and drop those first;
/// and what a pattern leaves unbound would stay behind. Moved whole and
/// bound again in order, every parameter drops last, in reverse order, its
/// bindings before what they leave, as in the function without the
/// attribute.
///
/// `in_properties` are the names the property expressions use: a parameter
/// used only there is not unused.
pub(crate) fn params(sig: &Signature, in_properties: &HashSet<String>) -> Params {
    let mut sig = sig.clone();
    let mut rebind = TokenStream::new();
    let mut for_properties = TokenStream::new();
    for (n, input) in sig.inputs.iter_mut().enumerate() {
        match input {
            FnArg::Receiver(receiver) => {
                let token = receiver.self_token;
                rebind.extend(quote! { let _ = &#token; });
            }
            FnArg::Typed(typed) => {
                let attrs = cfg_and_lint_attrs(typed);
                let quiet = binds_any(&typed.pat, in_properties)
                    .then(|| quote!(#[allow(unused_variables)]));
                let wild = matches!(&*typed.pat, Pat::Wild(_));
                match plain_binding(&mut typed.pat) {
                    Some((mutability, ident)) => rebind.extend(quote! {
                        #(#attrs)* #quiet let #mutability #ident = #ident;
                    }),
                    // `_` binds nothing: its value just moves with the rest.
                    None if wild => {
                        let hidden = rename(&mut typed.pat, n);
                        rebind.extend(quote! { #(#attrs)* let #hidden = #hidden; });
                    }
                    None => {
                        let pat = (*typed.pat).clone();
                        let hidden = rename(&mut typed.pat, n);
                        rebind.extend(quote! {
                            #(#attrs)* let #hidden = #hidden;
                            #(#attrs)* #quiet let #pat = #hidden;
                        });
                        let by_reference = by_reference(&pat);
                        for_properties.extend(quote! {
                            #(#attrs)*
                            #[allow(unused_variables)]
                            let #by_reference = &#hidden;
                        });
                    }
                }
            }
        }
    }
    Params {
        sig,
        rebind,
        for_properties,
    }
}

/// Names the `n`-th parameter `_devsy_argN`, hidden from the user's code,
/// in place of its pattern; the name.
fn rename(pat: &mut Pat, n: usize) -> Ident {
    let hidden = Ident::new(&format!("_devsy_arg{n}"), Span::mixed_site());
    *pat = Pat::Ident(syn::PatIdent {
        attrs: Vec::new(),
        by_ref: None,
        mutability: None,
        ident: hidden.clone(),
        subpat: None,
    });
    hidden
}

/// `x` or `mut x`: the binding, its `mut` taken out of the signature.
fn plain_binding(pat: &mut Pat) -> Option<(Option<syn::Token![mut]>, Ident)> {
    match pat {
        Pat::Ident(binding) if binding.by_ref.is_none() && binding.subpat.is_none() => {
            Some((binding.mutability.take(), binding.ident.clone()))
        }
        _ => None,
    }
}

/// The parameter's `#[cfg]` and lint attributes, for the lines that bind
/// it again: a parameter compiled out has no binding to move.
fn cfg_and_lint_attrs(typed: &PatType) -> Vec<syn::Attribute> {
    typed
        .attrs
        .iter()
        .filter(|attr| {
            ["cfg", "allow", "expect", "warn", "deny"]
                .iter()
                .any(|name| attr.path().is_ident(name))
        })
        .cloned()
        .collect()
}

/// Whether `pat` binds a name in `names`, wherever in it (an or-pattern
/// too: syn's visitor knows every kind of pattern).
fn binds_any(pat: &Pat, names: &HashSet<String>) -> bool {
    struct Finds<'n> {
        names: &'n HashSet<String>,
        found: bool,
    }
    impl<'ast> Visit<'ast> for Finds<'_> {
        fn visit_pat_ident(&mut self, binding: &'ast syn::PatIdent) {
            self.found |= self.names.contains(&binding.ident.to_string());
            visit::visit_pat_ident(self, binding);
        }
    }
    let mut finds = Finds {
        names,
        found: false,
    };
    finds.visit_pat(pat);
    finds.found
}

/// `pat` for matching a reference: without `mut`, `ref` or a type, which
/// the default binding mode makes references (edition 2024 refuses them
/// there).
fn by_reference(pat: &Pat) -> Pat {
    struct Strip;
    impl VisitMut for Strip {
        fn visit_pat_mut(&mut self, pat: &mut Pat) {
            if let Pat::Type(typed) = pat {
                *pat = (*typed.pat).clone();
            }
            visit_mut::visit_pat_mut(self, pat);
        }
        fn visit_pat_ident_mut(&mut self, binding: &mut syn::PatIdent) {
            binding.by_ref = None;
            binding.mutability = None;
            visit_mut::visit_pat_ident_mut(self, binding);
        }
    }
    let mut pat = pat.clone();
    Strip.visit_pat_mut(&mut pat);
    pat
}

/// The names an expression's tokens mention, for [`params`].
pub(crate) fn names_in(exprs: &[&Expr]) -> HashSet<String> {
    fn walk(tokens: TokenStream, out: &mut HashSet<String>) {
        for token in tokens {
            match token {
                TokenTree::Ident(ident) => {
                    out.insert(ident.to_string());
                }
                TokenTree::Group(group) => walk(group.stream(), out),
                TokenTree::Punct(_) | TokenTree::Literal(_) => {}
            }
        }
    }
    let mut names = HashSet::new();
    for expr in exprs {
        walk(quote!(#expr), &mut names);
    }
    names
}

/// What the property expressions need bound that an `#[async_trait]`
/// method's signature does not bind: it renames a pattern parameter to
/// `__arg1` and binds the pattern inside the future it returns
/// (`Box::pin(async move { … let (host, port) = { let __arg1 = __arg1;
/// __arg1 }; … })`). The same patterns are bound here by reference, for
/// the properties only. Only that exact form is recognised.
pub(crate) fn unpacked(sig: &Signature, body: &Body) -> TokenStream {
    let params: HashSet<String> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(binding) => Some(binding.ident.to_string()),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect();
    let Some(Stmt::Expr(Expr::Call(call), None)) = body.stmts.last() else {
        return TokenStream::new();
    };
    let Some(Expr::Async(block)) = call.args.first() else {
        return TokenStream::new();
    };
    let lets: Vec<TokenStream> = block
        .block
        .stmts
        .iter()
        .filter_map(|stmt| {
            let Stmt::Local(local) = stmt else {
                return None;
            };
            let ident = moved_parameter(&local.init.as_ref()?.expr)?;
            params.contains(&ident.to_string()).then(|| {
                let pat = by_reference(&local.pat);
                quote! { let #pat = &#ident; }
            })
        })
        .collect();
    if lets.is_empty() {
        return TokenStream::new();
    }
    quote! {
        #[allow(unused_variables)]
        #(#lets)*
    }
}

/// The parameter that `{ let __arg1 = __arg1; __arg1 }` moves.
fn moved_parameter(expr: &Expr) -> Option<&Ident> {
    let Expr::Block(block) = expr else {
        return None;
    };
    let [Stmt::Local(local), Stmt::Expr(Expr::Path(tail), None)] = &block.block.stmts[..] else {
        return None;
    };
    let Pat::Ident(bound) = &local.pat else {
        return None;
    };
    let Expr::Path(source) = &*local.init.as_ref()?.expr else {
        return None;
    };
    let ident = tail.path.get_ident()?;
    (bound.ident == *ident && source.path.get_ident() == Some(ident)).then_some(ident)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rebound(source: &str, in_properties: &[&str]) -> (String, String, String) {
        let func = crate::item::parse(source.parse().expect("tokens")).expect("function");
        let names = in_properties.iter().map(ToString::to_string).collect();
        let params = params(&func.sig, &names);
        let sig = &params.sig;
        (
            quote!(#sig).to_string(),
            params.rebind.to_string(),
            params.for_properties.to_string(),
        )
    }

    #[test]
    fn every_parameter_is_moved_in_order_and_patterns_whole() {
        let (sig, rebind, for_properties) = rebound(
            "fn f(&self, first: A, mut second: B, (a, _): (C, D), _: E, #[cfg(x)] g: G) {}",
            &["a"],
        );
        assert_eq!(
            sig,
            "fn f (& self , first : A , second : B , _devsy_arg3 : (C , D) , _devsy_arg4 : E , \
             # [cfg (x)] g : G)"
        );
        assert_eq!(
            rebind,
            "let _ = & self ; let first = first ; let mut second = second ; \
             let _devsy_arg3 = _devsy_arg3 ; # [allow (unused_variables)] let (a , _) = _devsy_arg3 ; \
             let _devsy_arg4 = _devsy_arg4 ; # [cfg (x)] let g = g ;"
        );
        assert_eq!(
            for_properties,
            "# [allow (unused_variables)] let (a , _) = & _devsy_arg3 ;"
        );
    }

    #[test]
    fn a_name_bound_anywhere_in_a_pattern_is_found() {
        use syn::parse::Parser as _;
        let names: HashSet<String> = ["x".to_string()].into();
        let binds = |s: &str| binds_any(&Pat::parse_single.parse_str(s).expect("pattern"), &names);
        assert!(binds("(Ok(x) | Err(x))"));
        assert!(binds("S { a: [_, x @ 1..=2], .. }"));
        assert!(binds("&(y, ref mut x)"));
        assert!(!binds("(y, S { z, .. })"));
    }

    #[test]
    fn bound_by_reference_without_mut_ref_or_type() {
        let pat = |s: &str| {
            let pat = Pat::parse_single.parse_str(s).expect("pattern");
            let stripped = by_reference(&pat);
            quote!(#stripped).to_string()
        };
        use syn::parse::Parser as _;
        assert_eq!(pat("(mut a, ref b)"), "(a , b)");
        assert_eq!(pat("S { x, y: ref mut z }"), "S { x , y : z }");
        assert_eq!(pat("(Ok(ref x) | Err(mut x))"), "(Ok (x) | Err (x))");
        assert_eq!(pat("[ref a, ref mut b]"), "[a , b]");
    }

    #[test]
    fn async_trait_patterns_are_bound_by_reference_for_the_properties() {
        let func = crate::item::parse(
            "fn connect<'a>(&'a self, __arg1: (String, u16), host2: String) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
                Box::pin(async move {
                    if let Some(r) = None::<()> { return r; }
                    let __self = self;
                    let (mut host, _port) = { let __arg1 = __arg1; __arg1 };
                    let host2 = host2;
                    let n: u8 = 1;
                })
            }"
            .parse()
            .expect("tokens"),
        )
        .expect("function");
        let lets = unpacked(&func.sig, &func.body).to_string();
        assert_eq!(
            lets,
            "# [allow (unused_variables)] let (host , _port) = & __arg1 ;"
        );
    }
}
