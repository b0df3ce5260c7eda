//! The Taskcluster deployment as the worker calls it: typed wrappers over the
//! `taskcluster` crate's generated (untyped, `serde_json::Value`) clients.
//!
//! - [`Deployment`]: the root URL; builds clients; the start-up check (reachable,
//!   credentials accepted, scopes enough).
//! - [`WorkerQueue`]: the worker's own calls (`claimWork`), with its credentials.
//! - [`RunClient`]: one claimed run's calls (`reclaimTask`, artifacts, the reports),
//!   with the run's temporary credentials, swapped at each reclaim.
//! - [`CallError`]: a 409 (the run is no longer ours) kept apart from every other
//!   failure, since the protocol treats it differently.
//! - [`persist`]: a run's calls are tried again through transient failures (no
//!   answer, 5xx, 429), with exponential backoff and jitter, until shortly before
//!   the run's `takenUntil`: a queue outage of minutes loses nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{Value, json};
use taskcluster::chrono::{DateTime, SecondsFormat, Utc};
use taskcluster::{Auth, ClientBuilder, Credentials, Object, Queue, Retry};

/// A failed call: the run was resolved or its claim expired (409), or anything else.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// 409 Conflict: the run is no longer this worker's; drop it without reporting.
    #[error("the queue answered 409 Conflict: {0}")]
    Conflict(String),
    /// Anything else (after the client's retries of 5xx and network errors).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CallError {
    /// Sorts a client error: a 409 becomes [`CallError::Conflict`].
    pub fn from_client(error: anyhow::Error) -> CallError {
        match taskcluster::err_status_code(&error) {
            Some(status) if status.as_u16() == 409 => CallError::Conflict(format!("{error:#}")),
            _ => CallError::Other(error),
        }
    }
}

/// Whether a failed call may succeed when tried again: no answer at all (refused,
/// reset, timed out: an HTTP error without a status), a 5xx or a 429. Any other
/// 4xx, and anything that is not an HTTP error, is final.
pub fn transient(error: &anyhow::Error) -> bool {
    match taskcluster::err_status_code(error) {
        Some(status) => status.is_server_error() || status.as_u16() == 429,
        None => error.chain().any(|c| c.is::<reqwest::Error>()),
    }
}

/// The first pause between tries of a run's call, doubled each time.
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// The longest pause between tries.
const MAX_PAUSE: Duration = Duration::from_secs(15);
/// How long before the claim's end a run's calls stop being tried again.
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// `pause` with ±25 % jitter (so that workers that lost the queue together do not
/// come back in step).
pub fn jitter(pause: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    pause.mul_f64(0.75 + f64::from(byte[0]) / 510.0)
}

/// Calls `call` until it succeeds, fails for good (a 409 or another non-transient
/// error), or `until()` (re-read at each try: a reclaim moves it) is less than
/// [`DEADLINE_MARGIN`] away. Each retry is logged with `what`.
pub async fn persist<T, F, Fut>(what: &str, until: impl Fn() -> DateTime<Utc>, mut call: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let mut pause = FIRST_PAUSE;
    let mut tries = 0u32;
    loop {
        tries += 1;
        let error = match call().await {
            Err(CallError::Other(e)) if transient(&e) => e,
            done => {
                if tries > 1 && done.is_ok() {
                    tracing::info!(tries, "{what}: succeeded after the queue came back");
                }
                return done;
            }
        };
        let wait = jitter(pause);
        let left = (until() - Utc::now()).to_std().unwrap_or_default();
        if left < wait + DEADLINE_MARGIN {
            crate::contract::metrics::Metrics::global().queue_error(what);
            return Err(CallError::Other(error.context(format!(
                "{what}: gave up after {tries} tries, as the claim is about to end"
            ))));
        }
        crate::contract::metrics::Metrics::global().queue_retry(what);
        tracing::warn!(tries, "{what} failed: {error:#}; trying again in {wait:.1?}");
        tokio::time::sleep(wait).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// What identifies the worker to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerIdentity {
    /// `<provisionerId>/<workerType>`.
    pub task_queue_id: String,
    /// `workerGroup`.
    pub worker_group: String,
    /// `workerId`.
    pub worker_id: String,
}

impl WorkerIdentity {
    /// The scopes a worker's own credentials need (claimWork's).
    pub fn required_scopes(&self) -> [String; 2] {
        [
            format!("queue:claim-work:{}", self.task_queue_id),
            format!("queue:worker-id:{}/{}", self.worker_group, self.worker_id),
        ]
    }
}

/// A Taskcluster deployment: its root URL and how calls are retried.
#[derive(Debug, Clone)]
pub struct Deployment {
    root_url: String,
    retry: Retry,
}

/// Whether `have` grants `scope` (a trailing `*` matches any suffix).
fn grants(have: &[String], scope: &str) -> bool {
    have.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => scope.starts_with(prefix),
        None => p == scope,
    })
}

