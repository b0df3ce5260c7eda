//! A claimed task's definition, read into what the worker needs: its expiry (no
//! artifact may outlive it), its scopes, and its `payload`, which has the shape of
//! `enginehost run`'s task file (`engine` optional when the worker has a default).
//! Every problem here is the task author's: each becomes a line of the task log and
//! the run resolves as `malformed-payload`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use taskcluster::chrono::{DateTime, Utc};

use crate::worker::TaskFile;
use crate::worker::artifacts::{ArtifactSpec, confined};

/// The log while the task runs (a reference), then a link to [`BACKING_LOG`].
pub const LIVE_LOG: &str = "public/logs/live.log";
/// The whole task log, gzip-encoded.
pub const BACKING_LOG: &str = "public/logs/live_backing.log";

/// What the worker reads of a task definition.
#[derive(Debug, Clone)]
pub struct TaskDefinition {
    /// `expires`: no artifact may expire later.
    pub expires: DateTime<Utc>,
    /// `scopes`: given to the engine with the task.
    pub scopes: Vec<String>,
    /// `taskGroupId` (generic-worker's `TASK_GROUP_ID`).
    pub task_group_id: Option<String>,
    /// `payload`, as sent.
    pub payload: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDefinition {
    expires: DateTime<Utc>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    task_group_id: Option<String>,
    payload: Value,
}

impl TaskDefinition {
    /// Reads the queue's task definition (`expires`, `scopes`, `payload`).
    pub fn read(task: &Value) -> Result<TaskDefinition, String> {
        let raw: RawDefinition =
            serde_json::from_value(task.clone()).map_err(|e| format!("the task definition is not usable: {e}"))?;
        Ok(TaskDefinition {
            expires: raw.expires,
            scopes: raw.scopes,
            task_group_id: raw.task_group_id,
            payload: raw.payload,
        })
    }
}

/// `task.payload` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Payload {
    engine: Option<String>,
    #[serde(default = "empty_object")]
    payload: Value,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    max_run_time: Option<u64>,
    #[serde(default)]
    artifacts: Vec<ArtifactSpec>,
    #[serde(default)]
    features: crate::worker::Features,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

const SHAPE: &str = "a payload is {\"engine\": NAME, \"payload\": {...}, \"env\": {NAME: VALUE}, \"maxRunTime\": SECONDS, \
                     \"artifacts\": [{\"type\": \"file\"|\"directory\", \"path\": PATH, \"name\": NAME, \"expires\": DATE, \
                     \"contentType\": TYPE, \"contentEncoding\": \"identity\"|\"gzip\", \"optional\": BOOL}], \
                     \"features\": {\"interactive\": BOOL}}";

/// What is wrong with the task's artifacts (each named by `label(i)`, e.g.
/// `task.payload.artifacts[0]`): names that leave the artifacts directory, name
/// one of the worker's own (`reserved`: the logs, the chain of trust) or come
/// twice, and their optional fields.
pub fn artifact_problems(
    artifacts: &[ArtifactSpec],
    task_expires: &DateTime<Utc>,
    reserved: &[&str],
    label: &dyn Fn(usize) -> String,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, spec) in artifacts.iter().enumerate() {
        if let Err(e) = confined(std::path::Path::new("/"), &spec.name) {
            problems.push(format!("{}.name: {e}", label(i)));
        } else if reserved
            .iter()
            .any(|r| spec.name == *r || r.starts_with(&format!("{}/", spec.name)))
        {
            problems.push(format!(
                "{}.name: {:?} is the worker's own (it uploads {})",
                label(i),
                spec.name,
                reserved.join(" and ")
            ));
        } else if artifacts[..i].iter().any(|other| other.name == spec.name) {
            problems.push(format!("{}.name: {:?} is named twice", label(i), spec.name));
        }
        problems.extend(artifact_field_problems(&label(i), spec, task_expires));
    }
    problems
}

/// The names of the task's two log artifacts, and whether the live one is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogNames {
    /// The live log (a reference while the task runs, then a link to `backing`).
    pub live: String,
    /// The whole log, gzip-encoded.
    pub backing: String,
    /// Whether the live log is published while the task runs (the payload may turn
    /// it off; the worker's `live-log = false` turns it off for every task).
    pub live_enabled: bool,
}

impl LogNames {
    /// The artifact names the worker makes itself: the logs, and the chain of
    /// trust when it signs one.
    pub fn reserved(&self, chain_of_trust: bool) -> Vec<&str> {
        let mut names = vec![self.live.as_str(), self.backing.as_str()];
        if chain_of_trust {
            names.extend([super::cot::CERTIFICATE, super::cot::SIGNATURE]);
        }
        names
    }
}

impl Default for LogNames {
    fn default() -> Self {
        LogNames {
            live: LIVE_LOG.into(),
            backing: BACKING_LOG.into(),
            live_enabled: true,
        }
    }
}

