//! The context store: the config file that `devsy context set-options -o
//! TELEMETRY=false` writes, and that the opt-out policy reads.
//!
//! The file is `$<APP>_HOME/config.json` (default `~/.<app>/config.json`):
//!
//! ```json
//! {"defaultContext": "default",
//!  "contexts": {"default": {"options": {"TELEMETRY": "false"}}}}
//! ```
//!
//! The store keeps every key it does not know, in the order it found them, so
//! an app may keep its own data in the same file. Saving is atomic, and a file
//! that could not be parsed is never overwritten: [`ContextStore::open`]
//! refuses it, so there is no store to save.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::app::{App, CONFIG_FILE, Env};

/// The option that turns telemetry off for a context.
pub const TELEMETRY_OPTION: &str = "TELEMETRY";

/// The context used when the file names none.
pub const DEFAULT_CONTEXT: &str = "default";

const DEFAULT_CONTEXT_KEY: &str = "defaultContext";
const CONTEXTS_KEY: &str = "contexts";
const OPTIONS_KEY: &str = "options";

/// The config file of one app, loaded in memory.
///
/// ```
/// use devsy_telemetry_runtime::ContextStore;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("config.json");
///
/// let mut store = ContextStore::open(&path)?;             // a missing file is an empty store
/// store.set_option("default", "telemetry", "FALSE")?;     // keys are upper-cased, values checked
/// store.save()?;                                          // atomic: temp file + rename
///
/// let mut store = ContextStore::open(&path)?;
/// assert_eq!(store.option("default", "TELEMETRY"), Some("false"));
/// assert!(store.set_option("default", "TELEMETRY", "maybe").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ContextStore {
    path: PathBuf,
    document: Map<String, Value>,
}

impl ContextStore {
    /// The file of `app`: `$<APP>_HOME/config.json`, else
    /// `~/.<app>/config.json`, read from the process environment as
    /// [`Telemetry::builder`](crate::Telemetry::builder) reads it. `None`
    /// when neither is known, or when `app` is not an app name.
    ///
    /// ```
    /// let path = devsy_telemetry_runtime::ContextStore::default_path("devsy");
    /// if let Some(path) = path {
    ///     assert!(path.ends_with("config.json"));
    /// }
    /// ```
    #[must_use]
    pub fn default_path(app: &str) -> Option<PathBuf> {
        let app = App::new(app).ok()?;
        app.config_dir(&Env::process())
            .map(|dir| dir.join(CONFIG_FILE))
    }

