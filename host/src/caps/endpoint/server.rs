//! The endpoint's server: a listener (TCP, filtered by peer, or a unix socket in
//! the sandbox), one hyper HTTP/1.1 connection per accepted client within the
//! connection limit, and the service that routes each request: fixed answers and
//! proxies are served here, `body-to-log` bodies copied into the task log here,
//! and requests for the engine queued for `next-request` with a channel for the
//! answer. Everything stops when the endpoint's cancellation token fires (close,
//! drop, or the end of the task, which aborts the accept loop).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, UPGRADE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::routes::{Action, Fixed, Routes, Target};
use crate::caps::log_lines::LogLines;
use crate::contract::{ByteSink, ByteStream, HttpRequest, ProxyHandler, TaskLog, byte_pipe};
use crate::policy::Peers;
use enginehost_core::endpoint::configure_http1;

/// Connections at once, unless the operator says (`endpoint.max-connections`).
pub(crate) const DEFAULT_MAX_CONNECTIONS: u32 = 64;
/// The largest request body a proxy gets (buffered: the handler takes bytes).
pub(crate) const MAX_PROXY_BODY: usize = 16 * 1024 * 1024;
/// Requests waiting for `next-request`; more wait on their connections.
pub(crate) const QUEUE: usize = 64;
/// Bytes read per step when relaying an upgraded connection.
const CHUNK: usize = 64 * 1024;

/// The body of every answer.
pub(crate) type AnswerBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// How a request body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyEnd {
    Complete,
    Truncated,
}

/// The engine's answer to a queued request.
pub(crate) enum Reply {
    Respond {
        status: StatusCode,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: ByteStream,
        done: oneshot::Sender<Result<(), String>>,
    },
    Upgrade {
        headers: Vec<(HeaderName, HeaderValue)>,
        outgoing: ByteStream,
        incoming: ByteSink,
    },
}

/// A request waiting for (or held by) the engine.
pub(crate) struct Pending {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<ByteStream>,
    pub(crate) body_end: watch::Receiver<Option<BodyEnd>>,
    pub(crate) reply: oneshot::Sender<Reply>,
    /// The `upgrade` header's value when the client asked for one.
    pub(crate) upgrade: Option<String>,
}

/// What the listener, the connections and the endpoint handle share.
pub(crate) struct Shared {
    pub(crate) routes: Mutex<Routes>,
    pub(crate) queue: mpsc::Sender<Pending>,
    pub(crate) log: TaskLog,
    pub(crate) cancel: CancellationToken,
    /// The open connections, oldest first (for eviction).
    pub(crate) conns: Mutex<Vec<Weak<Conn>>>,
}

/// One accepted connection: its slot among the endpoint's `max-connections`, and
/// whether it is in the middle of something. A connection that is not (still
/// sending its first request head, or idle between requests) gives its slot to a
/// newcomer when every slot is taken: slow or idle clients cannot lock a task's
/// endpoint, only requests in progress and upgraded streams hold a slot for good.
pub(crate) struct Conn {
    _permit: OwnedSemaphorePermit,
    /// Requests in progress (until their answer is sent), plus one for good once
    /// the connection is upgraded.
    busy: AtomicUsize,
    cancel: CancellationToken,
}

/// Counts one request in progress on its connection.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: &Arc<Conn>) -> Busy {
        conn.busy.fetch_add(1, Ordering::SeqCst);
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    /// Closes the oldest connection that is not in the middle of a request; false
    /// when every one is.
    fn evict_idle(&self) -> bool {
        let mut conns = self.conns.lock().expect("endpoint connections");
        conns.retain(|c| c.strong_count() > 0);
        let victim = conns
            .iter()
            .filter_map(Weak::upgrade)
            .find(|c| !c.cancel.is_cancelled() && c.busy.load(Ordering::SeqCst) == 0);
        match victim {
            Some(c) => {
                c.cancel.cancel();
                true
            }
            None => false,
        }
    }
}

