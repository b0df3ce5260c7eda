//! generic-worker's posix payload (`multiuser_posix.json`) on the native engine:
//! `command` (a list of argv lists) becomes the native engine's `commands`, run in
//! turn in one home and stopping at the first that fails, as generic-worker does;
//! `env`, `maxRunTime` and `artifacts` (a missing `name` is the `path`) mean what
//! they mean there; `logs` names the two logs and `features.liveLog: false` turns
//! the live one off; file mounts and read-only directories (from a URL, or an
//! artifact of a task or an indexed task; a private one with generic-worker's
//! scope, through a URL the worker signs with the run's credentials) become the
//! native engine's `mounts`; writable directory caches (with generic-worker's scope
//! `generic-worker:cache:<name>`) the worker's caches, mounted as native volumes
//! in the task's home, and `onExitStatus.purgeCaches` deletes them; `osGroups`
//! (with generic-worker's scope for each) the native engine's `groups`, each
//! granted by the operator. What enginehost does not do (the other features,
//! `supersederUrl`) is refused by name.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{GENERIC_WORKER, GENERIC_WORKER_MOUNTS, Plan, PrivateArtifact, first_checks, log_name_problems};
use crate::contract::scopes_cover;
use crate::worker::artifacts::ArtifactSpec;
use crate::worker::taskcluster::payload::{LogNames, TaskDefinition, artifact_problems};

/// The fields of the payload that map onto a task file (the schema checked them).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    command: Vec<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    max_run_time: u64,
    #[serde(default)]
    artifacts: Vec<Artifact>,
    #[serde(default)]
    logs: Logs,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Artifact {
    #[serde(rename = "type")]
    kind: Value,
    path: String,
    name: Option<String>,
    expires: Option<String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    #[serde(default)]
    optional: bool,
}

#[derive(Deserialize, Default)]
struct Logs {
    live: Option<String>,
    backing: Option<String>,
}

/// Why each generic-worker feature is refused.
fn why(feature: &str) -> String {
    let reason = match feature {
        "taskclusterProxy" => {
            "the native engine offers its tasks no proxy (docker-worker payloads on the docker engine, through d2g, have it)"
        }
        "loopbackVideo" | "loopbackAudio" => "enginehost gives tasks no loopback devices",
        "runTaskAsCurrentUser" => {
            "the native engine's config decides the task's user (engines.native createUser), not the payload"
        }
        _ => "not a feature enginehost knows",
    };
    format!("not supported: {reason}; remove it or set it to false")
}

/// The native engine's mount of `mount` with its bytes from `source` (`url` or
/// `data`, base64) and the content's `sha256`, if any.
fn native_mount(mount: &Value, source: (&str, String)) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(source.0.into(), Value::String(source.1));
    for key in ["file", "directory", "format"] {
        if let Some(v) = mount.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(digest) = mount["content"].get("sha256") {
        out.insert("sha256".into(), digest.clone());
    }
    Value::Object(out)
}

/// A writable directory cache (`{cacheName, directory}`) as `(name, directory)`:
/// the task needs generic-worker's scope `generic-worker:cache:<name>`, and the
/// directory is a path in the task's home.
fn cache_of(mount: &Value, scopes: &[String]) -> Result<(String, String), String> {
    let name = mount["cacheName"].as_str().unwrap_or_default();
    let directory = mount["directory"].as_str().unwrap_or_default();
    let scope = format!("generic-worker:cache:{name}");
    if !scopes_cover(scopes, &scope) {
        return Err(format!(
            "the task needs the scope {scope} to use the cache {name:?}; add it to the task's scopes"
        ));
    }
    let plain = !directory.is_empty()
        && !directory.starts_with('/')
        && directory
            .trim_end_matches('/')
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..");
    if !plain {
        return Err(format!(
            "directory: {directory:?} is not a path inside the task's directory; write a relative path without \
             \"..\", e.g. \".cache/pip\""
        ));
    }
    Ok((name.to_string(), directory.trim_end_matches('/').to_string()))
}

