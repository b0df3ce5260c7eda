//! Artifact rules with the real client: expiry limits, idempotent repeats and conflicts,
//! reference replacement, uploads after resolution, gzip-encoded s3 uploads, object upload checks.

use crate::common::*;
use enginehost_fake_queue::{ArtifactContent, FakeQueueOptions};
use serde_json::{Value, json};
use std::io::Write;
use taskcluster::chrono::{Duration, Utc};

fn exp(hours: i64) -> String {
    (Utc::now() + Duration::hours(hours)).to_rfc3339()
}

async fn claimed(env: &Env) -> (String, taskcluster::Queue) {
    let task_id = create_task(env, json!({})).await;
    let claim = claim_one(env).await;
    (task_id, queue_client(env, &creds_from(&claim["credentials"])))
}

async fn put(url: &str, content_type: &str, encoding: Option<&str>, body: Vec<u8>) -> u16 {
    let mut req = reqwest::Client::new().put(url).header("content-type", content_type);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    req.header("content-length", body.len().to_string())
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn expires_after_the_task_is_400() {
    let env = setup(fast_options()).await;
    let (task_id, q) = claimed(&env).await;
    let body = json!({"storageType": "s3", "expires": exp(48), "contentType": "text/plain"});
    let err = q
        .createArtifact(&task_id, "0", "public/late.txt", &body)
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 400);
    assert!(format!("{err:#}").contains("after the task expiration"), "{err:#}");
    // Fields outside the storage type's schema are refused too (object artifacts take no encoding).
    let body =
        json!({"storageType": "object", "expires": exp(1), "contentType": "text/plain", "contentEncoding": "gzip"});
    assert_eq!(
        status_of(&q.createArtifact(&task_id, "0", "public/x", &body).await.unwrap_err()),
        400
    );
    // And the schema's length limits.
    let long = "x".repeat(4097);
    let body = json!({"storageType": "error", "expires": exp(1), "reason": "file-missing-on-worker", "message": long});
    let err = q.createArtifact(&task_id, "0", "public/y", &body).await.unwrap_err();
    assert_eq!(status_of(&err), 400);
    assert!(format!("{err:#}").contains("`message` is longer than 4096"), "{err:#}");
    let body = json!({"storageType": "s3", "expires": exp(1), "contentType": "x".repeat(256)});
    assert_eq!(
        status_of(&q.createArtifact(&task_id, "0", "public/z", &body).await.unwrap_err()),
        400
    );
}

#[tokio::test]
async fn repeats_are_idempotent_and_artifacts_immutable_except_references() {
    let env = setup(fast_options()).await;
    let (task_id, q) = claimed(&env).await;
    let e = exp(1);
    let reference =
        json!({"storageType": "reference", "expires": e, "contentType": "text/plain", "url": "http://127.0.0.1:1/a"});
    q.createArtifact(&task_id, "0", "public/logs/live.log", &reference)
        .await
        .unwrap();
    q.createArtifact(&task_id, "0", "public/logs/live.log", &reference)
        .await
        .unwrap();
    let moved =
        json!({"storageType": "reference", "expires": e, "contentType": "text/plain", "url": "http://127.0.0.1:1/b"});
    q.createArtifact(&task_id, "0", "public/logs/live.log", &moved)
        .await
        .unwrap();
    let link = json!({"storageType": "link", "expires": e, "artifact": "public/logs/live_backing.log"});
    q.createArtifact(&task_id, "0", "public/logs/live.log", &link)
        .await
        .unwrap();
    assert_eq!(
        status_of(
            &q.createArtifact(&task_id, "0", "public/logs/live.log", &moved)
                .await
                .unwrap_err()
        ),
        409
    );

    let s3 = json!({"storageType": "s3", "expires": e, "contentType": "text/plain"});
    let first = q.createArtifact(&task_id, "0", "public/a.txt", &s3).await.unwrap();
    let again = q.createArtifact(&task_id, "0", "public/a.txt", &s3).await.unwrap();
    assert_eq!(first["putUrl"], again["putUrl"]);
    let longer = json!({"storageType": "s3", "expires": exp(2), "contentType": "text/plain"});
    q.createArtifact(&task_id, "0", "public/a.txt", &longer).await.unwrap();
    assert_eq!(
        status_of(&q.createArtifact(&task_id, "0", "public/a.txt", &s3).await.unwrap_err()),
        409
    );
    let other_type = json!({"storageType": "s3", "expires": exp(2), "contentType": "application/json"});
    assert_eq!(
        status_of(
            &q.createArtifact(&task_id, "0", "public/a.txt", &other_type)
                .await
                .unwrap_err()
        ),
        409
    );
    let error = json!({"storageType": "error", "expires": e, "reason": "too-large-file-on-worker", "message": "big"});
    assert_eq!(
        status_of(
            &q.createArtifact(&task_id, "0", "public/a.txt", &error)
                .await
                .unwrap_err()
        ),
        409
    );
    let bad_reason = json!({"storageType": "error", "expires": e, "reason": "oops", "message": "?"});
    assert_eq!(
        status_of(
            &q.createArtifact(&task_id, "0", "public/b.txt", &bad_reason)
                .await
                .unwrap_err()
        ),
        400
    );
}

