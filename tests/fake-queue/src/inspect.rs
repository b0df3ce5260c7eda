//! The read-and-steer half of the test API: runs, resolutions, artifacts (with their bytes,
//! links followed and gzip decoded), the request log, and forcing a claim to expire now.
//!
//! Every method sweeps time-driven transitions first, so a claim whose `takenUntil` has passed is
//! already `exception`/`claim-expired` (with its retry run) when observed.

use crate::artifact_read::{blob_token, follow};
use crate::records::{ArtifactContent, ArtifactRecord, RequestRecord, Resolution, RunRecord};
use crate::state::{State, Stored};
use crate::{FakeQueue, server::Shared};
use chrono::Utc;
use std::io::Read;
use std::sync::MutexGuard;

fn swept(shared: &Shared) -> MutexGuard<'_, State> {
    let mut st = shared.lock();
    if st.sweep(Utc::now()) {
        shared.notify.notify_waiters();
    }
    st
}

impl FakeQueue {
    /// Every run of a task, in order (empty if the task is unknown).
    pub fn runs(&self, task_id: &str) -> Vec<RunRecord> {
        let st = swept(&self.shared);
        let Some(task) = st.tasks.get(task_id) else {
            return Vec::new();
        };
        let runs = task.runs.iter().enumerate();
        runs.map(|(i, r)| RunRecord {
            run_id: i as u32,
            state: r.state.to_string(),
            reason_created: r.reason_created.to_string(),
            reason_resolved: r.reason_resolved.clone(),
            worker_group: r.worker_group.clone(),
            worker_id: r.worker_id.clone(),
            taken_until: r.taken_until,
            started: r.started,
            resolved: r.resolved,
        })
        .collect()
    }

    /// Every accepted `reportCompleted`/`reportFailed`/`reportException` call for the task, in
    /// order. Claim expiry and deadlines are not reports and do not appear here.
    pub fn resolutions(&self, task_id: &str) -> Vec<Resolution> {
        let st = swept(&self.shared);
        st.tasks.get(task_id).map(|t| t.resolutions.clone()).unwrap_or_default()
    }

    /// Every artifact of a run, present or not, sorted by name.
    pub fn artifacts(&self, task_id: &str, run_id: u32) -> Vec<ArtifactRecord> {
        let st = swept(&self.shared);
        let Some(run) = st.tasks.get(task_id).and_then(|t| t.runs.get(run_id as usize)) else {
            return Vec::new();
        };
        let record = |(name, a): (&String, &crate::state::Artifact)| {
            let blob = blob_token(&st, a).and_then(|t| st.blobs.get(&t));
            let content = match &a.stored {
                Stored::S3 { .. } | Stored::Object { .. } => match blob.and_then(|b| b.data.clone()) {
                    Some(data) => ArtifactContent::Bytes(data),
                    None => ArtifactContent::NotUploaded,
                },
                Stored::Reference { url } => ArtifactContent::Reference(url.clone()),
                Stored::Link { artifact } => ArtifactContent::Link(artifact.clone()),
                Stored::Error { reason, message } => ArtifactContent::Error {
                    reason: reason.clone(),
                    message: message.clone(),
                },
            };
            ArtifactRecord {
                name: name.clone(),
                storage_type: a.storage_type.to_string(),
                content_type: a.content_type.clone(),
                content_encoding: blob.and_then(|b| b.content_encoding.clone()),
                expires: a.expires,
                present: a.present,
                content,
            }
        };
        run.artifacts.iter().map(record).collect()
    }

    /// The bytes of an artifact: links followed, gzip `Content-Encoding` decoded. `None` if the
    /// artifact is missing, not uploaded, or not a data artifact (reference, error).
    pub fn artifact_bytes(&self, task_id: &str, run_id: u32, name: &str) -> Option<Vec<u8>> {
        let st = swept(&self.shared);
        st.tasks.get(task_id)?.runs.get(run_id as usize)?;
        let (_, a) = follow(&st, task_id, run_id as usize, name, None).ok()?;
        let blob = st.blobs.get(&blob_token(&st, &a)?)?;
        let data = blob.data.clone()?;
        match blob.content_encoding.as_deref() {
            Some("gzip") => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&data[..]).read_to_end(&mut out).ok()?;
                Some(out)
            }
            _ => Some(data),
        }
    }

    /// Make a running run's claim expire now: the run becomes `exception`/`claim-expired` and,
    /// while retries are left, run `run_id + 1` is created `pending` with reasonCreated `retry`.
    /// Returns false if the run is not running.
    pub fn expire_claim(&self, task_id: &str, run_id: u32) -> bool {
        let now = Utc::now();
        {
            let mut st = self.shared.lock();
            let run = st.tasks.get_mut(task_id).and_then(|t| t.runs.get_mut(run_id as usize));
            match run {
                Some(run) if run.state == "running" => run.taken_until = Some(now - chrono::Duration::milliseconds(1)),
                _ => return false,
            }
        }
        drop(swept(&self.shared));
        true
    }

    /// Cancel a task as `cancelTask` does: its running (or pending) run becomes
    /// `exception`/`canceled` now, with no retry; the worker's next reclaim or report
    /// gets a 409, and artifacts are still accepted for the grace period. Returns
    /// false if no run is running or pending.
    pub fn cancel_task(&self, task_id: &str) -> bool {
        let mut st = self.shared.lock();
        let Some(run) = st
            .tasks
            .get_mut(task_id)
            .and_then(|t| t.runs.last_mut())
            .filter(|r| r.state == "running" || r.state == "pending")
        else {
            return false;
        };
        crate::state::resolve_run(run, "exception", "canceled", Utc::now());
        drop(st);
        self.shared.notify.notify_waiters();
        true
    }

    /// Every request served so far, in order.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.shared.lock().log.clone()
    }
}
