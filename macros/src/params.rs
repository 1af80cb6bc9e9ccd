//! The parameters: moved whole into the instrumented body, in their order,
//! so that they drop when and in the order they would without the
//! attribute; and the bindings the property expressions may name.

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Expr, FnArg, Ident, Pat, Signature, Stmt};

use crate::item::Body;

/// The signature to emit (each `mut` binding moved inside) and the
/// statements that open the instrumented body: `let a = a; let mut b = b;`,
/// one per binding, in the order the parameters declare them.
///
/// A closure or an async block would otherwise capture only what the body
/// uses, and only the fields it uses (edition 2021), and drop those first:
/// moved whole and bound again in order, every parameter drops last, in
/// reverse order, as in the function without the attribute.
pub(crate) fn rebind(sig: &Signature) -> (Signature, TokenStream) {
    let mut sig = sig.clone();
    let mut bindings = Vec::new();
    for (n, input) in sig.inputs.iter_mut().enumerate() {
        if let FnArg::Typed(typed) = input {
            // `_` binds nothing, and its value drops with the others, in
            // order: it gets a name the user cannot see, to move it too.
            if let Pat::Wild(wild) = &*typed.pat {
                let name = Ident::new(&format!("_devsy_arg{n}"), Span::mixed_site());
                *typed.pat = Pat::Ident(syn::PatIdent {
                    attrs: wild.attrs.clone(),
                    by_ref: None,
                    mutability: None,
                    ident: name,
                    subpat: None,
                });
            }
            collect(&mut typed.pat, &mut bindings);
        }
    }
    // Lints about these lines would be about the macro's code, not the
    // user's: `_unused` is read here, and `let x = x` is not redundant.
    let statements = bindings.iter().map(|(mutability, ident)| {
        quote! {
            #[allow(clippy::used_underscore_binding, clippy::redundant_locals)]
            let #mutability #ident = #ident;
        }
    });
    let statements = quote!(#(#statements)*);
    (sig, statements)
}

/// The bindings of `pat`, in order; each `mut` binding by value loses its
/// `mut` here and gets it back where it is bound again.
fn collect(pat: &mut Pat, out: &mut Vec<(Option<syn::Token![mut]>, Ident)>) {
    match pat {
        Pat::Ident(binding) => {
            let mutability = if binding.by_ref.is_none() {
                binding.mutability.take()
            } else {
                None
            };
            out.push((mutability, binding.ident.clone()));
            if let Some((_, sub)) = &mut binding.subpat {
                collect(sub, out);
            }
        }
        Pat::Tuple(tuple) => tuple.elems.iter_mut().for_each(|p| collect(p, out)),
        Pat::TupleStruct(tuple) => tuple.elems.iter_mut().for_each(|p| collect(p, out)),
        Pat::Struct(fields) => fields
            .fields
            .iter_mut()
            .for_each(|field| collect(&mut field.pat, out)),
        Pat::Slice(slice) => slice.elems.iter_mut().for_each(|p| collect(p, out)),
        Pat::Reference(reference) => collect(&mut reference.pat, out),
        Pat::Paren(paren) => collect(&mut paren.pat, out),
        Pat::Type(typed) => collect(&mut typed.pat, out),
        _ => {}
    }
}

/// What the property expressions need bound that the signature does not
/// bind: `#[async_trait]` renames a pattern parameter to `__arg1` and binds
/// the pattern inside the future it returns (`Box::pin(async move { … let
/// (host, port) = { let __arg1 = __arg1; __arg1 }; … })`). The same
/// patterns are bound here by reference, for the properties only.
pub(crate) fn unpacked(sig: &Signature, body: &Body) -> TokenStream {
    let params: HashSet<String> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Receiver(_) => None,
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(binding) => Some(binding.ident.to_string()),
                _ => None,
            },
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
                let pat = &local.pat;
                quote! { let #pat = &#ident; }
            })
        })
        .collect();
    if lets.is_empty() {
        return TokenStream::new();
    }
    quote! {
        #[allow(unused_variables, unused_mut)]
        #(#lets)*
    }
}

/// The parameter an initializer moves: `__arg1`, or `{ let __arg1 =
/// __arg1; __arg1 }`.
fn moved_parameter(expr: &Expr) -> Option<&Ident> {
    match expr {
        Expr::Path(path) => path.path.get_ident(),
        Expr::Block(block) => match block.block.stmts.last()? {
            Stmt::Expr(Expr::Path(path), None) => path.path.get_ident(),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rebound(source: &str) -> (String, String) {
        let func = crate::item::parse(source.parse().expect("tokens")).expect("function");
        let (sig, statements) = rebind(&func.sig);
        (quote!(#sig).to_string(), statements.to_string())
    }

    #[test]
    fn every_binding_is_bound_again_in_order_with_its_mut_inside() {
        let (sig, statements) = rebound(
            "fn f(&self, first: A, mut second: B, (a, ref b): (C, D), S { x, y: mut z }: S, _: E) {}",
        );
        assert_eq!(
            sig,
            "fn f (& self , first : A , second : B , (a , ref b) : (C , D) , S { x , y : z } : S , \
             _devsy_arg5 : E)"
        );
        let lets: Vec<&str> = statements
            .split(';')
            .filter_map(|s| s.find("let ").map(|at| &s[at..]))
            .collect();
        assert_eq!(
            lets,
            [
                "let first = first ",
                "let mut second = second ",
                "let a = a ",
                "let b = b ",
                "let x = x ",
                "let mut z = z ",
                "let _devsy_arg5 = _devsy_arg5 "
            ]
        );
    }

    #[test]
    fn async_trait_patterns_are_bound_by_reference_for_the_properties() {
        let func = crate::item::parse(
            "fn connect<'a>(&'a self, __arg1: (String, u16)) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
                Box::pin(async move {
                    if let Some(r) = None::<()> { return r; }
                    let __self = self;
                    let (host, _port) = { let __arg1 = __arg1; __arg1 };
                    let other = 1;
                })
            }"
            .parse()
            .expect("tokens"),
        )
        .expect("function");
        let lets = unpacked(&func.sig, &func.body).to_string();
        assert!(lets.contains("let (host , _port) = & __arg1 ;"), "{lets}");
        assert!(!lets.contains("other"), "{lets}");
    }
}
