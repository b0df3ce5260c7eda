//! The whole worker protocol with the real clients: claim, reclaim (credential swap), object
//! uploads through `taskcluster-upload` (dataInline and putUrl), the other artifact types, and
//! `reportCompleted`, then reading everything back through the API and the test API.

use crate::common::*;
use enginehost_fake_queue::ArtifactContent;
use serde_json::{Value, json};
use taskcluster::chrono::{DateTime, Duration, Utc};

fn artifact_expires() -> String {
    (Utc::now() + Duration::hours(2)).to_rfc3339()
}

/// Create an object artifact and upload `data` with taskcluster-upload, then finish it.
async fn upload_object(env: &Env, task_q: &taskcluster::Queue, ids: (&str, u32), name: &str, data: &[u8]) {
    let (task_id, run) = (ids.0, ids.1.to_string());
    let body = json!({"storageType": "object", "expires": artifact_expires(), "contentType": "text/plain"});
    let res = task_q.createArtifact(task_id, &run, name, &body).await.unwrap();
    assert_eq!(res["storageType"], "object");
    assert_eq!(res["name"], format!("t/{task_id}/{run}/{name}"));
    let creds = creds_from(&res["credentials"]);
    let cert: Value = serde_json::from_str(creds.certificate.as_ref().unwrap()).unwrap();
    assert_eq!(
        cert["scopes"],
        json!([format!("object:upload:none:t/{task_id}/{run}/{name}")])
    );
    let expires: DateTime<Utc> = res["expires"].as_str().unwrap().parse().unwrap();
    let object = object_client(env, &creds);
    let (object_name, upload_id) = (res["name"].as_str().unwrap(), res["uploadId"].as_str().unwrap());
    taskcluster_upload::upload_from_buf(
        "none",
        object_name,
        "text/plain",
        &expires,
        data,
        &no_retry(),
        &object,
        upload_id,
    )
    .await
    .unwrap();
    task_q
        .finishArtifact(task_id, &run, name, &json!({"uploadId": upload_id}))
        .await
        .unwrap();
}

