//! The fixture of `tests/it/lints.rs`: instrumented functions of every
//! shape, each drawing lints of its own. Clippy runs on it with the
//! attribute and compiled out; the lints must be the same, line by line.
//! Every lint below is the user's to get, so each is written on purpose.
//! Each attribute is on one line: the test also checks the file with those
//! lines blanked out, as the user would have written it without them.

use std::future::Future;
use std::pin::Pin;

use devsy_telemetry::telemetry_command;

pub type Nothing = ();

#[telemetry_command]
pub fn prints() {
    println!("");
    print!("a\n");
    println!("{}", "literal");
    eprintln!("e");
    {
        println!("");
    }
}

#[telemetry_command]
pub fn todo_or_panic(fail: bool) -> Result<(), String> {
    if fail {
        todo!()
    }
    panic!("boom")
}

#[telemetry_command]
pub fn manual_async() -> impl Future<Output = Result<u8, String>> {
    async { Ok(1) }
}

#[telemetry_command]
pub async fn unused_async() -> Result<u8, String> {
    Ok(1)
}

#[telemetry_command]
fn wraps(n: u8) -> Result<u8, String> {
    Ok(n)
}

#[telemetry_command]
pub fn by_value(name: String) -> Result<usize, String> {
    Ok(name.len())
}

#[telemetry_command]
pub fn alias_unit() -> Nothing {
    println!("x")
}

#[telemetry_command(provider = provider)]
pub fn unused_and_underscored(provider: &str, unused: u8, _seen: u8) -> Result<u8, String> {
    Ok(_seen + u8::try_from(provider.len()).unwrap_or(0))
}

#[telemetry_command]
pub fn item_first() -> Result<u8, String> {
    use std::convert::identity;
    const ONE: u8 = 1;
    let two = identity(ONE) + 1;
    Ok(two)
}

#[telemetry_command]
pub fn boxed(fast: bool) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
    let future: Pin<Box<dyn Future<Output = Result<(), String>> + Send>> = if fast {
        Box::pin(async { Ok(()) })
    } else {
        Box::pin(async { Err("slow".to_string()) })
    };
    return future;
}

#[async_trait::async_trait]
pub trait Connect {
    async fn connect(&self, to: (String, u16)) -> Result<(), String>;
}

pub struct Ssh;

#[async_trait::async_trait]
impl Connect for Ssh {
    #[telemetry_command(provider = host)]
    async fn connect(&self, (host, _port): (String, u16)) -> Result<(), String> {
        let copy = host.clone();
        if copy.len() > 0 { Ok(()) } else { Err("no host".into()) }
    }
}

impl Ssh {
    #[telemetry_command]
    pub fn method(&self, values: Vec<u8>) -> Result<usize, String> {
        Ok(values.len())
    }
}

pub fn call_the_private_one() -> Result<u8, String> {
    wraps(1)
}