/// Where the endpoint listens.
pub(crate) enum Listener {
    Tcp(TcpListener, Peers),
    Unix(UnixListener),
}

/// Runs the accept loop until the endpoint is cancelled (or the task aborted,
/// which cancels it too).
pub(crate) async fn serve(listener: Listener, shared: Arc<Shared>, max_connections: u32) {
    let _cancel_on_exit = shared.cancel.clone().drop_guard();
    let permits = Arc::new(Semaphore::new(max_connections as usize));
    loop {
        let accepted = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            a = accept(&listener) => a,
        };
        let accepted = match accepted {
            Ok(Some(a)) => a,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!("endpoint accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Every slot taken: the oldest connection that is between requests makes
        // room (its slot comes back as it closes); when all are busy, the newcomer
        // waits for one to end.
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                shared.evict_idle();
                tokio::select! {
                    _ = shared.cancel.cancelled() => return,
                    p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                }
            }
        };
        let conn = Arc::new(Conn {
            _permit: permit,
            busy: AtomicUsize::new(0),
            cancel: CancellationToken::new(),
        });
        shared
            .conns
            .lock()
            .expect("endpoint connections")
            .push(Arc::downgrade(&conn));
        match accepted {
            Accepted::Tcp(io) => {
                tokio::spawn(connection(io, shared.clone(), conn));
            }
            Accepted::Unix(io) => {
                tokio::spawn(connection(io, shared.clone(), conn));
            }
        }
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// The next client; `None` for a peer the engine's filter refuses (closed at once).
async fn accept(listener: &Listener) -> std::io::Result<Option<Accepted>> {
    match listener {
        Listener::Tcp(l, peers) => {
            let (io, peer) = l.accept().await?;
            if !peers.allows(peer.ip()) {
                tracing::debug!(%peer, "endpoint: refused a peer outside the engine's filter");
                return Ok(None);
            }
            let _ = io.set_nodelay(true);
            Ok(Some(Accepted::Tcp(io)))
        }
        Listener::Unix(l) => Ok(Some(Accepted::Unix(l.accept().await?.0))),
    }
}

/// Serves one connection; it holds a connection slot until it (and any upgraded
/// stream it became) ends, or it is evicted between requests.
async fn connection<I>(io: I, shared: Arc<Shared>, conn: Arc<Conn>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let evicted = conn.cancel.clone();
    let service = {
        let (shared, conn) = (shared.clone(), conn.clone());
        service_fn(move |req| handle(shared.clone(), conn.clone(), req))
    };
    drop(conn);
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new());
    configure_http1(&mut builder);
    let served = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
    tokio::select! {
        _ = shared.cancel.cancelled() => {}
        _ = evicted.cancelled() => tracing::debug!("endpoint: an idle connection made room for a new one"),
        r = served => if let Err(e) = r { tracing::debug!("endpoint connection: {e}") },
    }
}

fn full(bytes: impl Into<Bytes>) -> AnswerBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

