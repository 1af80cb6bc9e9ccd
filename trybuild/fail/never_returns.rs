use devsy_telemetry::telemetry_command;

#[telemetry_command]
fn exec(program: &str) -> ! {
    panic!("would exec {program}")
}

fn main() {
    exec("sh");
}