/// A file mount or read-only directory as the native engine's `mounts` entry: its
/// content's URL (a URL; an artifact of a task, or of an indexed task, through the
/// deployment's queue and index), path, format and digest; for a private artifact
/// (the task needs generic-worker's scope `queue:get-artifact:<name>`) also what
/// the worker signs its URL for, the log naming the artifact instead of the URL.
fn mount_of(mount: &Value, root_url: &str, scopes: &[String]) -> Result<(Value, Option<PrivateArtifact>), String> {
    let content = &mount["content"];
    let artifact = content["artifact"].as_str().unwrap_or_default();
    let private = |task: &str, indexed: bool| -> Result<Option<PrivateArtifact>, String> {
        if artifact.starts_with("public/") {
            return Ok(None);
        }
        let scope = format!("queue:get-artifact:{artifact}");
        if !scopes_cover(scopes, &scope) {
            return Err(format!(
                "content.artifact: {artifact:?} is not public: the task needs the scope {scope} to mount it; add \
                 it to the task's scopes"
            ));
        }
        Ok(Some(PrivateArtifact {
            task: task.to_string(),
            indexed,
            name: artifact.to_string(),
        }))
    };
    let (url, private) = if let Some(url) = content["url"].as_str() {
        (url.to_string(), None)
    } else if let Some(task) = content["taskId"].as_str() {
        (
            format!("{root_url}/api/queue/v1/task/{task}/artifacts/{artifact}"),
            private(task, false)?,
        )
    } else if let Some(namespace) = content["namespace"].as_str() {
        (
            format!("{root_url}/api/index/v1/task/{namespace}/artifacts/{artifact}"),
            private(namespace, true)?,
        )
    } else if let Some(raw) = content["raw"].as_str() {
        return Ok((native_mount(mount, ("data", STANDARD.encode(raw))), None));
    } else if let Some(data) = content["base64"].as_str() {
        if STANDARD.decode(data).is_err() {
            return Err("content.base64: not base64 (RFC 4648, with padding)".to_string());
        }
        return Ok((native_mount(mount, ("data", data.to_string())), None));
    } else {
        return Err("content: no url, taskId, namespace, raw or base64".to_string());
    };
    let mut native = native_mount(mount, ("url", url));
    if let Some(p) = &private {
        let whose = if p.indexed { "the task indexed at" } else { "task" };
        native["label"] = json!(format!("{} of {whose} {}", p.name, p.task));
    }
    Ok((native, private))
}

/// `problems` with each mount's "not valid under any of the schemas" replaced by
/// what is wrong with it as the kind of mount it looks like (a `cacheName`: a
/// cache; a `file`: a file mount; else a read-only directory).
fn precise_mounts(payload: &Value, mut problems: Vec<String>) -> Vec<String> {
    let Some(mounts) = payload.get("mounts").and_then(Value::as_array) else {
        return problems;
    };
    for (i, mount) in mounts.iter().enumerate() {
        let at = format!("task.payload.mounts.{i}");
        let vague = |p: &String| p.starts_with(&format!("{at}: ")) && p.contains("oneOf");
        if !problems.iter().any(vague) {
            continue;
        }
        let kind = if mount.get("cacheName").is_some() {
            0
        } else if mount.get("file").is_some() {
            1
        } else {
            2
        };
        let schema = &GENERIC_WORKER_MOUNTS[kind];
        let precise = schema.problems_at(mount, &at);
        if !precise.is_empty() {
            problems.retain(|p| !vague(p));
            problems.extend(precise.into_iter().map(|p| format!("{p} (as {})", schema.name)));
        }
    }
    problems
}

