//! Artifacts and logs as a task's readers meet them: downloaded through the queue's
//! API with the real client, byte-identical to what the task wrote; object and s3
//! storage; error artifacts; the gzip backing log; the live log while the task runs.

use std::time::Duration;

use enginehost_fake_queue::{ArtifactContent, FakeQueue};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use taskcluster::chrono::{DateTime, Utc};
use taskcluster::{ClientBuilder, Credentials, Queue, Retry};

use super::*;

/// Writes random files (and their sha256 in the log), a small text file and a folder.
const SCRIPT: &str = r#"
[engines.script]
command = ["bash", "-ec", "cat >/dev/null; mkdir -p artifacts/dir/sub; head -c 100000 /dev/urandom >artifacts/big.bin; printf 'small\\n' >artifacts/small.txt; head -c 20000 /dev/urandom >artifacts/dir/sub/r.bin; printf 'a\\n' >artifacts/dir/a.txt; cd artifacts; sha256sum big.bin dir/sub/r.bin"]
schema = { type = "object", properties = {} }
[plugins.script.files]
sandbox = true
[plugins.script.process]
exec = ["/usr/bin/bash", "/bin/bash"]
run-as = ["worker"]
"#;

fn reader(fake: &FakeQueue) -> Queue {
    fake.add_client("reader", "reader-token", ["queue:get-artifact:*"]);
    let retry = Retry {
        retries: 0,
        ..Retry::default()
    };
    Queue::new(
        ClientBuilder::new(fake.root_url())
            .credentials(Credentials::new("reader", "reader-token"))
            .retry(retry),
    )
    .unwrap()
}