    /// Loads the file at `path`. A file that does not exist gives an empty
    /// store (nothing is created until [`save`](Self::save)).
    ///
    /// # Errors
    ///
    /// [`ContextError::Read`] when the file exists but cannot be read,
    /// [`ContextError::Parse`] when it is not JSON (with the line and column),
    /// and [`ContextError::Shape`] when it is JSON of the wrong shape.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, ContextError> {
        let path = path.into();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Self {
                    path,
                    document: Map::new(),
                });
            }
            Err(source) => return Err(ContextError::Read { path, source }),
        };
        let document = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(ContextError::Shape {
                    path,
                    problem: "the top level is not a JSON object".into(),
                });
            }
            Err(e) => {
                return Err(ContextError::Parse {
                    path,
                    line: e.line(),
                    column: e.column(),
                    message: e.to_string(),
                });
            }
        };
        let store = Self { path, document };
        store.check_shape()?;
        Ok(store)
    }

    /// Where this store is saved.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The context named by `defaultContext`, else `"default"`.
    #[must_use]
    pub fn default_context(&self) -> &str {
        self.document
            .get(DEFAULT_CONTEXT_KEY)
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .unwrap_or(DEFAULT_CONTEXT)
    }

    /// Makes `context` the default context.
    pub fn set_default_context(&mut self, context: &str) {
        self.document
            .insert(DEFAULT_CONTEXT_KEY.into(), Value::String(context.into()));
    }

    /// The value of option `key` (any case) in `context`, if set.
    #[must_use]
    pub fn option(&self, context: &str, key: &str) -> Option<&str> {
        self.options(context)?
            .get(&key.to_ascii_uppercase())
            .and_then(Value::as_str)
    }

    /// All options of `context`, as `(KEY, value)` pairs in file order.
    pub fn options_of(&self, context: &str) -> impl Iterator<Item = (&str, &str)> {
        self.options(context)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
    }

    /// Sets option `key` of `context` in memory; [`save`](Self::save) writes
    /// it. The key is upper-cased. `TELEMETRY` accepts `true` or `false` in
    /// any case and is stored lower-case.
    ///
    /// # Errors
    ///
    /// [`ContextError::InvalidValue`] for a `TELEMETRY` value other than true
    /// or false, and for an empty key; the store is left unchanged.
    pub fn set_option(
        &mut self,
        context: &str,
        key: &str,
        value: &str,
    ) -> Result<(), ContextError> {
        let key = key.trim().to_ascii_uppercase();
        if key.is_empty() {
            return Err(ContextError::InvalidValue {
                key,
                value: value.into(),
                accepted: "a non-empty option name",
            });
        }
        let value = if key == TELEMETRY_OPTION {
            parse_telemetry_option(value)
                .ok_or_else(|| ContextError::InvalidValue {
                    key: key.clone(),
                    value: value.into(),
                    accepted: "true or false",
                })?
                .to_string()
        } else {
            value.to_string()
        };
        let path = self.path.clone();
        let options = self
            .entry_object(&[CONTEXTS_KEY, context, OPTIONS_KEY])
            .ok_or_else(|| ContextError::Shape {
                path,
                problem: format!("`{CONTEXTS_KEY}.{context}.{OPTIONS_KEY}` is not an object"),
            })?;
        options.insert(key, Value::String(value));
        Ok(())
    }

    /// The whole document, for apps that keep their own data in the file.
    #[must_use]
    pub fn document(&self) -> &Map<String, Value> {
        &self.document
    }

    /// The whole document, mutable. [`save`](Self::save) checks the shape of
    /// the context part again before it writes.
    pub fn document_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.document
    }

    /// Writes the store to its path atomically: a temporary file in the same
    /// directory, flushed to disk, then renamed over the old file, so a crash
    /// leaves either the old or the new file. Creates the directory if
    /// needed and keeps the old file's permissions.
    ///
    /// # Errors
    ///
    /// [`ContextError::Shape`] if [`document_mut`](Self::document_mut) broke
    /// the context part (nothing is written), [`ContextError::Write`] on I/O
    /// failure (the old file is left as it was).
    pub fn save(&self) -> Result<(), ContextError> {
        self.check_shape()?;
        let write_err = |source| ContextError::Write {
            path: self.path.clone(),
            source,
        };
        let mut text = serde_json::to_string_pretty(&self.document)
            .map_err(|e| write_err(io::Error::other(e)))?;
        text.push('\n');
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        crate::files::create_dir_all(dir).map_err(write_err)?;
        let file_name = self
            .path
            .file_name()
            .map_or_else(|| "config.json".into(), |n| n.to_string_lossy());
        crate::files::write_then_place(dir, &file_name, text.as_bytes(), |tmp, file| {
            // New: private. Existing: it keeps its permissions.
            if let Ok(meta) = fs::metadata(&self.path) {
                file.set_permissions(meta.permissions())?;
            }
            file.sync_all()?;
            fs::rename(tmp, &self.path)
        })
        .map_err(write_err)
    }

    fn options(&self, context: &str) -> Option<&Map<String, Value>> {
        self.document
            .get(CONTEXTS_KEY)?
            .get(context)?
            .get(OPTIONS_KEY)?
            .as_object()
    }

    /// Walks `keys`, creating empty objects where missing; `None` if a value
    /// on the way is not an object.
    fn entry_object(&mut self, keys: &[&str]) -> Option<&mut Map<String, Value>> {
        let mut map = &mut self.document;
        for key in keys {
            map = map
                .entry(*key)
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()?;
        }
        Some(map)
    }

    /// The context part must be objects down to string option values; the
    /// rest of the file is the app's business.
    fn check_shape(&self) -> Result<(), ContextError> {
        let problem = |problem: String| ContextError::Shape {
            path: self.path.clone(),
            problem,
        };
        if let Some(value) = self.document.get(DEFAULT_CONTEXT_KEY)
            && !value.is_string()
        {
            return Err(problem(format!("`{DEFAULT_CONTEXT_KEY}` is not a string")));
        }
        let Some(contexts) = self.document.get(CONTEXTS_KEY) else {
            return Ok(());
        };
        let contexts = contexts
            .as_object()
            .ok_or_else(|| problem(format!("`{CONTEXTS_KEY}` is not an object")))?;
        for (name, context) in contexts {
            let context = context
                .as_object()
                .ok_or_else(|| problem(format!("`{CONTEXTS_KEY}.{name}` is not an object")))?;
            let Some(options) = context.get(OPTIONS_KEY) else {
                continue;
            };
            let options = options.as_object().ok_or_else(|| {
                problem(format!(
                    "`{CONTEXTS_KEY}.{name}.{OPTIONS_KEY}` is not an object"
                ))
            })?;
            if let Some((key, _)) = options.iter().find(|(_, v)| !v.is_string()) {
                return Err(problem(format!(
                    "option `{CONTEXTS_KEY}.{name}.{OPTIONS_KEY}.{key}` is not a string"
                )));
            }
        }
        Ok(())
    }
}

