//! `features.taskclusterProxy`: the task calls the Taskcluster API without
//! credentials of its own, as `taskcluster-proxy` lets it. The worker attaches
//! proxies to the task's sandbox (the contract's `attach-proxy`; the docker
//! engine serves them at `http://taskcluster/<name>/…`): `api` takes
//! `/api/<service>/<version>/…` paths and each service name (`queue`, `index`,
//! `auth`, `secrets`, …) its own `/<version>/…` paths, as taskcluster-proxy does.
//! Each request goes to the deployment signed (Hawk) with the run's temporary
//! credentials, which carry exactly the task's scopes and are swapped at each
//! reclaim; the answer comes back unchanged (redirects are not followed).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::client::RunClient;
use crate::contract::{HttpRequest, HttpResponse, ProxyHandler};

/// The services a task reaches by name (taskcluster-proxy's list), besides `api`.
pub const SERVICES: &[&str] = &[
    "auth",
    "github",
    "hooks",
    "index",
    "notify",
    "object",
    "purge-cache",
    "queue",
    "secrets",
    "worker-manager",
];

/// Bytes of an answer the proxy hands back, as many as a request may have (the
/// endpoint's bound): API answers are small, and artifacts come as redirects,
/// which are passed on, not followed.
const MAX_ANSWER: usize = 16 << 20;

/// Requests of one task in flight at once (each holds its body and answer).
const IN_FLIGHT: usize = 8;

/// A proxy for one run: `service` `None` is `api`.
pub struct TaskclusterProxy {
    run: Arc<RunClient>,
    service: Option<&'static str>,
    http: reqwest::Client,
    /// Cancelled when the task has ended: the proxy signs nothing after.
    task_over: CancellationToken,
    in_flight: Arc<Semaphore>,
}

/// Every proxy a task with `taskclusterProxy` gets, by name; they answer 410 once
/// `task_over` is cancelled.
pub fn proxies(
    run: &Arc<RunClient>,
    task_over: CancellationToken,
) -> anyhow::Result<Vec<(String, Arc<dyn ProxyHandler>)>> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(300))
        .build()?;
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let one = |service: Option<&'static str>| -> Arc<dyn ProxyHandler> {
        Arc::new(TaskclusterProxy {
            run: run.clone(),
            service,
            http: http.clone(),
            task_over: task_over.clone(),
            in_flight: in_flight.clone(),
        })
    };
    let mut all = vec![("api".to_string(), one(None))];
    all.extend(SERVICES.iter().map(|s| (s.to_string(), one(Some(s)))));
    Ok(all)
}

