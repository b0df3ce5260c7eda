//! The whole in-memory state of one fake deployment (clients, tasks with their runs and
//! artifacts, objects, upload blobs, the request log), kept behind one mutex by `lib.rs`.
//!
//! This module also owns the time-driven transitions: `sweep` resolves runs whose claim expired
//! (`exception`/`claim-expired`, plus a `retry` run) and tasks past their deadline. It runs at the
//! start of every request and every test-API call, so expiry is lazy but never observed late.

use crate::records::{FakeQueueOptions, RequestRecord, Resolution};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// The clientId of the fake queue's own credentials, which issue all temporary credentials.
pub const QUEUE_CLIENT_ID: &str = "static/taskcluster/queue";

/// A time as the queue writes it: RFC 3339 with milliseconds and `Z`.
pub fn to_json_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The current time in the queue's JSON format.
pub fn now_json() -> String {
    to_json_time(Utc::now())
}

/// Parse an RFC 3339 time from a request body.
pub fn parse_time(v: &Value, field: &str) -> Result<DateTime<Utc>, crate::reply::ApiError> {
    let s = v.get(field).and_then(Value::as_str);
    let s = s.ok_or_else(|| crate::reply::ApiError::invalid_schema(format!("`{field}` is required")))?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| crate::reply::ApiError::invalid_schema(format!("`{field}` is not a date-time: {e}")))
}

/// A static client registered by the test.
#[derive(Debug, Clone)]
pub struct Client {
    /// The permanent accessToken.
    pub access_token: String,
    /// The client's (already expanded) scopes.
    pub scopes: Vec<String>,
}

/// One run of a task.
#[derive(Debug, Clone)]
pub struct Run {
    /// `pending`, `running`, `completed`, `failed` or `exception`.
    pub state: &'static str,
    /// `scheduled`, `retry` or `task-retry`.
    pub reason_created: &'static str,
    /// Why the run was resolved, once it is.
    pub reason_resolved: Option<String>,
    /// Claiming worker's group and id, once claimed.
    pub worker_group: Option<String>,
    pub worker_id: Option<String>,
    /// End of the current claim, once claimed.
    pub taken_until: Option<DateTime<Utc>>,
    /// When the run was created, claimed and resolved.
    pub scheduled: DateTime<Utc>,
    pub started: Option<DateTime<Utc>>,
    pub resolved: Option<DateTime<Utc>>,
    /// Order in which pending runs are handed out.
    pub pending_seq: u64,
    /// The run's artifacts by name.
    pub artifacts: BTreeMap<String, Artifact>,
}

/// What an artifact stores, by storage type.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// `s3`: data lives in the blob `token`.
    S3 { token: String },
    /// `object`: data lives in the object service under `object_name`.
    Object { object_name: String, upload_id: String },
    /// `reference`: a URL the queue redirects to.
    Reference { url: String },
    /// `link`: another artifact of the same run.
    Link { artifact: String },
    /// `error`: answered with 424.
    Error { reason: String, message: String },
}

/// One artifact of a run.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// `s3`, `object`, `reference`, `link` or `error`.
    pub storage_type: &'static str,
    /// Declared content type.
    pub content_type: String,
    /// Artifact expiry.
    pub expires: DateTime<Utc>,
    /// Listed and readable (object artifacts only after `finishArtifact`).
    pub present: bool,
    /// Where the content is.
    pub stored: Stored,
}

/// A task: its normalized definition and its runs.
#[derive(Debug, Clone)]
pub struct Task {
    /// The body given to `createTask`, to tell an idempotent repeat from a conflict.
    pub original: Value,
    /// The definition with defaults filled in, as `task` returns it.
    pub definition: Value,
    /// `<provisionerId>/<workerType>`.
    pub task_queue_id: String,
    /// `task.scopes`, added to each run's temporary credentials.
    pub scopes: Vec<String>,
    /// `task.projectId`, used for object artifacts.
    pub project_id: String,
    /// 0 for `highest` ... 6 for `lowest`; lower is claimed first.
    pub priority_rank: usize,
    /// `task.deadline` and `task.expires`.
    pub deadline: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    /// Automatic retries still allowed.
    pub retries_left: u32,
    /// Runs, index = runId.
    pub runs: Vec<Run>,
    /// Accepted report calls, in order.
    pub resolutions: Vec<Resolution>,
}

