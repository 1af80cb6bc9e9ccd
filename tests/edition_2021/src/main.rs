//! The fixture of `tests/it/editions.rs`, built as edition 2021, where a
//! closure captures only the fields it uses: each instrumented function
//! must drop its parameters in the order its twin without the attribute
//! does. Exits non-zero, naming the shape, when one does not.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use devsy_telemetry::telemetry_command;

type Log = Arc<Mutex<Vec<&'static str>>>;

struct Noisy(&'static str, Log);

impl Drop for Noisy {
    fn drop(&mut self) {
        if let Ok(mut log) = self.1.lock() {
            log.push(self.0);
        }
    }
}

struct Pair(Noisy, Noisy);

macro_rules! twins {
    ($(fn $name:ident / $plain:ident ($($params:tt)*) -> $ret:ty $body:block)*) => {
        $(
            #[telemetry_command]
            fn $name($($params)*) -> $ret $body
            fn $plain($($params)*) -> $ret $body
        )*
    };
}

twins! {
    fn sync / sync_plain(_a: Noisy, pair: Pair, c: Noisy) -> Result<(), String> {
        let _ = (&pair.1, &c);
        Ok(())
    }
    fn future / future_plain(_a: Noisy, pair: Pair, c: Noisy) -> impl Future<Output = Result<(), String>> {
        let _ = &pair.1;
        async move {
            let _ = &c;
            Ok(())
        }
    }
    fn boxed / boxed_plain(_a: Noisy, pair: Pair, c: Noisy) -> Pin<Box<dyn Future<Output = Result<(), String>>>> {
        let _ = &pair.1;
        Box::pin(async move {
            let _ = &c;
            Ok(())
        })
    }
}

#[telemetry_command]
async fn asynchronous(_a: Noisy, pair: Pair, c: Noisy) -> Result<(), String> {
    let _ = (&pair.1, &c);
    Ok(())
}

async fn asynchronous_plain(_a: Noisy, pair: Pair, c: Noisy) -> Result<(), String> {
    let _ = (&pair.1, &c);
    Ok(())
}

fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the fixture's futures are ready at once"),
    }
}

fn order(run: impl FnOnce(Noisy, Pair, Noisy)) -> Vec<&'static str> {
    let log = Log::default();
    run(
        Noisy("a", log.clone()),
        Pair(Noisy("b0", log.clone()), Noisy("b1", log.clone())),
        Noisy("c", log.clone()),
    );
    let order = log.lock().map(|log| log.clone()).unwrap_or_default();
    order
}

fn main() {
    let cases = [
        ("sync", order(|a, b, c| drop(sync(a, b, c))), order(|a, b, c| drop(sync_plain(a, b, c)))),
        ("impl future", order(|a, b, c| drop(ready(future(a, b, c)))), order(|a, b, c| drop(ready(future_plain(a, b, c))))),
        ("boxed", order(|a, b, c| drop(ready(boxed(a, b, c)))), order(|a, b, c| drop(ready(boxed_plain(a, b, c))))),
        ("async fn", order(|a, b, c| drop(ready(asynchronous(a, b, c)))), order(|a, b, c| drop(ready(asynchronous_plain(a, b, c))))),
    ];
    let mut failed = false;
    for (shape, with, without) in cases {
        if with != without || with.len() != 4 {
            eprintln!("{shape}: {with:?} with the attribute, {without:?} without");
            failed = true;
        }
    }
    std::process::exit(i32::from(failed));
}