fn answer(status: u16, message: &str) -> HttpResponse {
    let body = serde_json::json!({"code": "TaskclusterProxyError", "message": message});
    HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

/// Request headers not passed on: the proxy's own (hop-by-hop, the host, any
/// credentials the task sent).
fn passed_on(name: &str) -> bool {
    !matches!(
        name.to_ascii_lowercase().as_str(),
        "host"
            | "authorization"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "proxy-authorization"
            | "te"
            | "trailer"
    )
}

/// The deployment's URL for a request's `path` (with its query) to `service`'s
/// proxy (`None`: `api`); never outside the API.
fn api_url(root: &str, service: Option<&str>, path: &str) -> Result<reqwest::Url, String> {
    let api = match service {
        Some(service) => format!("/api/{service}/"),
        None => "/api/".to_string(),
    };
    let full = format!("{root}{}{}", api.trim_end_matches('/'), path);
    let url = reqwest::Url::parse(&full).map_err(|e| format!("{full:?} is not a URL: {e}"))?;
    // `..` segments are resolved by the parser: what is left must be in the API.
    if !url.path().starts_with(&api)
        || url.host_str() != reqwest::Url::parse(root).ok().as_ref().and_then(|r| r.host_str())
    {
        return Err(format!("{path:?} leaves {api}"));
    }
    Ok(url)
}

impl TaskclusterProxy {
    /// The Hawk `Authorization` header for `method` on `url` with `body`, with the
    /// run's current credentials (their certificate in `ext`, as Taskcluster's
    /// clients send it).
    fn authorization(
        &self,
        method: &str,
        url: &reqwest::Url,
        body: &[u8],
        content_type: &str,
    ) -> anyhow::Result<String> {
        let credentials = self.run.credentials();
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let resource = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let ext = match &credentials.certificate {
            Some(certificate) => {
                let certificate: serde_json::Value = serde_json::from_str(certificate)?;
                let ext = serde_json::json!({ "certificate": certificate }).to_string();
                Some(base64::engine::general_purpose::STANDARD.encode(ext))
            }
            None => None,
        };
        let key = hawk::Key::new(&credentials.access_token, hawk::SHA256)?;
        let hawk_credentials = hawk::Credentials {
            id: credentials.client_id.clone(),
            key,
        };
        let hash;
        let mut request = hawk::RequestBuilder::new(method, &host, port, &resource).ext(ext.as_deref());
        if !body.is_empty() {
            hash = hawk::PayloadHasher::hash(content_type, hawk::SHA256, body)?;
            request = request.hash(&hash[..]);
        }
        Ok(format!("Hawk {}", request.request().make_header(&hawk_credentials)?))
    }
}

#[async_trait]
impl ProxyHandler for TaskclusterProxy {
    async fn handle(&self, request: HttpRequest) -> HttpResponse {
        let _slot = tokio::select! {
            slot = self.in_flight.acquire() => slot,
            () = self.task_over.cancelled() => return answer(410, "taskcluster proxy: the task has ended"),
        };
        if self.task_over.is_cancelled() {
            return answer(410, "taskcluster proxy: the task has ended");
        }
        let url = match api_url(self.run.deployment().root_url(), self.service, &request.path) {
            Ok(url) => url,
            Err(why) => return answer(400, &format!("taskcluster proxy: {why}")),
        };
        let content_type = request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .map_or("", |(_, v)| v.as_str())
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let authorization = match self.authorization(&request.method, &url, &request.body, &content_type) {
            Ok(a) => a,
            Err(e) => return answer(500, &format!("taskcluster proxy: signing the request: {e:#}")),
        };
        let Ok(method) = reqwest::Method::from_bytes(request.method.as_bytes()) else {
            return answer(400, &format!("taskcluster proxy: {:?} is not a method", request.method));
        };
        let mut call = self.http.request(method, url).header("authorization", authorization);
        for (name, value) in request.headers.iter().filter(|(n, _)| passed_on(n)) {
            call = call.header(name, value);
        }
        let response = match call.body(request.body).send().await {
            Ok(r) => r,
            Err(e) => return answer(502, &format!("taskcluster proxy: the deployment did not answer: {e}")),
        };
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter(|(n, _)| passed_on(n.as_str()))
            .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let mut body = Vec::new();
        let mut response = response;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_ANSWER => body.extend_from_slice(&chunk),
                Ok(Some(_)) => {
                    return answer(
                        502,
                        &format!("taskcluster proxy: the answer is larger than {MAX_ANSWER} bytes"),
                    );
                }
                Ok(None) => break,
                Err(e) => return answer(502, &format!("taskcluster proxy: the answer broke off: {e}")),
            }
        }
        HttpResponse { status, headers, body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_the_api_and_never_out_of_it() {
        let url = |service, path| api_url("https://tc.example.com", service, path).map(|u| u.to_string());
        assert_eq!(
            url(Some("queue"), "/v1/task/abc?x=1").unwrap(),
            "https://tc.example.com/api/queue/v1/task/abc?x=1"
        );
        assert_eq!(
            url(None, "/auth/v1/scopes/current").unwrap(),
            "https://tc.example.com/api/auth/v1/scopes/current"
        );
        for (service, path) in [
            (Some("queue"), "/../auth/v1/x"),
            (None, "/../login"),
            (Some("queue"), "/%2e%2e/%2e%2e/x"),
            (None, "@evil.example.com/x"),
        ] {
            assert!(
                url(service, path).is_err(),
                "{service:?} {path}: {:?}",
                url(service, path)
            );
        }
    }
}
