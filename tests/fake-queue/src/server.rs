//! The HTTP side: a hyper 1 server on loopback that reads each request whole, answers the blob
//! URLs and pings, authenticates API requests, runs the `claimWork` long-poll, hands the rest to
//! `routes.rs`, renders the reply, and records it in the request log.

use crate::hawk_auth::{AuthInput, Caller, authenticate};
use crate::records::RequestRecord;
use crate::reply::{ApiError, Reply};
use crate::routes::{decode, route_auth, route_index, route_object, route_queue};
use crate::state::State;
use crate::{objects, runs};
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// The state and the wake-up signal for long-polling `claimWork` calls.
pub struct Shared {
    pub state: Mutex<State>,
    pub notify: Notify,
}

impl Shared {
    /// Lock the state, ignoring poisoning (a panicking test must not hide the state from others).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Accept connections until the task is aborted (which also aborts every connection).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| handle(shared.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let body = req.into_body().collect().await;
    if shared.lock().outage {
        let response = render(
            &method,
            &path,
            Err(ApiError::unavailable(
                "the fake deployment is in an outage (FakeQueue::set_outage)",
            )),
        );
        shared.lock().log.push(RequestRecord {
            method,
            path,
            client_id: None,
            status: 503,
        });
        return Ok(response);
    }
    let (client_id, result) = match body {
        Ok(body) => {
            dispatch(
                &shared,
                &method,
                &path,
                query.as_deref(),
                &headers,
                body.to_bytes().to_vec(),
            )
            .await
        }
        Err(e) => (None, Err(ApiError::input(format!("cannot read the request body: {e}")))),
    };
    let response = render(&method, &path, result);
    let status = response.status().as_u16();
    shared.lock().log.push(RequestRecord {
        method,
        path,
        client_id,
        status,
    });
    Ok(response)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

type Outcome = (Option<String>, Result<Reply, ApiError>);

async fn dispatch(
    shared: &Shared,
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Outcome {
    if let Some(token) = path.strip_prefix("/_fake/blobs/") {
        let mut st = shared.lock();
        let h = ["content-type", "content-length", "content-encoding"].map(|n| header(headers, n));
        return match method {
            "PUT" => (None, objects::put_blob(&mut st, token, h, body)),
            "GET" => (None, objects::get_blob(&st, token)),
            _ => (None, Err(ApiError::not_found("blob URLs take PUT and GET"))),
        };
    }
    let Some((service, rest)) = path.strip_prefix("/api/").and_then(|p| p.split_once("/v1/")) else {
        return (None, Err(ApiError::not_found(format!("no such endpoint: {path}"))));
    };
    if matches!(rest, "ping" | "__heartbeat__" | "__lbheartbeat__" | "__version__") {
        return (None, Ok(Reply::ok(json!({"alive": true, "uptime": 1}))));
    }
    let caller = {
        let st = shared.lock();
        let input = AuthInput {
            method,
            path,
            query,
            host: header(headers, "host"),
            authorization: header(headers, "authorization"),
            content_type: header(headers, "content-type"),
            body: &body,
        };
        authenticate(&st, &input)
    };
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return (None, Err(e)),
    };
    let client_id = Some(caller.client_id.clone());
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return (
                    client_id,
                    Err(ApiError::input(format!("request body is not JSON: {e}"))),
                );
            }
        }
    };
    if service == "queue" && method == "POST" && rest.starts_with("claim-work/") {
        let queue_id = decode(&rest["claim-work/".len()..]);
        return (client_id, claim_work(shared, &caller, &queue_id, &body).await);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let result = {
        let mut st = shared.lock();
        st.sweep(Utc::now());
        match service {
            "queue" => route_queue(&mut st, &caller, method, &segs, &body),
            "object" => route_object(&mut st, &caller, method, &segs, &body),
            "auth" => route_auth(&caller, method, &segs),
            "index" => route_index(&st, &caller, method, &segs),
            _ => Err(ApiError::not_found(format!("no service `{service}` in this fake"))),
        }
    };
    shared.notify.notify_waiters();
    (client_id, result)
}

/// `claimWork`: claim what is pending now, else wait (woken by new work, re-checking every
/// 100 ms for expired claims) until the configured timeout, then answer `{tasks: []}`.
async fn claim_work(shared: &Shared, caller: &Caller, queue_id: &str, body: &Value) -> Result<Reply, ApiError> {
    let req = runs::check_claim_work(caller, queue_id, body)?;
    let timeout = shared.lock().options.claim_work_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = shared.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let claims = {
            let mut st = shared.lock();
            if st.outage {
                return Err(ApiError::unavailable(
                    "the fake deployment is in an outage (FakeQueue::set_outage)",
                ));
            }
            st.sweep(Utc::now());
            runs::claim_available(&mut st, &req)
        };
        let now = tokio::time::Instant::now();
        if !claims.is_empty() || now >= deadline {
            return Ok(Reply::ok(json!({ "tasks": claims })));
        }
        let wait = (deadline - now).min(Duration::from_millis(100));
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn render(method: &str, path: &str, result: Result<Reply, ApiError>) -> Response<Full<Bytes>> {
    let json = |status: u16, v: &Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json; charset=utf-8")
            .body(Full::new(Bytes::from(v.to_string())))
    };
    let response = match result {
        Ok(Reply::Json(status, v)) => json(status, &v),
        Ok(Reply::Redirect(url, v)) => Response::builder()
            .status(303)
            .header("location", url)
            .header("content-type", "application/json; charset=utf-8")
            .header(
                "x-taskcluster-artifact-storage-type",
                v["storageType"].as_str().unwrap_or_default(),
            )
            .body(Full::new(Bytes::from(v.to_string()))),
        Ok(Reply::Empty) => Response::builder().status(204).body(Full::new(Bytes::new())),
        Ok(Reply::Bytes {
            data,
            content_type,
            content_encoding,
        }) => {
            let mut b = Response::builder().status(200).header("content-type", content_type);
            if let Some(enc) = content_encoding {
                b = b.header("content-encoding", enc);
            }
            b.body(Full::new(Bytes::from(data)))
        }
        Err(e) => json(e.status, &e.body(method, path)),
    };
    response.unwrap_or_else(|e| Response::new(Full::new(Bytes::from(format!("cannot build response: {e}")))))
}
