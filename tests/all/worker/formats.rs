//! `[worker] payload-format`: task definitions written for generic-worker and
//! docker-worker run unchanged through `enginehost worker` against the fake queue,
//! on the real native engine (real processes) and the real docker engine (a real
//! dockerd), and resolve as those workers would resolve them; what enginehost does
//! not do is refused by name.
//!
//! The payloads follow generic-worker's own tests in the taskcluster monorepo
//! (v106.0.0, `workers/generic-worker/artifacts_test.go`
//! `TestFileArtifactWithContentType`, `main_test.go`/`payload_test.go` for command
//! lists, failures and maxRunTime) and d2g's fixtures
//! (`tools/d2g/d2gtest/testdata/testcases/artifacts_test.yml`, `env_test.yml`),
//! with commands that build the files those tests take from their testdata.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::engines::docker::{IMAGE, dockerd, socket};

/// The native engine as the worker's user, granted what these tasks run.
const NATIVE: &str = r#"
[engines.native]
createUser = false
[plugins.native.files]
sandbox = true
[plugins.native.process]
exec = ["/bin/**", "/usr/bin/**"]
run-as = ["worker"]
"#;

/// The native engine with a user per task (root only), running what these tasks run.
const TASK_USERS: &str = r#"
[engines.native]
createUser = true
[plugins.native.process]
exec = ["/bin/**", "/usr/bin/**"]
run-as = ["task-user"]
"#;

/// A worker for generic-worker's payloads whose native engine runs each task as its
/// own user ([`TASK_USERS`] and `tables`), with its fake queue; `None` (the test
/// is skipped, and says so) without root.
async fn task_user_worker(id: &str, capacity: u32, tables: &str) -> Option<(FakeQueue, WorkerProcess)> {
    if !crate::caps::is_root() {
        eprintln!("skipped: per-task users (createUser) need root");
        return None;
    }
    let fake = fake(Duration::from_secs(60)).await;
    let worker = WorkerProcess::start(
        &fake,
        Config::new(id)
            .worker(&format!(
                "capacity = {capacity}\nengines = [\"native\"]\npayload-format = \"generic-worker\""
            ))
            .tables(&format!("{TASK_USERS}{tables}")),
    );
    Some((fake, worker))
}

fn resolved(fake: &FakeQueue, task: &str) -> (String, String) {
    let r = only_resolution(fake, task);
    (r.state, r.reason)
}

/// The log of `task`, after checking that it resolved as `state`/`reason`.
fn resolved_as(fake: &FakeQueue, task: &str, state: &str, reason: &str) -> String {
    let log = backing_log(fake, task, 0);
    assert_eq!(resolved(fake, task), (state.into(), reason.into()), "{log}");
    log
}

