//! Routing of authenticated API requests to the handlers: the queue's and the object service's
//! endpoint tables, matched on raw path segments as the client signed them.
//!
//! Ids are decoded per segment and artifact/object names are the decoded rest of the path, so a
//! name sent as `public%2Flogs%2Flive.log` or `public/logs/live.log` is the same artifact.

use crate::artifact_read::{self, ReadMode};
use crate::hawk_auth::Caller;
use crate::reply::{ApiError, Reply};
use crate::state::State;
use crate::{artifacts, objects, runs, tasks};
use serde_json::{Value, json};

/// Percent-decode one path piece.
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Route an `/api/queue/v1/...` request (already authenticated; `claimWork` is handled apart).
pub fn route_queue(
    st: &mut State,
    caller: &Caller,
    method: &str,
    segs: &[&str],
    body: &Value,
) -> Result<Reply, ApiError> {
    let name = |rest: &[&str]| decode(&rest.join("/"));
    match (method, segs) {
        ("PUT", ["task", t]) => tasks::create_task(st, caller, &decode(t), body),
        ("GET", ["task", t]) => tasks::get_task(st, caller, &decode(t)),
        ("GET", ["task", t, "status"]) => tasks::get_status(st, caller, &decode(t)),
        ("POST", ["task", t, "runs", r, verb]) => {
            let ids = (decode(t), decode(r));
            match *verb {
                "reclaim" => runs::reclaim(st, caller, &ids.0, &ids.1),
                "completed" | "failed" | "exception" => {
                    let state = match *verb {
                        "completed" => "completed",
                        "failed" => "failed",
                        _ => "exception",
                    };
                    runs::resolve(st, caller, (&ids.0, &ids.1), state, body)
                }
                _ => Err(ApiError::not_found(format!("no such endpoint: runs/{r}/{verb}"))),
            }
        }
        ("GET", ["task", t, "runs", r, "artifacts"]) => artifact_read::list(st, caller, &decode(t), Some(&decode(r))),
        ("GET", ["task", t, "artifacts"]) => artifact_read::list(st, caller, &decode(t), None),
        (_, ["task", t, "runs", r, kind, rest @ ..]) if !rest.is_empty() => {
            let (t, r, n) = (decode(t), decode(r), name(rest));
            match (method, *kind) {
                ("POST", "artifacts") => artifacts::create(st, caller, (&t, &r), &n, body),
                ("PUT", "artifacts") => artifacts::finish(st, caller, (&t, &r), &n, body),
                ("GET", "artifacts") => artifact_read::read(st, caller, &t, Some(&r), &n, ReadMode::Redirect),
                ("GET", "artifact-content") => artifact_read::read(st, caller, &t, Some(&r), &n, ReadMode::Content),
                ("GET", "artifact-info") => artifact_read::read(st, caller, &t, Some(&r), &n, ReadMode::Info),
                _ => Err(ApiError::not_found(format!(
                    "no such endpoint: {method} runs/{r}/{kind}/..."
                ))),
            }
        }
        ("GET", ["task", t, kind, rest @ ..]) if !rest.is_empty() => {
            let (t, n) = (decode(t), name(rest));
            let mode = match *kind {
                "artifacts" => ReadMode::Redirect,
                "artifact-content" => ReadMode::Content,
                "artifact-info" => ReadMode::Info,
                _ => return Err(ApiError::not_found(format!("no such endpoint: task/{t}/{kind}/..."))),
            };
            artifact_read::read(st, caller, &t, None, &n, mode)
        }
        _ => Err(ApiError::not_found(format!(
            "this fake queue has no endpoint {method} {}",
            segs.join("/")
        ))),
    }
}

pub fn route_object(
    st: &mut State,
    caller: &Caller,
    method: &str,
    segs: &[&str],
    body: &Value,
) -> Result<Reply, ApiError> {
    let name = |rest: &[&str]| decode(&rest.join("/"));
    match (method, segs) {
        ("PUT", ["upload", rest @ ..]) if !rest.is_empty() => objects::create_upload(st, caller, &name(rest), body),
        ("POST", ["finish-upload", rest @ ..]) if !rest.is_empty() => {
            objects::finish_upload(st, caller, &name(rest), body)
        }
        ("PUT", ["start-download", rest @ ..]) if !rest.is_empty() => {
            objects::start_download(st, caller, &name(rest), body)
        }
        _ => Err(ApiError::not_found(format!(
            "this fake object service has no endpoint {method} {}",
            segs.join("/")
        ))),
    }
}

/// Route an `/api/index/v1/...` request: only `findArtifactFromTask`
/// (`task/<namespace>/artifacts/<name>`), a 303 to the indexed task's latest
/// artifact. As the real index: a `public/` artifact's URL is plain (its read then
/// checks the caller's scopes); for any other the caller needs
/// `queue:get-artifact:<name>` here, and the URL is signed with the index's own
/// credentials (a bewit valid for 15 minutes).
pub fn route_index(st: &State, caller: &Caller, method: &str, segs: &[&str]) -> Result<Reply, ApiError> {
    match (method, segs) {
        ("GET", ["task", namespace, "artifacts", rest @ ..]) if !rest.is_empty() => {
            let namespace = decode(namespace);
            let Some(task_id) = st.index.get(&namespace) else {
                return Err(ApiError::not_found(format!("no task is indexed at {namespace}")));
            };
            let name = decode(&rest.join("/"));
            let path = format!("/api/queue/v1/task/{task_id}/artifacts/{}", rest.join("/"));
            let url = if name.starts_with("public/") {
                format!("{}{path}", st.root_url)
            } else {
                caller.require(&crate::scopes::Requirement::all([format!("queue:get-artifact:{name}")]))?;
                signed_url(st, &path)?
            };
            Ok(Reply::Redirect(url.clone(), json!({"url": url})))
        }
        _ => Err(ApiError::not_found(format!(
            "this fake index has no endpoint {method} {}",
            segs.join("/")
        ))),
    }
}

/// Route an `/api/auth/v1/...` request: only `currentScopes`, which a worker calls at start to
/// check its credentials and scopes (the fake has no other auth endpoint).
pub fn route_auth(caller: &Caller, method: &str, segs: &[&str]) -> Result<Reply, ApiError> {
    match (method, segs) {
        ("GET", ["scopes", "current"]) => Ok(Reply::ok(serde_json::json!({ "scopes": caller.scopes }))),
        _ => Err(ApiError::not_found(format!(
            "this fake auth service has no endpoint {method} {}",
            segs.join("/")
        ))),
    }
}

/// `path` on this deployment, signed with the queue's own credentials for 15 minutes.
fn signed_url(st: &State, path: &str) -> Result<String, ApiError> {
    let issuer = &st.clients[crate::state::QUEUE_CLIENT_ID];
    let key = hawk::Key::new(&issuer.access_token, hawk::SHA256)
        .map_err(|e| ApiError::input(format!("signing a URL: {e}")))?;
    let credentials = hawk::Credentials {
        id: crate::state::QUEUE_CLIENT_ID.to_string(),
        key,
    };
    let host_port = st.root_url.trim_start_matches("http://");
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap_or(80)),
        None => (host_port.to_string(), 80),
    };
    let bewit = hawk::RequestBuilder::new("GET", &host, port, path)
        .request()
        .make_bewit_with_ttl(&credentials, std::time::Duration::from_secs(15 * 60))
        .map_err(|e| ApiError::input(format!("signing a URL: {e}")))?;
    Ok(format!("{}{path}?bewit={}", st.root_url, bewit.to_str()))
}
