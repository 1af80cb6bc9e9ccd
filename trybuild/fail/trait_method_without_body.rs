use devsy_telemetry::telemetry_command;

trait Command {
    #[telemetry_command]
    fn run(&self) -> Result<(), String>;
}

struct Up;

impl Command for Up {
    fn run(&self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {
    let _ = Up.run();
}
