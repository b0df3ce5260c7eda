//! Per-task accounting (`[host] accounting`, docs/benchmarks.md "Per-task
//! accounting"): on an engine instance serving two tasks at once, each task is
//! charged the guest time of its own calls; a task run through the worker's stages
//! ends its log with the usage line; with accounting off nothing is reported.

use enginehost::contract::TaskLog;
use enginehost::policy::{HostSettings, ResolvedLimits};
use enginehost::runtime::{EngineOptions, Runtime};
use enginehost::worker::{Outcome, TaskFile, TaskLimits, run_task};
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_task_is_charged_its_own_guest_time() {
    let engine = crate::limits::hostile("ok", ResolvedLimits::default()).await.unwrap();
    let (busy, idle) = (context(), context());
    // Both tasks live in the one instance at once.
    let (a, b) = tokio::join!(
        started_in(&engine, busy.clone(), json!({"mode": "compute"})),
        started_in(&engine, idle.clone(), json!({"mode": "ok"})),
    );
    let (ra, rb) = tokio::join!(a.wait_for_result(), b.wait_for_result());
    ra.unwrap().dispose().await.unwrap();
    rb.unwrap().dispose().await.unwrap();
    let (busy, idle) = (busy.usage().report().unwrap(), idle.usage().report().unwrap());
    for usage in [&busy, &idle] {
        assert_eq!(usage.engine, "fixture-hostile");
        // new-sandbox-builder, start, wait-for-result, dispose.
        assert_eq!(usage.calls, 4, "{usage:?}");
        assert!(usage.wasm_ms > 0.0 && usage.host_calls_ms > 0.0, "{usage:?}");
        assert!(usage.memory_peak_bytes >= 64 << 10, "{usage:?}");
    }
    // 20 million multiply-adds against a few calls that return at once.
    assert!(
        busy.wasm_ms > 20.0 * idle.wasm_ms,
        "the computing task was charged {busy:?}, the idle one {idle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_through_the_worker_stages_ends_its_log_with_the_usage_line() {
    let engine = start(&MOCK).await;
    let task: TaskFile = serde_json::from_value(json!({
        "engine": "mock",
        "payload": {"delay": 0, "function": "write-log", "argument": "hello"},
    }))
    .unwrap();
    let log = TaskLog::temporary().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let outcome = run_task(
        engine.as_ref(),
        &task,
        &log,
        dir.path(),
        &cancel,
        &TaskLimits::default(),
    )
    .await;
    assert_eq!(outcome, Outcome::Success);
    let text = String::from_utf8(log.read_to_end().await.unwrap()).unwrap();
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("[taskcluster] usage: engine mock: wasm ")
            && last.contains(" calls into the engine, instance memory high-water "),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_accounting_off_nothing_is_reported() {
    // A work directory of its own: a second runtime on the shared one would
    // replay the shared journal and clean up the other tests' live tasks.
    let work = tempfile::tempdir().unwrap();
    let runtime = Runtime::with_host(HostSettings {
        work_dir: Some(work.path().join("work")),
        accounting: Some(false),
        ..Default::default()
    })
    .unwrap();
    let plugin = runtime.load("mock", builtin_wasm("mock")).unwrap();
    let engine: std::sync::Arc<dyn enginehost::contract::Engine> =
        runtime.start_engine(&plugin, EngineOptions::default()).await.unwrap();
    let ctx = context();
    let sandbox = started_in(&engine, ctx.clone(), mock_payload(0, "true", "")).await;
    sandbox.wait_for_result().await.unwrap().dispose().await.unwrap();
    assert_eq!(ctx.usage().report(), None);
    engine.dispose().await.unwrap();
}
