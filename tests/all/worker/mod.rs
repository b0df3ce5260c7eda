//! `enginehost worker`: real worker processes (the `enginehost` binary) against the
//! project's fake Taskcluster queue (tests/fake-queue), which checks every request as
//! a deployment does (Hawk, per-run temporary credentials, scopes) and is spoken to by
//! the real `taskcluster` client crates inside the worker.
//!
//! - `drain`: two workers drain a batch, each task resolved once with the right state.
//! - `artifacts`: object and s3 artifacts, error artifacts, the gzip backing log and
//!   the live log, byte-identical when downloaded; expiry; uploads before resolution.
//! - `claims`: reclaims swap credentials; a lost claim aborts the task, reports nothing.
//! - `outage`: a queue outage loses nothing; stops drop the long-poll; a cancelled
//!   task's log; metrics checked by promtool.
//! - `runner`: deployed by worker-runner: its config, its protocol on stdin/stdout.
//! - `formats`: generic-worker and docker-worker payloads, unchanged, on the native
//!   and docker engines.
//! - `payloads`: malformed payloads and internal errors, each resolved as the protocol says.
//! - `shutdown`: SIGTERM (abort and finish), stop-now, fatal errors.
//! - `startup`: the example config with a wrong root URL, wrong credentials, missing scopes.

mod artifacts;
mod claims;
mod drain;
mod formats;
mod interactive;
mod outage;
mod payloads;
mod recovery;
mod reload;
mod runner;
mod shutdown;
mod startup;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use enginehost_fake_queue::{FakeQueue, FakeQueueOptions, Resolution, slugid, task_definition};
use serde_json::{Value, json};

/// The task queue most tests use.
pub const TASK_QUEUE: &str = "proj-enginehost/tests";
/// The worker group of every test worker.
pub const GROUP: &str = "tests";
/// What a worker's own client may do, and nothing more.
pub fn worker_scopes(queue: &str, id: &str) -> Vec<String> {
    vec![
        format!("queue:claim-work:{queue}"),
        format!("queue:worker-id:{GROUP}/{id}"),
    ]
}

/// A fake queue with test timings: a 1 s long-poll, and credentials checked to the
/// millisecond (no skew: a worker that kept an expired certificate would be refused).
pub async fn fake(claim_timeout: Duration) -> FakeQueue {
    FakeQueue::start(FakeQueueOptions {
        claim_work_timeout: Duration::from_secs(1),
        claim_timeout,
        certificate_skew: Duration::ZERO,
        ..FakeQueueOptions::default()
    })
    .await
}

/// A mock payload.
pub fn mock(delay: u64, function: &str, argument: &str) -> Value {
    json!({"engine": "mock", "payload": {"delay": delay, "function": function, "argument": argument}})
}

/// Creates a task on `queue` with `payload`; `edit` may change the definition.
pub fn create(fake: &FakeQueue, queue: &str, payload: Value, edit: impl FnOnce(&mut Value)) -> String {
    let id = slugid();
    let mut definition = task_definition(queue, payload);
    edit(&mut definition);
    fake.create_task(&id, definition).expect("createTask");
    id
}

/// The one resolution of `task`, or a panic naming what there is.
pub fn only_resolution(fake: &FakeQueue, task: &str) -> Resolution {
    let all = fake.resolutions(task);
    assert_eq!(all.len(), 1, "task {task}: {all:?}; runs {:?}", fake.runs(task));
    all[0].clone()
}

/// The text of the backing log of run `run` of `task`.
pub fn backing_log(fake: &FakeQueue, task: &str, run: u32) -> String {
    let bytes = fake
        .artifact_bytes(task, run, "public/logs/live_backing.log")
        .unwrap_or_else(|| {
            panic!(
                "task {task} run {run} has no backing log: {:?}",
                fake.artifacts(task, run)
            )
        });
    String::from_utf8(bytes).expect("the log is text")
}

/// Whether `public/logs/live.log` of run `run` of `task` is, at the end, the link
/// to the backing log the worker makes of it.
pub fn live_log_is_linked(fake: &FakeQueue, task: &str, run: u32) -> bool {
    fake.artifacts(task, run)
        .into_iter()
        .find(|a| a.name == "public/logs/live.log")
        .is_some_and(|a| {
            a.content == enginehost_fake_queue::ArtifactContent::Link("public/logs/live_backing.log".into())
        })
}

