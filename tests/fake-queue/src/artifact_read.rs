//! Reading artifacts back: `getArtifact`/`getLatestArtifact` (a 303 to the data), `artifact`/
//! `latestArtifact` (the content description), `artifactInfo`/`latestArtifactInfo` and
//! `listArtifacts`/`listLatestArtifacts` (metadata), and, for the test API, the stored bytes.
//!
//! Link artifacts are followed (at most 10 hops; a cycle is 400), each hop needing
//! `queue:get-artifact:<name>`. Error artifacts answer 424 from `getArtifact`.

use crate::hawk_auth::Caller;
use crate::reply::{ApiError, Reply};
use crate::scopes::Requirement;
use crate::state::{Artifact, State, Stored, to_json_time};
use crate::tasks::{run_index, task_ref};
use chrono::{Duration, Utc};
use serde_json::{Value, json};

/// Which read endpoint is asking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadMode {
    /// `getArtifact`: a 303 redirect to the data.
    Redirect,
    /// `artifact`: the content description (`artifact-content-response.yml`).
    Content,
    /// `artifactInfo`: metadata only, links not followed.
    Info,
}

/// The run index for an explicit runId, or the latest run.
fn pick_run(st: &State, task_id: &str, run_id: Option<&str>) -> Result<usize, ApiError> {
    match run_id {
        Some(r) => run_index(st, task_id, r),
        None => {
            let n = task_ref(st, task_id)?.runs.len();
            n.checked_sub(1).ok_or_else(|| ApiError::not_found("task has no runs"))
        }
    }
}

/// Follow links from `name` in run `n`; returns the final name and artifact.
pub fn follow(
    st: &State,
    task_id: &str,
    n: usize,
    name: &str,
    caller: Option<&Caller>,
) -> Result<(String, Artifact), ApiError> {
    let artifacts = &st.tasks[task_id].runs[n].artifacts;
    let mut seen = vec![name.to_string()];
    let mut current = name.to_string();
    loop {
        if let Some(c) = caller {
            c.require(&Requirement::all([format!("queue:get-artifact:{current}")]))?;
        }
        let a = artifacts
            .get(&current)
            .ok_or_else(|| ApiError::not_found(format!("artifact `{current}` not found")))?;
        match &a.stored {
            Stored::Link { artifact } if seen.contains(artifact) || seen.len() > 10 => {
                return Err(ApiError::input(format!(
                    "link artifact `{name}` loops or chains too far"
                )));
            }
            Stored::Link { artifact } => {
                seen.push(artifact.clone());
                current = artifact.clone();
            }
            _ => return Ok((current, a.clone())),
        }
    }
}

/// The metadata record of an artifact (`list-artifacts-response.yml`).
pub fn info_json(name: &str, a: &Artifact) -> Value {
    json!({
        "storageType": a.storage_type,
        "name": name,
        "expires": to_json_time(a.expires),
        "contentType": a.content_type,
    })
}

/// The blob token holding an artifact's data, if it has one.
pub fn blob_token(st: &State, a: &Artifact) -> Option<String> {
    match &a.stored {
        Stored::S3 { token } => Some(token.clone()),
        Stored::Object { object_name, .. } => st.objects.get(object_name).map(|o| o.blob_token.clone()),
        _ => None,
    }
}

/// `getArtifact`, `artifact` and `artifactInfo`, for a run or (with `run_id` None) the latest run.
pub fn read(
    st: &State,
    caller: &Caller,
    task_id: &str,
    run_id: Option<&str>,
    name: &str,
    mode: ReadMode,
) -> Result<Reply, ApiError> {
    let n = pick_run(st, task_id, run_id)?;
    if mode == ReadMode::Info {
        caller.require(&Requirement::all([format!("queue:list-artifacts:{task_id}:{n}")]))?;
        let a = st.tasks[task_id].runs[n].artifacts.get(name).filter(|a| a.present);
        let a = a.ok_or_else(|| ApiError::not_found(format!("artifact `{name}` not found")))?;
        return Ok(Reply::ok(info_json(name, a)));
    }
    let (final_name, a) = follow(st, task_id, n, name, Some(caller))?;
    if !a.present {
        return Err(ApiError::not_found(format!(
            "artifact `{final_name}` is not uploaded yet"
        )));
    }
    let url = match &a.stored {
        Stored::Reference { url } => url.clone(),
        Stored::Error { reason, message } => {
            return Ok(match mode {
                ReadMode::Content => Reply::ok(json!({"storageType": "error", "reason": reason, "message": message})),
                _ => Reply::Json(424, json!({"reason": reason, "message": message})),
            });
        }
        _ => st.blob_url(&blob_token(st, &a).unwrap_or_default()),
    };
    Ok(match (mode, &a.stored) {
        (ReadMode::Content, Stored::Object { object_name, .. }) => {
            let issuer = &st.clients[crate::state::QUEUE_CLIENT_ID];
            let now = Utc::now();
            let creds = crate::tempcreds::issue(
                crate::state::QUEUE_CLIENT_ID,
                &issuer.access_token,
                &format!("queue/object-download/{object_name}"),
                vec![format!("object:download:{object_name}")],
                now,
                now + Duration::hours(1),
            );
            Reply::ok(json!({"storageType": "object", "name": object_name, "credentials": creds}))
        }
        (ReadMode::Content, _) => Reply::ok(json!({"storageType": a.storage_type, "url": url})),
        _ => Reply::Redirect(url.clone(), json!({"storageType": a.storage_type, "url": url})),
    })
}

/// `listArtifacts` / `listLatestArtifacts`: present artifacts only, in one page.
pub fn list(st: &State, caller: &Caller, task_id: &str, run_id: Option<&str>) -> Result<Reply, ApiError> {
    let n = pick_run(st, task_id, run_id)?;
    caller.require(&Requirement::all([format!("queue:list-artifacts:{task_id}:{n}")]))?;
    let artifacts = &st.tasks[task_id].runs[n].artifacts;
    let list: Vec<Value> = artifacts
        .iter()
        .filter(|(_, a)| a.present)
        .map(|(k, a)| info_json(k, a))
        .collect();
    Ok(Reply::ok(json!({ "artifacts": list })))
}