impl Deployment {
    /// The deployment at `root_url` (no trailing `/`), with the client's default retries
    /// (5, exponential from 100 ms).
    pub fn new(root_url: &str) -> Deployment {
        Deployment {
            root_url: root_url.trim_end_matches('/').to_string(),
            retry: Retry::default(),
        }
    }

    /// The root URL.
    pub fn root_url(&self) -> &str {
        &self.root_url
    }

    /// How calls (and object uploads) are retried.
    pub fn retry(&self) -> &Retry {
        &self.retry
    }

    fn builder(&self, credentials: Option<&Credentials>) -> ClientBuilder {
        let builder = ClientBuilder::new(self.root_url.as_str()).retry(self.retry.clone());
        match credentials {
            Some(c) => builder.credentials(c.clone()),
            None => builder,
        }
    }

    /// A queue client with `credentials`.
    pub fn queue(&self, credentials: &Credentials) -> anyhow::Result<Queue> {
        Queue::new(self.builder(Some(credentials))).context("building a queue client")
    }

    /// A URL to a private artifact that a task mounts, signed with `credentials`
    /// (a bewit, valid for `ttl`): `getLatestArtifact` of a task, or the index's
    /// `findArtifactFromTask` for a namespace (the index checks the scope and
    /// redirects to a URL it signs itself).
    pub fn signed_artifact_url(
        &self,
        credentials: &Credentials,
        task_or_namespace: &str,
        indexed: bool,
        name: &str,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        if indexed {
            taskcluster::Index::new(self.builder(Some(credentials)))
                .context("building an index client")?
                .findArtifactFromTask_signed_url(task_or_namespace, name, ttl)
        } else {
            self.queue(credentials)?
                .getLatestArtifact_signed_url(task_or_namespace, name, ttl)
        }
        .context("signing an artifact's URL")
    }

    /// An object-service client with `credentials`.
    pub fn object(&self, credentials: &Credentials) -> anyhow::Result<Object> {
        Object::new(self.builder(Some(credentials))).context("building an object-service client")
    }

    /// Checks, before anything starts, that the deployment answers at the root URL,
    /// accepts `credentials`, and that they carry the scopes `identity` needs. Each
    /// failure says which of the three it is and which setting to fix.
    pub async fn check(&self, credentials: &Credentials, identity: &WorkerIdentity) -> anyhow::Result<()> {
        let root = &self.root_url;
        let quick = Retry {
            retries: 2,
            ..Retry::default()
        };
        let anonymous = Queue::new(ClientBuilder::new(root.as_str()).retry(quick.clone()))
            .with_context(|| format!("[worker] root-url {root:?} is not usable"))?;
        if let Err(e) = anonymous.ping().await {
            return Err(match taskcluster::err_status_code(&e) {
                Some(status) => anyhow::anyhow!(
                    "{root} does not look like a Taskcluster deployment: GET {root}/api/queue/v1/ping answered \
                     {status}; check [worker] root-url"
                ),
                None => anyhow::anyhow!(
                    "cannot reach the Taskcluster deployment at {root}: {e:#}; check [worker] root-url and the \
                     network"
                ),
            });
        }
        let auth = Auth::new(
            ClientBuilder::new(root.as_str())
                .retry(quick)
                .credentials(credentials.clone()),
        )
        .context("building an auth client (is [worker] credentials.certificate the JSON Taskcluster issued?)")?;
        let client_id = &credentials.client_id;
        let current = match auth.currentScopes().await {
            Ok(v) => v,
            Err(e) => {
                let status = taskcluster::err_status_code(&e).map(|s| s.as_u16());
                return Err(match status {
                    Some(401) => anyhow::anyhow!(
                        "the Taskcluster deployment at {root} refused the worker's credentials (client {client_id:?}): \
                         {e:#}; check [worker] credentials (a wrong access token, an unknown client, or expired \
                         temporary credentials)"
                    ),
                    _ => anyhow::anyhow!("asking {root} for the worker's scopes (auth.currentScopes): {e:#}"),
                });
            }
        };
        #[derive(Deserialize)]
        struct Scopes {
            scopes: Vec<String>,
        }
        let have: Scopes = serde_json::from_value(current).context("reading auth.currentScopes' answer")?;
        let missing: Vec<String> = identity
            .required_scopes()
            .into_iter()
            .filter(|s| !grants(&have.scopes, s))
            .collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "the worker's client {client_id:?} lacks the scope(s) {}; a worker needs queue:claim-work:<task-queue-id> \
                 and queue:worker-id:<worker-group>/<worker-id> (docs/worker.md)",
                missing.join(", ")
            );
        }
        Ok(())
    }
}

