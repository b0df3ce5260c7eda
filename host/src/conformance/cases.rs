//! The cases file: one engine's values for each case type (the seed's
//! `enginetest` structs, engine-contract.md §3.2–3.9), as JSON. A case type the
//! file omits is reported as skipped.

use serde::Deserialize;
use serde_json::Value;

/// Every case type's values for one engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cases {
    /// The engine's config (validated against its config schema).
    #[serde(default = "empty_object")]
    pub config: Value,
    /// §3.2
    pub env_var: Option<EnvVarCase>,
    /// §3.3
    pub logging: Option<LoggingCase>,
    /// §3.4
    pub kill: Option<KillCase>,
    /// §3.5
    pub artifact: Option<ArtifactCase>,
    /// §3.6
    pub shell: Option<ShellCase>,
    /// §3.7
    pub display: Option<DisplayCase>,
    /// §3.8
    pub proxy: Option<ProxyCase>,
    /// §3.9
    pub volume: Option<VolumeCase>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Environment variables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVarCase {
    /// A valid name.
    pub variable_name: String,
    /// Names the engine must refuse with malformed-payload.
    pub invalid_variable_names: Vec<String>,
    /// Prints the variable's value to the log.
    pub payload: Value,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoggingCase {
    /// Scopes the task gets.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// What must (or must not) appear in the log.
    pub target: String,
    /// Logs the target and succeeds.
    pub target_payload: Value,
    /// Logs the target and fails.
    pub failing_payload: Value,
    /// Does not log the target, succeeds.
    pub silent_payload: Value,
}

/// Kill.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KillCase {
    /// Printed before the task keeps running.
    pub target: String,
    /// Prints the target, then keeps running.
    pub payload: Value,
}

/// Artifacts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArtifactCase {
    /// Text every created file contains.
    pub text: String,
    /// A file containing the text.
    pub text_file_path: String,
    /// A file that does not exist.
    pub file_not_found_path: String,
    /// A folder that does not exist.
    pub folder_not_found_path: String,
    /// A folder with nested files.
    pub nested_folder_path: String,
    /// The files under it, relative, `/`-separated.
    pub nested_folder_files: Vec<String>,
    /// Creates all of them; must succeed.
    pub payload: Value,
}

/// Shells.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShellCase {
    /// Piped to the default shell's stdin.
    pub command: String,
    /// Its exact stdout.
    pub stdout: String,
    /// Its exact stderr.
    pub stderr: String,
    /// Makes the shell exit false.
    pub bad_command: String,
    /// Runs long enough to be aborted.
    pub sleep_command: String,
    /// Keeps the sandbox alive.
    pub payload: Value,
}

/// An expected display.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedDisplay {
    /// Its name.
    pub name: String,
    /// Its description ("" = not checked).
    #[serde(default)]
    pub description: String,
    /// Its width (0 = not checked).
    #[serde(default)]
    pub width: u32,
    /// Its height (0 = not checked).
    #[serde(default)]
    pub height: u32,
}

/// Displays.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DisplayCase {
    /// What list-displays must report.
    pub displays: Vec<ExpectedDisplay>,
    /// A name open-display must refuse.
    pub invalid_display_name: String,
    /// An interactive environment.
    pub payload: Value,
}

/// Proxies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxyCase {
    /// The name to attach the proxy under.
    pub proxy_name: String,
    /// Logs `Pinging`, GETs `/v1/ping` on the proxy, logs the body, exits success
    /// on 200 and failure on 404.
    pub ping_proxy_payload: Value,
}

/// Volumes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumeCase {
    /// Where the volume is mounted.
    pub mountpoint: String,
    /// Writes something into the volume.
    pub write_volume_payload: Value,
    /// Succeeds iff it is there.
    pub check_volume_payload: Value,
}