/// What is wrong with an artifact's `expires`, `contentType` and `contentEncoding`.
fn artifact_field_problems(label: &str, spec: &ArtifactSpec, task_expires: &DateTime<Utc>) -> Vec<String> {
    let mut problems = Vec::new();
    let at = |field: &str| format!("{label}.{field}");
    if let Some(text) = &spec.expires {
        match DateTime::parse_from_rfc3339(text) {
            Err(e) => problems.push(format!(
                "{}: {text:?} is not a date-time ({e}); write it as the queue does, e.g. \"2030-01-01T00:00:00.000Z\"",
                at("expires")
            )),
            Ok(t) if t.with_timezone(&Utc) > *task_expires => problems.push(format!(
                "{}: {text} is after the task's expires ({}); an artifact cannot outlive its task",
                at("expires"),
                super::client::json_time(task_expires)
            )),
            Ok(_) => {}
        }
    }
    if let Some(t) = &spec.content_type {
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
        };
        let essence = t.split(';').next().unwrap_or_default().trim();
        let ok = t.len() <= 255
            && !t.chars().any(char::is_control)
            && essence.split_once('/').is_some_and(|(a, b)| token(a) && token(b));
        if !ok {
            problems.push(format!(
                "{}: {t:?} is not a media type; write e.g. \"text/plain; charset=utf-8\" or \"application/json\"",
                at("contentType")
            ));
        }
    }
    if let Some(e) = &spec.content_encoding
        && !matches!(e.as_str(), "identity" | "gzip")
    {
        problems.push(format!(
            "{}: {e:?} is not one of \"identity\", \"gzip\"",
            at("contentEncoding")
        ));
    }
    problems
}

/// The task file for run `run_id` of `task_id`, from its definition, for a worker
/// serving `engines` (`default` for payloads that name none); or every problem, each
/// a message for the task's author.
pub fn task_file(
    task_id: &str,
    run_id: u32,
    definition: &TaskDefinition,
    engines: &[String],
    default: Option<&str>,
) -> Result<TaskFile, Vec<String>> {
    if !definition.payload.is_object() {
        return Err(vec![format!("task.payload: not an object; {SHAPE}")]);
    }
    let payload: Payload =
        serde_json::from_value(definition.payload.clone()).map_err(|e| vec![format!("task.payload: {e}; {SHAPE}")])?;
    let mut problems = Vec::new();
    let engine = match (payload.engine, default) {
        (Some(name), _) if engines.contains(&name) => name,
        (Some(name), _) => {
            problems.push(format!(
                "task.payload.engine: this worker has no engine {name:?}; it serves {}",
                engines.join(", ")
            ));
            String::new()
        }
        (None, Some(default)) => default.to_string(),
        (None, None) => {
            problems.push(format!(
                "task.payload.engine: required (this worker has no default engine); it serves {}",
                engines.join(", ")
            ));
            String::new()
        }
    };
    problems.extend(artifact_problems(
        &payload.artifacts,
        &definition.expires,
        &LogNames::default().reserved(false),
        &|i| format!("task.payload.artifacts[{i}]"),
    ));
    problems.extend(crate::worker::task::env_name_problems(&payload.env));
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(TaskFile {
        engine,
        payload: payload.payload,
        env: payload.env,
        max_run_time: payload.max_run_time,
        artifacts: payload.artifacts,
        task_id: Some(task_id.to_string()),
        scopes: definition.scopes.clone(),
        run_id,
        features: payload.features,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definition(payload: Value) -> TaskDefinition {
        TaskDefinition::read(&json!({"expires": "2030-01-01T00:00:00.000Z", "scopes": ["a"], "payload": payload}))
            .unwrap()
    }

    fn read(payload: Value) -> Result<TaskFile, Vec<String>> {
        task_file(
            "T",
            2,
            &definition(payload),
            &["mock".into(), "native".into()],
            Some("mock"),
        )
    }

    #[test]
    fn a_good_payload_becomes_a_task_file() {
        let task = read(json!({"payload": {"x": 1}, "env": {"A": "b"}, "maxRunTime": 5})).unwrap();
        assert_eq!(task.engine, "mock");
        assert_eq!(task.task_id.as_deref(), Some("T"));
        assert_eq!((task.run_id, task.max_run_time), (2, Some(5)));
        assert_eq!(task.scopes, ["a"]);
        assert_eq!(read(json!({"engine": "native"})).unwrap().engine, "native");
    }

    #[test]
    fn each_problem_is_named() {
        let problems = |p: Value| read(p).unwrap_err().join("\n");
        assert!(problems(json!({"colour": 1})).contains("task.payload: unknown field `colour`"));
        assert!(problems(json!([])).contains("task.payload: not an object"));
        assert!(problems(json!({"env": {"A": 1}})).contains("task.payload: invalid type: integer `1`"));
        assert!(problems(json!({"engine": "qemu"})).contains("no engine \"qemu\"; it serves mock, native"));
        let env = problems(json!({"env": {"": "x", "A=B": "y", "N\u{0}L": "z", "OK": "fine"}}));
        assert_eq!(
            env.matches("cannot be an environment variable name").count(),
            3,
            "{env}"
        );
        let names = problems(json!({"artifacts": [
            {"type": "file", "path": "/a", "name": "../a"},
            {"type": "file", "path": "/a", "name": "public/logs/live.log"},
            {"type": "directory", "path": "/a", "name": "public/logs"},
            {"type": "file", "path": "/a", "name": "x"},
            {"type": "file", "path": "/b", "name": "x"},
        ]}));
        assert!(names.contains("artifacts[0].name"), "{names}");
        assert!(
            names.contains("artifacts[1].name: \"public/logs/live.log\" is the worker's own"),
            "{names}"
        );
        assert!(names.contains("artifacts[2].name"), "{names}");
        assert!(names.contains("artifacts[4].name: \"x\" is named twice"), "{names}");
        let no_default = task_file("T", 0, &definition(json!({})), &["mock".into()], None).unwrap_err();
        assert!(no_default[0].contains("task.payload.engine: required"));
    }
}
