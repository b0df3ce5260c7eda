//! Shared setup for the integration tests: a fake queue with an admin client and a worker client,
//! and helpers that build real `taskcluster` clients against it.

use enginehost_fake_queue::{FakeQueue, FakeQueueOptions};
use serde_json::Value;
use std::time::Duration;
use taskcluster::{ClientBuilder, Credentials, Object, Queue, Retry};

/// The task queue the tests use.
pub const TASK_QUEUE: &str = "proj-enginehost/test-workers";
/// The worker's group and id.
pub const WORKER_GROUP: &str = "wg";
pub const WORKER_ID: &str = "w1";

/// A fake queue plus the admin and worker credentials registered on it.
pub struct Env {
    pub queue: FakeQueue,
    pub admin: Credentials,
    pub worker: Credentials,
}

/// Options with test-sized timings: 1 s long-poll, 20 min claims.
pub fn fast_options() -> FakeQueueOptions {
    FakeQueueOptions {
        claim_work_timeout: Duration::from_secs(1),
        ..FakeQueueOptions::default()
    }
}

/// Start a fake with `options`, an admin client (`*`) and a worker client with exactly the two
/// scopes a worker needs.
pub async fn setup(options: FakeQueueOptions) -> Env {
    let queue = FakeQueue::start(options).await;
    queue.add_client("static/admin", "admin-token", ["*"]);
    queue.add_client(
        "worker/wg/w1",
        "worker-token",
        [
            format!("queue:claim-work:{TASK_QUEUE}"),
            format!("queue:worker-id:{WORKER_GROUP}/{WORKER_ID}"),
        ],
    );
    Env {
        queue,
        admin: Credentials::new("static/admin", "admin-token"),
        worker: Credentials::new("worker/wg/w1", "worker-token"),
    }
}

/// No retries: the tests want to see the first answer.
pub fn no_retry() -> Retry {
    Retry {
        retries: 0,
        ..Retry::default()
    }
}

/// A real `Queue` client with `creds`.
pub fn queue_client(env: &Env, creds: &Credentials) -> Queue {
    Queue::new(
        ClientBuilder::new(env.queue.root_url())
            .credentials(creds.clone())
            .retry(no_retry()),
    )
    .unwrap()
}

/// A real `Object` client with `creds`.
pub fn object_client(env: &Env, creds: &Credentials) -> Object {
    Object::new(
        ClientBuilder::new(env.queue.root_url())
            .credentials(creds.clone())
            .retry(no_retry()),
    )
    .unwrap()
}

/// Credentials from a JSON `{clientId, accessToken, certificate}` as the queue returns them.
pub fn creds_from(v: &Value) -> Credentials {
    serde_json::from_value(v.clone()).expect("credentials JSON")
}

/// Create a task through the HTTP API as the admin; returns its id.
pub async fn create_task(env: &Env, payload: Value) -> String {
    let task_id = enginehost_fake_queue::slugid();
    let def = enginehost_fake_queue::task_definition(TASK_QUEUE, payload);
    queue_client(env, &env.admin).createTask(&task_id, &def).await.unwrap();
    task_id
}

/// claimWork for one task as the worker; panics if nothing is claimed.
pub async fn claim_one(env: &Env) -> Value {
    let body = serde_json::json!({"workerGroup": WORKER_GROUP, "workerId": WORKER_ID, "tasks": 1});
    let res = queue_client(env, &env.worker)
        .claimWork(TASK_QUEUE, &body)
        .await
        .unwrap();
    let tasks = res["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "expected one claim, got {res}");
    tasks[0].clone()
}

/// The HTTP status of a client error.
pub fn status_of(err: &anyhow::Error) -> u16 {
    taskcluster::err_status_code(err)
        .map(|s| s.as_u16())
        .unwrap_or_else(|| panic!("not an HTTP error: {err:#}"))
}
