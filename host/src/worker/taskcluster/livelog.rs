//! The live log: while a task runs, its log is served over HTTP at
//! `<url>/log/<token>` (the `public/logs/live.log` reference points there). A GET
//! streams the log from its first byte and follows it until the task's log is closed,
//! like `tail -f` that ends. The token is random per task, so only those who can read
//! the task's artifacts learn the URL.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::task::JoinSet;

use crate::contract::TaskLog;
use crate::policy::LiveLogSettings;

type Logs = Arc<Mutex<HashMap<String, TaskLog>>>;

/// The live log's HTTP server; serves until dropped.
pub struct LiveLogServer {
    base_url: String,
    address: SocketAddr,
    logs: Logs,
    server: tokio::task::JoinHandle<()>,
}

/// A task's log, served while this lives.
pub struct Published {
    /// Where the log is served.
    pub url: String,
    token: String,
    logs: Logs,
}

impl Drop for Published {
    fn drop(&mut self) {
        self.logs.lock().expect("live log lock").remove(&self.token);
    }
}

impl Drop for LiveLogServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl LiveLogServer {
    /// Binds `settings.listen` and serves.
    pub async fn start(settings: &LiveLogSettings) -> anyhow::Result<LiveLogServer> {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|e| anyhow::anyhow!("[worker] live-log-listen: cannot listen on {}: {e}", settings.listen))?;
        let address = listener.local_addr()?;
        let base_url = match &settings.url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{address}"),
        };
        let logs: Logs = Arc::default();
        let server = tokio::spawn(serve(listener, logs.clone()));
        tracing::info!(%address, url = %base_url, "live log server listening");
        Ok(LiveLogServer {
            base_url,
            address,
            logs,
            server,
        })
    }

    /// The local address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves `log` under a new random token until the returned value is dropped.
    pub fn publish(&self, log: &TaskLog) -> anyhow::Result<Published> {
        let token = crate::worker::random_token()?;
        self.logs
            .lock()
            .expect("live log lock")
            .insert(token.clone(), log.clone());
        Ok(Published {
            url: format!("{}/log/{token}", self.base_url),
            token,
            logs: self.logs.clone(),
        })
    }
}

async fn serve(listener: tokio::net::TcpListener, logs: Logs) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let logs = logs.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| answer(req, logs.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let body = Full::new(Bytes::from(text.to_string())).map_err(|never: Infallible| match never {});
    let mut response = Response::new(body.boxed_unsync());
    *response.status_mut() = status;
    response
}

async fn answer(req: Request<hyper::body::Incoming>, logs: Logs) -> Result<Response<Body>, Infallible> {
    if req.method() != Method::GET {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n"));
    }
    let token = req.uri().path().strip_prefix("/log/").unwrap_or_default();
    let log = logs.lock().expect("live log lock").get(token).cloned();
    let Some(log) = log else {
        return Ok(plain(
            StatusCode::NOT_FOUND,
            "no such live log: the task has ended (its log is public/logs/live_backing.log) or the URL is wrong\n",
        ));
    };
    let reader = match log.reader() {
        Ok(r) => r,
        Err(e) => {
            return Ok(plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("opening the log: {e}\n"),
            ));
        }
    };
    // Each chunk as it is written; the stream ends when the log is closed.
    let chunks = futures::stream::unfold(reader, |mut reader| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), reader))
            }
            Err(e) => Some((Err(e), reader)),
        }
    })
    .boxed();
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(chunks)));
    let headers = response.headers_mut();
    headers.insert("content-type", "text/plain; charset=utf-8".parse().expect("header"));
    headers.insert("cache-control", "no-cache".parse().expect("header"));
    // The Taskcluster UI reads the log from another origin.
    headers.insert("access-control-allow-origin", "*".parse().expect("header"));
    headers.insert("x-content-type-options", "nosniff".parse().expect("header"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_a_log_as_it_grows_and_ends_when_it_closes() {
        let server = LiveLogServer::start(&LiveLogSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            url: None,
        })
        .await
        .unwrap();
        let log = TaskLog::temporary().unwrap();
        log.log("first");
        let published = server.publish(&log).unwrap();
        assert!(published.url.starts_with(&format!("http://{}/log/", server.address())));
        let mut response = reqwest::get(&published.url).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
        let first = response.chunk().await.unwrap().unwrap();
        assert_eq!(&first[..], b"[taskcluster] first\n");
        log.log("second");
        log.close();
        let mut rest = Vec::new();
        while let Some(chunk) = response.chunk().await.unwrap() {
            rest.extend_from_slice(&chunk);
        }
        assert_eq!(rest, b"[taskcluster] second\n");
        let url = published.url.clone();
        drop(published);
        assert_eq!(reqwest::get(&url).await.unwrap().status(), 404);
        let wrong = format!("http://{}/log/nope", server.address());
        assert_eq!(reqwest::get(&wrong).await.unwrap().status(), 404);
    }
}
