//! Task definitions: `createTask` (with the defaults and scope checks of the real queue),
//! `task` and `status`, and the task/run lookups the other endpoint modules share.
//!
//! Also the task status structure every status-bearing answer embeds. The run lifecycle (claim,
//! reclaim, reports) lives in `runs.rs`.

use crate::hawk_auth::Caller;
use crate::reply::{ApiError, Reply};
use crate::scopes::Requirement;
use crate::state::{Run, State, Task, parse_time, to_json_time};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

const PRIORITIES: [&str; 8] = [
    "highest",
    "very-high",
    "high",
    "medium",
    "low",
    "very-low",
    "lowest",
    "normal",
];

/// `createTask`: normalize the definition (defaults as the real queue fills them), check scopes,
/// store it with one pending run. Repeating the same body is idempotent; a different one is 409.
pub fn create_task(st: &mut State, caller: &Caller, task_id: &str, body: &Value) -> Result<Reply, ApiError> {
    let mut def = body.clone();
    let obj = def
        .as_object_mut()
        .ok_or_else(|| ApiError::invalid_schema("task definition must be an object"))?;
    let queue_id = match (obj.get("taskQueueId"), obj.get("provisionerId"), obj.get("workerType")) {
        (Some(Value::String(q)), _, _) => q.clone(),
        (None, Some(Value::String(p)), Some(Value::String(w))) => format!("{p}/{w}"),
        _ => {
            return Err(ApiError::invalid_schema(
                "taskQueueId (or provisionerId and workerType) is required",
            ));
        }
    };
    let (prov, wtype) = queue_id
        .split_once('/')
        .ok_or_else(|| ApiError::input("taskQueueId must contain `/`"))?;
    if obj.get("provisionerId").is_some_and(|p| p != prov) || obj.get("workerType").is_some_and(|w| w != wtype) {
        return Err(ApiError::input("taskQueueId does not match provisionerId/workerType"));
    }
    if !obj.contains_key("payload") {
        return Err(ApiError::invalid_schema("`payload` is required"));
    }
    let now = Utc::now();
    let deadline = parse_time(&Value::Object(obj.clone()), "deadline")?;
    let expires = match obj.get("expires") {
        Some(_) => parse_time(&Value::Object(obj.clone()), "expires")?,
        None => deadline + Duration::days(365),
    };
    if expires < deadline {
        return Err(ApiError::input("`expires` must not be before `deadline`"));
    }
    let defaults = [
        ("taskQueueId", json!(queue_id)),
        ("provisionerId", json!(prov)),
        ("workerType", json!(wtype)),
        ("schedulerId", json!("-")),
        ("projectId", json!("none")),
        ("taskGroupId", json!(task_id)),
        ("dependencies", json!([])),
        ("requires", json!("all-completed")),
        ("routes", json!([])),
        ("priority", json!("lowest")),
        ("retries", json!(5)),
        ("created", json!(to_json_time(now))),
        ("expires", json!(to_json_time(expires))),
        ("scopes", json!([])),
        ("metadata", json!({})),
        ("tags", json!({})),
        ("extra", json!({})),
    ];
    for (k, v) in defaults {
        obj.entry(k).or_insert(v);
    }
    let strings = |k: &str| -> Result<Vec<String>, ApiError> {
        serde_json::from_value(obj[k].clone()).map_err(|_| ApiError::invalid_schema(format!("`{k}` must be strings")))
    };
    let scopes = strings("scopes")?;
    let routes = strings("routes")?;
    let priority = obj["priority"].as_str().unwrap_or("lowest").to_string();
    let rank = PRIORITIES
        .iter()
        .position(|p| *p == priority)
        .ok_or_else(|| ApiError::input("unknown priority"))?;
    let retries = obj["retries"]
        .as_u64()
        .ok_or_else(|| ApiError::invalid_schema("`retries` must be an integer"))?;
    let scheduler = obj["schedulerId"].as_str().unwrap_or("-").to_string();
    let project_id = obj["projectId"].as_str().unwrap_or("none").to_string();

    let mut req = Requirement::all(scopes.iter().cloned());
    req.all.extend(routes.iter().map(|r| format!("queue:route:{r}")));
    req.all.push(format!("queue:scheduler-id:{scheduler}"));
    let allowed = &PRIORITIES[..=rank.min(6)];
    req.any_of.push(
        allowed
            .iter()
            .rev()
            .map(|p| format!("queue:create-task:{p}:{queue_id}"))
            .collect(),
    );
    caller.require(&req)?;

    if let Some(existing) = st.tasks.get(task_id) {
        if existing.original == *body {
            return Ok(Reply::ok(json!({"status": existing.status_json(task_id)})));
        }
        return Err(ApiError::conflict(format!(
            "task `{task_id}` already exists with a different definition"
        )));
    }
    let run = st.new_run("scheduled");
    let task = Task {
        original: body.clone(),
        definition: def,
        task_queue_id: queue_id,
        scopes,
        project_id,
        priority_rank: rank.min(6),
        deadline,
        expires,
        retries_left: retries as u32,
        runs: vec![run],
        resolutions: Vec::new(),
    };
    let status = task.status_json(task_id);
    st.tasks.insert(task_id.to_string(), task);
    Ok(Reply::ok(json!({ "status": status })))
}

