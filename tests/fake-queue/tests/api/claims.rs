//! Claim lifecycle with the real client: long-polling, claim expiry and retry runs, reports and
//! their 409s, exception reasons and the retries they do or do not cause.

use crate::common::*;
use enginehost_fake_queue::FakeQueueOptions;
use serde_json::json;
use std::time::{Duration, Instant};

fn claim_body(tasks: u32) -> serde_json::Value {
    json!({"workerGroup": WORKER_GROUP, "workerId": WORKER_ID, "tasks": tasks})
}

#[tokio::test]
async fn long_poll_returns_empty_after_its_timeout() {
    let env = setup(fast_options()).await;
    let start = Instant::now();
    let res = queue_client(&env, &env.worker)
        .claimWork(TASK_QUEUE, &claim_body(4))
        .await
        .unwrap();
    let waited = start.elapsed();
    assert_eq!(res, json!({"tasks": []}));
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn long_poll_wakes_when_work_arrives() {
    let options = FakeQueueOptions {
        claim_work_timeout: Duration::from_secs(10),
        ..fast_options()
    };
    let env = setup(options).await;
    let worker_q = queue_client(&env, &env.worker);
    let poll = tokio::spawn(async move { worker_q.claimWork(TASK_QUEUE, &claim_body(1)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    let task_id = enginehost_fake_queue::slugid();
    env.queue
        .create_task(&task_id, enginehost_fake_queue::task_definition(TASK_QUEUE, json!({})))
        .unwrap();
    let res = poll.await.unwrap().unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(res["tasks"][0]["status"]["taskId"], task_id.as_str());
}

#[tokio::test]
async fn claims_up_to_capacity_and_only_from_its_queue() {
    let env = setup(fast_options()).await;
    let ids = [
        create_task(&env, json!({})).await,
        create_task(&env, json!({})).await,
        create_task(&env, json!({})).await,
    ];
    let other = enginehost_fake_queue::slugid();
    env.queue
        .create_task(
            &other,
            enginehost_fake_queue::task_definition("proj-enginehost/other", json!({})),
        )
        .unwrap();
    let res = queue_client(&env, &env.worker)
        .claimWork(TASK_QUEUE, &claim_body(2))
        .await
        .unwrap();
    let claimed: Vec<&str> = res["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"]["taskId"].as_str().unwrap())
        .collect();
    assert_eq!(claimed, [ids[0].as_str(), ids[1].as_str()]);
    assert_eq!(claim_one(&env).await["status"]["taskId"], ids[2].as_str());
    assert_eq!(env.queue.runs(&other)[0].state, "pending");
}

#[tokio::test]
async fn late_reclaim_after_expiry_is_409_and_a_retry_run_exists() {
    let options = FakeQueueOptions {
        claim_timeout: Duration::from_millis(800),
        ..fast_options()
    };
    let env = setup(options).await;
    let task_id = create_task(&env, json!({})).await;
    let claim = claim_one(&env).await;
    let task_q = queue_client(&env, &creds_from(&claim["credentials"]));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // The certificate is still inside the default 5 min skew, so this reaches the queue logic.
    let err = task_q.reclaimTask(&task_id, "0").await.unwrap_err();
    assert_eq!(taskcluster::err_status_code(&err), Some(reqwest::StatusCode::CONFLICT));
    assert_eq!(
        status_of(&task_q.reportCompleted(&task_id, "0").await.unwrap_err()),
        409
    );
    let runs = env.queue.runs(&task_id);
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0].state.as_str(), runs[0].reason_resolved.as_deref()),
        ("exception", Some("claim-expired"))
    );
    assert_eq!(
        (runs[1].state.as_str(), runs[1].reason_created.as_str()),
        ("pending", "retry")
    );
    assert!(env.queue.resolutions(&task_id).is_empty());
    // The retry run is claimable as run 1.
    assert_eq!(claim_one(&env).await["runId"], 1);
}

