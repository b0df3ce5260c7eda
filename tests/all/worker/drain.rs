//! Two worker processes on one task queue drain a batch: each task claimed and
//! resolved exactly once, with the state its payload calls for, its log uploaded.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_drain_a_batch_each_task_resolved_once() {
    let fake = fake(Duration::from_secs(60)).await;
    let mut w1 = WorkerProcess::start(&fake, Config::new("w1").worker("capacity = 2"));
    let mut w2 = WorkerProcess::start(&fake, Config::new("w2").worker("capacity = 2"));
    // Both are polling before any task exists.
    wait_for("both workers to poll", Duration::from_secs(60), &[&w1, &w2], || {
        let polled: BTreeSet<String> = fake
            .request_log()
            .into_iter()
            .filter(|r| r.path.contains("/claim-work/") && r.status == 200)
            .filter_map(|r| r.client_id)
            .collect();
        polled.contains("worker/w1") && polled.contains("worker/w2")
    })
    .await;

    // Four slow tasks first: with a capacity of 2 each, both workers must take some.
    let mut expected = Vec::new();
    for i in 0..4 {
        let task = create(&fake, TASK_QUEUE, mock(1500, "write-log", &format!("slow {i}")), |_| {});
        expected.push((task, "completed", "completed", format!("slow {i}")));
    }
    for i in 0..3 {
        let task = create(&fake, TASK_QUEUE, mock(0, "write-log", &format!("quick {i}")), |_| {});
        expected.push((task, "completed", "completed", format!("quick {i}")));
    }
    for i in 0..2 {
        let task = create(
            &fake,
            TASK_QUEUE,
            mock(0, "write-error-log", &format!("broken {i}")),
            |_| {},
        );
        expected.push((task, "failed", "failed", format!("broken {i}")));
    }
    let env_task = json!({
        "engine": "mock",
        "payload": {"delay": 0, "function": "print-env-var", "argument": "GREETING"},
        "env": {"GREETING": "hello from env"},
        "maxRunTime": 60
    });
    let task = create(&fake, TASK_QUEUE, env_task, |_| {});
    expected.push((task, "completed", "completed", "hello from env".into()));
    // No "engine": the worker's default engine.
    let task = create(
        &fake,
        TASK_QUEUE,
        json!({"payload": {"delay": 0, "function": "write-log", "argument": "by default"}}),
        |_| {},
    );
    expected.push((task, "completed", "completed", "by default".into()));
    let task = create(&fake, TASK_QUEUE, mock(0, "no-such-function", ""), |_| {});
    expected.push((task, "exception", "malformed-payload", "task.payload.function".into()));

    wait_for(
        "every task to be resolved",
        Duration::from_secs(120),
        &[&w1, &w2],
        || expected.iter().all(|(t, ..)| !fake.resolutions(t).is_empty()),
    )
    .await;
    let mut by_worker = BTreeSet::new();
    for (task, state, reason, says) in &expected {
        let resolution = only_resolution(&fake, task);
        assert_eq!(
            (resolution.state.as_str(), resolution.reason.as_str()),
            (*state, *reason),
            "task {task}"
        );
        let runs = fake.runs(task);
        assert_eq!(runs.len(), 1, "task {task} ran once: {runs:?}");
        by_worker.insert(runs[0].worker_id.clone().unwrap());
        // Resolved with the run's own temporary credentials.
        let claimer = runs[0].worker_id.as_deref().unwrap();
        let prefix = format!("task-client/{task}/0/on/{GROUP}/{claimer}/until/");
        assert!(resolution.client_id.starts_with(&prefix), "{}", resolution.client_id);
        let log = backing_log(&fake, task, 0);
        assert!(log.contains(says.as_str()), "task {task}: {log}");
        assert!(
            log.contains(&format!("Task {task}, run 0, claimed by worker {GROUP}/{claimer}")),
            "{log}"
        );
        assert!(
            live_log_is_linked(&fake, task, 0),
            "task {task}: {:?}",
            fake.artifacts(task, 0)
        );
        // What the task cost the engine: the log's usage line and usage.json, for
        // every task the engine ran (the malformed one never reached it).
        let usage = fake.artifact_bytes(task, 0, "public/enginehost/usage.json");
        if *state == "exception" {
            assert!(usage.is_none(), "task {task}: {:?}", fake.artifacts(task, 0));
        } else {
            let usage: serde_json::Value =
                serde_json::from_slice(&usage.unwrap_or_else(|| panic!("task {task} has no usage.json"))).unwrap();
            assert_eq!(usage["engine"], "mock", "{usage}");
            assert!(usage["calls"].as_u64().is_some_and(|c| c >= 4), "{usage}");
            assert!(usage["wasm_ms"].as_f64().is_some_and(|t| t > 0.0), "{usage}");
            assert!(
                log.lines()
                    .any(|l| l.starts_with("[taskcluster] usage: engine mock: wasm ")),
                "{log}"
            );
        }
    }
    assert_eq!(by_worker.len(), 2, "both workers resolved tasks: {by_worker:?}");
    // Never more runs at once on one worker than its capacity: at each claim, count
    // that worker's runs claimed earlier and not yet resolved.
    let runs: Vec<_> = expected.iter().map(|(t, ..)| fake.runs(t).remove(0)).collect();
    for run in &runs {
        let at = run.started.unwrap();
        let held = runs
            .iter()
            .filter(|r| r.worker_id == run.worker_id && r.started.unwrap() <= at && r.resolved.unwrap() > at)
            .count();
        assert!(held <= 2, "{held} runs at once on {:?}", run.worker_id);
    }
    // Nothing was claimed twice, nothing is left.
    let claims = fake
        .request_log()
        .into_iter()
        .filter(|r| r.path.contains("/reclaim"))
        .count();
    assert_eq!(claims, 0, "the claims were long enough");
    w1.stop().await;
    w2.stop().await;
    assert!(
        w1.run_dirs().is_empty() && w2.run_dirs().is_empty(),
        "each run's directory was removed"
    );
}
