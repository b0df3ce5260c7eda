//! The operator's view of a running worker (`[worker] metrics-listen`): `GET
//! /metrics` answers OpenMetrics ([`Metrics::render`]) to a scraper that accepts
//! `application/openmetrics-text` (Prometheus does), else Prometheus' text format
//! 0.0.4 ([`Metrics::render_prometheus`], what `promtool check metrics` reads);
//! `GET /healthz` answers 200 while the claim loop turns and 503 once it is stuck
//! or the worker is stopping.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::task::JoinSet;

use crate::contract::metrics::Metrics;

/// The content type of the exposition.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of Prometheus' text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The claim loop is stuck when it has not turned for this long (a `claimWork`
/// long-poll is 20 s, its client timeout 30 s).
const STUCK: Duration = Duration::from_secs(120);
/// Most connections served at once (each lives at most a minute).
const MAX_CONNECTIONS: usize = 32;

/// What `/healthz` looks at.
#[derive(Default)]
pub struct Health {
    /// Seconds since the epoch when the claim loop last turned.
    tick: AtomicU64,
    stopping: AtomicBool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Health {
    /// The claim loop turned.
    pub fn tick(&self) {
        self.tick.store(now(), Ordering::Relaxed);
    }

    /// The worker no longer claims.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// `None` when healthy, else why not.
    fn problem(&self) -> Option<String> {
        if self.stopping.load(Ordering::Relaxed) {
            return Some("stopping: the worker no longer claims tasks".into());
        }
        let since = now().saturating_sub(self.tick.load(Ordering::Relaxed));
        (since > STUCK.as_secs()).then(|| format!("the claim loop has not turned for {since} s"))
    }
}

/// The listener; serves until dropped.
pub struct MetricsServer {
    address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl MetricsServer {
    /// Listens on `listen`.
    ///
    /// # Errors
    /// When the address cannot be bound (the error names the key).
    pub async fn start(listen: SocketAddr, health: Arc<Health>) -> anyhow::Result<MetricsServer> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("[worker] metrics-listen: cannot listen on {listen}: {e}"))?;
        let address = listener.local_addr()?;
        tracing::info!(%address, "metrics on /metrics, health on /healthz");
        let server = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                while connections.try_join_next().is_some() {}
                if connections.len() >= MAX_CONNECTIONS {
                    continue; // dropped: a scraper tries again
                }
                let health = health.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| answer(req, health.clone()));
                    let _ = tokio::time::timeout(
                        Duration::from_secs(60),
                        http1::Builder::new()
                            .header_read_timeout(Duration::from_secs(10))
                            .timer(hyper_util::rt::TokioTimer::new())
                            .serve_connection(TokioIo::new(stream), service),
                    )
                    .await;
                });
            }
        });
        Ok(MetricsServer { address, server })
    }

    /// The local address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert("content-type", value);
    }
    response
}

async fn answer(req: Request<hyper::body::Incoming>, health: Arc<Health>) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = "text/plain; charset=utf-8";
    if req.method() != Method::GET {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, text, "GET only\n".into()));
    }
    Ok(match req.uri().path() {
        "/metrics" => {
            let openmetrics = req
                .headers()
                .get_all("accept")
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.contains("application/openmetrics-text")));
            if openmetrics {
                reply(StatusCode::OK, OPENMETRICS, Metrics::global().render())
            } else {
                reply(StatusCode::OK, PROMETHEUS_TEXT, Metrics::global().render_prometheus())
            }
        }
        "/healthz" => match health.problem() {
            None => reply(StatusCode::OK, text, "ok\n".into()),
            Some(why) => reply(StatusCode::SERVICE_UNAVAILABLE, text, format!("{why}\n")),
        },
        _ => reply(StatusCode::NOT_FOUND, text, "GET /metrics or /healthz\n".into()),
    })
}