/// The worker's own calls, with its own credentials: those it started with, then
/// each set worker-runner sends (`new-credentials`), taken at the next call.
pub struct WorkerQueue {
    deployment: Deployment,
    client: Mutex<(tokio::sync::watch::Receiver<Credentials>, Arc<Queue>)>,
    identity: WorkerIdentity,
}

/// One run handed out by `claimWork`, before its task definition is read. (No
/// `Debug`: the credentials stay out of logs.)
#[derive(Clone)]
pub struct Claim {
    /// `status.taskId`.
    pub task_id: String,
    /// `runId`.
    pub run_id: u32,
    /// `takenUntil`: the claim's end, unless reclaimed.
    pub taken_until: DateTime<Utc>,
    /// The run's temporary credentials (expiring at `taken_until`).
    pub credentials: Credentials,
    /// The task definition, as the queue sent it.
    pub task: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawClaim {
    status: RawStatus,
    run_id: u32,
    taken_until: DateTime<Utc>,
    credentials: Credentials,
    task: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStatus {
    task_id: String,
}

impl WorkerQueue {
    /// The worker's client for `identity`, with the credentials `credentials` holds
    /// now and later.
    pub fn new(
        deployment: &Deployment,
        credentials: tokio::sync::watch::Receiver<Credentials>,
        identity: WorkerIdentity,
    ) -> anyhow::Result<Self> {
        let queue = Arc::new(deployment.queue(&credentials.borrow())?);
        Ok(WorkerQueue {
            deployment: deployment.clone(),
            client: Mutex::new((credentials, queue)),
            identity,
        })
    }

    /// The queue client with the newest credentials.
    fn queue(&self) -> anyhow::Result<Arc<Queue>> {
        let mut client = self.client.lock().expect("worker queue lock");
        if client.0.has_changed().unwrap_or(false) {
            let credentials = client.0.borrow_and_update().clone();
            client.1 = Arc::new(self.deployment.queue(&credentials)?);
            tracing::info!(client_id = %credentials.client_id, "the worker's own calls use new credentials now");
        }
        Ok(client.1.clone())
    }

    /// `claimWork` for up to `tasks` runs (1 to 32): answers as soon as there is work,
    /// else empty after the queue's long-poll (20 s on a real queue). A claim the
    /// worker cannot read is returned as an error next to the others.
    pub async fn claim_work(&self, tasks: u32) -> anyhow::Result<Vec<Result<Claim, String>>> {
        let id = &self.identity;
        let body = json!({
            "workerGroup": id.worker_group,
            "workerId": id.worker_id,
            "tasks": tasks.clamp(1, 32),
        });
        let answer = self
            .queue()?
            .claimWork(&id.task_queue_id, &body)
            .await
            .context("claimWork")?;
        let tasks = answer
            .get("tasks")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow::anyhow!("claimWork answered without a tasks list: {answer}"))?;
        Ok(tasks
            .iter()
            .map(|t| {
                let raw: RawClaim = serde_json::from_value(t.clone()).map_err(|e| format!("{e}: {t}"))?;
                Ok(Claim {
                    task_id: raw.status.task_id,
                    run_id: raw.run_id,
                    taken_until: raw.taken_until,
                    credentials: raw.credentials,
                    task: raw.task,
                })
            })
            .collect())
    }
}

/// A Taskcluster time as the queue writes it (milliseconds, `Z`).
pub fn json_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// `reportCompleted`: the task ran and succeeded.
    Completed,
    /// `reportFailed`: the task ran and failed.
    Failed,
    /// `reportException` with a reason.
    Exception(ExceptionReason),
}

