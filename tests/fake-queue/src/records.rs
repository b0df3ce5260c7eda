//! The plain records the in-process test API hands out: options, runs, resolutions, artifacts and
//! the request log. They are snapshots (owned copies), never views into the live state.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// How a [`crate::FakeQueue`] behaves. `Default` gives the real queue's timings.
#[derive(Debug, Clone)]
pub struct FakeQueueOptions {
    /// Port to bind on 127.0.0.1; 0 (the default) picks a free one.
    pub port: u16,
    /// How long `claimWork` waits for work before returning `{tasks: []}` (real queue: 20 s).
    pub claim_work_timeout: Duration,
    /// How long a claim lasts before `takenUntil` (real queue default: 20 min).
    pub claim_timeout: Duration,
    /// How far a Hawk timestamp may be from the fake's clock (Hawk's default: 60 s).
    pub hawk_skew: Duration,
    /// Slack on a certificate's `start` and `expiry` (the real auth service allows 5 min).
    /// Tests of credential expiry set this to zero.
    pub certificate_skew: Duration,
    /// How long after `reportException` artifacts may still be created (about 20 min really).
    pub exception_upload_grace: Duration,
    /// Scopes for requests without an `Authorization` header, like a deployment's `anonymous`
    /// role. `None` (the default) refuses such requests with 401.
    pub anonymous_scopes: Option<Vec<String>>,
}

impl Default for FakeQueueOptions {
    fn default() -> Self {
        FakeQueueOptions {
            port: 0,
            claim_work_timeout: Duration::from_secs(20),
            claim_timeout: Duration::from_secs(20 * 60),
            hawk_skew: Duration::from_secs(60),
            certificate_skew: Duration::from_secs(5 * 60),
            exception_upload_grace: Duration::from_secs(20 * 60),
            anonymous_scopes: None,
        }
    }
}

/// One run of a task, as [`crate::FakeQueue::runs`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// 0-based run number.
    pub run_id: u32,
    /// `pending`, `running`, `completed`, `failed` or `exception`.
    pub state: String,
    /// `scheduled`, `retry`, `task-retry` or `rerun`.
    pub reason_created: String,
    /// Set once resolved: `completed`, `failed`, `claim-expired`, `worker-shutdown`, ...
    pub reason_resolved: Option<String>,
    /// The claiming worker's group, once claimed.
    pub worker_group: Option<String>,
    /// The claiming worker's id, once claimed.
    pub worker_id: Option<String>,
    /// End of the current claim, once claimed.
    pub taken_until: Option<DateTime<Utc>>,
    /// When it was claimed.
    pub started: Option<DateTime<Utc>>,
    /// When it was resolved (by a report, claim expiry or the deadline).
    pub resolved: Option<DateTime<Utc>>,
}

/// One accepted `reportCompleted`/`reportFailed`/`reportException` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    /// The run it resolved.
    pub run_id: u32,
    /// `completed`, `failed` or `exception`.
    pub state: String,
    /// `completed`, `failed`, or the exception reason.
    pub reason: String,
    /// The clientId that made the call.
    pub client_id: String,
    /// When the call was accepted.
    pub at: DateTime<Utc>,
}

/// What an artifact holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ArtifactContent {
    /// Uploaded bytes (`s3` or `object`), exactly as uploaded (still gzipped if they were).
    Bytes(Vec<u8>),
    /// An `s3` or `object` artifact whose data has not been uploaded yet.
    NotUploaded,
    /// A `reference` artifact's URL.
    Reference(String),
    /// A `link` artifact's target name.
    Link(String),
    /// An `error` artifact.
    Error {
        /// `file-missing-on-worker`, ...
        reason: String,
        /// The worker's explanation.
        message: String,
    },
}

/// One artifact of a run, as [`crate::FakeQueue::artifacts`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactRecord {
    /// Artifact name, such as `public/logs/live_backing.log`.
    pub name: String,
    /// `object`, `s3`, `reference`, `link` or `error`.
    pub storage_type: String,
    /// The declared content type.
    pub content_type: String,
    /// `Content-Encoding` given with the data upload (such as `gzip`), if any.
    pub content_encoding: Option<String>,
    /// Artifact expiry.
    pub expires: DateTime<Utc>,
    /// Whether the queue lists it (object artifacts become present at `finishArtifact`).
    pub present: bool,
    /// The data, URL, link target or error.
    pub content: ArtifactContent,
}

/// One HTTP request the fake served.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Raw request path (percent-encoded as sent, without the query).
    pub path: String,
    /// The authenticated clientId, if authentication succeeded.
    pub client_id: Option<String>,
    /// Response status.
    pub status: u16,
}