/// Uploaded bytes and what the upload said about them; the target of a PUT URL.
#[derive(Debug, Clone, Default)]
pub struct Blob {
    /// The uploaded bytes, once uploaded.
    pub data: Option<Vec<u8>>,
    /// The `Content-Type` a PUT must carry (and a GET answers with).
    pub content_type: String,
    /// The `Content-Encoding` the PUT carried.
    pub content_encoding: Option<String>,
    /// Required `Content-Length` of the PUT, when the upload method fixed one.
    pub expected_length: Option<u64>,
    /// No more PUTs: the object's upload is finished.
    pub sealed: bool,
}

/// An object in the fake object service.
#[derive(Debug, Clone)]
pub struct Object {
    /// Fixed by the first `createUpload`, as are `upload_id` and `expires`.
    pub project_id: String,
    pub upload_id: String,
    pub expires: DateTime<Utc>,
    /// The blob holding the data.
    pub blob_token: String,
    /// Set by `finishUpload`; the data is then immutable.
    pub finished: bool,
}

/// Everything the fake knows.
pub struct State {
    /// Timings and auth options.
    pub options: FakeQueueOptions,
    /// `http://127.0.0.1:<port>`.
    pub root_url: String,
    /// Static clients by clientId, including the queue's own issuer.
    pub clients: HashMap<String, Client>,
    /// Tasks by taskId.
    pub tasks: BTreeMap<String, Task>,
    /// Object-service objects by name.
    pub objects: HashMap<String, Object>,
    /// Upload targets by URL token.
    pub blobs: HashMap<String, Blob>,
    /// Every request served.
    pub log: Vec<RequestRecord>,
    /// Source of `pending_seq`.
    pub next_seq: u64,
    /// While set, every request (API, blob, ping) is answered 503 and nothing changes.
    pub outage: bool,
    /// The index: namespaces to task ids.
    pub index: BTreeMap<String, String>,
}

impl State {
    /// A fresh state whose only client is the queue's own issuer.
    pub fn new(options: FakeQueueOptions, root_url: String) -> Self {
        let mut clients = HashMap::new();
        let queue_token = crate::tempcreds::random_token(33);
        clients.insert(
            QUEUE_CLIENT_ID.to_string(),
            Client {
                access_token: queue_token,
                scopes: vec!["*".into()],
            },
        );
        State {
            options,
            root_url,
            clients,
            tasks: BTreeMap::new(),
            objects: HashMap::new(),
            blobs: HashMap::new(),
            log: Vec::new(),
            next_seq: 0,
            outage: false,
            index: BTreeMap::new(),
        }
    }

    /// A new pending run created now for `reason`.
    pub fn new_run(&mut self, reason: &'static str) -> Run {
        self.next_seq += 1;
        Run {
            state: "pending",
            reason_created: reason,
            reason_resolved: None,
            worker_group: None,
            worker_id: None,
            taken_until: None,
            scheduled: Utc::now(),
            started: None,
            resolved: None,
            pending_seq: self.next_seq,
            artifacts: BTreeMap::new(),
        }
    }

    /// The URL of the blob `token`, where PUTs upload and GETs download.
    pub fn blob_url(&self, token: &str) -> String {
        format!("{}/_fake/blobs/{token}", self.root_url)
    }

    /// Apply time-driven transitions up to `now`; returns whether a run became pending.
    pub fn sweep(&mut self, now: DateTime<Utc>) -> bool {
        let mut new_pending = Vec::new();
        for (task_id, task) in self.tasks.iter_mut() {
            for (run_id, run) in task.runs.iter_mut().enumerate() {
                if run.state == "running" && run.taken_until.is_some_and(|t| t < now) {
                    resolve_run(run, "exception", "claim-expired", now);
                    if task.retries_left > 0 && task.deadline > now {
                        task.retries_left -= 1;
                        new_pending.push((task_id.clone(), run_id + 1, "retry"));
                    }
                }
            }
            if task.deadline < now
                && let Some(last) = task.runs.last_mut()
                && (last.state == "pending" || last.state == "running")
            {
                resolve_run(last, "exception", "deadline-exceeded", now);
            }
        }
        let any = !new_pending.is_empty();
        for (task_id, run_id, reason) in new_pending {
            let run = self.new_run(reason);
            let task = self.tasks.get_mut(&task_id).expect("task exists");
            if task.runs.len() == run_id {
                task.runs.push(run);
            }
        }
        any
    }
}

/// Move `run` to a resolved `state` with `reason` at `now`.
pub fn resolve_run(run: &mut Run, state: &'static str, reason: &str, now: DateTime<Utc>) {
    run.state = state;
    run.reason_resolved = Some(reason.to_string());
    run.resolved = Some(now);
}
