//! The run lifecycle of the queue: `claimWork` (one non-waiting attempt; the long-poll loop
//! lives in `server.rs`), `reclaimTask`, `reportCompleted`/`reportFailed`/`reportException`, and
//! the per-run temporary credentials that claims and reclaims hand out.

use crate::hawk_auth::Caller;
use crate::reply::{ApiError, Reply};
use crate::scopes::Requirement;
use crate::state::{QUEUE_CLIENT_ID, State, resolve_run, to_json_time};
use crate::tasks::run_index;
use crate::tempcreds::{self, TempCredentials};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const EXCEPTION_REASONS: [&str; 6] = [
    "worker-shutdown",
    "malformed-payload",
    "resource-unavailable",
    "internal-error",
    "superseded",
    "intermittent-task",
];

/// A checked `claimWork` request.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub task_queue_id: String,
    pub worker_group: String,
    pub worker_id: String,
    pub tasks: usize,
}

/// Check a `claimWork` body and the caller's scopes, before any waiting.
pub fn check_claim_work(caller: &Caller, task_queue_id: &str, body: &Value) -> Result<ClaimRequest, ApiError> {
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(worker_group), Some(worker_id)) = (field("workerGroup"), field("workerId")) else {
        return Err(ApiError::invalid_schema("workerGroup and workerId are required"));
    };
    let tasks = body.get("tasks").and_then(Value::as_u64).unwrap_or(1);
    if !(1..=32).contains(&tasks) {
        return Err(ApiError::invalid_schema("`tasks` must be between 1 and 32"));
    }
    caller.require(&Requirement::all([
        format!("queue:claim-work:{task_queue_id}"),
        format!("queue:worker-id:{worker_group}/{worker_id}"),
    ]))?;
    Ok(ClaimRequest {
        task_queue_id: task_queue_id.to_string(),
        worker_group,
        worker_id,
        tasks: tasks as usize,
    })
}

/// Claim up to `req.tasks` pending runs of the queue (highest priority, then oldest first).
pub fn claim_available(st: &mut State, req: &ClaimRequest) -> Vec<Value> {
    let mut pending: Vec<(usize, u64, String)> = st
        .tasks
        .iter()
        .filter(|(_, t)| t.task_queue_id == req.task_queue_id)
        .filter_map(|(id, t)| {
            let run = t.runs.last().filter(|r| r.state == "pending")?;
            Some((t.priority_rank, run.pending_seq, id.clone()))
        })
        .collect();
    pending.sort();
    pending.truncate(req.tasks);
    let now = Utc::now();
    let taken_until = now + st.options.claim_timeout;
    let mut claims = Vec::new();
    for (_, _, task_id) in pending {
        let task = st.tasks.get_mut(&task_id).expect("task exists");
        let run_id = task.runs.len() - 1;
        let run = task.runs.last_mut().expect("run exists");
        run.state = "running";
        run.worker_group = Some(req.worker_group.clone());
        run.worker_id = Some(req.worker_id.clone());
        run.started = Some(now);
        run.taken_until = Some(taken_until);
        let (status, definition) = (task.status_json(&task_id), task.definition.clone());
        let creds = task_credentials(st, &task_id, run_id, taken_until);
        claims.push(json!({
            "status": status,
            "runId": run_id,
            "workerGroup": req.worker_group,
            "workerId": req.worker_id,
            "takenUntil": to_json_time(taken_until),
            "task": definition,
            "credentials": creds,
        }));
    }
    claims
}

