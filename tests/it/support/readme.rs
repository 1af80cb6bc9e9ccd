//! The README's wire-format example, and JSON shapes compared against it.

use serde_json::Value;

/// The JSON block after `<!-- wire-format -->` in the README.
pub fn readme_example() -> String {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("<!-- wire-format -->")
        .expect("README has a <!-- wire-format --> marker");
    let block = &readme[start..];
    let open = block
        .find("```json\n")
        .expect("a json block after the marker")
        + "```json\n".len();
    let close = block[open..].find("```").expect("the json block is closed");
    block[open..open + close].to_string()
}

/// Same keys in the same order, same JSON types, all the way down.
pub fn assert_same_shape(documented: &Value, actual: &Value, at: &str) {
    assert_shape(documented, actual, at, &[]);
}

/// As [`assert_same_shape`], but the properties the wire format omits when
/// unknown, or on a start event, may be missing.
pub fn assert_shape_within(documented: &Value, actual: &Value) {
    const OMITTABLE: &[&str] = &["provider", "source_type", "ide", "error", "duration_ms"];
    assert_shape(documented, actual, "$", OMITTABLE);
}

fn assert_shape(documented: &Value, actual: &Value, at: &str, omittable: &[&str]) {
    match (documented, actual) {
        (Value::Object(d), Value::Object(a)) => {
            let expected: Vec<&str> = keys(d)
                .into_iter()
                .filter(|k| a.contains_key(*k) || !omittable.contains(k))
                .collect();
            assert_eq!(expected, keys(a), "keys at {at}");
            for (key, value) in a {
                assert_shape(&d[key], value, &format!("{at}.{key}"), omittable);
            }
        }
        (Value::String(_), Value::String(_)) => {}
        (Value::Number(d), Value::Number(a)) if d.is_u64() && a.is_u64() => {}
        _ => panic!("{at}: README has {documented}, the code sends {actual}"),
    }
}

pub fn keys(map: &serde_json::Map<String, Value>) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}