/// The `reportException` reasons a worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionReason {
    /// The payload (or something it names) is wrong; nothing task-specific ran.
    MalformedPayload,
    /// A worker or engine failure; the queue does not retry.
    InternalError,
    /// The worker is stopping; the queue retries the task at once.
    WorkerShutdown,
    /// The task failed with an exit code its payload lists as retryable
    /// (`onExitStatus.retry`); the queue retries it while retries are left.
    IntermittentTask,
}

impl ExceptionReason {
    /// The reason as the queue spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionReason::MalformedPayload => "malformed-payload",
            ExceptionReason::InternalError => "internal-error",
            ExceptionReason::WorkerShutdown => "worker-shutdown",
            ExceptionReason::IntermittentTask => "intermittent-task",
        }
    }
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resolution::Completed => f.write_str("completed"),
            Resolution::Failed => f.write_str("failed"),
            Resolution::Exception(r) => write!(f, "exception/{}", r.as_str()),
        }
    }
}

/// One claimed run's calls, with its temporary credentials (swapped at each reclaim).
pub struct RunClient {
    deployment: Deployment,
    /// The task.
    pub task_id: String,
    /// The run.
    pub run_id: u32,
    run: String,
    state: Mutex<RunState>,
}

struct RunState {
    queue: Arc<Queue>,
    credentials: Credentials,
    taken_until: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawReclaim {
    taken_until: DateTime<Utc>,
    credentials: Credentials,
}

impl RunClient {
    /// The client of `claim`'s run.
    pub fn new(deployment: &Deployment, claim: &Claim) -> anyhow::Result<RunClient> {
        Ok(RunClient {
            deployment: deployment.clone(),
            task_id: claim.task_id.clone(),
            run_id: claim.run_id,
            run: claim.run_id.to_string(),
            state: Mutex::new(RunState {
                queue: Arc::new(deployment.queue(&claim.credentials)?),
                credentials: claim.credentials.clone(),
                taken_until: claim.taken_until,
            }),
        })
    }

    fn queue(&self) -> Arc<Queue> {
        self.state.lock().expect("run client lock").queue.clone()
    }

    /// The run's current temporary credentials (the task's scopes).
    pub fn credentials(&self) -> Credentials {
        self.state.lock().expect("run client lock").credentials.clone()
    }

    /// The end of the current claim.
    pub fn taken_until(&self) -> DateTime<Utc> {
        self.state.lock().expect("run client lock").taken_until
    }

    /// The deployment.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// `reclaimTask`: the claim is extended and the new credentials replace the old
    /// for every later call. Returns the new `takenUntil`.
    pub async fn reclaim(&self) -> Result<DateTime<Utc>, CallError> {
        let answer = self
            .queue()
            .reclaimTask(&self.task_id, &self.run)
            .await
            .map_err(CallError::from_client)?;
        let raw: RawReclaim = serde_json::from_value(answer.clone())
            .map_err(|e| anyhow::anyhow!("reclaimTask answered something unexpected ({e}): {answer}"))?;
        let queue = Arc::new(self.deployment.queue(&raw.credentials)?);
        let mut state = self.state.lock().expect("run client lock");
        *state = RunState {
            queue,
            credentials: raw.credentials,
            taken_until: raw.taken_until,
        };
        Ok(raw.taken_until)
    }

    /// The run's current credentials' client id (for logs).
    pub fn client_id(&self) -> String {
        self.state
            .lock()
            .expect("run client lock")
            .credentials
            .client_id
            .clone()
    }