fn plain(status: StatusCode, text: &str) -> Response<AnswerBody> {
    let mut response = Response::new(full(format!("{text}\n")));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn fixed(f: Fixed) -> Response<AnswerBody> {
    let mut response = Response::new(full(f.body));
    *response.status_mut() = f.status;
    for (name, value) in f.headers {
        response.headers_mut().append(name, value);
    }
    response
}

fn header_list(req: &hyper::http::request::Parts) -> Vec<(String, String)> {
    req.headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Routes one request; the connection counts as busy until the answer is sent.
async fn handle(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Result<Response<AnswerBody>, Infallible> {
    let busy = Busy::new(&conn);
    let response = route(shared, conn, req).await;
    Ok(response.map(move |body| Tracked { body, _busy: busy }.boxed_unsync()))
}

/// An answer's body that keeps its connection busy until it is sent (or dropped),
/// with the inner body's length and end as they are.
struct Tracked {
    body: AnswerBody,
    _busy: Busy,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Answers one request by its route.
async fn route(shared: Arc<Shared>, slot: Arc<Conn>, req: Request<Incoming>) -> Response<AnswerBody> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let target = shared
        .routes
        .lock()
        .expect("endpoint routes")
        .target(req.method(), &path, &query);
    match target {
        Target::Route(Action::Fixed(f)) => fixed(f),
        Target::Route(Action::Engine) => to_engine(&shared, slot, req, None).await,
        Target::Route(Action::BodyToLog(prefix)) => to_engine(&shared, slot, req, Some(prefix)).await,
        Target::WrongMethod => plain(StatusCode::METHOD_NOT_ALLOWED, "this path takes another method"),
        Target::Proxy(handler, path) => proxy(handler, req, path).await,
        Target::UnknownProxy(name, known) => {
            let known = if known.is_empty() {
                "none is attached".to_string()
            } else {
                format!("attached: {}", known.join(", "))
            };
            let message = format!("no service named {name:?} on http://taskcluster/ ({known})");
            shared.log.log_error(&message);
            let body = serde_json::json!({"code": "InvalidWorkerRequestError", "message": message});
            let mut response = Response::new(full(body.to_string()));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Target::NotFound => plain(StatusCode::NOT_FOUND, "nothing here"),
    }
}

/// A request for an attached proxy: its body buffered (bounded), the handler
/// called host-side, its answer written back. Nothing passes through the engine.
async fn proxy(handler: Arc<dyn ProxyHandler>, req: Request<Incoming>, path: String) -> Response<AnswerBody> {
    let (parts, mut body) = req.into_parts();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return plain(StatusCode::BAD_REQUEST, "the request body broke off");
        };
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > MAX_PROXY_BODY {
                return plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("a proxy request body may have at most {MAX_PROXY_BODY} bytes"),
                );
            }
            bytes.extend_from_slice(&data);
        }
    }
    let request = HttpRequest {
        method: parts.method.as_str().to_string(),
        path,
        headers: header_list(&parts),
        body: bytes,
    };
    let answer = handler.handle(request).await;
    let Ok(status) = StatusCode::from_u16(answer.status) else {
        return plain(StatusCode::BAD_GATEWAY, "the proxy answered an invalid status");
    };
    let mut response = Response::new(full(answer.body));
    *response.status_mut() = status;
    for (name, value) in &answer.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    response
}

/// Reads a request body into `sink` (or into the task log); the end says whether
/// it arrived whole. Once the engine stops reading, the rest is read and dropped.
async fn pump(mut body: Incoming, sink: Option<ByteSink>, mut lines: Option<LogLines>) -> BodyEnd {
    let mut sink = sink;
    let end = loop {
        match body.frame().await {
            None => break BodyEnd::Complete,
            Some(Err(_)) => break BodyEnd::Truncated,
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { continue };
                if let Some(lines) = lines.as_mut() {
                    lines.push(&data);
                }
                if let Some(s) = &sink
                    && !s.send(data.to_vec()).await
                {
                    sink = None;
                }
            }
        }
    };
    if let Some(lines) = lines {
        lines.finish();
    }
    end
}