fn log_named(fake: &FakeQueue, task: &str, name: &str) -> String {
    String::from_utf8(
        fake.artifact_bytes(task, 0, name)
            .unwrap_or_else(|| panic!("task {task} has no {name}: {:?}", fake.artifacts(task, 0))),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_worker_payloads_run_unchanged_on_the_native_engine() {
    let fake = fake(Duration::from_secs(60)).await;
    // A signing key, but an engine whose tasks run as the worker's own user.
    let key = generic_workers_test_key();
    let mut worker = WorkerProcess::start(
        &fake,
        Config::new("gw")
            .worker(&format!(
                "capacity = 4\nengines = [\"native\"]\npayload-format = \"generic-worker\"\n\
                 chain-of-trust-key = \"{}\"",
                key.path().join("key").display()
            ))
            .tables(NATIVE),
    );
    let in_an_hour = (taskcluster::chrono::Utc::now() + taskcluster::chrono::Duration::hours(1))
        .to_rfc3339_opts(taskcluster::chrono::SecondsFormat::Millis, true);
    // Command lists, env and a file artifact with a content type
    // (TestFileArtifactWithContentType).
    let good = create(
        &fake,
        TASK_QUEUE,
        json!({
            "command": [
                ["/bin/sh", "-c", "mkdir -p SampleArtifacts/_ && printf 'test artifact\\n' > SampleArtifacts/_/X.txt"],
                ["/bin/sh", "-c", "echo \"greeting=$GREETING task=$TASK_ID run=$RUN_ID in=$PWD/ =$TASK_WORKDIR/\""],
            ],
            "env": {"GREETING": "hello from generic-worker's payload", "TASK_ID": "mine"},
            "maxRunTime": 30,
            "artifacts": [{
                "expires": in_an_hour, "path": "SampleArtifacts/_/X.txt", "type": "file",
                "name": "public/build/firefox.exe", "contentType": "application/octet-stream"
            }],
            "features": {"liveLog": true, "backingLog": true, "resourceMonitor": true}
        }),
        |_| {},
    );
    // The first failing command ends the task: the next one never runs.
    let failing = create(
        &fake,
        TASK_QUEUE,
        json!({"command": [["/bin/false"], ["/bin/sh", "-c", "echo never-printed"]], "maxRunTime": 30}),
        |_| {},
    );
    // maxRunTime: the task is killed and fails.
    let slow = create(
        &fake,
        TASK_QUEUE,
        json!({"command": [["/bin/sleep", "60"]], "maxRunTime": 1}),
        |_| {},
    );
    // The logs' names, and no live log.
    let logs = create(
        &fake,
        TASK_QUEUE,
        json!({
            "command": [["/bin/echo", "in the renamed log"]], "maxRunTime": 30,
            "features": {"liveLog": false},
            "logs": {"backing": "public/logs/whole.log"}
        }),
        |_| {},
    );
    // What enginehost does not do, each refused by name.
    let refused = create(
        &fake,
        TASK_QUEUE,
        json!({
            "command": [["/bin/true"]], "maxRunTime": 30,
            "features": {"chainOfTrust": true, "taskclusterProxy": true},
            "mounts": [{"cacheName": "gw-cache", "directory": "cache"}],
            "osGroups": ["docker"],
            "onExitStatus": {"retry": [36]}
        }),
        |_| {},
    );
    // onExitStatus.retry: a listed exit code is intermittent (the queue retries it,
    // once here), another is a failure.
    let retry = |code: u8| {
        json!({"command": [["/bin/sh", "-c", format!("exit {code}")]], "maxRunTime": 30,
                                  "onExitStatus": {"retry": [36]}})
    };
    let intermittent = create(&fake, TASK_QUEUE, retry(36), |d| d["retries"] = json!(1));
    let plain_failure = create(&fake, TASK_QUEUE, retry(1), |_| {});
    // Not generic-worker's shape at all: the published schema's words.
    let shapeless = create(&fake, TASK_QUEUE, json!({"command": "make", "maxRunTime": 30}), |_| {});
    let tasks = [&good, &failing, &slow, &logs, &refused, &shapeless, &plain_failure];
    wait_for(
        "every task to be resolved",
        Duration::from_secs(120),
        &[&worker],
        || tasks.iter().all(|t| !fake.resolutions(t).is_empty()) && fake.resolutions(&intermittent).len() == 2,
    )
    .await;
    for resolution in fake.resolutions(&intermittent) {
        assert_eq!(
            (resolution.state.as_str(), resolution.reason.as_str()),
            ("exception", "intermittent-task")
        );
    }
    let log = backing_log(&fake, &intermittent, 1);
    assert!(log.contains("Exit code 36 is in onExitStatus.retry"), "{log}");
    resolved_as(&fake, &plain_failure, "failed", "failed");

    let log = resolved_as(&fake, &good, "completed", "completed");
    assert!(log.contains("Executing command 0: /bin/sh -c mkdir"), "{log}");
    assert!(log.contains("Executing command 1: /bin/sh -c echo"), "{log}");
    assert!(log.contains("Payload format: generic-worker"), "{log}");
    assert!(log.contains("greeting=hello from generic-worker's payload"), "{log}");
    // generic-worker's own variables win over the payload's, and the log says so.
    assert!(log.contains(&format!("task={good} run=0 ")), "{log}");
    assert!(log.contains("task.payload.env.TASK_ID: the worker sets it"), "{log}");
    let line = log.lines().find(|l| l.contains("greeting=hello")).unwrap();
    let (pwd, workdir) = line.split_once(" in=").unwrap().1.split_once(" =").unwrap();
    assert_eq!(pwd, workdir, "TASK_WORKDIR is the command's directory: {line}");
    let artifact = fake
        .artifacts(&good, 0)
        .into_iter()
        .find(|a| a.name == "public/build/firefox.exe")
        .expect("the artifact");
    assert_eq!(artifact.content_type, "application/octet-stream");
    assert_eq!(
        fake.artifact_bytes(&good, 0, "public/build/firefox.exe").unwrap(),
        b"test artifact\n"
    );
    assert!(live_log_is_linked(&fake, &good, 0));

    let log = resolved_as(&fake, &failing, "failed", "failed");
    assert!(log.contains("Executing command 0: /bin/false"), "{log}");
    assert!(
        !log.contains("Executing command 1") && !log.contains("never-printed"),
        "{log}"
    );

    let log = resolved_as(&fake, &slow, "failed", "failed");
    assert!(log.contains("maxRunTime"), "{log}");

    // (its backing log has another name: not `resolved_as`)
    assert_eq!(resolved(&fake, &logs), ("completed".into(), "completed".into()));
    assert!(log_named(&fake, &logs, "public/logs/whole.log").contains("in the renamed log"));
    let names: Vec<String> = fake.artifacts(&logs, 0).into_iter().map(|a| a.name).collect();
    assert!(
        !names
            .iter()
            .any(|n| n == "public/logs/live.log" || n == "public/logs/live_backing.log"),
        "{names:?}"
    );

    let log = resolved_as(&fake, &refused, "exception", "malformed-payload");
    for field in [
        "task.payload.features.chainOfTrust: engine 'native' may run task processes as the worker's own user",
        "task.payload.features.taskclusterProxy",
        "task.payload.mounts[0]: the task needs the scope generic-worker:cache:gw-cache",
        "task.payload.osGroups",
    ] {
        assert!(log.contains(field), "{field} not in\n{log}");
    }
    let log = resolved_as(&fake, &shapeless, "exception", "malformed-payload");
    assert!(
        log.contains("task.payload.command: \"make\" is not of type \"array\""),
        "{log}"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_from_a_url_an_artifact_the_index_and_the_payload_are_in_the_home_before_the_commands() {
    // A deployment whose anonymous role reads public artifacts, as real ones do.
    let fake = FakeQueue::start(FakeQueueOptions {
        claim_work_timeout: Duration::from_secs(1),
        anonymous_scopes: Some(vec!["queue:get-artifact:public/*".into()]),
        ..FakeQueueOptions::default()
    })
    .await;
    let address = fake.root_url().trim_start_matches("http://").to_string();
    let mut worker = WorkerProcess::start(
        &fake,
        Config::new("mounts")
            .worker("engines = [\"native\"]\npayload-format = \"generic-worker\"")
            .tables(&format!(
                "{NATIVE}[plugins.native.network]\nconnect = [\"{address}\"]\n"
            )),
    );
    // The artifacts the mounts take: an archive and a compressed file.
    let producer = create(
        &fake,
        TASK_QUEUE,
        json!({
            "command": [["/bin/sh", "-c", "mkdir -p out d && echo from-the-archive > d/hello.txt && \
                tar -czf out/data.tar.gz -C d hello.txt && echo from-the-gz > out/tool && gzip out/tool && \
                echo a-private-secret > out/secret.txt"]],
            "maxRunTime": 30,
            "artifacts": [
                {"type": "file", "path": "out/data.tar.gz", "name": "public/data.tar.gz"},
                {"type": "file", "path": "out/tool.gz", "name": "public/tool.gz"},
                {"type": "file", "path": "out/secret.txt", "name": "private/secret.txt"}
            ]
        }),
        |_| {},
    );
    wait_for(
        "the producer to be resolved",
        Duration::from_secs(120),
        &[&worker],
        || !fake.resolutions(&producer).is_empty(),
    )
    .await;
    resolved_as(&fake, &producer, "completed", "completed");
    fake.index_task("proj.tests.data.latest", &producer);
    let gz = fake.artifact_bytes(&producer, 0, "public/tool.gz").unwrap();
    let digest = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&gz));
    let url = format!(
        "{}/api/queue/v1/task/{producer}/artifacts/public/tool.gz",
        fake.root_url()
    );
    let consumer = create(
        &fake,
        TASK_QUEUE,
        json!({
            "command": [["/bin/sh", "-c", "cat data/hello.txt bin/tool indexed/hello.txt raw.txt etc/b64.txt"]],
            "maxRunTime": 30,
            "mounts": [
                {"directory": "data", "format": "tar.gz",
                 "content": {"taskId": producer, "artifact": "public/data.tar.gz"}},
                {"file": "bin/tool", "format": "gz", "content": {"url": url, "sha256": digest}},
                {"directory": "indexed", "format": "tar.gz",
                 "content": {"namespace": "proj.tests.data.latest", "artifact": "public/data.tar.gz"}},
                {"file": "raw.txt", "content": {"raw": "from-raw-content\n"}},
                {"file": "etc/b64.txt", "content": {"base64": "ZnJvbS1iYXNlNjQK"}}
            ]
        }),
        |_| {},
    );
    let tampered = create(
        &fake,
        TASK_QUEUE,
        json!({
            "command": [["/bin/cat", "bin/tool"]],
            "maxRunTime": 30,
            "mounts": [{"file": "bin/tool", "format": "gz",
                        "content": {"url": url, "sha256": "0".repeat(64)}}]
        }),
        |_| {},
    );
    // A private artifact, of a task and through the index: the worker signs its URL
    // with the run's credentials, which carry the task's scope; the log names the
    // artifact, never the signed URL.
    let private = |scopes: Value| {
        create(
            &fake,
            TASK_QUEUE,
            json!({
                "command": [["/bin/cat", "secret.txt", "indexed-secret.txt"]],
                "maxRunTime": 30,
                "mounts": [
                    {"file": "secret.txt", "content": {"taskId": producer, "artifact": "private/secret.txt"}},
                    {"file": "indexed-secret.txt",
                     "content": {"namespace": "proj.tests.data.latest", "artifact": "private/secret.txt"}}
                ]
            }),
            |d| d["scopes"] = scopes,
        )
    };
    let signed = private(json!(["queue:get-artifact:private/secret.txt"]));
    let unscoped = private(json!([]));
    wait_for(
        "every task to be resolved",
        Duration::from_secs(120),
        &[&worker],
        || {
            [&consumer, &tampered, &signed, &unscoped]
                .iter()
                .all(|t| !fake.resolutions(t).is_empty())
        },
    )
    .await;
    let log = resolved_as(&fake, &signed, "completed", "completed");
    assert!(log.contains("a-private-secret\na-private-secret\n"), "{log}");
    assert!(
        !log.contains("bewit") && !log.contains("/api/queue/"),
        "no signed URL in the log: {log}"
    );
    let log = resolved_as(&fake, &unscoped, "exception", "malformed-payload");
    assert!(
        log.contains(
            "task.payload.mounts[0]: content.artifact: \"private/secret.txt\" is not public: the task needs the \
             scope queue:get-artifact:private/secret.txt"
        ),
        "{log}"
    );
    let log = resolved_as(&fake, &consumer, "completed", "completed");
    assert!(
        log.contains("from-the-archive\nfrom-the-gz\nfrom-the-archive\nfrom-raw-content\nfrom-base64\n"),
        "{log}"
    );
    let log = resolved_as(&fake, &tampered, "exception", "malformed-payload");
    assert!(log.contains("checking the sha256 of"), "{log}");
    worker.stop().await;
}

/// generic-worker's own test key (`workers/generic-worker/testdata/ed25519_private_key`,
/// taskcluster v106.0.0), in a file only its owner reads.
fn generic_workers_test_key() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, "tmURKlS2TRxNQSF5SmrZzXrTIsfmG0m60HeNPY77RIw=\n").unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    dir
}
/// Its public half (`ed25519_public_key`).
const PUBLIC_KEY: &str = "hobjtV57/8vRKhn/vzbJcGo27uNbjuhwY3Vcrhc6OQc=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_of_trust_verifies_with_the_workers_public_key() {
    if !crate::caps::is_root() {
        eprintln!("skipped: per-task users (createUser) need root");
        return;
    }
    let fake = fake(Duration::from_secs(60)).await;
    let key = generic_workers_test_key();
    let mut worker = WorkerProcess::start(
        &fake,
        Config::new("cot")
            .worker(&format!(
                "engines = [\"native\"]\npayload-format = \"generic-worker\"\nchain-of-trust-key = \"{}\"",
                key.path().join("key").display()
            ))
            .tables(
                "[engines.native]\ncreateUser = true\n[plugins.native.files]\nsandbox = true\n\
                 [plugins.native.process]\nexec = [\"/bin/**\", \"/usr/bin/**\"]\nrun-as = [\"task-user\"]\n\
                 [plugins.native.users]\ncreate = true\n",
            ),
    );
    let task = create(
        &fake,
        TASK_QUEUE,
        json!({
            "command": [["/bin/sh", "-c", "mkdir -p public && echo signed bytes > public/build.txt"]],
            "maxRunTime": 30,
            "artifacts": [{"type": "directory", "path": "public", "name": "public/build"}],
            "features": {"chainOfTrust": true}
        }),
        |_| {},
    );
    wait_for("the task to be resolved", Duration::from_secs(120), &[&worker], || {
        !fake.resolutions(&task).is_empty()
    })
    .await;
    resolved_as(&fake, &task, "completed", "completed");
    let certificate = fake
        .artifact_bytes(&task, 0, "public/chain-of-trust.json")
        .expect("the certificate");
    let signature = fake
        .artifact_bytes(&task, 0, "public/chain-of-trust.json.sig")
        .expect("the signature");
    assert_eq!(signature.len(), 64);

    // Verified by another implementation: openssl, with the public key as a PEM.
    let dir = tempfile::tempdir().unwrap();
    let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    der.extend(base64_decode(PUBLIC_KEY));
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64_encode(&der)
    );
    std::fs::write(dir.path().join("pub.pem"), pem).unwrap();
    std::fs::write(dir.path().join("cot.json"), &certificate).unwrap();
    std::fs::write(dir.path().join("cot.sig"), &signature).unwrap();
    let verify = |file: &str| {
        std::process::Command::new("openssl")
            .args([
                "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", file,
            ])
            .args(["-sigfile", "cot.sig"])
            .current_dir(dir.path())
            .output()
            .expect("openssl runs")
    };
    let out = verify("cot.json");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // One changed byte does not verify.
    let mut forged = certificate.clone();
    let at = forged.iter().position(|b| *b == b'1').unwrap();
    forged[at] = b'2';
    std::fs::write(dir.path().join("forged.json"), &forged).unwrap();
    assert!(!verify("forged.json").status.success());

    // What it states: generic-worker's fields, each artifact's sha256, the plugin.
    let cot: Value = serde_json::from_slice(&certificate).unwrap();
    assert_eq!(cot["chainOfTrustVersion"], 1);
    assert_eq!(cot["taskId"], task.as_str());
    assert_eq!(cot["runId"], 0);
    assert_eq!(
        (cot["workerGroup"].as_str(), cot["workerId"].as_str()),
        (Some(GROUP), Some("cot"))
    );
    assert_eq!(cot["task"]["payload"]["features"]["chainOfTrust"], true);
    let bytes = fake.artifact_bytes(&task, 0, "public/build/build.txt").unwrap();
    assert_eq!(bytes, b"signed bytes\n");
    let digest = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&bytes));
    assert_eq!(
        cot["artifacts"]["public/build/build.txt"]["sha256"],
        digest.as_str(),
        "{cot:#}"
    );
    assert_eq!(cot["enginehost"]["engine"], "native");
    assert_eq!(
        cot["enginehost"]["plugin"]["sha256"].as_str().map(str::len),
        Some(64),
        "{cot:#}"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn os_groups_need_generic_workers_scope_and_the_operators_grant() {
    let tables =
        "[plugins.native.files]\nsandbox = true\n[plugins.native.users]\ncreate = true\ngroups = [\"users\"]\n";
    let Some((fake, mut worker)) = task_user_worker("groups", 3, tables).await else {
        return;
    };
    let scope = |group: &str| format!("generic-worker:os-group:{TASK_QUEUE}/{group}");
    let payload = |group: &str| json!({"command": [["/usr/bin/id", "-Gn"]], "maxRunTime": 30, "osGroups": [group]});
    let joined = create(&fake, TASK_QUEUE, payload("users"), |d| {
        d["scopes"] = json!([scope("users")])
    });
    let unscoped = create(&fake, TASK_QUEUE, payload("users"), |_| {});
    let ungranted = create(&fake, TASK_QUEUE, payload("audio"), |d| {
        d["scopes"] = json!([scope("*")])
    });
    wait_for(
        "every task to be resolved",
        Duration::from_secs(120),
        &[&worker],
        || {
            [&joined, &unscoped, &ungranted]
                .iter()
                .all(|t| !fake.resolutions(t).is_empty())
        },
    )
    .await;
    let log = resolved_as(&fake, &joined, "completed", "completed");
    let ids = log.lines().find(|l| !l.starts_with('[')).unwrap_or_default();
    assert!(ids.split_whitespace().any(|g| g == "users"), "{log}");
    let log = resolved_as(&fake, &unscoped, "exception", "malformed-payload");
    assert!(
        log.contains(&format!(
            "task.payload.osGroups: the task lacks the scope(s) {}",
            scope("users")
        )),
        "{log}"
    );
    let log = resolved_as(&fake, &ungranted, "exception", "malformed-payload");
    assert!(
        log.contains("task.payload.groups: users.groups \"audio\": not granted"),
        "{log}"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_cache_is_kept_across_tasks_each_with_its_own_user_until_purged() {
    let tables = "[plugins.native.files]\nsandbox = true\nengine = true\n[plugins.native.users]\ncreate = true\n";
    let Some((fake, mut worker)) = task_user_worker("gw-caches", 1, tables).await else {
        return;
    };
    // A file of root's that a task's symlink in the cache points to: handing the
    // cache to the next task's user must not make it theirs.
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("victim");
    std::fs::write(&victim, "root's").unwrap();
    let run = |script: String, purge: bool| {
        let mut payload = json!({
            "command": [["/bin/sh", "-c", script]], "maxRunTime": 60,
            "mounts": [{"cacheName": "build-cache", "directory": "work/cache"}]
        });
        if purge {
            payload["onExitStatus"] = json!({"purgeCaches": [6]});
        }
        create(&fake, TASK_QUEUE, payload, |d| {
            d["scopes"] = json!(["generic-worker:cache:build-cache"])
        })
    };
    let mut logs = Vec::new();
    for (script, purge, state) in [
        // A new cache, the task user's; it leaves files and a symlink behind.
        (
            format!(
                "stat -c 'owner=%U' work/cache; echo \"by $USER\" > work/cache/mark && mkdir -p work/cache/a/b \
                 && echo deep > work/cache/a/b/file && ln -s {} work/cache/evil",
                victim.display()
            ),
            false,
            "completed",
        ),
        // The next task's user owns all of it and can change it.
        (
            "stat -c 'owner=%U' work/cache work/cache/a/b/file; cat work/cache/mark; \
             echo more >> work/cache/a/b/file && echo \"by $USER\" > work/cache/mark && echo changed"
                .into(),
            false,
            "completed",
        ),
        // onExitStatus.purgeCaches deletes it...
        ("cat work/cache/mark; exit 6".into(), true, "failed"),
        // ... so it is new again; this task turns it into a symlink.
        (
            "ls -A work/cache | wc -l | sed 's/^/entries=/'; rm -rf work/cache && ln -s / work/cache".into(),
            false,
            "completed",
        ),
        // The cache that came back as a symlink starts empty.
        (
            "test -d work/cache && ! test -L work/cache && ls -A work/cache | wc -l | sed 's/^/entries=/'".into(),
            false,
            "completed",
        ),
    ] {
        let task = run(script, purge);
        wait_for("a cache task", Duration::from_secs(120), &[&worker], || {
            !fake.resolutions(&task).is_empty()
        })
        .await;
        logs.push(resolved_as(&fake, &task, state, state));
    }
    let user = |log: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix("owner="))
            .unwrap_or_else(|| panic!("no owner in {log}"))
            .to_string()
    };
    assert!(logs[0].contains("Cache build-cache at work/cache: new"), "{}", logs[0]);
    let first = user(&logs[0]);
    assert!(first.starts_with("eh-"), "{}", logs[0]);
    assert!(
        logs[1].contains("Cache build-cache at work/cache: kept from an earlier task"),
        "{}",
        logs[1]
    );
    let second = user(&logs[1]);
    assert!(second.starts_with("eh-") && second != first, "{}", logs[1]);
    assert_eq!(
        logs[1]
            .lines()
            .filter(|l| l.strip_prefix("owner=") == Some(second.as_str()))
            .count(),
        2,
        "the cache and what the first task made in it are the second task's: {}",
        logs[1]
    );
    assert!(logs[1].contains(&format!("by {first}\nchanged")), "{}", logs[1]);
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(&victim).unwrap().uid(),
            0,
            "the symlink's target stays root's"
        );
    }
    assert!(logs[2].contains(&format!("by {second}")), "{}", logs[2]);
    assert!(
        logs[2].contains("Exit code 6 is in onExitStatus.purgeCaches"),
        "{}",
        logs[2]
    );
    assert!(logs[3].contains("Cache build-cache at work/cache: new"), "{}", logs[3]);
    assert!(logs[3].contains("entries=0"), "{}", logs[3]);
    assert!(
        logs[3].contains("The cache at work/cache could not be kept"),
        "{}",
        logs[3]
    );
    assert!(logs[4].contains("entries=0"), "{}", logs[4]);
    worker.stop().await;
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A worker with the docker engine for these tests' dockerd (and the native one
/// when `native`), and `extra` `[worker]` lines.
fn docker_worker(fake: &FakeQueue, id: &str, native: bool, extra: &str) -> WorkerProcess {
    let socket = socket();
    let (engines, tables) = if native {
        ("[\"native\", \"docker\"]", NATIVE)
    } else {
        ("[\"docker\"]", "")
    };
    WorkerProcess::start(
        fake,
        Config::new(id)
            .worker(&format!("engines = {engines}\n{extra}"))
            .tables(&format!(
                "[engines.docker]\ndockerSocket = \"unix://{socket}\"\nprivileged = \"never\"\n\
                 [plugins.docker.unix-sockets]\nconnect = [\"{socket}\"]\n\
                 [plugins.docker.endpoint]\nlisten = [\"172.16.0.0/12:80\", \"192.168.0.0/16:80\", \"10.0.0.0/8:80\"]\n\
                 {tables}"
            )),
    )
}