    /// [`persist`] until this run's claim ends.
    pub async fn persist<T, F, Fut>(&self, what: &str, call: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        persist(what, || self.taken_until(), call).await
    }

    /// `createArtifact(name, body)`, tried again through transient failures.
    pub async fn create_artifact(&self, name: &str, body: &Value) -> Result<Value, CallError> {
        self.persist("createArtifact", || async {
            self.queue()
                .createArtifact(&self.task_id, &self.run, name, body)
                .await
                .map_err(CallError::from_client)
        })
        .await
    }

    /// `finishArtifact(name, {uploadId})`, tried again through transient failures.
    pub async fn finish_artifact(&self, name: &str, upload_id: &str) -> Result<(), CallError> {
        self.persist("finishArtifact", || async {
            self.queue()
                .finishArtifact(&self.task_id, &self.run, name, &json!({ "uploadId": upload_id }))
                .await
                .map(drop)
                .map_err(CallError::from_client)
        })
        .await
    }

    /// `reportCompleted`, `reportFailed` or `reportException`, tried again through
    /// transient failures.
    pub async fn report(&self, resolution: Resolution) -> Result<(), CallError> {
        let (task, run) = (&self.task_id, &self.run);
        self.persist("reporting the resolution", || async {
            let queue = self.queue();
            let answer = match resolution {
                Resolution::Completed => queue.reportCompleted(task, run).await,
                Resolution::Failed => queue.reportFailed(task, run).await,
                Resolution::Exception(reason) => {
                    queue
                        .reportException(task, run, &json!({ "reason": reason.as_str() }))
                        .await
                }
            };
            answer.map(drop).map_err(CallError::from_client)
        })
        .await
    }
}

/// How long to wait before reclaiming a claim that ends in `remaining`: `margin`
/// before its end, but never later than half-way (a short claim is renewed early
/// enough to survive one failed attempt).
pub fn reclaim_delay(remaining: Duration, margin: Duration) -> Duration {
    remaining.saturating_sub(margin).max(remaining / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reclaims_come_ahead_of_the_end() {
        let m = Duration::from_secs(180);
        assert_eq!(reclaim_delay(Duration::from_secs(1200), m), Duration::from_secs(1020));
        assert_eq!(reclaim_delay(Duration::from_secs(240), m), Duration::from_secs(120));
        assert_eq!(reclaim_delay(Duration::from_secs(4), m), Duration::from_secs(2));
        assert_eq!(reclaim_delay(Duration::ZERO, m), Duration::ZERO);
    }

    #[test]
    fn scopes_match_with_a_trailing_star() {
        let have = vec!["queue:claim-work:proj/*".to_string(), "queue:worker-id:g/w".to_string()];
        assert!(grants(&have, "queue:claim-work:proj/type"));
        assert!(grants(&have, "queue:worker-id:g/w"));
        assert!(!grants(&have, "queue:worker-id:g/w2"));
        assert!(grants(&["*".to_string()], "anything"));
    }

    #[tokio::test]
    async fn only_unanswered_calls_5xx_and_429_are_tried_again() {
        // No answer: a port nobody listens on.
        let refused = reqwest::get("http://127.0.0.1:9/").await.unwrap_err();
        assert!(transient(&anyhow::Error::from(refused).context("claimWork")));
        assert!(!transient(&anyhow::anyhow!("Could not negotiate an upload method")));
        // Statuses, from a server that answers each path with its number.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let path = String::from_utf8_lossy(&buf[..n])
                    .split(' ')
                    .nth(1)
                    .unwrap_or("/500")
                    .to_string();
                let status = &path[1..];
                let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        for (status, want) in [
            (500, true),
            (503, true),
            (429, true),
            (400, false),
            (404, false),
            (409, false),
        ] {
            let response = reqwest::get(format!("http://127.0.0.1:{port}/{status}")).await.unwrap();
            let error = response.error_for_status().unwrap_err();
            assert_eq!(transient(&anyhow::Error::from(error)), want, "{status}");
        }
    }

    #[test]
    fn times_are_written_as_the_queue_writes_them() {
        let t: DateTime<Utc> = "2030-01-02T03:04:05.678Z".parse().unwrap();
        assert_eq!(json_time(&t), "2030-01-02T03:04:05.678Z");
    }
}