/// Polls `ready` every 50 ms; after `limit` (a guard against a hang, not a timing
/// assertion) panics with `what` and the workers' logs.
pub async fn wait_for(what: &str, limit: Duration, workers: &[&WorkerProcess], mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > limit {
            let logs: Vec<String> = workers.iter().map(|w| format!("--- {}:\n{}", w.id, w.log())).collect();
            panic!("gave up waiting for {what} after {limit:?}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How a test worker is configured.
pub struct Config {
    /// `worker-id`.
    pub id: String,
    /// `task-queue-id`.
    pub queue: String,
    /// Extra `[worker]` lines.
    pub worker: String,
    /// Extra tables after `[worker]`.
    pub tables: String,
}

impl Config {
    pub fn new(id: &str) -> Config {
        Config {
            id: id.to_string(),
            queue: TASK_QUEUE.to_string(),
            worker: String::new(),
            tables: String::new(),
        }
    }

    pub fn worker(mut self, lines: &str) -> Config {
        self.worker.push_str(lines);
        self.worker.push('\n');
        self
    }

    pub fn tables(mut self, text: &str) -> Config {
        self.tables.push_str(text);
        self.tables.push('\n');
        self
    }

    pub fn queue(mut self, queue: &str) -> Config {
        self.queue = queue.to_string();
        self
    }
}

/// Where compiled plugins are kept between test processes.
pub fn compile_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")
}

/// A running `enginehost worker`; killed when dropped if still running.
pub struct WorkerProcess {
    pub id: String,
    child: Child,
    stderr: PathBuf,
    /// Its config, work directory and log.
    pub dir: tempfile::TempDir,
}

/// Runs `enginehost` with `args` and environment `env`, stderr to `stderr`.
pub fn enginehost(args: &[&str], env: &[(&str, &str)], stderr: &Path) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_enginehost"));
    command
        .args(args)
        .env("ENGINEHOST_LOG", "info,enginehost::worker=debug")
        .env_remove("TASKCLUSTER_CLIENT_ID")
        .env_remove("TASKCLUSTER_ACCESS_TOKEN")
        .env_remove("TASKCLUSTER_CERTIFICATE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap());
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().expect("enginehost runs")
}

impl WorkerProcess {
    /// Registers the worker's client on `fake` (only a worker's scopes) and starts
    /// the worker with `config`: the mock engine by default, a 100 ms poll interval,
    /// its own work directory, the shared compile cache, an empty plugin directory.
    pub fn start(fake: &FakeQueue, config: Config) -> WorkerProcess {
        let dir = tempfile::tempdir().unwrap();
        let token = format!("token-of-{}", config.id);
        let client = format!("worker/{}", config.id);
        fake.add_client(&client, &token, worker_scopes(&config.queue, &config.id));
        let engines = if config.worker.contains("engines =") {
            ""
        } else {
            "engines = [\"mock\"]\ndefault-engine = \"mock\"\n"
        };
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        let text = format!(
            "[worker]\nroot-url = \"{root}\"\ntask-queue-id = \"{queue}\"\nworker-group = \"{GROUP}\"\n\
             worker-id = \"{id}\"\npoll-interval = \"100ms\"\nplugins = \"{plugins}\"\n{engines}{extra}\n\
             [worker.credentials]\nclient-id = \"{client}\"\naccess-token = \"{token}\"\n\n\
             [host]\nwork-dir = \"{work}\"\ncache-dir = \"{cache}\"\n\n{tables}",
            root = fake.root_url(),
            queue = config.queue,
            id = config.id,
            plugins = plugins.display(),
            extra = config.worker,
            work = dir.path().join("work").display(),
            cache = compile_cache().display(),
            tables = config.tables,
        );
        let path = dir.path().join("worker.toml");
        std::fs::write(&path, text).unwrap();
        // It holds an access token: the worker warns about a file others may read.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let stderr = dir.path().join("stderr.log");
        let child = enginehost(&["worker", "--config", path.to_str().unwrap()], &[], &stderr);
        WorkerProcess {
            id: config.id,
            child,
            stderr,
            dir,
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends `signal` (libc::SIGTERM, ...).
    pub fn signal(&self, signal: i32) {
        // SAFETY: a signal to our own child.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.child.id());
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for it to exit (`limit` guards against a hang).
    pub async fn wait(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if start.elapsed() > limit {
                panic!("worker {} still runs after {limit:?}:\n{}", self.id, self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops it with SIGTERM; panics unless it exits 0.
    pub async fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        let status = self.wait(Duration::from_secs(60)).await;
        assert_eq!(status.code(), Some(0), "worker {}:\n{}", self.id, self.log());
    }

    /// Its per-run directories that are left (none once its runs ended).
    pub fn run_dirs(&self) -> Vec<String> {
        let dir = self.dir.path().join("work/tasks").join(&self.id);
        std::fs::read_dir(dir)
            .map(|l| {
                l.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether `fake`'s run `run` of `task` is running and its live log reference exists
/// (the task is executing).
pub fn executing(fake: &FakeQueue, task: &str, run: u32) -> bool {
    fake.runs(task).get(run as usize).is_some_and(|r| r.state == "running")
        && fake
            .artifacts(task, run)
            .iter()
            .any(|a| a.name == "public/logs/live.log" && a.storage_type == "reference")
}
