//! The async contract: calls served while wait-for-result is pending.

use std::sync::Arc;
use std::time::Duration;

use enginehost::contract::EngineError;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_while_waiting_returns_sandbox_aborted() {
    let engine = start(&MOCK).await;
    let sandbox = started(&engine, mock_payload(60_000, "true", "")).await;
    let waiter = spawn_wait(&sandbox);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "wait-for-result must still be pending");
    sandbox.abort().await.unwrap();
    assert_eq!(waiter.await.unwrap(), Err(EngineError::SandboxAborted));
    assert_eq!(sandbox.abort().await, Err(EngineError::SandboxTerminated));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_while_waiting_gives_a_failed_result_set() {
    let engine = start(&MOCK).await;
    let sandbox = started(&engine, mock_payload(60_000, "true", "")).await;
    let waiter = spawn_wait(&sandbox);
    tokio::time::sleep(Duration::from_millis(50)).await;
    sandbox.kill().await.unwrap();
    assert_eq!(waiter.await.unwrap(), Ok(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_twice_returns_the_same_result_set() {
    let engine = start(&MOCK).await;
    let sandbox = started(&engine, mock_payload(20, "true", "")).await;
    let (a, b) = tokio::join!(sandbox.wait_for_result(), sandbox.wait_for_result());
    let c = sandbox.wait_for_result().await.unwrap();
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(Arc::ptr_eq(&a, &b) && Arc::ptr_eq(&a, &c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_after_exit_is_sandbox_terminated() {
    let engine = start(&MOCK).await;
    let sandbox = started(&engine, mock_payload(0, "false", "")).await;
    let rs = sandbox.wait_for_result().await.unwrap();
    assert_eq!(sandbox.abort().await, Err(EngineError::SandboxTerminated));
    assert!(!rs.success(), "the result stays what it was");
    assert_eq!(sandbox.kill().await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_sandboxes_run_in_parallel_in_one_engine() {
    let engine = start(&MOCK).await;
    // 100 sandboxes alive at once, each with a wait-for-result pending...
    let mut sandboxes = Vec::new();
    for _ in 0..100 {
        sandboxes.push(started(&engine, mock_payload(300_000, "true", "")).await);
    }
    let waits: Vec<_> = sandboxes.iter().map(spawn_wait).collect();
    tokio::task::yield_now().await;
    assert!(waits.iter().all(|w| !w.is_finished()), "every wait is still pending");
    // ...each answering kill while the others keep waiting.
    for (i, s) in sandboxes.iter().enumerate() {
        if i % 2 == 0 {
            s.kill().await.unwrap();
        } else {
            s.abort().await.unwrap();
        }
    }
    for (i, w) in waits.into_iter().enumerate() {
        let expected = if i % 2 == 0 {
            Ok(false)
        } else {
            Err(EngineError::SandboxAborted)
        };
        assert_eq!(w.await.unwrap(), expected, "sandbox {i}");
    }
    // And 100 whole tasks at once, each with its own log.
    let tasks = (0..100).map(|i| {
        let engine = engine.clone();
        tokio::spawn(async move {
            let function = if i % 2 == 0 { "write-log" } else { "write-error-log" };
            let (r, log) = run_payload(&engine, mock_payload(20, function, &format!("task {i}")), &[]).await;
            (i, r.unwrap().success(), log)
        })
    });
    for t in futures::future::join_all(tasks).await {
        let (i, success, log) = t.unwrap();
        assert_eq!(success, i % 2 == 0, "task {i}");
        assert_eq!(log, format!("[taskcluster] task {i}\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_live_task_cap_builders_are_refused_not_trapped() {
    // The default of limits.live-tasks: beyond it, new_sandbox_builder answers
    // max-concurrency-exceeded instead of the instance running out of handles.
    let cap = enginehost::policy::ResolvedLimits::default().live_tasks as usize;
    let engine = start(&MOCK).await;
    let log = enginehost::contract::TaskLog::temporary().unwrap();
    let ctx = || enginehost::contract::TaskContext::new(Default::default(), log.clone());
    let mut builders = Vec::with_capacity(cap);
    for _ in 0..cap {
        builders.push(
            engine
                .new_sandbox_builder(ctx(), mock_payload(0, "true", ""))
                .await
                .unwrap(),
        );
    }
    let refused = engine
        .new_sandbox_builder(ctx(), mock_payload(0, "true", ""))
        .await
        .err();
    assert_eq!(refused, Some(EngineError::MaxConcurrencyExceeded));
    // The instance is healthy: freeing one task makes room again.
    builders.pop();
    let rs = engine
        .new_sandbox_builder(ctx(), mock_payload(0, "true", ""))
        .await
        .unwrap();
    assert!(rs.start().await.unwrap().wait_for_result().await.unwrap().success());
}
