//! Compile-time checks of `#[telemetry_command]`: the cases in `trybuild/`.
//! `pass/` must compile; each `fail/` case must fail with exactly the
//! error in its `.stderr` file, pointing at the user's tokens.

#[test]
fn compile_checks() {
    let cases = trybuild::TestCases::new();
    cases.pass("trybuild/pass/*.rs");
    cases.compile_fail("trybuild/fail/*.rs");
}
