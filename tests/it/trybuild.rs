//! Compile-time checks of `#[telemetry_command]`: each case in
//! `trybuild/fail/` must fail with exactly the error in its `.stderr` file,
//! pointing at the user's tokens. What must compile, every shape, is
//! compiled with this crate, under strict lints, in `command_shapes`.

#[test]
fn compile_checks() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("trybuild/fail/*.rs");
}
