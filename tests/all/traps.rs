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

/// The host's log line when a fresh instance takes a task over.
const RESTARTED: &str = "and was restarted; the task goes on in the new instance (recovery 1 of at most 3)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_with_a_recovery_record_survives_a_trap_of_another_task() {
    let engine = start(&TRAP).await;
    let ctx = context();
    let survivor = started_in(
        &engine,
        ctx.clone(),
        json!({"mode": "recoverable", "argument": "rec-1"}),
    )
    .await;
    let plain = started(&engine, json!({"mode": "hang"})).await;
    let (survivor_wait, plain_wait) = (spawn_wait(&survivor), spawn_wait(&plain));
    tokio::task::yield_now().await;

    // A real trap (a panic) in another task's call.
    let trapping = started(&engine, json!({"mode": "trap"})).await;
    let trapped = trapping.wait_for_result().await.map(|_| ()).unwrap_err();
    assert!(matches!(trapped, EngineError::PluginFailed { .. }), "{trapped:?}");

    // The task without a record fails as before; the one with a record is taken
    // over by a fresh instance and ends with that instance's real result.
    assert_eq!(plain_wait.await.unwrap().unwrap_err(), trapped);
    assert_eq!(survivor_wait.await.unwrap(), Ok(true));
    ctx.log().close();
    let log = String::from_utf8(ctx.log().read_to_end().await.unwrap()).unwrap();
    assert!(log.contains(RESTARTED), "{log}");
    assert!(
        log.contains("fixture_trap was asked to trap"),
        "the log names the trap: {log}"
    );
    assert!(log.ends_with("[taskcluster] fixture recovered from rec-1\n"), "{log}");
    // The result is kept.
    assert!(survivor.wait_for_result().await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_the_engine_refuses_fails_the_task_cleanly() {
    let engine = start(&TRAP).await;
    let ctx = context();
    let refused = started_in(
        &engine,
        ctx.clone(),
        json!({"mode": "recoverable", "argument": "refuse"}),
    )
    .await;
    let waiting = spawn_wait(&refused);
    tokio::task::yield_now().await;
    let trapping = started(&engine, json!({"mode": "trap"})).await;
    assert!(trapping.wait_for_result().await.is_err());

    let EngineError::PluginFailed { plugin, reason } = waiting.await.unwrap().unwrap_err() else {
        panic!("expected PluginFailed")
    };
    assert_eq!(plugin, "fixture-trap");
    assert!(
        reason.contains("fixture_trap was asked to trap"),
        "the trap is named: {reason}"
    );
    assert!(
        reason.contains("the task was not recovered: recover-sandbox failed")
            && reason.contains("the fixture refuses this record"),
        "why recovery failed is named: {reason}"
    );
    // Every later call fails the same way, without another attempt.
    assert!(matches!(refused.abort().await, Err(EngineError::PluginFailed { reason: r, .. }) if r == reason));
    ctx.log().close();
    let log = String::from_utf8(ctx.log().read_to_end().await.unwrap()).unwrap();
    assert_eq!(log.matches("was restarted").count(), 1, "{log}");
    assert!(log.contains("Recovering the task failed"), "{log}");
    // The engine goes on serving.
    let (result, _) = run_payload(&engine, json!({"mode": "ok"}), &[]).await;
    assert!(result.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_the_worker_terminates_is_not_recovered() {
    let engine = start(&TRAP).await;
    let sandbox = started(&engine, json!({"mode": "recoverable", "argument": "rec"})).await;
    let waiting = spawn_wait(&sandbox);
    tokio::task::yield_now().await;
    sandbox.terminate("the task did not end when told").await;
    let EngineError::PluginFailed { reason, .. } = waiting.await.unwrap().unwrap_err() else {
        panic!("expected PluginFailed")
    };
    assert_eq!(reason, "the task did not end when told");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_for_contract_0_1_0_fails_its_tasks_on_a_trap_as_before() {
    let wasm = std::fs::read(crate::cli::root().join("tests/fixtures/contract-0.1.0/mock.wasm")).unwrap();
    let old = RUNTIME.load("mock", &wasm).unwrap();
    let engine = start(&old).await;
    let sandbox = started(&engine, mock_payload(3000, "true", "")).await;
    let waiting = spawn_wait(&sandbox);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(engine.inject_trap("an injected trap").await);
    let EngineError::PluginFailed { reason, .. } = waiting.await.unwrap().unwrap_err() else {
        panic!("expected PluginFailed")
    };
    assert_eq!(reason, "an injected trap", "no recovery is tried");
    // The current mock, under the same trap, goes on.
    let engine = start(&MOCK).await;
    let ctx = context();
    let sandbox = started_in(&engine, ctx.clone(), mock_payload(1500, "write-log", "after")).await;
    let waiting = spawn_wait(&sandbox);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(engine.inject_trap("an injected trap").await);
    assert_eq!(waiting.await.unwrap(), Ok(true));
    ctx.log().close();
    let log = String::from_utf8(ctx.log().read_to_end().await.unwrap()).unwrap();
    assert!(
        log.contains("The engine mock failed (an injected trap) and was restarted"),
        "{log}"
    );
    assert!(log.ends_with("[taskcluster] after\n"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_record_over_64_kib_is_refused() {
    let engine = start(&TRAP).await;
    let big = "x".repeat(64 * 1024 + 1);
    let builder = engine
        .new_sandbox_builder(context(), json!({"mode": "recoverable", "argument": big}))
        .await
        .unwrap();
    let refused = builder.start().await.map(|_| ()).unwrap_err();
    let EngineError::NonFatalInternalError(detail) = &refused else {
        panic!("expected the fixture's non-fatal error, got {refused:?}")
    };
    assert!(
        detail.contains("a recovery record of 65537 bytes is refused: at most 65536 bytes"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_wait_during_a_recovery_that_never_ends_do_not_hang() {
    let engine = start(&TRAP).await;
    let sandbox = started(&engine, json!({"mode": "recoverable", "argument": "hang"})).await;
    let waiting = spawn_wait(&sandbox);
    tokio::task::yield_now().await;
    let trapping = started(&engine, json!({"mode": "trap"})).await;
    assert!(trapping.wait_for_result().await.is_err());
    // The recovery is in flight (recover-sandbox never returns): the worker's
    // kill (maxRunTime) ends the task instead of waiting for it.
    let guard = std::time::Duration::from_secs(60);
    let killed = loop {
        let k = tokio::time::timeout(guard, sandbox.kill()).await.expect("kill returns");
        if matches!(&k, Err(EngineError::PluginFailed { reason, .. }) if reason.contains("killed while")) {
            break k;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let EngineError::PluginFailed { reason, .. } = killed.unwrap_err() else {
        unreachable!()
    };
    assert_eq!(reason, "the task was killed while its engine was being restarted");
    let waited = tokio::time::timeout(guard, waiting)
        .await
        .expect("the wait ends")
        .unwrap();
    assert!(matches!(waited, Err(EngineError::PluginFailed { reason: r, .. }) if r == reason));
    // The engine's other tasks go on (the hanging recover-sandbox is bounded by
    // limits.start-timeout like any start).
    let (result, _) = run_payload(&engine, json!({"mode": "ok"}), &[]).await;
    assert!(result.unwrap().success());
}
