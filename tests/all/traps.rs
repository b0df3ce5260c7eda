//! A trap poisons the instance: every call in flight fails with an error naming
//! the plugin and the trap, and the next use gets a fresh instance.

use enginehost::contract::EngineError;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_fails_in_flight_calls_and_the_engine_recovers() {
    let engine = start(&TRAP).await;
    // A sandbox whose wait is in flight when another call traps.
    let hanging = started(&engine, json!({"mode": "hang"})).await;
    let in_flight = spawn_wait(&hanging);
    tokio::task::yield_now().await;

    let trapping = started(&engine, json!({"mode": "trap"})).await;
    let trapped = trapping.wait_for_result().await.map(|_| ()).unwrap_err();
    let EngineError::PluginFailed { plugin, reason } = &trapped else {
        panic!("expected PluginFailed, got {trapped:?}")
    };
    assert_eq!(plugin, "fixture-trap");
    assert!(reason.contains("unreachable"), "the trap is named: {reason}");
    assert!(
        reason.contains("fixture_trap was asked to trap"),
        "the guest's panic message is included: {reason}"
    );
    assert!(
        trapped.to_string().starts_with("engine plugin 'fixture-trap' failed: "),
        "{trapped}"
    );

    let other = in_flight.await.unwrap().unwrap_err();
    assert_eq!(other, trapped, "the in-flight call fails with the same error");
    // Handles of the dead instance keep failing the same way.
    assert_eq!(hanging.abort().await.unwrap_err(), trapped);

    // The next task gets a fresh instance and succeeds.
    let (result, log) = run_payload(&engine, json!({"mode": "ok"}), &[]).await;
    assert!(result.unwrap().success());
    assert_eq!(log, "[taskcluster] fixture ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_in_one_engine_leaves_other_engines_running() {
    let mock = start(&MOCK).await;
    let trap = start(&TRAP).await;
    let long = started(&mock, mock_payload(200, "true", "")).await;
    let s = started(&trap, json!({"mode": "trap"})).await;
    assert!(s.wait_for_result().await.is_err());
    assert!(long.wait_for_result().await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_log_bytes_stream_into_the_task_log() {
    let engine = start(&TRAP).await;
    let (result, log) = run_payload(&engine, json!({"mode": "raw"}), &[]).await;
    assert!(result.unwrap().success());
    assert_eq!(log.as_bytes(), b"raw line 1\nraw line 2\n".repeat(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_sees_task_cancellation() {
    let engine = start(&TRAP).await;
    let ctx = context();
    let sandbox = started_in(&engine, ctx.clone(), json!({"mode": "cancel"})).await;
    let waiter = spawn_wait(&sandbox);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "the engine waits for cancellation");
    ctx.cancel();
    assert_eq!(waiter.await.unwrap(), Ok(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_lost_with_a_trapped_instance_is_never_handed_out_again() {
    use enginehost::worker::caches::Caches;
    let engine = crate::caps::with_grants(&crate::caps::CAPS, "").await;
    let caches = std::sync::Arc::new(Caches::default());
    let wanted = vec![("c".to_string(), "/c/".to_string())];
    let held = caches.take(engine.as_ref(), "caps", &wanted).await.unwrap();
    assert_eq!(held.fresh, vec!["c"]);
    held.release(false).await;
    let held = caches.take(engine.as_ref(), "caps", &wanted).await.unwrap();
    assert!(held.fresh.is_empty(), "the cache is kept across tasks");
    held.release(false).await;

    let builder = engine
        .new_sandbox_builder(context(), json!({"steps": [{"op": "trap"}]}))
        .await
        .unwrap();
    let trapped = builder.start().await.map(|_| ()).unwrap_err();
    assert!(matches!(trapped, EngineError::PluginFailed { .. }), "{trapped:?}");
    let held = caches.take(engine.as_ref(), "caps", &wanted).await.unwrap();
    assert_eq!(held.fresh, vec!["c"], "a new cache, not the one of the dead instance");
    held.release(true).await;
}