#[tokio::test]
async fn s3_uploads_check_headers_and_keep_gzip_encoding() {
    let env = setup(fast_options()).await;
    let (task_id, q) = claimed(&env).await;
    let ct = "text/plain; charset=utf-8";
    let body = json!({"storageType": "s3", "expires": exp(1), "contentType": ct});
    let res = q
        .createArtifact(&task_id, "0", "public/logs/live_backing.log", &body)
        .await
        .unwrap();
    let url = res["putUrl"].as_str().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"line one\nline two\n").unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(put(url, "text/plain", Some("gzip"), gz.clone()).await, 400);
    assert_eq!(put(url, ct, Some("gzip"), gz.clone()).await, 200);
    assert_eq!(
        env.queue
            .artifact_bytes(&task_id, 0, "public/logs/live_backing.log")
            .unwrap(),
        b"line one\nline two\n"
    );
    let record = env.queue.artifacts(&task_id, 0).into_iter().next().unwrap();
    assert_eq!(
        (record.content_encoding.as_deref(), record.content),
        (Some("gzip"), ArtifactContent::Bytes(gz))
    );
    let served = reqwest::get(url).await.unwrap();
    assert_eq!(served.headers()["content-encoding"], "gzip");
}

#[tokio::test]
async fn uploads_after_resolution_follow_the_run_state() {
    let env = setup(fast_options()).await;
    let body = json!({"storageType": "reference", "expires": exp(1), "contentType": "text/plain", "url": "http://127.0.0.1:1/"});
    let (done, q) = claimed(&env).await;
    q.reportCompleted(&done, "0").await.unwrap();
    assert_eq!(
        status_of(&q.createArtifact(&done, "0", "public/after", &body).await.unwrap_err()),
        409
    );
    let (broke, q) = claimed(&env).await;
    q.reportException(&broke, "0", &json!({"reason": "internal-error"}))
        .await
        .unwrap();
    q.createArtifact(&broke, "0", "public/after", &body).await.unwrap();

    let options = FakeQueueOptions {
        exception_upload_grace: std::time::Duration::ZERO,
        ..fast_options()
    };
    let strict = setup(options).await;
    let (broke, q) = claimed(&strict).await;
    q.reportException(&broke, "0", &json!({"reason": "resource-unavailable"}))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(
        status_of(&q.createArtifact(&broke, "0", "public/after", &body).await.unwrap_err()),
        409
    );
}

#[tokio::test]
async fn object_uploads_are_checked_before_finish() {
    let env = setup(fast_options()).await;
    let (task_id, q) = claimed(&env).await;
    let body = json!({"storageType": "object", "expires": exp(1), "contentType": "application/octet-stream"});
    let res = q.createArtifact(&task_id, "0", "public/o.bin", &body).await.unwrap();
    let upload_id = res["uploadId"].as_str().unwrap().to_string();
    let name = res["name"].as_str().unwrap().to_string();
    // Not uploaded yet: finishArtifact refuses, the artifact is not listed.
    assert_eq!(
        status_of(
            &q.finishArtifact(&task_id, "0", "public/o.bin", &json!({"uploadId": upload_id}))
                .await
                .unwrap_err()
        ),
        400
    );
    let object = object_client(&env, &creds_from(&res["credentials"]));
    let create = json!({
        "projectId": "none", "uploadId": upload_id, "expires": res["expires"],
        "proposedUploadMethods": {"putUrl": {"contentType": "application/octet-stream", "contentLength": 3}},
    });
    let created = object.createUpload(&name, &create).await.unwrap();
    let method = &created["uploadMethod"]["putUrl"];
    assert_eq!(method["headers"]["Content-Length"], "3");
    assert_eq!(
        put(
            method["url"].as_str().unwrap(),
            "application/octet-stream",
            None,
            b"abc".to_vec()
        )
        .await,
        200
    );
    let wrong: Value = json!({"projectId": "none", "uploadId": upload_id, "hashes": {"sha256": "00"}});
    assert_eq!(status_of(&object.finishUpload(&name, &wrong).await.unwrap_err()), 400);
    // Another object name is outside the credentials' scope.
    assert_eq!(
        status_of(&object.finishUpload("t/other", &wrong).await.unwrap_err()),
        403
    );
    let hashes = json!({"sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"});
    object
        .finishUpload(
            &name,
            &json!({"projectId": "none", "uploadId": upload_id, "hashes": hashes}),
        )
        .await
        .unwrap();
    assert!(!env.queue.artifacts(&task_id, 0)[0].present);
    q.finishArtifact(&task_id, "0", "public/o.bin", &json!({"uploadId": upload_id}))
        .await
        .unwrap();
    assert!(env.queue.artifacts(&task_id, 0)[0].present);
    assert_eq!(env.queue.artifact_bytes(&task_id, 0, "public/o.bin").unwrap(), b"abc");
    let info = queue_client(&env, &env.admin)
        .artifactInfo(&task_id, "0", "public/o.bin")
        .await
        .unwrap();
    assert_eq!(
        (info["storageType"].as_str(), info["contentType"].as_str()),
        (Some("object"), Some("application/octet-stream"))
    );
}
