//! Deployed as worker-runner deploys generic-worker: the binary installed as
//! `enginehost-worker`, started as `<path> run --config FILE --with-worker-runner`
//! with the JSON config worker-runner writes, spoken to over stdin/stdout by a test
//! that plays worker-runner: the welcome/hello handshake, a credential swap while a
//! task runs, a graceful termination; nothing but protocol messages on stdout.

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

/// Plays worker-runner for a worker it started.
struct FakeRunner {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeRunner {
    fn start(fake: &FakeQueue, id: &str) -> FakeRunner {
        let dir = tempfile::tempdir().unwrap();
        fake.add_client(&format!("worker/{id}"), "first-token", worker_scopes(TASK_QUEUE, id));
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        let (provisioner, worker_type) = TASK_QUEUE.split_once('/').unwrap();
        // What worker-runner writes: its keys, over the pool's workerConfig.
        let config = json!({
            "rootURL": fake.root_url(),
            "clientId": format!("worker/{id}"),
            "accessToken": "first-token",
            "provisionerId": provisioner,
            "workerType": worker_type,
            "workerGroup": GROUP,
            "workerId": id,
            "workerLocation": "{\"cloud\":\"static\"}",
            "workerTypeMetadata": {},
            "enginehost": {
                "worker": {"engines": ["mock"], "default-engine": "mock", "poll-interval": "100ms",
                           "plugins": plugins},
                "host": {"work-dir": dir.path().join("work"), "cache-dir": compile_cache()},
            },
        });
        let path = dir.path().join("worker-runner.json");
        std::fs::write(&path, config.to_string()).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        // worker-runner's `worker.path`: the binary under the name it answers to.
        let exe = dir.path().join("enginehost-worker");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_enginehost"), &exe).unwrap();
        let stderr = dir.path().join("stderr.log");
        let mut child = Command::new(&exe)
            .args(["run", "--config", path.to_str().unwrap(), "--with-worker-runner"])
            .env("ENGINEHOST_LOG", "info")
            .env_remove("TASKCLUSTER_CLIENT_ID")
            .env_remove("TASKCLUSTER_ACCESS_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        FakeRunner {
            child,
            stdin,
            lines,
            stderr,
            _dir: dir,
        }
    }

    fn send(&mut self, message: serde_json::Value) {
        writeln!(self.stdin, "~{message}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn messages(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l.strip_prefix('~')?).ok())
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    async fn wait_for(&self, what: &str, mut ready: impl FnMut(&FakeRunner) -> bool) {
        let start = std::time::Instant::now();
        while !ready(self) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "gave up waiting for {what}:\n{}\nstdout: {:?}",
                self.log(),
                self.lines.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for FakeRunner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_runner_handshake_credential_swap_and_graceful_termination() {
    let fake = fake(Duration::from_secs(60)).await;
    let mut runner = FakeRunner::start(&fake, "runner1");
    // A line no message is that long is skipped without being held; the handshake still works.
    writeln!(runner.stdin, "~{}", "x".repeat(3 << 20)).unwrap();
    runner.send(
        json!({"type": "welcome", "capabilities": ["graceful-termination", "new-credentials", "log",
                                                           "shutdown", "something-new"]}),
    );
    runner
        .wait_for("hello", |r| r.messages().iter().any(|m| m["type"] == "hello"))
        .await;
    let hello = runner.messages().into_iter().find(|m| m["type"] == "hello").unwrap();
    assert!(runner.log().contains("is not a message; skipped"), "{}", runner.log());
    // Only what both sides have (no error-report: worker-runner did not offer it).
    assert_eq!(
        hello["capabilities"],
        json!(["graceful-termination", "new-credentials", "log", "shutdown"])
    );

    // A task runs on the identity worker-runner gave.
    let first = create(&fake, TASK_QUEUE, mock(3000, "write-log", "first task"), |_| {});
    runner
        .wait_for("the first task to run", |_| executing(&fake, &first, 0))
        .await;
    assert_eq!(fake.runs(&first)[0].worker_id.as_deref(), Some("runner1"));

    // New credentials while it runs; then the old ones stop working.
    fake.add_client(
        "worker/runner1-next",
        "second-token",
        worker_scopes(TASK_QUEUE, "runner1"),
    );
    runner.send(json!({"type": "new-credentials", "client-id": "worker/runner1-next",
                       "access-token": "second-token"}));
    runner
        .wait_for("the swap", |r| r.log().contains("worker-runner: new credentials"))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fake.add_client("worker/runner1", "revoked", Vec::<String>::new());
    let mut seen = fake.request_log().len();

    runner
        .wait_for("the first task to be resolved", |_| {
            !fake.resolutions(&first).is_empty()
        })
        .await;
    assert_eq!(only_resolution(&fake, &first).state, "completed", "{}", runner.log());
    let second = create(&fake, TASK_QUEUE, mock(0, "write-log", "second task"), |_| {});
    runner
        .wait_for("the second task to be resolved", |_| {
            !fake.resolutions(&second).is_empty()
        })
        .await;
    assert_eq!(only_resolution(&fake, &second).state, "completed");
    let claims: Vec<_> = fake.request_log()[seen..]
        .iter()
        .filter(|r| r.path.contains("/claim-work/"))
        .cloned()
        .collect();
    assert!(!claims.is_empty());
    assert!(
        claims
            .iter()
            .all(|r| r.client_id.as_deref() == Some("worker/runner1-next") && r.status == 200),
        "{claims:#?}"
    );
    seen = fake.request_log().len();

    // Graceful termination, tasks aborted: it exits, claims nothing more.
    let long = create(&fake, TASK_QUEUE, mock(120_000, "true", ""), |_| {});
    runner
        .wait_for("the long task to run", |_| executing(&fake, &long, 0))
        .await;
    runner.send(json!({"type": "graceful-termination", "finish-tasks": false}));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = runner.child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{}", runner.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "{}", runner.log());
    assert_eq!(
        only_resolution(&fake, &long).reason,
        "worker-shutdown",
        "{}",
        runner.log()
    );
    assert!(fake.request_log().len() > seen);

    // stdout held protocol messages only, the operator log among them.
    let lines = runner.lines.lock().unwrap().clone();
    assert!(
        lines.iter().all(|l| l.starts_with("~{")),
        "not a message on stdout: {lines:#?}"
    );
    let logs: Vec<String> = runner
        .messages()
        .into_iter()
        .filter(|m| m["type"] == "log")
        .filter_map(|m| m["body"]["textPayload"].as_str().map(str::to_string))
        .collect();
    assert!(logs.iter().any(|l| l.contains("resolved")), "{logs:#?}");
}