/// The plan of a generic-worker payload, run on the engine `engine`, in the
/// deployment at `root_url`, for the task queue `task_queue_id`.
pub fn plan(
    definition: &TaskDefinition,
    engine: &str,
    root_url: &str,
    task_queue_id: &str,
) -> Result<Plan, Vec<String>> {
    let payload = &definition.payload;
    let mut problems = first_checks(
        payload,
        &GENERIC_WORKER,
        &[
            "liveLog",
            "backingLog",
            "resourceMonitor",
            "chainOfTrust",
            "interactive",
        ],
        &[("backingLog", "enginehost always keeps the task's log as an artifact")],
        &why,
    )
    .map_err(|p| precise_mounts(payload, p))?;
    let mut mounts = Vec::new();
    let mut private_mounts = Vec::new();
    let mut caches = Vec::new();
    if let Some(list) = payload.get("mounts").and_then(Value::as_array) {
        for (i, mount) in list.iter().enumerate() {
            let done = if mount.get("cacheName").is_some() {
                cache_of(mount, &definition.scopes).map(|c| caches.push(c))
            } else {
                mount_of(mount, root_url, &definition.scopes).map(|(m, private)| {
                    if let Some(p) = private {
                        private_mounts.push((mounts.len(), p));
                    }
                    mounts.push(m)
                })
            };
            if let Err(why) = done {
                problems.push(format!("task.payload.mounts[{i}]: {why}"));
            }
        }
    }
    // generic-worker's scope for each group; the grant is the engine's to check.
    let groups: Vec<String> = payload
        .get("osGroups")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default();
    let missing: Vec<String> = groups
        .iter()
        .map(|g| format!("generic-worker:os-group:{task_queue_id}/{g}"))
        .filter(|scope| !scopes_cover(&definition.scopes, scope))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "task.payload.osGroups: the task lacks the scope(s) {}; add them to the task's scopes",
            missing.join(", ")
        ));
    }
    let parsed: Payload = serde_json::from_value(payload.clone()).map_err(|e| vec![format!("task.payload: {e}")])?;
    let chain_of_trust = payload.pointer("/features/chainOfTrust").and_then(Value::as_bool) == Some(true);
    let live_enabled = payload.pointer("/features/liveLog").and_then(Value::as_bool) != Some(false);
    let logs = LogNames {
        live: parsed.logs.live.unwrap_or_else(|| LogNames::default().live),
        backing: parsed.logs.backing.unwrap_or_else(|| LogNames::default().backing),
        live_enabled,
    };
    problems.extend(log_name_problems(&logs, "task.payload.logs"));
    let artifacts: Vec<ArtifactSpec> = parsed
        .artifacts
        .into_iter()
        .map(|a| {
            serde_json::from_value(json!({
                "type": a.kind,
                "name": a.name.unwrap_or_else(|| a.path.clone()),
                "path": a.path,
                "expires": a.expires,
                "contentType": a.content_type,
                "contentEncoding": a.content_encoding,
                "optional": a.optional,
            }))
            .expect("the schema allows only file and directory artifacts")
        })
        .collect();
    problems.extend(artifact_problems(
        &artifacts,
        &definition.expires,
        &logs.reserved(chain_of_trust),
        &|i| format!("task.payload.artifacts[{i}]"),
    ));
    problems.extend(crate::worker::task::env_name_problems(&parsed.env));
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut env = parsed.env;
    // generic-worker's PATH unless the payload sets one.
    env.entry("PATH".into())
        .or_insert_with(|| "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into());
    let mut payload = json!({"commands": parsed.command});
    if !mounts.is_empty() {
        payload["mounts"] = json!(mounts);
    }
    if !groups.is_empty() {
        payload["groups"] = json!(groups);
    }
    let mut plan = Plan::foreign(
        engine,
        payload,
        env,
        parsed.max_run_time,
        artifacts,
        logs,
        chain_of_trust,
    );
    plan.caches = caches;
    plan.private_mounts = private_mounts;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(payload: Value) -> TaskDefinition {
        TaskDefinition::read(&json!({"expires": "2030-01-01T00:00:00.000Z", "payload": payload})).unwrap()
    }

    fn problems(payload: Value) -> String {
        plan(&definition(payload), "native", "https://tc", "p/w")
            .unwrap_err()
            .join("\n")
    }

    #[test]
    fn a_payload_maps_onto_the_native_engine() {
        let plan = plan(
            &definition(json!({
                "command": [["echo", "a"], ["/bin/sh", "-c", "exit 0"]],
                "env": {"A": "1"},
                "maxRunTime": 30,
                "artifacts": [{"type": "file", "path": "out/a.txt", "expires": "2029-01-01T00:00:00.000Z",
                               "contentType": "text/plain"}],
                "features": {"liveLog": false, "backingLog": true, "chainOfTrust": false},
                "logs": {"backing": "public/logs/whole.log"}
            })),
            "native",
            "https://tc",
            "p/w",
        )
        .unwrap();
        assert_eq!(plan.task.engine, "native");
        assert_eq!(
            plan.task.payload,
            json!({"commands": [["echo", "a"], ["/bin/sh", "-c", "exit 0"]]})
        );
        assert_eq!(plan.task.max_run_time, Some(30));
        assert_eq!(plan.task.artifacts[0].name, "out/a.txt", "name defaults to path");
        assert_eq!(plan.task.artifacts[0].content_type.as_deref(), Some("text/plain"));
        assert_eq!(
            plan.logs,
            LogNames {
                live: "public/logs/live.log".into(),
                backing: "public/logs/whole.log".into(),
                live_enabled: false
            }
        );
    }

    #[test]
    fn what_enginehost_does_not_do_is_refused_by_name() {
        let text = problems(json!({
            "command": [["true"]], "maxRunTime": 10,
            "features": {"loopbackVideo": true, "taskclusterProxy": true, "backingLog": false},
            "mounts": [{"cacheName": "c", "directory": "c"}, {"file": "f", "content": {"raw": "x"}},
                       {"file": "g", "content": {"taskId": "YPSkyme9QQWtOi_yUXJHXg", "artifact": "private/x"}}],
            "osGroups": ["docker"],
            "onExitStatus": {"retry": [5], "purgeCaches": [6]},
            "supersederUrl": "https://x/s"
        }));
        for says in [
            "task.payload.features.loopbackVideo: not supported",
            "task.payload.features.taskclusterProxy: not supported",
            "task.payload.features.backingLog: cannot be turned off",
            "task.payload.mounts[0]: the task needs the scope generic-worker:cache:c",
            "task.payload.mounts[2]: content.artifact: \"private/x\" is not public: the task needs the scope \
             queue:get-artifact:private/x",
            "task.payload.osGroups: the task lacks the scope(s) generic-worker:os-group:p/w/docker",
            "task.payload.supersederUrl",
        ] {
            assert!(text.contains(says), "{says:?} not in\n{text}");
        }
    }

    #[test]
    fn caches_become_the_workers_caches_with_their_scopes() {
        let definition = |scopes: Value, directory: &str| {
            TaskDefinition::read(&json!({
                "expires": "2030-01-01T00:00:00.000Z", "scopes": scopes,
                "payload": {"command": [["true"]], "maxRunTime": 10,
                            "mounts": [{"cacheName": "pip", "directory": directory}],
                            "onExitStatus": {"purgeCaches": [3]}}
            }))
            .unwrap()
        };
        let plan = plan(
            &definition(json!(["generic-worker:cache:p*"]), ".cache/pip/"),
            "native",
            "https://tc",
            "p/w",
        )
        .unwrap();
        assert_eq!(plan.caches, vec![("pip".to_string(), ".cache/pip".to_string())]);
        assert!(plan.task.payload.get("mounts").is_none());
        for (scopes, directory, says) in [
            (json!([]), "c", "the task needs the scope generic-worker:cache:pip"),
            (
                json!(["generic-worker:cache:pip"]),
                "../c",
                "is not a path inside the task's directory",
            ),
            (
                json!(["generic-worker:cache:pip"]),
                "/c",
                "is not a path inside the task's directory",
            ),
        ] {
            let e = super::plan(&definition(scopes, directory), "native", "https://tc", "p/w")
                .unwrap_err()
                .join("\n");
            assert!(
                e.contains(&format!("task.payload.mounts[0]: {says}")) || e.contains(says),
                "{e}"
            );
        }
    }

    #[test]
    fn mounts_become_the_native_engines_downloads() {
        let plan = plan(
            &definition(json!({
                "command": [["true"]], "maxRunTime": 5,
                "mounts": [
                    {"file": "bin/tool", "content": {"url": "https://x/tool.gz", "sha256": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}, "format": "gz"},
                    {"directory": "src", "format": "tar.gz",
                     "content": {"taskId": "YPSkyme9QQWtOi_yUXJHXg", "artifact": "public/src.tar.gz"}},
                    {"directory": "deps", "format": "zip",
                     "content": {"namespace": "proj.deps.latest", "artifact": "public/deps.zip"}},
                    {"file": "notes.txt", "content": {"raw": "hi"}},
                    {"file": "blob", "content": {"base64": "aGk="}}
                ]
            })),
            "native",
            "https://tc",
            "p/w",
        )
        .unwrap();
        assert_eq!(
            plan.task.payload["mounts"],
            json!([
                {"url": "https://x/tool.gz", "file": "bin/tool", "format": "gz", "sha256": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
                {"url": "https://tc/api/queue/v1/task/YPSkyme9QQWtOi_yUXJHXg/artifacts/public/src.tar.gz",
                 "directory": "src", "format": "tar.gz"},
                {"url": "https://tc/api/index/v1/task/proj.deps.latest/artifacts/public/deps.zip",
                 "directory": "deps", "format": "zip"},
                {"data": "aGk=", "file": "notes.txt"},
                {"data": "aGk=", "file": "blob"}
            ])
        );
    }

    #[test]
    fn private_artifacts_are_signed_by_the_worker_and_named_in_the_log() {
        let definition = TaskDefinition::read(&json!({
            "expires": "2030-01-01T00:00:00.000Z", "scopes": ["queue:get-artifact:private/*"],
            "payload": {"command": [["true"]], "maxRunTime": 5, "mounts": [
                {"file": "a", "content": {"url": "https://x/a"}},
                {"file": "key", "content": {"taskId": "YPSkyme9QQWtOi_yUXJHXg", "artifact": "private/key"}},
                {"file": "deps", "content": {"namespace": "proj.deps", "artifact": "private/deps"}}
            ]}
        }))
        .unwrap();
        let plan = plan(&definition, "native", "https://tc", "p/w").unwrap();
        assert_eq!(
            plan.private_mounts,
            vec![
                (
                    1,
                    PrivateArtifact {
                        task: "YPSkyme9QQWtOi_yUXJHXg".into(),
                        indexed: false,
                        name: "private/key".into()
                    }
                ),
                (
                    2,
                    PrivateArtifact {
                        task: "proj.deps".into(),
                        indexed: true,
                        name: "private/deps".into()
                    }
                )
            ]
        );
        assert_eq!(
            plan.task.payload["mounts"][1]["label"],
            "private/key of task YPSkyme9QQWtOi_yUXJHXg"
        );
        assert_eq!(
            plan.task.payload["mounts"][2]["label"],
            "private/deps of the task indexed at proj.deps"
        );
    }

    #[test]
    fn the_published_schema_names_each_mistake() {
        let text = problems(json!({"command": "make", "colour": 1}));
        assert!(text.contains("task.payload.command"), "{text}");
        assert!(text.contains("maxRunTime"), "{text}");
        assert!(text.contains("colour"), "{text}");
        let text = problems(json!({"command": [["true"]], "maxRunTime": 10, "features": {"warp": true}}));
        assert!(text.contains("warp"), "{text}");
        // A mount says what is wrong with it, not only that no kind of mount fits.
        let text = problems(json!({"command": [["true"]], "maxRunTime": 10,
            "mounts": [{"directory": "src", "content": {"url": "https://x/src.tgz"}, "format": "tgz"}]}));
        assert!(
            text.contains("task.payload.mounts.0.format: \"tgz\" is not one of"),
            "{text}"
        );
        assert!(text.contains("(as a read-only directory)"), "{text}");
        assert!(!text.contains("oneOf"), "{text}");
    }
}
