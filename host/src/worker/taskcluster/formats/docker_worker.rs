//! docker-worker's payload on the docker engine, field by field as d2g reads it:
//! `image` (a name, or `{type: "docker-image", name}`), `command`, `env`,
//! `maxRunTime`, `artifacts` (a map from name to `{type, path, expires}`, paths in
//! the container), `capabilities.privileged`, `log` (the live log's name; the backing
//! log's is derived as docker-worker derives it), `features.localLiveLog`,
//! `chainOfTrust`, `interactive` and `taskclusterProxy`, `cache` (the worker's
//! caches, with the cache scope) and `onExitStatus`. What enginehost does not do
//! (images from a task or the index, devices, the other features, `supersederUrl`)
//! is refused by name.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Plan, Published, backing_name, first_checks, log_name_problems};
use crate::contract::scopes_cover;
use crate::worker::artifacts::ArtifactSpec;
use crate::worker::taskcluster::payload::{LogNames, TaskDefinition, artifact_problems};

/// Whether a payload is docker-worker's (it has an `image`; generic-worker's has none).
pub fn is_docker_payload(payload: &Value) -> bool {
    payload.get("image").is_some()
}

/// The fields that map onto a task file (the schema checked them).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    max_run_time: u64,
    #[serde(default)]
    artifacts: BTreeMap<String, Artifact>,
    log: Option<String>,
}

#[derive(Deserialize)]
struct Artifact {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    expires: Option<String>,
}

fn why(feature: &str) -> String {
    let reason = match feature {
        "allowPtrace" => "the docker engine does not change the container's seccomp profile",
        "artifacts" | "bulkLog" => "enginehost uploads the artifacts and the log its own way",
        "dind" | "dockerSave" | "balrogVPNProxy" | "relengAPIProxy" => "it is gone from docker-worker's successors too",
        "loopbackVideo" | "loopbackAudio" => "the docker engine gives containers no loopback devices",
        _ => "not a feature enginehost knows",
    };
    format!("not supported: {reason}; remove it or set it to false")
}

/// The image's name, or why it cannot be had.
fn image(payload: &Value) -> Result<String, String> {
    match &payload["image"] {
        Value::String(name) => Ok(name.clone()),
        image => match image["type"].as_str() {
            Some("docker-image") => Ok(image["name"].as_str().unwrap_or_default().to_string()),
            Some(kind) => Err(format!(
                "task.payload.image.type: {kind:?} is not supported by enginehost yet: an image archive from a \
                 task's artifact or the index names its own tags, and loading it would replace images other tasks \
                 on this worker use; push the image to a registry and name it, e.g. \"debian:12\" or \
                 {{\"type\": \"docker-image\", \"name\": \"registry.example/img@sha256:...\"}}"
            )),
            None => Err("task.payload.image: not an image name".into()),
        },
    }
}

/// The caches of `payload.cache` (`{name: mountpoint}`), each needing the task's
/// scope `<cache_scope><name>`; mountpoints end in `/` (the docker engine's rule).
fn caches(payload: &Value, scopes: &[String], cache_scope: &str, problems: &mut Vec<String>) -> Vec<(String, String)> {
    let mut caches = Vec::new();
    for (name, mountpoint) in payload.get("cache").and_then(Value::as_object).into_iter().flatten() {
        let label = format!("task.payload.cache[{name:?}]");
        let scope = format!("{cache_scope}{name}");
        if !scopes_cover(scopes, &scope) {
            problems.push(format!("{label}: the task needs the scope {scope} to use this cache"));
            continue;
        }
        let path = mountpoint.as_str().unwrap_or_default();
        let clean = path.starts_with('/') && !path.split('/').any(|s| s == "." || s == "..") && path != "/";
        if !clean {
            problems.push(format!(
                "{label}: {mountpoint} is not an absolute path in the container without . or .. (e.g. \"/builds/cache\")"
            ));
            continue;
        }
        caches.push((name.clone(), format!("{}/", path.trim_end_matches('/'))));
    }
    caches
}