/// `getArtifact` (the 303's URL), then a GET of that URL: the bytes as served, and
/// the response's content encoding.
async fn download(queue: &Queue, task: &str, name: &str) -> (Vec<u8>, Option<String>) {
    let answer: Value = queue.getArtifact(task, "0", name).await.unwrap();
    let url = answer["url"].as_str().unwrap_or_else(|| panic!("{name}: {answer}"));
    let response = reqwest::get(url).await.unwrap();
    assert!(response.status().is_success(), "{name}: {}", response.status());
    let encoding = response
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    (response.bytes().await.unwrap().to_vec(), encoding)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
    out
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_and_the_backing_log_download_byte_identical() {
    let fake = fake(Duration::from_secs(60)).await;
    let api = reader(&fake);
    let engines = "engines = [\"mock\", \"script\"]";
    let mut workers = vec![
        WorkerProcess::start(
            &fake,
            Config::new("objects")
                .queue("proj-enginehost/objects")
                .worker(engines)
                .tables(SCRIPT),
        ),
        WorkerProcess::start(
            &fake,
            Config::new("s3")
                .queue("proj-enginehost/s3")
                .worker(engines)
                .worker("artifact-storage = \"s3\"")
                .tables(SCRIPT),
        ),
    ];
    let payload = json!({"engine": "script", "payload": {}, "maxRunTime": 120, "artifacts": [
        {"type": "file", "path": "big.bin", "name": "public/big.bin"},
        {"type": "file", "path": "small.txt", "name": "public/small.txt"},
        {"type": "directory", "path": "dir", "name": "public/dir"},
        {"type": "file", "path": "nothing.txt", "name": "public/missing.txt"},
    ]});
    // The task expires before the queue's default: artifacts must expire with it.
    let expires = Utc::now() + taskcluster::chrono::Duration::hours(3);
    let expires_text = expires.to_rfc3339_opts(taskcluster::chrono::SecondsFormat::Millis, true);
    let tasks: Vec<(String, &str)> = [("proj-enginehost/objects", "object"), ("proj-enginehost/s3", "s3")]
        .into_iter()
        .map(|(queue, storage)| {
            let task = create(&fake, queue, payload.clone(), |d| d["expires"] = json!(expires_text));
            (task, storage)
        })
        .collect();
    let refs: Vec<&WorkerProcess> = workers.iter().collect();
    wait_for("both tasks to be resolved", Duration::from_secs(120), &refs, || {
        tasks.iter().all(|(t, _)| !fake.resolutions(t).is_empty())
    })
    .await;
    let task_expires: DateTime<Utc> = expires_text.parse().unwrap();

    for (task, storage) in &tasks {
        // A missing artifact fails the task, as in `enginehost run`.
        assert_eq!(only_resolution(&fake, task).state, "failed", "{storage}");
        let log = backing_log(&fake, task, 0);
        assert!(
            log.contains("artifact 'public/missing.txt': nothing.txt was not found"),
            "{log}"
        );
        assert!(log.contains("[taskcluster] Resolving the run as failed"), "{log}");

        // The task's files, through the API, against the hashes the task printed.
        for (name, file) in [("public/big.bin", "big.bin"), ("public/dir/sub/r.bin", "dir/sub/r.bin")] {
            let (bytes, encoding) = download(&api, task, name).await;
            assert_eq!(encoding, None);
            let hash = sha256(&bytes);
            assert!(
                log.contains(&format!("{hash}  {file}")),
                "{storage} {name}: {hash} not in\n{log}"
            );
            assert_eq!(fake.artifact_bytes(task, 0, name), Some(bytes));
        }
        assert_eq!(download(&api, task, "public/small.txt").await.0, b"small\n");
        assert_eq!(download(&api, task, "public/dir/a.txt").await.0, b"a\n");

        // The missing one: an error artifact, 424 to readers.
        let error = api.getArtifact(task, "0", "public/missing.txt").await.unwrap_err();
        assert_eq!(taskcluster::err_status_code(&error).map(|s| s.as_u16()), Some(424));
        let artifacts = fake.artifacts(task, 0);
        let missing = artifacts.iter().find(|a| a.name == "public/missing.txt").unwrap();
        let ArtifactContent::Error { reason, message } = &missing.content else {
            panic!("{missing:?}")
        };
        assert_eq!(reason, "file-missing-on-worker");
        assert!(message.contains("nothing.txt was not found"), "{message}");

        // Storage, types, expiry.
        for a in &artifacts {
            assert_eq!(a.expires, task_expires, "{} expires with the task", a.name);
            assert!(a.present, "{a:?}");
        }
        let kind = |name: &str| artifacts.iter().find(|a| a.name == name).unwrap().clone();
        for name in [
            "public/big.bin",
            "public/small.txt",
            "public/dir/a.txt",
            "public/dir/sub/r.bin",
        ] {
            assert_eq!(kind(name).storage_type, *storage, "{name}");
        }
        assert_eq!(kind("public/small.txt").content_type, "text/plain; charset=utf-8");
        assert_eq!(kind("public/big.bin").content_type, "application/octet-stream");

        // The backing log: gzip on the wire, the same text through live.log.
        let backing = kind("public/logs/live_backing.log");
        assert_eq!(
            (backing.storage_type.as_str(), backing.content_type.as_str()),
            ("s3", "text/plain; charset=utf-8")
        );
        assert_eq!(backing.content_encoding.as_deref(), Some("gzip"));
        let (raw, encoding) = download(&api, task, "public/logs/live_backing.log").await;
        assert_eq!(encoding.as_deref(), Some("gzip"));
        assert_eq!(gunzip(&raw), log.as_bytes());
        let (linked, _) = download(&api, task, "public/logs/live.log").await;
        assert_eq!(linked, raw);

        // Everything was uploaded before the run was resolved.
        let requests = fake.request_log();
        let this = |p: &str| p.contains(&format!("/task/{task}/runs/0/"));
        let report = requests
            .iter()
            .position(|r| this(&r.path) && r.path.ends_with("/failed"))
            .expect("reportFailed");
        let last_upload = requests
            .iter()
            .rposition(|r| this(&r.path) && r.path.contains("/artifacts/") && r.method != "GET")
            .unwrap();
        assert!(last_upload < report, "an upload came after the report");
    }
    for w in &mut workers {
        w.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_log_is_served_while_the_task_runs() {
    let fake = fake(Duration::from_secs(60)).await;
    let mut worker = WorkerProcess::start(&fake, Config::new("live"));
    // A task that would run two minutes; SIGTERM ends it.
    let task = create(&fake, TASK_QUEUE, mock(120_000, "true", ""), |_| {});
    wait_for("the live log", Duration::from_secs(60), &[&worker], || {
        executing(&fake, &task, 0)
    })
    .await;
    let live = fake
        .artifacts(&task, 0)
        .into_iter()
        .find(|a| a.name == "public/logs/live.log")
        .unwrap();
    let ArtifactContent::Reference(url) = live.content else {
        panic!("{live:?}")
    };
    assert_eq!(live.content_type, "text/plain; charset=utf-8");
    let mut response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    // The worker's first line is there while the task still sleeps.
    let first = String::from_utf8(response.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(
        first.contains(&format!("Task {task}, run 0, claimed by worker")),
        "{first}"
    );
    assert!(fake.resolutions(&task).is_empty(), "the task still runs");
    // The stream follows the log to the task's end: what the abort writes arrives.
    worker.signal(libc::SIGTERM);
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    let streamed = format!("{first}{}", String::from_utf8(rest).unwrap());
    assert!(
        streamed.contains("Task cancelled: the sandbox is being aborted"),
        "{streamed}"
    );
    assert_eq!(worker.wait(Duration::from_secs(60)).await.code(), Some(0));
    assert_eq!(only_resolution(&fake, &task).reason, "worker-shutdown");
    // What was streamed is what was uploaded (the worker's closing lines come after).
    assert!(backing_log(&fake, &task, 0).starts_with(&streamed));
    assert!(live_log_is_linked(&fake, &task, 0), "{:?}", fake.artifacts(&task, 0));
    assert!(
        reqwest::get(&url).await.is_err(),
        "the worker is gone, and its live log server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_worker_artifact_fields_are_honoured() {
    let fake = fake(Duration::from_secs(60)).await;
    let api = reader(&fake);
    let mut worker = WorkerProcess::start(
        &fake,
        Config::new("fields")
            .worker("engines = [\"mock\", \"script\"]")
            .tables(SCRIPT),
    );
    let soon = Utc::now() + taskcluster::chrono::Duration::hours(1);
    let soon_text = soon.to_rfc3339_opts(taskcluster::chrono::SecondsFormat::Millis, true);
    let payload = json!({"engine": "script", "payload": {}, "maxRunTime": 120, "artifacts": [
        {"type": "file", "path": "small.txt", "name": "public/typed.txt", "contentType": "text/x-custom",
         "expires": soon_text},
        {"type": "file", "path": "small.txt", "name": "public/zipped.txt", "contentEncoding": "gzip"},
        {"type": "file", "path": "nothing.txt", "name": "public/maybe.txt", "optional": true},
    ]});
    let task = create(&fake, TASK_QUEUE, payload, |_| {});
    wait_for("the task to be resolved", Duration::from_secs(120), &[&worker], || {
        !fake.resolutions(&task).is_empty()
    })
    .await;
    assert_eq!(
        only_resolution(&fake, &task).state,
        "completed",
        "{}",
        backing_log(&fake, &task, 0)
    );
    let artifacts = fake.artifacts(&task, 0);
    let get = |name: &str| artifacts.iter().find(|a| a.name == name).cloned();
    let typed = get("public/typed.txt").unwrap();
    assert_eq!(typed.content_type, "text/x-custom");
    assert_eq!(typed.expires, soon_text.parse::<DateTime<Utc>>().unwrap());
    let zipped = get("public/zipped.txt").unwrap();
    assert_eq!(zipped.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(zipped.content_type, "text/plain; charset=utf-8");
    let (bytes, encoding) = download(&api, &task, "public/zipped.txt").await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert_eq!(gunzip(&bytes), b"small\n");
    assert!(
        get("public/maybe.txt").is_none(),
        "an optional missing file makes no artifact"
    );

    // An expiry after the task's is the author's mistake.
    let late = json!({"engine": "script", "payload": {}, "artifacts": [
        {"type": "file", "path": "small.txt", "name": "public/late.txt", "expires": "2999-01-01T00:00:00.000Z"},
        {"type": "file", "path": "small.txt", "name": "public/odd.txt", "contentType": "not a type"},
    ]});
    let task = create(&fake, TASK_QUEUE, late, |_| {});
    wait_for("the task to be resolved", Duration::from_secs(120), &[&worker], || {
        !fake.resolutions(&task).is_empty()
    })
    .await;
    assert_eq!(only_resolution(&fake, &task).reason, "malformed-payload");
    let log = backing_log(&fake, &task, 0);
    assert!(
        log.contains("task.payload.artifacts[0].expires: 2999-01-01T00:00:00.000Z is after the task's expires"),
        "{log}"
    );
    assert!(
        log.contains("task.payload.artifacts[1].contentType: \"not a type\" is not a media type"),
        "{log}"
    );
    worker.stop().await;
}