/// A docker-worker payload (d2g's `artifacts_test.yml` and `env_test.yml` shapes).
fn docker_payload(greeting: &str) -> Value {
    json!({
        "image": IMAGE,
        "command": ["/bin/sh", "-c", "mkdir -p /builds && echo \"$GREETING\" > /builds/out.txt && echo ran"],
        "env": {"GREETING": greeting},
        "maxRunTime": 60,
        "artifacts": {"public/out.txt": {"type": "file", "path": "/builds/out.txt"}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_worker_payloads_run_unchanged_on_the_docker_engine() {
    if !dockerd() {
        return;
    }
    let fake = fake(Duration::from_secs(60)).await;
    let mut worker = docker_worker(&fake, "dw", false, "capacity = 2\npayload-format = \"docker-worker\"");
    let good = create(
        &fake,
        TASK_QUEUE,
        docker_payload("hello from docker-worker's payload"),
        |_| {},
    );
    let mut cached = docker_payload("x");
    cached["cache"] = json!({"level-3-checkouts": "/builds/worker/checkouts"});
    cached["image"] = json!({"type": "task-image", "taskId": "abc", "path": "public/image.tar"});
    let cached = create(&fake, TASK_QUEUE, cached, |_| {});
    // The container's exit code meets onExitStatus.retry (no retries left: one run).
    let mut flaky = docker_payload("x");
    flaky["command"] = json!(["/bin/sh", "-c", "exit 3"]);
    flaky["onExitStatus"] = json!({"retry": [3]});
    let flaky = create(&fake, TASK_QUEUE, flaky, |d| d["retries"] = json!(0));
    // taskclusterProxy: the container calls the API without credentials of its own
    // and gets the task's scopes (the run's credentials sign its calls).
    let mut proxied = docker_payload("x");
    proxied["features"] = json!({"taskclusterProxy": true});
    proxied["command"] = json!([
        "/bin/sh",
        "-c",
        "mkdir -p /builds && \
        wget -qO /builds/scopes.json $TASKCLUSTER_PROXY_URL/auth/v1/scopes/current && \
        wget -qO /builds/task.json http://taskcluster/api/queue/v1/task/$TASK_ID && \
        wget -qO /builds/out.txt $TASKCLUSTER_PROXY_URL/queue/v1/task/$TASK_ID/artifacts/private/nothing-here \
        || echo \"the queue said no\" > /builds/out.txt"
    ]);
    proxied["artifacts"]["public/scopes.json"] = json!({"type": "file", "path": "/builds/scopes.json"});
    proxied["artifacts"]["public/task.json"] = json!({"type": "file", "path": "/builds/task.json"});
    let proxied = create(&fake, TASK_QUEUE, proxied, |d| {
        d["scopes"] = json!(["secrets:get:project/proxied", "queue:get-task:*"]);
    });
    wait_for("the tasks to be resolved", Duration::from_secs(120), &[&worker], || {
        [&good, &cached, &flaky, &proxied]
            .iter()
            .all(|t| !fake.resolutions(t).is_empty())
    })
    .await;
    resolved_as(&fake, &proxied, "completed", "completed");
    let scopes: Value =
        serde_json::from_slice(&fake.artifact_bytes(&proxied, 0, "public/scopes.json").unwrap()).unwrap();
    assert!(
        scopes["scopes"]
            .as_array()
            .unwrap()
            .contains(&json!("secrets:get:project/proxied")),
        "the proxy signs with the task's scopes: {scopes}"
    );
    let task: Value = serde_json::from_slice(&fake.artifact_bytes(&proxied, 0, "public/task.json").unwrap()).unwrap();
    assert_eq!(task["scopes"][0], "secrets:get:project/proxied", "{task}");
    // Scopes the task does not have are refused by the queue, through the proxy.
    assert_eq!(
        fake.artifact_bytes(&proxied, 0, "public/out.txt").unwrap(),
        b"the queue said no\n"
    );
    resolved_as(&fake, &flaky, "exception", "intermittent-task");
    let log = resolved_as(&fake, &good, "completed", "completed");
    assert!(log.contains("ran"), "{log}");
    assert_eq!(
        fake.artifact_bytes(&good, 0, "public/out.txt").unwrap(),
        b"hello from docker-worker's payload\n"
    );
    let log = resolved_as(&fake, &cached, "exception", "malformed-payload");
    assert!(
        log.contains(
            "task.payload.cache[\"level-3-checkouts\"]: the task needs the scope docker-worker:cache:level-3-checkouts"
        ),
        "{log}"
    );
    assert!(log.contains("task.payload.image.type: \"task-image\""), "{log}");

    // A cache kept across tasks, one after the other, until purgeCaches deletes it.
    let cache_task = |script: &str, purge: bool| {
        let mut payload = docker_payload("x");
        payload["cache"] = json!({"tests-cache": "/cache"});
        payload["command"] = json!(["/bin/sh", "-c", format!("mkdir -p /builds && {script}")]);
        if purge {
            payload["onExitStatus"] = json!({"purgeCaches": [6]});
        }
        create(&fake, TASK_QUEUE, payload, |d| {
            d["scopes"] = json!(["docker-worker:cache:tests-cache"])
        })
    };
    let mut logs = Vec::new();
    for (script, purge, state) in [
        (
            "echo kept > /cache/mark && echo wrote > /builds/out.txt",
            false,
            "completed",
        ),
        ("cat /cache/mark > /builds/out.txt", false, "completed"),
        ("cat /cache/mark > /builds/out.txt; exit 6", true, "failed"),
        (
            "cat /cache/mark > /builds/out.txt 2>/dev/null || echo empty > /builds/out.txt",
            false,
            "completed",
        ),
    ] {
        let task = cache_task(script, purge);
        wait_for("a cache task", Duration::from_secs(120), &[&worker], || {
            !fake.resolutions(&task).is_empty()
        })
        .await;
        let log = resolved_as(&fake, &task, state, state);
        let out = String::from_utf8(fake.artifact_bytes(&task, 0, "public/out.txt").unwrap()).unwrap();
        logs.push((log, out));
    }
    assert!(logs[0].0.contains("Cache tests-cache at /cache/: new"), "{}", logs[0].0);
    assert!(
        logs[1]
            .0
            .contains("Cache tests-cache at /cache/: kept from an earlier task"),
        "{}",
        logs[1].0
    );
    assert_eq!(logs[1].1, "kept\n", "the second task reads what the first wrote");
    assert_eq!(logs[2].1, "kept\n");
    assert!(
        logs[2].0.contains("Exit code 6 is in onExitStatus.purgeCaches"),
        "{}",
        logs[2].0
    );
    assert_eq!(logs[3].1, "empty\n", "purged: {}", logs[3].0);
    assert!(logs[3].0.contains("Cache tests-cache at /cache/: new"), "{}", logs[3].0);
    worker.stop().await;

    // generic-worker's format takes docker-worker payloads too (its d2g), on the
    // docker engine beside the native one.
    let mut worker = docker_worker(&fake, "gw-d2g", true, "payload-format = \"generic-worker\"");
    let d2g = create(&fake, TASK_QUEUE, docker_payload("through d2g"), |_| {});
    wait_for(
        "the d2g task to be resolved",
        Duration::from_secs(120),
        &[&worker],
        || !fake.resolutions(&d2g).is_empty(),
    )
    .await;
    resolved_as(&fake, &d2g, "completed", "completed");
    assert_eq!(
        fake.artifact_bytes(&d2g, 0, "public/out.txt").unwrap(),
        b"through d2g\n"
    );
    worker.stop().await;

    // An engine that cannot take the format's payloads stops the start, named.
    let mut worker = docker_worker(
        &fake,
        "gw-wrong",
        false,
        "payload-format = \"generic-worker\"\nnative-engine = \"docker\"",
    );
    let status = worker.wait(Duration::from_secs(60)).await;
    let log = worker.log();
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(
        log.contains("[worker] native-engine: engine 'docker' does not take a payload with \"commands\""),
        "{log}"
    );
}
