//! The cases file: one engine's values for each case type (the seed's
//! `enginetest` structs, docs/engine-contract.md §3.2–3.9), as JSON. A case type the
//! file omits is reported as skipped.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Every case type's values for one engine. A case type may be given once (an
/// object) or several times (a list of variants, each run as its own set of
/// subtests, named by its `variant`). In payloads, `${SERVER}` stands for the base
/// URL of the file server the suite runs for the cases' `serve` files.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cases {
    /// The engine's config (validated against its config schema).
    #[serde(default = "empty_object")]
    pub config: Value,
    /// The capabilities the engine needs for these cases, in the tables of an
    /// operator's `[plugins.NAME.*]`; used when no operator config is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Value>,
    /// Files the suite serves over HTTP on loopback while it runs (for downloads).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub serve: BTreeMap<String, Served>,
    /// §3.2
    #[serde(default, deserialize_with = "variants")]
    pub env_var: Vec<EnvVarCase>,
    /// §3.3
    #[serde(default, deserialize_with = "variants")]
    pub logging: Vec<LoggingCase>,
    /// §3.4
    #[serde(default, deserialize_with = "variants")]
    pub kill: Vec<KillCase>,
    /// §3.5
    #[serde(default, deserialize_with = "variants")]
    pub artifact: Vec<ArtifactCase>,
    /// §3.6
    #[serde(default, deserialize_with = "variants")]
    pub shell: Vec<ShellCase>,
    /// §3.7
    #[serde(default, deserialize_with = "variants")]
    pub display: Vec<DisplayCase>,
    /// §3.8
    #[serde(default, deserialize_with = "variants")]
    pub proxy: Vec<ProxyCase>,
    /// §3.9
    #[serde(default, deserialize_with = "variants")]
    pub volume: Vec<VolumeCase>,
    /// Recovery after a trap (enginehost's addition, contract 0.1.4).
    #[serde(default, deserialize_with = "variants")]
    pub recover: Vec<RecoverCase>,
}

/// A file the suite serves: its text, or a `.tar.gz` of named texts (mode 0755).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Served {
    /// The file's contents.
    Text(String),
    /// A gzipped tar of these files.
    TarGz {
        /// Path in the archive → contents.
        #[serde(rename = "tarGz")]
        tar_gz: BTreeMap<String, String>,
    },
}

impl Cases {
    /// These cases with `${SERVER}` replaced by `url` in every string.
    pub fn with_server(&self, url: &str) -> Cases {
        fn replace(v: &mut Value, url: &str) {
            match v {
                Value::String(s) if s.contains("${SERVER}") => *s = s.replace("${SERVER}", url),
                Value::Array(a) => a.iter_mut().for_each(|x| replace(x, url)),
                Value::Object(o) => o.values_mut().for_each(|x| replace(x, url)),
                _ => {}
            }
        }
        let mut value = serde_json::to_value(self).expect("cases serialize");
        replace(&mut value, url);
        serde_json::from_value(value).expect("cases with a URL filled in still parse")
    }
}

/// One case, or a list of variants.
fn variants<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
    }
    Ok(match Option::<OneOrMany<T>>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(t)) => vec![t],
        Some(OneOrMany::Many(v)) => v,
    })
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Environment variables.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVarCase {
    /// Names this variant when a case type is given several times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// A valid name.
    pub variable_name: String,
    /// Names the engine must refuse with malformed-payload.
    pub invalid_variable_names: Vec<String>,
    /// Prints the variable's value to the log.
    pub payload: Value,
}

/// Logging.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoggingCase {
    /// Names this variant when a case type is given several times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KillCase {
    /// Names this variant when a case type is given several times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Printed before the task keeps running.
    pub target: String,
    /// Prints the target, then keeps running.
    pub payload: Value,
}

/// Artifacts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArtifactCase {
    /// Names this variant when a case type is given several times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShellCase {
    /// Names this variant when a case type is given several times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DisplayCase {
    /// Names this variant when a case type is given several times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// What list-displays must report.
    pub displays: Vec<ExpectedDisplay>,
    /// A name open-display must refuse.
    pub invalid_display_name: String,
    /// An interactive environment.
    pub payload: Value,
}

/// Proxies.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxyCase {
    /// Names this variant when a case type is given several times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The name to attach the proxy under.
    pub proxy_name: String,
    /// Logs `Pinging`, GETs `/v1/ping` on the proxy, logs the body, exits success
    /// on 200 and failure on 404.
    pub ping_proxy_payload: Value,
}

/// Volumes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumeCase {
    /// Names this variant when a case type is given several times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Where the volume is mounted.
    pub mountpoint: String,
    /// Writes something into the volume.
    pub write_volume_payload: Value,
    /// Succeeds iff it is there.
    pub check_volume_payload: Value,
    /// Whether the engine mounts volumes read-only (default true). `false`: the
    /// two read-only subtests check instead that `attach-volume` with `read-only`
    /// says immutable-mount-not-supported (enginehost's addition: the seed's suite
    /// has no way to state partial support).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub read_only: bool,
}

/// Recovery: a running task survives a trap of its engine's instance.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecoverCase {
    /// Names this variant when a case type is given several times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Runs for a while (several seconds past `trapAfterMs`), then succeeds.
    pub payload: Value,
    /// When the instance is torn down, in milliseconds after `start`.
    pub trap_after_ms: u64,
    /// Text the task's log must hold once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// An artifact the task leaves...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_path: Option<String>,
    /// ...holding this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_text: Option<String>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}
