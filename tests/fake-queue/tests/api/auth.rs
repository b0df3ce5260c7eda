//! Authentication and authorization as the real client meets them: Hawk MAC and token checks,
//! temporary credentials made by the client crate itself, `authorizedScopes`, and scope errors.

use crate::common::*;
use enginehost_fake_queue::FakeQueueOptions;
use serde_json::{Value, json};
use std::time::Duration;
use taskcluster::{ClientBuilder, Credentials, Queue};

#[tokio::test]
async fn wrong_access_token_is_401() {
    let env = setup(fast_options()).await;
    let task_id = create_task(&env, json!({})).await;
    let bad = Credentials::new("static/admin", "not-the-token");
    let err = queue_client(&env, &bad).status(&task_id).await.unwrap_err();
    assert_eq!(status_of(&err), 401);
    assert!(format!("{err:#}").contains("Hawk signature is invalid"), "{err:#}");
    let unknown = Credentials::new("nobody", "x");
    let err = queue_client(&env, &unknown).status(&task_id).await.unwrap_err();
    assert_eq!(status_of(&err), 401);
    let log = env.queue.request_log();
    assert!(
        log.iter()
            .rev()
            .take(2)
            .all(|r| r.status == 401 && r.client_id.is_none())
    );
}

#[tokio::test]
async fn current_scopes_answers_the_callers_scopes() {
    let env = setup(fast_options()).await;
    let auth = |creds: &Credentials| {
        taskcluster::Auth::new(
            ClientBuilder::new(env.queue.root_url())
                .credentials(creds.clone())
                .retry(no_retry()),
        )
        .unwrap()
    };
    let res = auth(&env.worker).currentScopes().await.unwrap();
    assert_eq!(
        res["scopes"],
        json!([
            format!("queue:claim-work:{TASK_QUEUE}"),
            format!("queue:worker-id:{WORKER_GROUP}/{WORKER_ID}")
        ])
    );
    let bad = Credentials::new("worker/wg/w1", "not-the-token");
    let err = auth(&bad).currentScopes().await.unwrap_err();
    assert_eq!(status_of(&err), 401);
}

#[tokio::test]
async fn missing_authorization_is_401_with_taskcluster_body() {
    let env = setup(fast_options()).await;
    let url = format!("{}/api/queue/v1/task/abc/status", env.queue.root_url());
    let res = reqwest::get(&url).await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], "AuthenticationFailed");
    assert!(body["message"].is_string());
    // ping needs no credentials, as in a real deployment.
    let ping = reqwest::get(format!("{}/api/queue/v1/ping", env.queue.root_url()))
        .await
        .unwrap();
    assert_eq!(ping.status().as_u16(), 200);
}

#[tokio::test]
async fn anonymous_scopes_apply_without_authorization() {
    let options = FakeQueueOptions {
        anonymous_scopes: Some(vec!["queue:status:*".into()]),
        ..fast_options()
    };
    let env = setup(options).await;
    let task_id = create_task(&env, json!({})).await;
    let anon = Queue::new(ClientBuilder::new(env.queue.root_url()).retry(no_retry())).unwrap();
    assert_eq!(anon.status(&task_id).await.unwrap()["status"]["state"], "pending");
    assert_eq!(status_of(&anon.task(&task_id).await.unwrap_err()), 403);
}

#[tokio::test]
async fn worker_credentials_cannot_resolve_and_403_names_the_scope() {
    let env = setup(fast_options()).await;
    let task_id = create_task(&env, json!({})).await;
    claim_one(&env).await;
    let err = queue_client(&env, &env.worker)
        .reportCompleted(&task_id, "0")
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 403);
    assert!(
        format!("{err:#}").contains(&format!("queue:resolve-task:{task_id}/0")),
        "{err:#}"
    );
    assert!(env.queue.resolutions(&task_id).is_empty());
}

#[tokio::test]
async fn task_credentials_are_limited_to_their_run() {
    let env = setup(fast_options()).await;
    let first = create_task(&env, json!({})).await;
    let second = create_task(&env, json!({})).await;
    let claim = claim_one(&env).await;
    assert_eq!(claim["status"]["taskId"], first.as_str());
    let task_q = queue_client(&env, &creds_from(&claim["credentials"]));
    // Neither another task nor the claim-work endpoint is covered by the task's credentials.
    assert_eq!(status_of(&task_q.reportCompleted(&second, "0").await.unwrap_err()), 403);
    let body = json!({"workerGroup": WORKER_GROUP, "workerId": WORKER_ID, "tasks": 1});
    assert_eq!(status_of(&task_q.claimWork(TASK_QUEUE, &body).await.unwrap_err()), 403);
}