/// A request for the engine: queued with a channel for the answer, which is then
/// written (streamed) or becomes an upgraded connection.
async fn to_engine(
    shared: &Arc<Shared>,
    slot: Arc<Conn>,
    mut req: Request<Incoming>,
    log_prefix: Option<String>,
) -> Response<AnswerBody> {
    let upgrade = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let on_upgrade: Option<OnUpgrade> = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let (end_tx, body_end) = watch::channel(None);
    let stream = match log_prefix {
        Some(prefix) => {
            let lines = LogLines::new(shared.log.clone(), prefix);
            let end = tokio::select! {
                _ = shared.cancel.cancelled() => return plain(StatusCode::SERVICE_UNAVAILABLE, "the endpoint closed"),
                end = pump(body, None, Some(lines)) => end,
            };
            end_tx.send_replace(Some(end));
            None
        }
        None => {
            let (sink, stream) = byte_pipe();
            let cancel = shared.cancel.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    end = pump(body, Some(sink), None) => { end_tx.send_replace(Some(end)); }
                }
            });
            Some(stream)
        }
    };
    let (reply_tx, reply_rx) = oneshot::channel();
    let pending = Pending {
        method: parts.method.as_str().to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        headers: header_list(&parts),
        body: stream,
        body_end,
        reply: reply_tx,
        upgrade: upgrade.clone(),
    };
    let reply = tokio::select! {
        _ = shared.cancel.cancelled() => None,
        r = async {
            shared.queue.send(pending).await.ok()?;
            reply_rx.await.ok()
        } => r,
    };
    match reply {
        None if shared.cancel.is_cancelled() => plain(StatusCode::SERVICE_UNAVAILABLE, "the endpoint closed"),
        None => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the engine dropped the request without answering",
        ),
        Some(Reply::Respond {
            status,
            headers,
            body,
            done,
        }) => {
            let length = headers
                .iter()
                .find(|(n, _)| *n == CONTENT_LENGTH)
                .and_then(|(_, v)| v.to_str().ok()?.parse::<u64>().ok());
            let mut response = Response::new(
                EngineBody {
                    stream: body,
                    length,
                    sent: 0,
                    ended: false,
                    done: Some(done),
                }
                .boxed_unsync(),
            );
            *response.status_mut() = status;
            for (name, value) in headers {
                response.headers_mut().append(name, value);
            }
            response
        }
        Some(Reply::Upgrade {
            headers,
            outgoing,
            incoming,
        }) => {
            let (Some(on_upgrade), Some(protocol)) = (on_upgrade, upgrade) else {
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "no upgrade was asked for");
            };
            // An upgraded connection is busy for good: never evicted.
            slot.busy.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(relay(on_upgrade, outgoing, incoming, slot, shared.cancel.clone()));
            let mut response = Response::new(full(Bytes::new()));
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            for (name, value) in headers {
                response.headers_mut().append(name, value);
            }
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("upgrade"));
            if let Ok(v) = HeaderValue::try_from(protocol) {
                response.headers_mut().insert(UPGRADE, v);
            }
            response
        }
    }
}

/// Relays an upgraded connection: the client's bytes into `incoming` (the engine's
/// stream), `outgoing` (the engine's) to the client; the end of `outgoing`
/// half-closes the connection.
async fn relay(
    on_upgrade: OnUpgrade,
    mut outgoing: ByteStream,
    incoming: ByteSink,
    _slot: Arc<Conn>,
    cancel: CancellationToken,
) {
    let Ok(upgraded) = on_upgrade.await else { return };
    let (mut read, mut write) = tokio::io::split(TokioIo::new(upgraded));
    let up = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if !incoming.send(buf[..n].to_vec()).await {
                        return;
                    }
                }
            }
        }
    };
    let down = async move {
        while let Some(chunk) = outgoing.next_chunk().await {
            if write.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = async { tokio::join!(up, down) } => {}
    }
}

/// An answer body from the engine; tells `respond` whether all of it was taken.
struct EngineBody {
    stream: ByteStream,
    length: Option<u64>,
    sent: u64,
    ended: bool,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

impl Body for EngineBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.stream.poll_chunk(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(chunk)) => {
                self.sent += chunk.len() as u64;
                if self.length.is_some_and(|l| self.sent >= l) {
                    self.ended = true;
                }
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
            }
        }
    }
}

impl Drop for EngineBody {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let result = if self.ended {
                Ok(())
            } else {
                Err("the client went away before the whole answer was sent".to_string())
            };
            let _ = done.send(result);
        }
    }
}
