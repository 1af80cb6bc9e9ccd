//! The context store on real files in a temporary directory: round trips keep
//! what they do not know, bad values are refused, and a file that cannot be
//! parsed is never overwritten.

use std::fs;

use devsy_telemetry::{ContextError, ContextStore};

#[test]
fn round_trip_keeps_unknown_keys_in_their_order() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.json");
    fs::write(
        &path,
        r#"{"zeta": 1, "defaultContext": "work", "providers": {"docker": {"x": [1, 2]}},
            "contexts": {"work": {"options": {"EXTRA": "kept"}, "color": "blue"}}, "alpha": null}"#,
    )?;

    let mut store = ContextStore::open(&path)?;
    assert_eq!(store.default_context(), "work");
    store.set_option("work", "telemetry", "False")?;
    store.set_option("other", "Dotfiles", "https://example.com/dots")?;
    store.save()?;

    let saved: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path)?)?;
    let top: Vec<&str> = saved
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        top,
        ["zeta", "defaultContext", "providers", "contexts", "alpha"]
    );
    assert_eq!(saved["providers"]["docker"]["x"], serde_json::json!([1, 2]));
    assert_eq!(saved["contexts"]["work"]["color"], "blue");
    assert_eq!(saved["contexts"]["work"]["options"]["EXTRA"], "kept");
    assert_eq!(saved["contexts"]["work"]["options"]["TELEMETRY"], "false");
    assert_eq!(
        saved["contexts"]["other"]["options"]["DOTFILES"],
        "https://example.com/dots"
    );

    let reopened = ContextStore::open(&path)?;
    assert_eq!(reopened.option("work", "TELEMETRY"), Some("false"));
    let options: Vec<_> = reopened.options_of("work").collect();
    assert_eq!(options, [("EXTRA", "kept"), ("TELEMETRY", "false")]);
    // No temporary file is left next to it.
    assert_eq!(fs::read_dir(dir.path())?.count(), 1);
    Ok(())
}

#[test]
fn a_missing_file_is_an_empty_store_and_save_creates_the_directory()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nested").join(".devsy").join("config.json");
    let mut store = ContextStore::open(&path)?;
    assert!(!path.exists(), "opening creates nothing");
    assert_eq!(store.default_context(), "default");
    assert_eq!(store.option("default", "TELEMETRY"), None);
    store.set_option("default", "TELEMETRY", "true")?;
    store.save()?;
    assert_eq!(
        ContextStore::open(&path)?.option("default", "telemetry"),
        Some("true")
    );
    Ok(())
}

#[test]
fn a_bad_telemetry_value_is_refused_and_changes_nothing() -> Result<(), Box<dyn std::error::Error>>
{
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.json");
    let original = r#"{"contexts": {"default": {"options": {"TELEMETRY": "true"}}}}"#;
    fs::write(&path, original)?;

    let mut store = ContextStore::open(&path)?;
    for bad in ["maybe", "0", "", "yes"] {
        let err = store
            .set_option("default", "TELEMETRY", bad)
            .expect_err("only true or false");
        assert!(matches!(err, ContextError::InvalidValue { .. }));
        assert_eq!(
            err.to_string(),
            format!("invalid value '{bad}' for option TELEMETRY: expected true or false")
        );
    }
    assert_eq!(store.option("default", "TELEMETRY"), Some("true"));
    assert_eq!(fs::read_to_string(&path)?, original, "nothing was written");
    Ok(())
}

#[test]
fn an_unparsable_file_is_refused_with_its_position_and_never_overwritten()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.json");
    let garbage = "{\n  \"defaultContext\": \"default\",\n  oops\n}";
    fs::write(&path, garbage)?;

    let err = ContextStore::open(&path).expect_err("not JSON");
    let ContextError::Parse { line, column, .. } = &err else {
        panic!("expected a parse error, got {err:?}");
    };
    assert_eq!((*line, *column), (3, 3));
    assert_eq!(
        err.to_string(),
        format!("{} is not valid JSON (line 3, column 3)", path.display())
    );
    assert_eq!(fs::read_to_string(&path)?, garbage);
    Ok(())
}

#[test]
fn a_wrong_shape_is_refused_naming_the_key() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.json");
    for (text, key) in [
        (r#"[1, 2]"#, "top level"),
        (r#"{"contexts": []}"#, "`contexts`"),
        (r#"{"defaultContext": 3}"#, "`defaultContext`"),
        (
            r#"{"contexts": {"a": {"options": "x"}}}"#,
            "`contexts.a.options`",
        ),
    ] {
        fs::write(&path, text)?;
        let err = ContextStore::open(&path).expect_err(text);
        assert!(matches!(err, ContextError::Shape { .. }), "{text}: {err:?}");
        assert!(err.to_string().contains(key), "{text}: {err}");
        assert_eq!(fs::read_to_string(&path)?, text);
    }
    Ok(())
}

#[test]
fn save_refuses_a_document_the_app_broke() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.json");
    let mut store = ContextStore::open(&path)?;
    store.set_option("default", "TELEMETRY", "false")?;
    store.save()?;
    let before = fs::read_to_string(&path)?;

    store
        .document_mut()
        .insert("contexts".into(), serde_json::json!("not an object"));
    let err = store.save().expect_err("broken shape");
    assert!(matches!(err, ContextError::Shape { .. }), "{err:?}");
    assert_eq!(fs::read_to_string(&path)?, before);
    Ok(())
}

#[cfg(unix)]
#[test]
fn save_keeps_the_file_permissions() -> Result<(), Box<dyn std::error::Error>> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.json");
    fs::write(&path, "{}")?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    let mut store = ContextStore::open(&path)?;
    store.set_option("default", "TELEMETRY", "true")?;
    store.save()?;
    assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    Ok(())
}