#[tokio::test]
async fn client_made_temporary_credentials_are_accepted() {
    let env = setup(fast_options()).await;
    let task_id = create_task(&env, json!({})).await;
    env.queue.add_client(
        "issuer",
        "issuer-token",
        ["queue:status:*", "auth:create-client:temp/*"],
    );
    let issuer = Credentials::new("issuer", "issuer-token");
    let scopes = [format!("queue:status:{task_id}")];

    let named = issuer
        .create_named_temp_creds("temp/one", Duration::from_secs(600), &scopes)
        .unwrap();
    assert_eq!(
        queue_client(&env, &named).status(&task_id).await.unwrap()["status"]["taskId"],
        task_id.as_str()
    );
    let unnamed = issuer.create_temp_creds(Duration::from_secs(600), &scopes).unwrap();
    queue_client(&env, &unnamed).status(&task_id).await.unwrap();
    assert!(
        env.queue
            .request_log()
            .iter()
            .any(|r| r.client_id.as_deref() == Some("temp/one"))
    );

    // The temporary credentials carry only the certificate's scopes.
    assert_eq!(
        status_of(&queue_client(&env, &named).task(&task_id).await.unwrap_err()),
        403
    );
    // A tampered certificate or a name the issuer may not create fails authentication.
    let mut cert: Value = serde_json::from_str(named.certificate.as_ref().unwrap()).unwrap();
    cert["scopes"] = json!(["queue:status:*"]);
    let tampered = Credentials {
        certificate: Some(cert.to_string()),
        ..named.clone()
    };
    assert_eq!(
        status_of(&queue_client(&env, &tampered).status(&task_id).await.unwrap_err()),
        401
    );
    let other_name = issuer
        .create_named_temp_creds("other/one", Duration::from_secs(600), &scopes)
        .unwrap();
    assert_eq!(
        status_of(&queue_client(&env, &other_name).status(&task_id).await.unwrap_err()),
        401
    );
    // Scopes beyond the issuer's fail authentication too.
    let greedy = issuer
        .create_temp_creds(Duration::from_secs(600), ["queue:get-task:*"])
        .unwrap();
    assert_eq!(
        status_of(&queue_client(&env, &greedy).status(&task_id).await.unwrap_err()),
        401
    );
}

#[tokio::test]
async fn authorized_scopes_narrow_the_client() {
    let env = setup(fast_options()).await;
    let task_id = create_task(&env, json!({})).await;
    let narrow = |scopes: Vec<String>| {
        Queue::new(
            ClientBuilder::new(env.queue.root_url())
                .credentials(env.admin.clone())
                .authorized_scopes(scopes)
                .retry(no_retry()),
        )
        .unwrap()
    };
    let q = narrow(vec![format!("queue:status:{task_id}")]);
    q.status(&task_id).await.unwrap();
    assert_eq!(status_of(&q.task(&task_id).await.unwrap_err()), 403);
    // authorizedScopes beyond the client's own scopes fail authentication.
    let worker_narrow = Queue::new(
        ClientBuilder::new(env.queue.root_url())
            .credentials(env.worker.clone())
            .authorized_scopes(["*"])
            .retry(no_retry()),
    )
    .unwrap();
    assert_eq!(status_of(&worker_narrow.status(&task_id).await.unwrap_err()), 401);
}

#[tokio::test]
async fn task_credentials_expire_with_the_claim() {
    let options = FakeQueueOptions {
        claim_timeout: Duration::from_millis(1500),
        certificate_skew: Duration::ZERO,
        ..fast_options()
    };
    let env = setup(options).await;
    let task_id = create_task(&env, json!({})).await;
    let claim = claim_one(&env).await;
    let task_q = queue_client(&env, &creds_from(&claim["credentials"]));
    task_q.status(&task_id).await.unwrap_err(); // no queue:status scope: 403, but authenticated
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let err = task_q.reportCompleted(&task_id, "0").await.unwrap_err();
    assert_eq!(status_of(&err), 401, "{err:#}");
    assert!(format!("{err:#}").contains("expiry is in the past"), "{err:#}");
}

/// Send `POST <path>` with `body`, signed by hand with the admin token for `host:port`, payload
/// hash of `signed_body`, and timestamp `ts`.
async fn hand_signed(
    env: &Env,
    host_port: (&str, u16),
    signed_body: &str,
    body: &str,
    ts: std::time::SystemTime,
) -> u16 {
    let path = "/api/queue/v1/task/nope/runs/0/completed";
    let hash = hawk::PayloadHasher::hash("application/json", hawk::SHA256, signed_body).unwrap();
    let creds = hawk::Credentials {
        id: "static/admin".into(),
        key: hawk::Key::new("admin-token", hawk::SHA256).unwrap(),
    };
    let header = hawk::RequestBuilder::new("POST", host_port.0, host_port.1, path)
        .hash(&hash[..])
        .request()
        .make_header_full(&creds, ts, "nonce1")
        .unwrap();
    let res = reqwest::Client::new()
        .post(format!("{}{path}", env.queue.root_url()))
        .header("authorization", format!("Hawk {header}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    res.status().as_u16()
}

#[tokio::test]
async fn hawk_checks_host_port_payload_and_timestamp() {
    let env = setup(fast_options()).await;
    let port: u16 = env.queue.root_url().rsplit(':').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now();
    // Correctly signed: authenticated, then 404 for the unknown task.
    assert_eq!(hand_signed(&env, ("127.0.0.1", port), "{}", "{}", now).await, 404);
    assert_eq!(hand_signed(&env, ("127.0.0.1", port + 1), "{}", "{}", now).await, 401);
    assert_eq!(hand_signed(&env, ("localhost", port), "{}", "{}", now).await, 401);
    assert_eq!(
        hand_signed(&env, ("127.0.0.1", port), "{}", "{\"x\":1}", now).await,
        401
    );
    let old = now - Duration::from_secs(120);
    assert_eq!(hand_signed(&env, ("127.0.0.1", port), "{}", "{}", old).await, 401);
}