#[tokio::test]
async fn expire_claim_hook_and_status_endpoint() {
    let env = setup(fast_options()).await;
    let task_id = create_task(&env, json!({})).await;
    claim_one(&env).await;
    assert!(env.queue.expire_claim(&task_id, 0));
    assert!(!env.queue.expire_claim(&task_id, 0));
    let status = queue_client(&env, &env.admin).status(&task_id).await.unwrap();
    assert_eq!(status["status"]["state"], "pending");
    assert_eq!(status["status"]["runs"][0]["reasonResolved"], "claim-expired");
    assert_eq!(status["status"]["retriesLeft"], 4);
}

#[tokio::test]
async fn reports_resolve_once_and_exceptions_retry_as_the_queue_does() {
    let env = setup(fast_options()).await;
    let failed = create_task(&env, json!({})).await;
    let malformed = create_task(&env, json!({})).await;
    let shutdown = create_task(&env, json!({})).await;
    let res = queue_client(&env, &env.worker)
        .claimWork(TASK_QUEUE, &claim_body(3))
        .await
        .unwrap();
    let clients: Vec<_> = res["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| queue_client(&env, &creds_from(&c["credentials"])))
        .collect();

    clients[0].reportFailed(&failed, "0").await.unwrap();
    assert_eq!(
        status_of(&clients[0].reportFailed(&failed, "0").await.unwrap_err()),
        409
    );
    assert_eq!(
        status_of(&clients[0].reportCompleted(&failed, "0").await.unwrap_err()),
        409
    );
    assert_eq!(env.queue.resolutions(&failed).len(), 1);

    let bad = clients[1]
        .reportException(&malformed, "0", &json!({"reason": "not-a-reason"}))
        .await
        .unwrap_err();
    assert_eq!(status_of(&bad), 400);
    clients[1]
        .reportException(&malformed, "0", &json!({"reason": "malformed-payload"}))
        .await
        .unwrap();
    assert_eq!(env.queue.runs(&malformed).len(), 1);

    let st = clients[2]
        .reportException(&shutdown, "0", &json!({"reason": "worker-shutdown"}))
        .await
        .unwrap();
    assert_eq!(st["status"]["state"], "pending");
    let runs = env.queue.runs(&shutdown);
    assert_eq!(
        (runs[0].reason_resolved.as_deref(), runs[1].reason_created.as_str()),
        (Some("worker-shutdown"), "retry")
    );
    let r = &env.queue.resolutions(&shutdown)[0];
    assert_eq!(
        (r.run_id, r.state.as_str(), r.reason.as_str()),
        (0, "exception", "worker-shutdown")
    );
}

#[tokio::test]
async fn create_task_is_idempotent_and_checks_the_definition() {
    let env = setup(fast_options()).await;
    let admin = queue_client(&env, &env.admin);
    let task_id = enginehost_fake_queue::slugid();
    let def = enginehost_fake_queue::task_definition(TASK_QUEUE, json!({"a": 1}));
    admin.createTask(&task_id, &def).await.unwrap();
    admin.createTask(&task_id, &def).await.unwrap();
    let mut other = def.clone();
    other["payload"] = json!({"a": 2});
    assert_eq!(status_of(&admin.createTask(&task_id, &other).await.unwrap_err()), 409);
    let task = admin.task(&task_id).await.unwrap();
    assert_eq!(
        (task["provisionerId"].as_str(), task["workerType"].as_str()),
        (Some("proj-enginehost"), Some("test-workers"))
    );
    assert_eq!(task["retries"], 5);
    let mut bad = def.clone();
    bad.as_object_mut().unwrap().remove("deadline");
    assert_eq!(
        status_of(
            &admin
                .createTask(&enginehost_fake_queue::slugid(), &bad)
                .await
                .unwrap_err()
        ),
        400
    );
    // The worker may not create tasks.
    let err = queue_client(&env, &env.worker)
        .createTask(&enginehost_fake_queue::slugid(), &def)
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 403);
    assert!(
        format!("{err:#}").contains("queue:create-task:lowest:proj-enginehost/test-workers"),
        "{err:#}"
    );
}