/// Look up a task or answer 404.
pub fn task_ref<'a>(st: &'a State, task_id: &str) -> Result<&'a Task, ApiError> {
    st.tasks
        .get(task_id)
        .ok_or_else(|| ApiError::not_found(format!("task `{task_id}` not found")))
}

/// `task(taskId)`: the normalized definition.
pub fn get_task(st: &State, caller: &Caller, task_id: &str) -> Result<Reply, ApiError> {
    caller.require(&Requirement::all([format!("queue:get-task:{task_id}")]))?;
    Ok(Reply::ok(task_ref(st, task_id)?.definition.clone()))
}

/// `status(taskId)`: `{status}`.
pub fn get_status(st: &State, caller: &Caller, task_id: &str) -> Result<Reply, ApiError> {
    caller.require(&Requirement::all([format!("queue:status:{task_id}")]))?;
    Ok(Reply::ok(
        json!({"status": task_ref(st, task_id)?.status_json(task_id)}),
    ))
}

/// Parse a runId path segment and find the run; 404 if either is unknown.
pub fn run_index(st: &State, task_id: &str, run_id: &str) -> Result<usize, ApiError> {
    let task = task_ref(st, task_id)?;
    let n: usize = run_id
        .parse()
        .map_err(|_| ApiError::invalid_schema("runId must be an integer"))?;
    if n >= task.runs.len() {
        return Err(ApiError::not_found(format!("run {n} of task `{task_id}` not found")));
    }
    Ok(n)
}

impl Task {
    /// The task status structure (`task-status.yml`) for `task_id`.
    pub fn status_json(&self, task_id: &str) -> Value {
        let def = &self.definition;
        let runs: Vec<Value> = self.runs.iter().enumerate().map(|(i, r)| run_json(i, r)).collect();
        let state = self.runs.last().map(|r| r.state).unwrap_or("unscheduled");
        json!({
            "taskId": task_id,
            "provisionerId": def["provisionerId"],
            "workerType": def["workerType"],
            "taskQueueId": def["taskQueueId"],
            "schedulerId": def["schedulerId"],
            "projectId": def["projectId"],
            "taskGroupId": def["taskGroupId"],
            "deadline": def["deadline"],
            "expires": def["expires"],
            "retriesLeft": self.retries_left,
            "state": state,
            "runs": runs,
        })
    }
}

fn run_json(run_id: usize, r: &Run) -> Value {
    let mut v = json!({
        "runId": run_id,
        "state": r.state,
        "reasonCreated": r.reason_created,
        "scheduled": to_json_time(r.scheduled),
    });
    let opt = |t: Option<DateTime<Utc>>| t.map(to_json_time);
    for (k, val) in [
        ("reasonResolved", r.reason_resolved.clone()),
        ("workerGroup", r.worker_group.clone()),
        ("workerId", r.worker_id.clone()),
        ("takenUntil", opt(r.taken_until)),
        ("started", opt(r.started)),
        ("resolved", opt(r.resolved)),
    ] {
        if let Some(val) = val {
            v[k] = Value::String(val);
        }
    }
    v
}
