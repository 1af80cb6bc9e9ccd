//! Methods with every receiver, trait impls and default methods; kept
//! attributes; a glob import that shadows prelude names.
use ::devsy_telemetry::telemetry_command;

struct Cli(Vec<String>);

impl Cli {
    /// Documented.
    #[must_use]
    #[inline]
    #[telemetry_command]
    fn by_ref(&self) -> Result<usize, String> {
        Ok(self.0.len())
    }

    #[telemetry_command]
    fn by_mut(&mut self, name: &str) -> Result<&mut String, String> {
        self.0.push(name.into());
        self.0.last_mut().ok_or_else(|| "empty".into())
    }

    #[telemetry_command]
    fn by_value(self) -> Result<Vec<String>, String> {
        Ok(self.0)
    }

    #[telemetry_command]
    fn boxed(self: Box<Self>) -> Result<usize, String> {
        Ok(self.0.len())
    }
}

trait Command {
    fn run(&self) -> Result<(), String>;

    #[telemetry_command]
    fn describe(&self) -> Result<String, String> {
        Ok("command".into())
    }
}

impl Command for Cli {
    #[telemetry_command]
    fn run(&self) -> Result<(), String> {
        #![allow(clippy::unnecessary_wraps)]
        Ok(())
    }
}

enum Shadow {
    Ok,
    Err,
}

#[telemetry_command]
fn shadowed(fail: bool) -> Result<u8, String> {
    use Shadow::*;
    match if fail { Err } else { Ok } {
        Ok => ::core::result::Result::Ok(1),
        Err => ::core::result::Result::Err("failed".into()),
    }
}

#[cfg(any())]
#[telemetry_command]
fn compiled_out() -> Result<(), String> {
    does_not_exist()
}

/// Modules named like the crates the generated code uses.
mod core {}
mod devsy_telemetry {}

fn main() {
    let mut cli = Cli(Vec::new());
    let _ = cli.by_ref();
    let _ = cli.by_mut("a");
    let _ = cli.run();
    let _ = cli.describe();
    let _ = Box::new(Cli(Vec::new())).boxed();
    let _ = cli.by_value();
    let _ = shadowed(true);
}
