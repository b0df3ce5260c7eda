//! The operator's TOML config (`enginehost --config FILE`): `[host]` settings,
//! `[engines.NAME]` engine configs (passed on as JSON, checked by the engine's
//! schema elsewhere) and `[plugins.NAME.<capability>]` grants. Everything is
//! checked at load, so a typo is an error naming its key, never a silent denial.
//!
//! To add a top-level table (`[limits]`, `[worker]`): add a field to `RawConfig`
//! and read it in [`OperatorConfig::parse`]; unknown-key messages follow the struct.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Capabilities;
use super::interactive::InteractiveSettings;
use super::limits::{Limits, ResolvedLimits};
use super::reader::{self, join, table_at};
use super::registries::RegistrySettings;
use super::worker::WorkerSettings;

/// A config (or capabilities.toml) problem: where, and what would be right.
///
/// Displays as `config /etc/x.toml: plugins.native.process.exec[2]: pattern ...`;
/// the file and key parts are left out when empty.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The file, when the text came from one.
    pub file: Option<PathBuf>,
    /// The dotted key, arrays indexed from 0 (`plugins.native.process.exec[2]`);
    /// empty for TOML syntax errors (the message has the line and column).
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl ConfigError {
    /// An error at `key` (no file yet).
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: None,
            key: key.into(),
            message: message.into(),
        }
    }

    /// The same error, naming the file it came from.
    pub fn in_file(mut self, file: &Path) -> ConfigError {
        self.file = Some(file.to_path_buf());
        self
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if let Some(file) = &self.file {
            out.push_str(&format!("config {}: ", file.display()));
        }
        if !self.key.is_empty() {
            out.push_str(&self.key);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

/// The whole operator config. Absent tables mean defaults: no engine config, no
/// grants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperatorConfig {
    /// `[host]`.
    pub host: HostSettings,
    /// `[engines.NAME]`, converted to JSON.
    pub engines: BTreeMap<String, serde_json::Value>,
    /// `[plugins.NAME]`: each plugin's grants, checked with [`Capabilities::check_grant`].
    pub plugins: BTreeMap<String, Capabilities>,
    /// `[limits]`: limits of every plugin.
    pub limits: Limits,
    /// `[plugins.NAME.limits]`: one plugin's limits over `[limits]`.
    pub plugin_limits: BTreeMap<String, Limits>,
    /// `[worker]`: `enginehost worker`'s settings; `None` when absent.
    pub worker: Option<WorkerSettings>,
    /// `[interactive]`: the interactive server; `None` when absent (no task is
    /// interactive).
    pub interactive: Option<InteractiveSettings>,
    /// `[registries."HOST"]`: OCI registries that plugins are pushed to and
    /// installed from.
    pub registries: BTreeMap<String, RegistrySettings>,
}

/// `[host]`: settings of the host itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct HostSettings {
    /// `work-dir`: where engines' state and sandboxes and the journal live
    /// (absolute). `None`: the caller's default.
    pub work_dir: Option<PathBuf>,
    /// `tree-kill`: how a task's process tree is killed.
    pub tree_kill: TreeKill,
    /// `compile-cache`: keep compiled plugins for the next start (default true).
    pub compile_cache: Option<bool>,
    /// `cache-dir`: where (absolute; default `<work-dir>/cache`).
    pub cache_dir: Option<PathBuf>,
    /// `accounting`: measure what each task costs its engine (wasm time, host
    /// time, memory high-water) and report it (default true).
    pub accounting: Option<bool>,
    /// `trusted-keys`: public ed25519 keys (base64, as `enginehost keygen` prints
    /// them) whose plugin signatures count.
    pub trusted_keys: Vec<String>,
    /// `require-signature`: refuse a plugin file without a signature by a trusted key.
    pub require_signature: Option<bool>,
    /// `require-lock`: refuse a plugin file that the directory's `plugins.lock` does not list.
    pub require_lock: Option<bool>,
}

/// `tree-kill`: `"auto"` (cgroup v2 if writable, else the fallback), `"cgroup"`
/// (refuse to run without it) or `"fallback"` (setsid + kill by uid).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TreeKill {
    /// cgroup v2 if writable, else the fallback.
    #[default]
    Auto,
    /// cgroup v2 only; fail closed without it.
    Cgroup,
    /// setsid + killpg, and kill by uid for task users.
    Fallback,
}

/// The top level as read from TOML: every table still raw, so that each is read
/// at its own key path. Its field list is the list of allowed top-level keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    host: toml::Table,
    #[serde(default)]
    engines: toml::Table,
    #[serde(default)]
    plugins: toml::Table,
    #[serde(default)]
    limits: toml::Table,
    #[serde(default)]
    worker: Option<toml::Table>,
    #[serde(default)]
    interactive: Option<toml::Table>,
    #[serde(default)]
    registries: toml::Table,
}