/// `takenUntil` in epoch seconds, formatted as JavaScript prints `getTime() / 1000`.
fn js_epoch_seconds(t: DateTime<Utc>) -> String {
    let ms = t.timestamp_millis();
    let text = format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The temporary credentials of a claimed run, expiring exactly at `taken_until`.
pub fn task_credentials(st: &State, task_id: &str, run_id: usize, taken_until: DateTime<Utc>) -> TempCredentials {
    let task = &st.tasks[task_id];
    let run = &task.runs[run_id];
    let (wg, wid) = (
        run.worker_group.clone().unwrap_or_default(),
        run.worker_id.clone().unwrap_or_default(),
    );
    let client_id = format!(
        "task-client/{task_id}/{run_id}/on/{wg}/{wid}/until/{}",
        js_epoch_seconds(taken_until)
    );
    let mut scopes = vec![
        format!("queue:reclaim-task:{task_id}/{run_id}"),
        format!("queue:resolve-task:{task_id}/{run_id}"),
        format!("queue:create-artifact:{task_id}/{run_id}"),
    ];
    scopes.extend(task.scopes.iter().cloned());
    let issuer = &st.clients[QUEUE_CLIENT_ID];
    tempcreds::issue(
        QUEUE_CLIENT_ID,
        &issuer.access_token,
        &client_id,
        scopes,
        Utc::now(),
        taken_until,
    )
}

/// `reclaimTask`: a new `takenUntil` and new credentials; 409 unless the run is running.
pub fn reclaim(st: &mut State, caller: &Caller, task_id: &str, run_id: &str) -> Result<Reply, ApiError> {
    caller.require(&Requirement::all([format!("queue:reclaim-task:{task_id}/{run_id}")]))?;
    let n = run_index(st, task_id, run_id)?;
    let taken_until = Utc::now() + st.options.claim_timeout;
    let task = st.tasks.get_mut(task_id).expect("task exists");
    let run = &mut task.runs[n];
    if run.state != "running" {
        return Err(ApiError::conflict(format!(
            "run {n} of task `{task_id}` is {}, not running",
            run.state
        )));
    }
    run.taken_until = Some(taken_until);
    let (wg, wid) = (run.worker_group.clone(), run.worker_id.clone());
    let status = task.status_json(task_id);
    let creds = task_credentials(st, task_id, n, taken_until);
    Ok(Reply::ok(json!({
        "status": status,
        "runId": n,
        "workerGroup": wg,
        "workerId": wid,
        "takenUntil": to_json_time(taken_until),
        "credentials": creds,
    })))
}

/// `reportCompleted` (`state` = completed), `reportFailed` (failed) or `reportException`
/// (exception, with `body.reason`); 409 unless the run is running. `worker-shutdown` and
/// `intermittent-task` create a new pending run while retries are left.
pub fn resolve(
    st: &mut State,
    caller: &Caller,
    (task_id, run_id): (&str, &str),
    state: &'static str,
    body: &Value,
) -> Result<Reply, ApiError> {
    caller.require(&Requirement::all([format!("queue:resolve-task:{task_id}/{run_id}")]))?;
    let n = run_index(st, task_id, run_id)?;
    let reason = match state {
        "exception" => {
            let r = body.get("reason").and_then(Value::as_str).unwrap_or_default();
            if !EXCEPTION_REASONS.contains(&r) {
                return Err(ApiError::invalid_schema(format!("unknown exception reason `{r}`")));
            }
            r.to_string()
        }
        other => other.to_string(),
    };
    let now = Utc::now();
    let task = st.tasks.get_mut(task_id).expect("task exists");
    let run = &mut task.runs[n];
    if run.state != "running" {
        return Err(ApiError::conflict(format!(
            "run {n} of task `{task_id}` is {}, not running",
            run.state
        )));
    }
    resolve_run(run, state, &reason, now);
    task.resolutions.push(crate::records::Resolution {
        run_id: n as u32,
        state: state.to_string(),
        reason: reason.clone(),
        client_id: caller.client_id.clone(),
        at: now,
    });
    let retry = match reason.as_str() {
        "worker-shutdown" => Some("retry"),
        "intermittent-task" => Some("task-retry"),
        _ => None,
    };
    if let Some(why) = retry.filter(|_| task.retries_left > 0 && task.deadline > now) {
        task.retries_left -= 1;
        let run = st.new_run(why);
        st.tasks.get_mut(task_id).expect("task exists").runs.push(run);
    }
    Ok(Reply::ok(json!({"status": st.tasks[task_id].status_json(task_id)})))
}
