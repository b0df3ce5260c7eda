//! The artifact-writing endpoints of the queue: `createArtifact` for the `s3`, `object`,
//! `reference`, `link` and `error` storage types, and `finishArtifact`. Reading back is in
//! `artifact_read.rs`.
//!
//! Rules enforced: the run must be running (or resolved as exception less than the grace period
//! ago), `expires` may not pass the task's, identical repeats are idempotent, `expires` may be
//! extended, a `reference` may become another reference or a `link`, anything else is 409.

use crate::hawk_auth::Caller;
use crate::reply::{ApiError, Reply};
use crate::scopes::Requirement;
use crate::state::{Artifact, State, Stored, parse_time, to_json_time};
use crate::tasks::{run_index, task_ref};
use crate::tempcreds;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

const ERROR_REASONS: [&str; 4] = [
    "file-missing-on-worker",
    "invalid-resource-on-worker",
    "too-large-file-on-worker",
    "file-not-readable-on-worker",
];

/// The fields each storage type accepts, the required ones first (`post-artifact-request.yml`).
fn schema(storage_type: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match storage_type {
        "s3" | "object" => (&["storageType", "expires", "contentType"], &["contentLength"]),
        "reference" => (&["storageType", "expires", "url", "contentType"], &[]),
        "link" => (&["storageType", "expires", "artifact"], &["contentType"]),
        "error" => (&["storageType", "expires", "reason", "message"], &[]),
        _ => return None,
    })
}

fn check_run_accepts(st: &State, task_id: &str, n: usize) -> Result<(), ApiError> {
    let run = &st.tasks[task_id].runs[n];
    let grace = Duration::from_std(st.options.exception_upload_grace).unwrap_or(Duration::MAX);
    let in_grace = run.state == "exception" && run.resolved.is_some_and(|t| t + grace >= Utc::now());
    if run.state == "running" || in_grace {
        return Ok(());
    }
    Err(ApiError::conflict(format!(
        "run {n} of task `{task_id}` is {}: artifacts can no longer be created",
        run.state
    )))
}

/// `createArtifact(taskId, runId, name, body)`.
pub fn create(st: &mut State, caller: &Caller, ids: (&str, &str), name: &str, body: &Value) -> Result<Reply, ApiError> {
    let (task_id, run_id) = ids;
    caller.require(&Requirement::all([format!("queue:create-artifact:{task_id}/{run_id}")]))?;
    let n = run_index(st, task_id, run_id)?;
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::invalid_schema("body must be an object"))?;
    let storage_type = obj.get("storageType").and_then(Value::as_str).unwrap_or_default();
    let (required, optional) = schema(storage_type)
        .ok_or_else(|| ApiError::invalid_schema(format!("unknown storageType `{storage_type}`")))?;
    if let Some(missing) = required.iter().find(|k| !obj.contains_key(**k)) {
        return Err(ApiError::invalid_schema(format!(
            "`{missing}` is required for {storage_type} artifacts"
        )));
    }
    if let Some(extra) = obj
        .keys()
        .find(|k| !required.contains(&k.as_str()) && !optional.contains(&k.as_str()))
    {
        return Err(ApiError::invalid_schema(format!(
            "`{extra}` is not allowed for {storage_type} artifacts"
        )));
    }
    // The schema's length limits (in characters, as JSON Schema counts them).
    for (field, max) in [("contentType", 255), ("message", 4096)] {
        let len = obj.get(field).and_then(Value::as_str).map(|v| v.chars().count());
        if len.is_some_and(|n| n > max) {
            return Err(ApiError::invalid_schema(format!(
                "`{field}` is longer than {max} characters"
            )));
        }
    }
    let expires = parse_time(body, "expires")?;
    let task = task_ref(st, task_id)?;
    if expires > task.expires {
        return Err(ApiError::input(format!(
            "Artifact expires ({}) after the task expiration {}",
            to_json_time(expires),
            to_json_time(task.expires)
        )));
    }
    check_run_accepts(st, task_id, n)?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let content_type = match storage_type {
        "error" => "application/json".to_string(),
        "link" if !obj.contains_key("contentType") => "application/binary".to_string(),
        _ => text("contentType"),
    };
    let stored = match storage_type {
        "s3" => Stored::S3 { token: String::new() },
        "object" => Stored::Object {
            object_name: format!("t/{task_id}/{n}/{name}"),
            upload_id: String::new(),
        },
        "reference" => Stored::Reference { url: text("url") },
        "link" => Stored::Link {
            artifact: text("artifact"),
        },
        _ if ERROR_REASONS.contains(&text("reason").as_str()) => Stored::Error {
            reason: text("reason"),
            message: text("message"),
        },
        _ => {
            return Err(ApiError::invalid_schema(format!(
                "unknown error artifact reason `{}`",
                text("reason")
            )));
        }
    };
    let runs = &mut st.tasks.get_mut(task_id).expect("task exists").runs;
    let existing = runs[n].artifacts.get(name).cloned();
    let artifact = match existing {
        Some(old) if same_kind(&old.stored, &stored) && old.content_type == content_type => {
            if expires < old.expires {
                return Err(ApiError::conflict(format!(
                    "artifact `{name}` exists with a later expires"
                )));
            }
            Artifact { expires, ..old }
        }
        Some(old)
            if matches!(old.stored, Stored::Reference { .. })
                && matches!(stored, Stored::Reference { .. } | Stored::Link { .. }) =>
        {
            Artifact {
                storage_type: static_type(storage_type),
                content_type,
                expires,
                present: true,
                stored,
            }
        }
        Some(_) => {
            return Err(ApiError::conflict(format!(
                "artifact `{name}` already exists and differs"
            )));
        }
        None => {
            let stored = match stored {
                Stored::S3 { .. } => Stored::S3 {
                    token: tempcreds::random_token(24),
                },
                Stored::Object { object_name, .. } => Stored::Object {
                    object_name,
                    upload_id: tempcreds::slugid(),
                },
                other => other,
            };
            let present = !matches!(stored, Stored::Object { .. });
            Artifact {
                storage_type: static_type(storage_type),
                content_type,
                expires,
                present,
                stored,
            }
        }
    };
    runs[n].artifacts.insert(name.to_string(), artifact.clone());
    Ok(Reply::ok(create_response(st, task_id, &artifact)))
}

