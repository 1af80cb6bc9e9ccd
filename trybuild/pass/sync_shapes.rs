//! Plain functions: return types, `?`, generics, lifetimes, parameters.
use std::fmt::Display;
use std::process::ExitCode;

use devsy_telemetry::telemetry_command;

type CliResult<T> = Result<T, Box<dyn std::error::Error>>;

#[telemetry_command]
fn unit() {}

#[telemetry_command("exit")]
fn exit_code() -> ExitCode {
    ExitCode::SUCCESS
}

#[telemetry_command]
fn alias(input: &str) -> CliResult<u32> {
    Ok(input.parse::<u32>()?)
}

#[telemetry_command]
fn impl_trait(n: u8) -> Result<impl Display, std::num::TryFromIntError> {
    Ok(i8::try_from(n)?)
}

#[telemetry_command]
fn generic<'a, T: Display + 'a>(items: &'a [T], mut n: usize) -> Result<&'a T, String>
where
    T: Clone,
{
    n += 1;
    items.get(n - 1).ok_or_else(|| "empty".to_string())
}

#[telemetry_command]
fn destructured((a, b): (u8, u8), [c, ..]: [u8; 2]) -> Result<u8, String> {
    Ok(a + b + c)
}

#[telemetry_command]
unsafe fn raw(p: *const u8) -> Result<u8, String> {
    Ok(unsafe { *p })
}

fn main() {
    unit();
    let _ = exit_code();
    let _ = alias("1");
    let _ = impl_trait(1).map(|v| v.to_string());
    let _ = generic(&[1, 2], 0);
    let _ = destructured((1, 2), [3, 4]);
    let _ = unsafe { raw(&0) };
}