impl OperatorConfig {
    /// Parses and checks the config text.
    ///
    /// # Errors
    /// TOML syntax (with toml's line and column), unknown keys at any level (listing
    /// the allowed ones), wrong types, a relative `work-dir`, engine or plugin names
    /// that no plugin can have, and every [`Capabilities::check_grant`] problem.
    pub fn parse(text: &str) -> Result<OperatorConfig, ConfigError> {
        let top = reader::parse_toml(text)?;
        // Every top-level key is a table: say so before serde's "expected a map".
        let known = reader::field_names::<RawConfig>();
        for (key, value) in top.iter().filter(|(k, _)| known.contains(&k.as_str())) {
            table_at(value, key)?;
        }
        let raw: RawConfig = reader::typed(&top, "")?;
        let mut config = OperatorConfig {
            host: reader::typed(&raw.host, "host")?,
            ..OperatorConfig::default()
        };
        super::validate::host(&config.host)?;
        config.limits = Limits::read(&raw.limits, "limits")?;
        if let Some(worker) = &raw.worker {
            config.worker = Some(WorkerSettings::read(worker, "worker")?);
        }
        if let Some(interactive) = &raw.interactive {
            config.interactive = Some(InteractiveSettings::read(interactive, "interactive")?);
        }
        config.registries = super::registries::read(&raw.registries, "registries")?;
        for (name, value) in &raw.engines {
            let path = join("engines", name);
            super::validate::engine_name(name, &path)?;
            table_at(value, &path)?;
            config.engines.insert(name.clone(), reader::toml_to_json(value, &path)?);
        }
        for (name, value) in &raw.plugins {
            let path = join("plugins", name);
            super::validate::engine_name(name, &path)?;
            let mut table = table_at(value, &path)?.clone();
            if let Some(limits) = table.remove("limits") {
                let here = join(&path, "limits");
                config
                    .plugin_limits
                    .insert(name.clone(), Limits::read(table_at(&limits, &here)?, &here)?);
            }
            let grants = reader::capabilities(&table, &path)?;
            grants.check_grant(name)?;
            config.plugins.insert(name.clone(), grants);
        }
        Ok(config)
    }

    /// Reads and parses the config file at `path`.
    ///
    /// # Errors
    /// As [`OperatorConfig::parse`], or the file cannot be read; every error names
    /// the file.
    pub fn load(path: &Path) -> Result<OperatorConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("", format!("cannot read the file: {e}")).in_file(path))?;
        OperatorConfig::parse(&text).map_err(|e| e.in_file(path))
    }

    /// The config worker-runner writes for a worker it starts (JSON, for
    /// `enginehost worker run --config FILE --with-worker-runner`): its `rootURL`,
    /// `clientId`, `accessToken`, `certificate`, `provisionerId` and `workerType` (or
    /// `workerPoolId`), `workerGroup` and `workerId` fill `[worker]`; the pool's own
    /// settings come from the `enginehost` key of the worker pool's `workerConfig`
    /// (this file's tables as JSON: `{"worker": {"capacity": 4, "engines": [...]},
    /// "plugins": {...}}`). Other keys (`workerLocation`, `workerTypeMetadata`, ...)
    /// are worker-runner's and ignored.
    pub fn from_worker_runner(json: &str) -> Result<OperatorConfig, ConfigError> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| ConfigError::new("", format!("not the JSON worker-runner writes: {e}")))?;
        let text = |key: &str| {
            value
                .get(key)
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let need = |key: &str| {
            text(key).ok_or_else(|| {
                ConfigError::new(
                    key,
                    "missing; worker-runner writes it (is this the file it wrote, from a worker pool whose \
                     implementation is generic-worker?)",
                )
            })
        };
        let (root, client_id, token) = (need("rootURL")?, need("clientId")?, need("accessToken")?);
        let queue = match (text("provisionerId"), text("workerType"), text("workerPoolId")) {
            (Some(p), Some(t), _) => format!("{p}/{t}"),
            (_, _, Some(pool)) => pool.to_string(),
            _ => need("workerPoolId")?.to_string(),
        };
        let mut top: toml::Table = match value.get("enginehost") {
            None => toml::Table::new(),
            Some(own) => toml::Table::try_from(own).map_err(|e| {
                ConfigError::new(
                    "enginehost",
                    format!("the worker pool's workerConfig.enginehost must be this config's tables as JSON: {e}"),
                )
            })?,
        };
        let worker = top
            .entry("worker")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| ConfigError::new("enginehost.worker", "expected an object"))?;
        let mut credentials = toml::Table::new();
        credentials.insert("client-id".into(), client_id.into());
        credentials.insert("access-token".into(), token.into());
        if let Some(certificate) = text("certificate") {
            credentials.insert("certificate".into(), certificate.into());
        }
        worker.insert("root-url".into(), root.into());
        worker.insert("task-queue-id".into(), queue.into());
        worker.insert("worker-group".into(), need("workerGroup")?.into());
        worker.insert("worker-id".into(), need("workerId")?.into());
        worker.insert("credentials".into(), toml::Value::Table(credentials));
        let text = toml::to_string(&top).map_err(|e| ConfigError::new("enginehost", format!("{e}")))?;
        OperatorConfig::parse(&text)
    }

    /// `[engines.<engine>]` as JSON; `{}` when absent.
    pub fn engine_config(&self, engine: &str) -> serde_json::Value {
        self.engines
            .get(engine)
            .cloned()
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()))
    }

    /// The limits of `plugin`: `[plugins.<plugin>.limits]` over `[limits]` over the
    /// defaults.
    pub fn limits_for(&self, plugin: &str) -> ResolvedLimits {
        match self.plugin_limits.get(plugin) {
            Some(own) => own.over(&self.limits).resolve(),
            None => self.limits.resolve(),
        }
    }

    /// `[plugins.<plugin>]`: what the operator grants it; nothing when absent.
    pub fn grants(&self, plugin: &str) -> Capabilities {
        self.plugins.get(plugin).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
