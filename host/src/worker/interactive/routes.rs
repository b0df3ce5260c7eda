//! The server's HTTP side: routing, status codes, and the WebSocket handshake (the
//! engine call that can fail runs before the 101, so that its error is a status
//! code the page can show).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, combinators::UnsyncBoxBody};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::{Lookup, Registry, SessionState, pages};
use crate::contract::EngineError;

pub(super) type Body = UnsyncBoxBody<Bytes, Infallible>;
/// A WebSocket over an upgraded connection.
pub(super) type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Bytes of one WebSocket message from a browser: keystrokes and RFB input events
/// are small; more is refused rather than buffered.
const MAX_MESSAGE: usize = 1 << 20;

/// Connections the server holds at once (each task's shells and displays are
/// bounded apart); one more is closed at once.
const MAX_CONNECTIONS: usize = 512;

pub(super) async fn serve(listener: tokio::net::TcpListener, registry: Arc<Registry>) {
    let mut connections = JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, say: not a busy loop while it lasts.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!("interactive server: {MAX_CONNECTIONS} connections are open; one more was closed");
            continue;
        };
        let registry = registry.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req| answer(req, registry.clone()));
            // A client that never finishes its request headers is dropped, and
            // every answer but an upgrade closes its connection (`respond`): nobody
            // holds a slot for long without a token.
            let _ = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

pub(super) fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_str(content_type).expect("content type"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    // One request per connection (the pages make few); an upgrade replaces it.
    headers.insert("connection", HeaderValue::from_static("close"));
    response
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", format!("{text}\n"))
}

const UNKNOWN: &str = "no such interactive session: the link is wrong";
const ENDED: &str = "the sandbox has terminated: the task has ended (or its interactive links expired)";
const STARTING: &str = "the task's sandbox is starting; try again in a moment";

async fn answer(
    mut req: Request<hyper::body::Incoming>,
    registry: Arc<Registry>,
) -> Result<Response<Body>, Infallible> {
    if req.method() != Method::GET {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "GET only"));
    }
    let path = req.uri().path().to_string();
    let route = path.trim_start_matches('/');
    let (kind, token) = route.split_once('/').unwrap_or((route, ""));
    let dynamic = matches!(kind, "session" | "displays" | "shell" | "display");
    if !dynamic || token.is_empty() || token.contains('/') {
        return Ok(pages::serve(route));
    }
    let (state, sandbox) = match registry.lookup(token) {
        Lookup::Running(state, sandbox) => (state, sandbox),
        Lookup::Starting => {
            let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, STARTING);
            r.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
            return Ok(r);
        }
        Lookup::Ended => return Ok(plain(StatusCode::GONE, ENDED)),
        Lookup::Unknown => return Ok(plain(StatusCode::NOT_FOUND, UNKNOWN)),
    };
    let query: Vec<(String, String)> = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    Ok(match kind {
        "session" => respond(StatusCode::OK, "application/json", r#"{"state":"running"}"#),
        "displays" => match sandbox.list_displays().await {
            Ok(displays) => {
                let list: Vec<_> = displays
                    .iter()
                    .map(|d| {
                        serde_json::json!({"name": d.name, "description": d.description, "width": d.width, "height": d.height})
                    })
                    .collect();
                respond(
                    StatusCode::OK,
                    "application/json",
                    serde_json::to_vec(&list).expect("json"),
                )
            }
            Err(e) => engine_error(&e, "listing the displays"),
        },
        _ => {
            let key = match websocket_key(req.headers()) {
                Ok(key) => key,
                Err(why) => return Ok(plain(StatusCode::BAD_REQUEST, &why)),
            };
            let Ok(permit) = state.connections.clone().try_acquire_owned() else {
                return Ok(plain(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "this task already has {} interactive connections open ([interactive] max-connections); close one",
                        state.max_connections
                    ),
                ));
            };
            let opened = if kind == "shell" {
                super::shell::open(sandbox.as_ref(), &query).await
            } else {
                super::display::open(sandbox.as_ref(), &query).await
            };
            match opened {
                Ok(bridge) => upgrade(&mut req, &key, state, permit, bridge),
                Err(response) => response,
            }
        }
    })
}