#[tokio::test]
async fn claim_reclaim_upload_and_complete() {
    let env = setup(fast_options()).await;
    let task_id = create_task(&env, json!({"command": ["true"]})).await;

    let claim = claim_one(&env).await;
    assert_eq!(claim["status"]["taskId"], task_id.as_str());
    assert_eq!(claim["runId"], 0);
    assert_eq!(claim["task"]["payload"], json!({"command": ["true"]}));
    let taken_until: DateTime<Utc> = claim["takenUntil"].as_str().unwrap().parse().unwrap();
    let creds = creds_from(&claim["credentials"]);
    let prefix = format!("task-client/{task_id}/0/on/{WORKER_GROUP}/{WORKER_ID}/until/");
    assert!(creds.client_id.starts_with(&prefix), "{}", creds.client_id);
    let cert: Value = serde_json::from_str(creds.certificate.as_ref().unwrap()).unwrap();
    assert_eq!(cert["expiry"].as_i64().unwrap(), taken_until.timestamp_millis());
    assert_eq!(cert["issuer"], "static/taskcluster/queue");
    let scopes: Vec<String> = serde_json::from_value(cert["scopes"].clone()).unwrap();
    for verb in ["reclaim-task", "resolve-task", "create-artifact"] {
        assert!(scopes.contains(&format!("queue:{verb}:{task_id}/0")), "{scopes:?}");
    }

    // Reclaim with the claim's credentials; the new credentials replace them, and the old
    // certificate stays valid until its own expiry (it is self-contained, as in the real system).
    let old_q = queue_client(&env, &creds);
    let reclaim = old_q.reclaimTask(&task_id, "0").await.unwrap();
    let new_creds = creds_from(&reclaim["credentials"]);
    assert_ne!(new_creds.access_token, creds.access_token);
    let new_until: DateTime<Utc> = reclaim["takenUntil"].as_str().unwrap().parse().unwrap();
    assert!(new_until >= taken_until);
    let task_q = queue_client(&env, &new_creds);

    upload_object(
        &env,
        &task_q,
        (&task_id, 0),
        "public/small.txt",
        b"hello from a dataInline upload",
    )
    .await;
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    upload_object(&env, &task_q, (&task_id, 0), "public/big.bin", &big).await;

    let exp = artifact_expires();
    let bodies = [
        (
            "public/logs/live.log",
            json!({"storageType": "reference", "expires": exp, "contentType": "text/plain", "url": "http://127.0.0.1:1/log"}),
        ),
        (
            "public/missing.txt",
            json!({"storageType": "error", "expires": exp, "reason": "file-missing-on-worker", "message": "no such file"}),
        ),
        (
            "public/s3.txt",
            json!({"storageType": "s3", "expires": exp, "contentType": "text/plain; charset=utf-8"}),
        ),
    ];
    let mut put_url = String::new();
    for (name, body) in &bodies {
        let res = old_q.createArtifact(&task_id, "0", name, body).await.unwrap();
        assert_eq!(res["storageType"], body["storageType"]);
        if let Some(u) = res["putUrl"].as_str() {
            put_url = u.to_string();
        }
    }
    let put = reqwest::Client::new()
        .put(&put_url)
        .header("content-type", "text/plain; charset=utf-8")
        .header("content-length", "5")
        .body("s3 ok")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    // live.log becomes a link to the small object, as a worker does at the end.
    let link =
        json!({"storageType": "link", "expires": exp, "contentType": "text/plain", "artifact": "public/small.txt"});
    task_q
        .createArtifact(&task_id, "0", "public/logs/live.log", &link)
        .await
        .unwrap();

    let done = task_q.reportCompleted(&task_id, "0").await.unwrap();
    assert_eq!(done["status"]["state"], "completed");

    // Read back through the API.
    let admin_q = queue_client(&env, &env.admin);
    let list = admin_q.listArtifacts(&task_id, "0", None, Some("1000")).await.unwrap();
    let names: Vec<&str> = list["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "public/big.bin",
            "public/logs/live.log",
            "public/missing.txt",
            "public/s3.txt",
            "public/small.txt"
        ]
    );
    let content = admin_q.latestArtifact(&task_id, "public/logs/live.log").await.unwrap();
    assert_eq!(content["storageType"], "object");
    assert_eq!(content["name"], format!("t/{task_id}/0/public/small.txt"));
    // The download workaround from the protocol notes: the content's credentials, then the object
    // service by name.
    let reader = object_client(&env, &creds_from(&content["credentials"]));
    let accept = json!({"acceptDownloadMethods": {"getUrl": true, "simple": true}});
    let download = reader
        .startDownload(content["name"].as_str().unwrap(), &accept)
        .await
        .unwrap();
    assert_eq!(download["method"], "getUrl");
    let bytes = reqwest::get(download["url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"hello from a dataInline upload");
    let err = admin_q
        .getArtifact(&task_id, "0", "public/missing.txt")
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 424);
    let redirect = admin_q.getArtifact(&task_id, "0", "public/s3.txt").await.unwrap();
    let body = reqwest::get(redirect["url"].as_str().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "s3 ok");

    // And through the test API.
    let q = &env.queue;
    assert_eq!(
        q.artifact_bytes(&task_id, 0, "public/logs/live.log").unwrap(),
        b"hello from a dataInline upload"
    );
    assert_eq!(q.artifact_bytes(&task_id, 0, "public/big.bin").unwrap(), big);
    let arts = q.artifacts(&task_id, 0);
    let live = arts.iter().find(|a| a.name == "public/logs/live.log").unwrap();
    assert_eq!(live.content, ArtifactContent::Link("public/small.txt".into()));
    let missing = arts.iter().find(|a| a.name == "public/missing.txt").unwrap();
    assert!(matches!(&missing.content, ArtifactContent::Error { reason, .. } if reason == "file-missing-on-worker"));
    let resolutions = q.resolutions(&task_id);
    assert_eq!(resolutions.len(), 1);
    assert_eq!(
        (resolutions[0].state.as_str(), resolutions[0].client_id.as_str()),
        ("completed", new_creds.client_id.as_str())
    );
    let runs = q.runs(&task_id);
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].state.as_str(), runs[0].reason_resolved.as_deref()),
        ("completed", Some("completed"))
    );
    assert_eq!(runs[0].worker_id.as_deref(), Some(WORKER_ID));

    let log = q.request_log();
    let claim_req = log.iter().find(|r| r.path.contains("/claim-work/")).unwrap();
    assert_eq!((claim_req.method.as_str(), claim_req.status), ("POST", 200));
    assert_eq!(claim_req.client_id.as_deref(), Some("worker/wg/w1"));
    assert!(
        log.iter()
            .any(|r| r.path.starts_with("/api/object/v1/upload/") && r.status == 200)
    );
    assert!(
        log.iter()
            .any(|r| r.path.starts_with("/_fake/blobs/") && r.method == "PUT")
    );
}