/// The plan of a docker-worker payload checked against `schema`, on `engine`; its
/// caches need scopes `<cache_scope><name>` (docker-worker's `docker-worker:cache:`,
/// d2g's `generic-worker:cache:`).
pub fn plan(
    definition: &TaskDefinition,
    engine: &str,
    schema: &Published,
    cache_scope: &str,
) -> Result<Plan, Vec<String>> {
    let payload = &definition.payload;
    let mut problems = first_checks(
        payload,
        schema,
        &["localLiveLog", "chainOfTrust", "interactive", "taskclusterProxy"],
        &[],
        &why,
    )?;
    let image = image(payload).map_err(|e| problems.push(e)).ok();
    let caches = caches(payload, &definition.scopes, cache_scope, &mut problems);
    if let Some(capabilities) = payload.get("capabilities").and_then(Value::as_object) {
        for (name, value) in capabilities {
            let asked = match value {
                Value::Bool(b) => *b,
                Value::Object(devices) => devices.values().any(|v| v != &Value::Bool(false)),
                _ => true,
            };
            if name != "privileged" && asked {
                problems.push(format!(
                    "task.payload.capabilities.{name}: not supported by the docker engine; remove it"
                ));
            }
        }
    }
    let parsed: Payload = serde_json::from_value(payload.clone()).map_err(|e| vec![format!("task.payload: {e}")])?;
    if parsed.command.is_empty() {
        problems.push(
            "task.payload.command: required by enginehost's docker engine (it does not run the image's default \
             command); give the command, e.g. [\"/bin/bash\", \"-c\", \"make test\"]"
                .to_string(),
        );
    }
    let chain_of_trust = payload.pointer("/features/chainOfTrust").and_then(Value::as_bool) == Some(true);
    let live = parsed.log.unwrap_or_else(|| LogNames::default().live);
    let logs = LogNames {
        backing: backing_name(&live),
        live,
        live_enabled: payload.pointer("/features/localLiveLog").and_then(Value::as_bool) != Some(false),
    };
    problems.extend(log_name_problems(&logs, "task.payload.log"));
    let mut artifacts = Vec::new();
    let mut labels = Vec::new();
    for (name, artifact) in &parsed.artifacts {
        let label = format!("task.payload.artifacts[{name:?}]");
        if !matches!(artifact.kind.as_str(), "file" | "directory") {
            problems.push(format!(
                "{label}.type: {:?} is not supported by enginehost (it extracts \"file\" and \"directory\" \
                 artifacts from the container)",
                artifact.kind
            ));
            continue;
        }
        let spec: ArtifactSpec = serde_json::from_value(json!({
            "type": artifact.kind, "path": artifact.path, "name": name, "expires": artifact.expires,
        }))
        .expect("file or directory");
        artifacts.push(spec);
        labels.push(label);
    }
    problems.extend(artifact_problems(
        &artifacts,
        &definition.expires,
        &logs.reserved(chain_of_trust),
        &|i| labels[i].clone(),
    ));
    problems.extend(crate::worker::task::env_name_problems(&parsed.env));
    let privileged = payload.pointer("/capabilities/privileged").and_then(Value::as_bool) == Some(true);
    match image {
        Some(image) if problems.is_empty() => {
            let mut plan = Plan::foreign(
                engine,
                json!({"image": image, "command": parsed.command, "privileged": privileged}),
                parsed.env,
                parsed.max_run_time,
                artifacts,
                logs,
                chain_of_trust,
            );
            plan.caches = caches;
            Ok(plan)
        }
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::super::DOCKER_WORKER;
    use super::*;

    fn definition(payload: Value) -> TaskDefinition {
        TaskDefinition::read(&json!({"expires": "2030-01-01T00:00:00.000Z", "payload": payload})).unwrap()
    }

    #[test]
    fn a_payload_maps_onto_the_docker_engine() {
        let plan = plan(
            &definition(json!({
                "image": {"type": "docker-image", "name": "debian:12"},
                "command": ["/bin/bash", "-c", "echo hi > /out.txt"],
                "env": {"A": "1"},
                "maxRunTime": 60,
                "artifacts": {"public/out.txt": {"type": "file", "path": "/out.txt"}},
                "capabilities": {"privileged": false, "devices": {"kvm": false}},
                "features": {"localLiveLog": false},
                "log": "public/logs/task.log.txt"
            })),
            "docker",
            &DOCKER_WORKER,
            "docker-worker:cache:",
        )
        .unwrap();
        assert_eq!(
            plan.task.payload,
            json!({"image": "debian:12", "command": ["/bin/bash", "-c", "echo hi > /out.txt"], "privileged": false})
        );
        assert_eq!(plan.task.artifacts[0].name, "public/out.txt");
        assert_eq!(plan.task.artifacts[0].path, "/out.txt");
        assert_eq!(plan.logs.backing, "public/logs/task.log_backing.txt");
        assert!(!plan.logs.live_enabled);
    }

    #[test]
    fn what_enginehost_does_not_do_is_refused_by_name() {
        let text = plan(
            &definition(json!({
                "image": {"type": "indexed-image", "namespace": "a.b", "path": "public/image.tar.zst"},
                "maxRunTime": 60,
                "cache": {"level-3-checkouts": "/builds/worker/checkouts"},
                "capabilities": {"devices": {"kvm": true}, "disableSeccomp": true},
                "features": {"allowPtrace": true},
                "artifacts": {"public/v": {"type": "volume", "path": "/v"}},
                "onExitStatus": {"retry": [1]}
            })),
            "docker",
            &DOCKER_WORKER,
            "docker-worker:cache:",
        )
        .unwrap_err()
        .join("\n");
        for says in [
            "task.payload.image.type: \"indexed-image\"",
            "task.payload.cache[\"level-3-checkouts\"]: the task needs the scope docker-worker:cache:level-3-checkouts",
            "task.payload.capabilities.devices",
            "task.payload.capabilities.disableSeccomp",
            "task.payload.features.allowPtrace",
            "task.payload.artifacts[\"public/v\"].type",
            "task.payload.command: required",
        ] {
            assert!(text.contains(says), "{says:?} not in\n{text}");
        }
    }
}