/// Same storage type and same details; tokens and upload ids are the fake's own and not compared.
fn same_kind(old: &Stored, new: &Stored) -> bool {
    match (old, new) {
        (Stored::S3 { .. }, Stored::S3 { .. }) | (Stored::Object { .. }, Stored::Object { .. }) => true,
        (a, b) => a == b,
    }
}

fn static_type(t: &str) -> &'static str {
    ["s3", "object", "reference", "link", "error"]
        .into_iter()
        .find(|s| *s == t)
        .unwrap_or("error")
}

fn create_response(st: &mut State, task_id: &str, a: &Artifact) -> Value {
    match &a.stored {
        Stored::S3 { token } => {
            let blob = st.blobs.entry(token.clone()).or_default();
            blob.content_type = a.content_type.clone();
            json!({
                "storageType": "s3",
                "putUrl": st.blob_url(token),
                "expires": to_json_time(Utc::now() + Duration::minutes(45)),
                "contentType": a.content_type,
            })
        }
        Stored::Object { object_name, upload_id } => {
            let project_id = st.tasks[task_id].project_id.clone();
            let scope = format!("object:upload:{project_id}:{object_name}");
            json!({
                "storageType": "object",
                "name": object_name,
                "projectId": project_id,
                "uploadId": upload_id,
                "expires": to_json_time(a.expires),
                "credentials": queue_temp_creds(st, "upload", object_name, scope, Duration::hours(24)),
            })
        }
        other => json!({ "storageType": storage_name(other) }),
    }
}

fn storage_name(s: &Stored) -> &'static str {
    match s {
        Stored::S3 { .. } => "s3",
        Stored::Object { .. } => "object",
        Stored::Reference { .. } => "reference",
        Stored::Link { .. } => "link",
        Stored::Error { .. } => "error",
    }
}

/// Temporary credentials from the queue's own client with one scope, for the object service.
fn queue_temp_creds(st: &State, verb: &str, object_name: &str, scope: String, ttl: Duration) -> Value {
    let issuer = &st.clients[crate::state::QUEUE_CLIENT_ID];
    let client_id = format!("queue/object-{verb}/{object_name}");
    let now = Utc::now();
    let creds = tempcreds::issue(
        crate::state::QUEUE_CLIENT_ID,
        &issuer.access_token,
        &client_id,
        vec![scope],
        now,
        now + ttl,
    );
    serde_json::to_value(creds).expect("credentials serialize")
}

/// `finishArtifact(taskId, runId, name, {uploadId})`: an object artifact becomes present once its
/// upload is finished on the object service.
pub fn finish(st: &mut State, caller: &Caller, ids: (&str, &str), name: &str, body: &Value) -> Result<Reply, ApiError> {
    let (task_id, run_id) = ids;
    caller.require(&Requirement::all([format!("queue:create-artifact:{task_id}/{run_id}")]))?;
    let n = run_index(st, task_id, run_id)?;
    let upload_id = body
        .get("uploadId")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid_schema("`uploadId` is required"))?;
    let artifact = st.tasks[task_id].runs[n].artifacts.get(name).cloned();
    let artifact = artifact.ok_or_else(|| ApiError::not_found(format!("artifact `{name}` not found")))?;
    let Stored::Object {
        object_name,
        upload_id: expected,
    } = &artifact.stored
    else {
        return Err(ApiError::input(format!(
            "{} artifacts cannot be finished",
            artifact.storage_type
        )));
    };
    if upload_id != expected {
        return Err(ApiError::input("uploadId does not match the artifact's"));
    }
    if artifact.present {
        return Ok(Reply::Empty);
    }
    check_run_accepts(st, task_id, n)?;
    if !st
        .objects
        .get(object_name)
        .is_some_and(|o| o.finished && o.upload_id == upload_id)
    {
        return Err(ApiError::input(format!(
            "object `{object_name}` has not been uploaded and finished"
        )));
    }
    st.tasks.get_mut(task_id).expect("task").runs[n]
        .artifacts
        .get_mut(name)
        .expect("artifact")
        .present = true;
    Ok(Reply::Empty)
}