/// `Some(true)` / `Some(false)` for `true` / `false` in any case, else `None`.
pub(crate) fn parse_telemetry_option(value: &str) -> Option<bool> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Why the context store could not be loaded, changed or saved.
#[derive(Debug)]
#[non_exhaustive]
pub enum ContextError {
    /// The file exists but could not be read.
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not valid JSON.
    Parse {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The file is JSON, but its context part has the wrong shape.
    Shape {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming the key.
        problem: String,
    },
    /// An option was given a value it does not accept.
    InvalidValue {
        /// The option, upper-cased.
        key: String,
        /// The value that was refused.
        value: String,
        /// What the option accepts.
        accepted: &'static str,
    },
    /// The file could not be written; the old file is unchanged.
    Write {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Self::Parse {
                path, line, column, ..
            } => write!(
                f,
                "{} is not valid JSON (line {line}, column {column})",
                path.display()
            ),
            Self::Shape { path, problem } => write!(f, "{}: {problem}", path.display()),
            Self::InvalidValue {
                key,
                value,
                accepted,
            } => write!(
                f,
                "invalid value '{value}' for option {key}: expected {accepted}"
            ),
            Self::Write { path, source } => write!(f, "cannot write {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for ContextError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } | Self::Write { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_option_accepts_true_and_false_in_any_case() {
        assert_eq!(parse_telemetry_option("FALSE"), Some(false));
        assert_eq!(parse_telemetry_option(" True "), Some(true));
        assert_eq!(parse_telemetry_option("0"), None);
        assert_eq!(parse_telemetry_option(""), None);
    }

    #[test]
    fn shape_errors_name_the_key() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"contexts": {"work": {"options": {"TELEMETRY": false}}}}"#,
        )?;
        let err = ContextStore::open(&path).expect_err("a boolean option is the wrong shape");
        assert!(
            err.to_string().contains("contexts.work.options.TELEMETRY"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn default_context_falls_back_to_default() {
        let mut store = ContextStore {
            path: "config.json".into(),
            document: Map::new(),
        };
        assert_eq!(store.default_context(), "default");
        store.set_default_context("work");
        assert_eq!(store.default_context(), "work");
    }
}
