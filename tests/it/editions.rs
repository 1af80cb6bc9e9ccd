//! Parameters drop as they would without the attribute in edition 2021
//! too, where a closure captures only the fields its body uses: the crate
//! `tests/edition_2021` compares each shape with its twin and exits
//! non-zero, naming the shape, when one drops in another order.

use crate::support::fixture;

#[test]
fn in_edition_2021_parameters_drop_as_without_the_attribute() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source =
        std::fs::read_to_string(fixture::repository().join("tests/edition_2021/src/main.rs"))
            .expect("fixture source");
    fixture::write(dir.path(), "2021", "src/main.rs", &source, "");
    let output = fixture::cargo(dir.path(), &["run", "--features", "telemetry"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
