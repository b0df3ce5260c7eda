//! Payloads the worker must refuse resolve as `malformed-payload`, each explained in
//! the task's log first; engine failures as `internal-error`. `enginehost run`
//! refuses the same env names.

use std::time::Duration;

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_errors_resolve_as_malformed_payload_explained_in_the_log() {
    let fake = fake(Duration::from_secs(60)).await;
    let mut worker = WorkerProcess::start(&fake, Config::new("strict").worker("capacity = 4"));
    let cases = [
        (
            json!(["not", "an", "object"]),
            "malformed-payload",
            "task.payload: not an object",
        ),
        (
            json!({"engine": "mock", "colour": "red"}),
            "malformed-payload",
            "unknown field `colour`",
        ),
        (
            json!({"engine": "qemu"}),
            "malformed-payload",
            "this worker has no engine \"qemu\"; it serves mock",
        ),
        (
            json!({"engine": "mock", "payload": {"delay": "soon", "function": "true", "argument": ""}}),
            "malformed-payload",
            "task.payload.delay: \"soon\" is not of type \"integer\"",
        ),
        (
            json!({"engine": "mock", "payload": {"delay": 0, "function": "true", "argument": ""}, "env": {"A=B": "x"}}),
            "malformed-payload",
            "task.env: \"A=B\" cannot be an environment variable name",
        ),
        (
            json!({"engine": "mock", "payload": {"delay": 0, "function": "true", "argument": ""}, "env": {"": "x"}}),
            "malformed-payload",
            "task.env: \"\" cannot be an environment variable name",
        ),
        (
            json!({"engine": "mock", "payload": {"delay": 0, "function": "true", "argument": ""}, "env": {"N\u{0}L": "x"}}),
            "malformed-payload",
            "cannot be an environment variable name",
        ),
        (
            json!({"engine": "mock", "payload": {"delay": 0, "function": "true", "argument": ""},
                   "artifacts": [{"type": "file", "path": "/a", "name": "public/logs/live_backing.log"}]}),
            "malformed-payload",
            "is the worker's own",
        ),
        // The engine finds the payload wrong only once the task started.
        (
            mock(0, "malformed-payload-after-start", "no such image"),
            "malformed-payload",
            "no such image",
        ),
        (
            mock(0, "nonfatal-internal-error", ""),
            "internal-error",
            "Encountered a non-fatal internal error",
        ),
    ];
    let tasks: Vec<_> = cases
        .iter()
        .map(|(payload, ..)| create(&fake, TASK_QUEUE, payload.clone(), |_| {}))
        .collect();
    wait_for("every task to be resolved", Duration::from_secs(60), &[&worker], || {
        tasks.iter().all(|t| !fake.resolutions(t).is_empty())
    })
    .await;
    for (task, (payload, reason, says)) in tasks.iter().zip(&cases) {
        let resolution = only_resolution(&fake, task);
        assert_eq!(
            (resolution.state.as_str(), resolution.reason.as_str()),
            ("exception", *reason),
            "{payload}"
        );
        let log = backing_log(&fake, task, 0);
        assert!(log.contains(says), "{payload}: {says:?} not in\n{log}");
        assert!(
            log.contains(&format!("Resolving the run as exception/{reason}")),
            "{log}"
        );
        // malformed-payload and internal-error are final: no retry run.
        assert_eq!(fake.runs(task).len(), 1);
    }
    worker.stop().await;
}

#[test]
fn run_refuses_env_names_that_cannot_be_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["", "A=B", "N\u{0}L"] {
        let task = dir.path().join("task.json");
        let file = json!({
            "engine": "mock",
            "payload": {"delay": 0, "function": "print-env-var", "argument": "A"},
            "env": {name: "x"}
        });
        std::fs::write(&task, file.to_string()).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_enginehost"))
            .args(["run", task.to_str().unwrap()])
            .current_dir(dir.path())
            .env("ENGINEHOST_PLUGINS", "/nonexistent-default-plugin-dir")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{name:?}: {stdout}");
        assert!(
            stdout.contains(&format!("task.env: {name:?} cannot be an environment variable name")),
            "{name:?}: {stdout}"
        );
    }
}