/// What an engine error means to the person at the page: the seed's interactive
/// plugin's codes (404 no such display, 400 not supported or bad request, 410
/// terminated or aborted), 500 for the rest.
pub(super) fn engine_error(error: &EngineError, doing: &str) -> Response<Body> {
    let status = match error {
        EngineError::NoSuchDisplay | EngineError::ResourceNotFound => StatusCode::NOT_FOUND,
        EngineError::FeatureNotSupported | EngineError::MalformedPayload(_) => StatusCode::BAD_REQUEST,
        EngineError::SandboxTerminated | EngineError::SandboxAborted => StatusCode::GONE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let detail = match error {
        EngineError::FeatureNotSupported => format!("{doing}: the task's engine does not support this"),
        EngineError::SandboxTerminated | EngineError::SandboxAborted => ENDED.to_string(),
        other => format!("{doing}: {other}"),
    };
    plain(status, &detail)
}

pub(super) fn bad_request(text: &str) -> Response<Body> {
    plain(StatusCode::BAD_REQUEST, text)
}

/// The `Sec-WebSocket-Key` of a valid upgrade request, or what is wrong.
fn websocket_key(headers: &HeaderMap) -> Result<String, String> {
    let has = |name: &str, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has("upgrade", "websocket") || !has("connection", "upgrade") {
        return Err("this address is a WebSocket: open the page (shell.html or display.html) instead".into());
    }
    if !has("sec-websocket-version", "13") {
        return Err("WebSocket version 13 is required".into());
    }
    headers
        .get("sec-websocket-key")
        .and_then(|k| k.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| "the WebSocket upgrade has no Sec-WebSocket-Key".into())
}

/// A shell or display opened for a WebSocket: `run` bridges the two until either
/// ends or the session does; `abandon` undoes the opening when the upgrade fails
/// (a shell is aborted, not left running without a connection).
pub(super) struct Bridge {
    pub run: Box<dyn FnOnce(Socket, Arc<SessionState>) -> futures::future::BoxFuture<'static, ()> + Send>,
    pub abandon: Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send>,
}

fn upgrade(
    req: &mut Request<hyper::body::Incoming>,
    key: &str,
    state: Arc<SessionState>,
    permit: OwnedSemaphorePermit,
    bridge: Bridge,
) -> Response<Body> {
    let offers_binary = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|p| p.trim() == "binary")));
    let upgrading = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let _permit = permit;
        let upgraded = match tokio::time::timeout(std::time::Duration::from_secs(30), upgrading).await {
            Ok(Ok(upgraded)) => upgraded,
            _ => return (bridge.abandon)().await,
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        (bridge.run)(socket, state).await;
    });
    let mut response = respond(
        StatusCode::SWITCHING_PROTOCOLS,
        "application/octet-stream",
        Bytes::new(),
    );
    let headers = response.headers_mut();
    headers.remove("content-type");
    headers.insert("upgrade", HeaderValue::from_static("websocket"));
    headers.insert("connection", HeaderValue::from_static("Upgrade"));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    headers.insert("sec-websocket-accept", HeaderValue::from_str(&accept).expect("base64"));
    if offers_binary {
        headers.insert("sec-websocket-protocol", HeaderValue::from_static("binary"));
    }
    response
}

impl SessionState {
    /// Resolves when the task has ended or the links have expired.
    pub(super) async fn over(&self) {
        tokio::select! {
            () = self.ended.cancelled() => {}
            () = tokio::time::sleep_until(self.deadline) => {}
        }
    }
}

/// How long a shell or display the engine ended waits to learn whether its task is
/// ending (a kill or an abort ends them before the task's wait returns).
const END_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

impl SessionState {
    /// Whether the task ends within [`END_GRACE`].
    pub(super) async fn ended_soon(&self) -> bool {
        tokio::time::timeout(END_GRACE, self.over()).await.is_ok()
    }
}

/// Sends `message` unless the session ends first (a page that stops reading
/// cannot hold a connection past its task); `false` if it was not sent.
pub(super) async fn send_or_end(
    to_page: &mut futures::stream::SplitSink<Socket, tokio_tungstenite::tungstenite::Message>,
    message: tokio_tungstenite::tungstenite::Message,
    state: &SessionState,
) -> bool {
    use futures::SinkExt as _;
    tokio::select! {
        sent = to_page.send(message) => sent.is_ok(),
        () = state.over() => false,
    }
}

/// The last frames to a page: at most a few seconds, then the socket is dropped.
pub(super) async fn send_last(
    to_page: &mut futures::stream::SplitSink<Socket, tokio_tungstenite::tungstenite::Message>,
    messages: Vec<tokio_tungstenite::tungstenite::Message>,
) {
    use futures::SinkExt as _;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        for message in messages {
            if to_page.send(message).await.is_err() {
                return;
            }
        }
    })
    .await;
}

/// After the last frame: the page's side reads the page's answering close (a
/// clean close: dropping the socket before it can reset the connection under the
/// page's last unread frames), for a few seconds at most.
pub(super) async fn closing(reader: &mut tokio::task::JoinHandle<()>) {
    if tokio::time::timeout(std::time::Duration::from_secs(3), &mut *reader)
        .await
        .is_err()
    {
        reader.abort();
    }
}

/// The close frame a connection gets when its task ends: code 4410 (as HTTP 410).
pub(super) fn ended_frame() -> tokio_tungstenite::tungstenite::Message {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    tokio_tungstenite::tungstenite::Message::Close(Some(CloseFrame {
        code: CloseCode::Library(4410),
        reason: "the sandbox has terminated".into(),
    }))
}
