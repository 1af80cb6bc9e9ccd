//! The CLI's state, kept in the runtime's context store
//! (`$DEVSY_HOME/config.json`) next to the context options:
//!
//! ```json
//! {"defaultContext": "default",
//!  "contexts": {"default": {"options": {"TELEMETRY": "false"}}},
//!  "providers": ["docker"], "defaultProvider": "docker",
//!  "workspaces": [{"id": "devsy", "source": "github.com/devsy-sh/devsy",
//!                  "sourceType": "git:", "provider": "docker", "ide": "vscode"}]}
//! ```

use devsy_telemetry::{ContextError, ContextStore};
use serde_json::Value;

use crate::error::CliError;

const PROVIDERS: &str = "providers";
const DEFAULT_PROVIDER: &str = "defaultProvider";
const WORKSPACES: &str = "workspaces";

/// The loaded config file.
pub struct Config {
    store: ContextStore,
}

impl Config {
    /// Loads `$DEVSY_HOME/config.json` (default `~/.devsy/config.json`).
    pub fn load() -> Result<Self, ContextError> {
        let path = ContextStore::default_path("devsy").ok_or_else(|| ContextError::Shape {
            path: "config.json".into(),
            problem: "no home directory: set DEVSY_HOME".into(),
        })?;
        Ok(Self {
            store: ContextStore::open(path)?,
        })
    }

    pub fn store(&self) -> &ContextStore {
        &self.store
    }

    pub fn store_mut(&mut self) -> &mut ContextStore {
        &mut self.store
    }

    pub fn save(&self) -> Result<(), CliError> {
        Ok(self.store.save()?)
    }

    pub fn providers(&self) -> Vec<&str> {
        self.store
            .document()
            .get(PROVIDERS)
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    pub fn has_provider(&self, name: &str) -> bool {
        self.providers().contains(&name)
    }

    pub fn default_provider(&self) -> Option<&str> {
        self.store
            .document()
            .get(DEFAULT_PROVIDER)
            .and_then(Value::as_str)
    }

    pub fn add_provider(&mut self, name: &str) -> Result<(), CliError> {
        self.array(PROVIDERS)?.push(Value::String(name.into()));
        Ok(())
    }

    pub fn delete_provider(&mut self, name: &str) -> Result<(), CliError> {
        let is_default = self.default_provider() == Some(name);
        self.array(PROVIDERS)?.retain(|p| p.as_str() != Some(name));
        if is_default {
            self.store.document_mut().remove(DEFAULT_PROVIDER);
        }
        Ok(())
    }

    pub fn use_provider(&mut self, name: &str) {
        self.store
            .document_mut()
            .insert(DEFAULT_PROVIDER.into(), Value::String(name.into()));
    }

    /// The most recent workspace's `(source type, ide)`: the defaults of
    /// the events' `source_type` and `ide`.
    pub fn last_workspace(&self) -> (Option<&str>, Option<&str>) {
        let last = self
            .store
            .document()
            .get(WORKSPACES)
            .and_then(Value::as_array)
            .and_then(|w| w.last());
        let field = |key| last.and_then(|w| w.get(key)).and_then(Value::as_str);
        (field("sourceType"), field("ide"))
    }

    pub fn add_workspace(&mut self, workspace: Value) -> Result<(), CliError> {
        let id = workspace.get("id").cloned();
        let workspaces = self.array(WORKSPACES)?;
        workspaces.retain(|w| w.get("id") != id.as_ref());
        workspaces.push(workspace);
        Ok(())
    }

    /// The list at `key`, made if missing; an error, changing nothing, if
    /// the file holds something else there.
    fn array(&mut self, key: &str) -> Result<&mut Vec<Value>, CliError> {
        let path = self.store.path().display().to_string();
        self.store
            .document_mut()
            .entry(key)
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or_else(|| CliError(format!("{path}: `{key}` is not a list")))
    }
}
