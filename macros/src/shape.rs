//! Which of the four rewrites a function needs, by its signature alone:
//! what it returns decides, never how its body builds the value.

use syn::{GenericArgument, PathArguments, ReturnType, Type, TypeParamBound};

use crate::item::CommandFn;

/// How a function is instrumented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The body runs in a closure: the command starts at the call and
    /// finishes at the return.
    Sync,
    /// An `async fn`: the body is an instrumented future inside it.
    Async,
    /// `-> impl Future<…>`: the statements run at the call, and the future
    /// they return is instrumented.
    ReturnsFuture,
    /// `-> Pin<Box<dyn Future<…>>>`, `BoxFuture`, `LocalBoxFuture` (what
    /// `#[async_trait]` and `.boxed()` make): the boxed future is
    /// instrumented, whatever expression built it.
    Boxed,
}

impl Shape {
    pub(crate) fn of(func: &CommandFn) -> Self {
        if func.sig.asyncness.is_some() {
            return Self::Async;
        }
        let ReturnType::Type(_, ty) = &func.sig.output else {
            return Self::Sync;
        };
        if is_impl_future(ty) {
            Self::ReturnsFuture
        } else if is_boxed_future(ty) {
            Self::Boxed
        } else {
            Self::Sync
        }
    }
}

/// `impl Future<Output = ..> (+ ..)`
fn is_impl_future(ty: &Type) -> bool {
    impl_trait(ty).is_some_and(|ty| ty.bounds.iter().any(is_future_bound))
}

/// `X` of `impl Future<Output = X> (+ ..)`.
pub(crate) fn future_output(ty: &Type) -> Option<&Type> {
    impl_trait(ty)?
        .bounds
        .iter()
        .filter(|bound| is_future_bound(bound))
        .find_map(|bound| {
            let TypeParamBound::Trait(bound) = bound else {
                return None;
            };
            let PathArguments::AngleBracketed(arguments) = &bound.path.segments.last()?.arguments
            else {
                return None;
            };
            arguments.args.iter().find_map(|arg| match arg {
                GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(&assoc.ty),
                _ => None,
            })
        })
}

/// `ty` as an `impl Trait`, through the groups and parentheses around it
/// (a `$ret:ty` of a `macro_rules!` arrives in an invisible group).
fn impl_trait(ty: &Type) -> Option<&syn::TypeImplTrait> {
    match ty {
        Type::ImplTrait(ty) => Some(ty),
        Type::Group(inner) => impl_trait(&inner.elem),
        Type::Paren(inner) => impl_trait(&inner.elem),
        _ => None,
    }
}

/// `Pin<Box<dyn Future<..> (+ ..)>>`, or the aliases `BoxFuture<..>` and
/// `LocalBoxFuture<..>` of the `futures` crate, under any path.
fn is_boxed_future(ty: &Type) -> bool {
    let Some(last) = last_segment(ty) else {
        return false;
    };
    if last.ident == "BoxFuture" || last.ident == "LocalBoxFuture" {
        return true;
    }
    if last.ident != "Pin" {
        return false;
    }
    let Some(boxed) = first_type_argument(&last.arguments) else {
        return false;
    };
    let Some(boxed) = last_segment(boxed).filter(|s| s.ident == "Box") else {
        return false;
    };
    matches!(first_type_argument(&boxed.arguments),
        Some(Type::TraitObject(object)) if object.bounds.iter().any(is_future_bound))
}

fn is_future_bound(bound: &TypeParamBound) -> bool {
    matches!(bound, TypeParamBound::Trait(t)
        if t.path.segments.last().is_some_and(|s| s.ident == "Future"))
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last(),
        Type::Paren(inner) => last_segment(&inner.elem),
        Type::Group(inner) => last_segment(&inner.elem),
        _ => None,
    }
}

fn first_type_argument(arguments: &PathArguments) -> Option<&Type> {
    let PathArguments::AngleBracketed(arguments) = arguments else {
        return None;
    };
    arguments.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(source: &str) -> Shape {
        let func = crate::item::parse(source.parse().expect("tokens")).expect("function");
        Shape::of(&func)
    }

    #[test]
    fn the_return_type_decides() {
        assert_eq!(shape("fn f() -> Result<(), E> { Ok(()) }"), Shape::Sync);
        assert_eq!(shape("fn f() -> impl Display { 1 }"), Shape::Sync);
        assert_eq!(shape("async fn f() {}"), Shape::Async);
        assert_eq!(
            shape("fn f() -> impl Future<Output = ()> + Send { async {} }"),
            Shape::ReturnsFuture
        );
        assert_eq!(
            shape("fn f() -> impl core::future::Future<Output = ()> { async {} }"),
            Shape::ReturnsFuture
        );
        for boxed in [
            "fn f<'a>(&'a self) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> { g() }",
            "fn f() -> std::pin::Pin<Box<dyn core::future::Future<Output = u8>>> { g() }",
            "fn f() -> BoxFuture<'static, Result<(), String>> { g().boxed() }",
            "fn f() -> futures::future::LocalBoxFuture<'static, ()> { g() }",
        ] {
            assert_eq!(shape(boxed), Shape::Boxed, "{boxed}");
        }
        assert_eq!(shape("fn f() -> Pin<Box<u8>> { g() }"), Shape::Sync);
    }
}
