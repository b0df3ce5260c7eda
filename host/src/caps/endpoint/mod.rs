//! The `endpoint` capability (contract 0.1.2): an HTTP/1.1 server the host runs
//! for one task, on a unix socket in the task's sandbox directory or on a TCP
//! address, as `[plugins.NAME.endpoint] listen` grants (checked first in `open`).
//! The host serves the connections: fixed answers, proxies (`/<name>/...`, to the
//! handlers the worker attached) and `body-to-log` bodies never enter the engine;
//! requests on `engine` routes are queued for `next-request`, and the engine's
//! answers are streamed back (a host-made stream it hands back is unwrapped).
//!
//! Bounds are in `server` (connections, head size and time, proxy bodies, the
//! queue) and `routes` (routes, fixed bodies, answer headers); an endpoint lives
//! until `close`, its handle's drop, or the end of its task, whichever is first;
//! an endpoint of a task with a recovery record outlives its handle's drop
//! with a dead instance, until a fresh instance adopts it (`adopt`).
//!
//! - `routes`: what a request leads to (pure).
//! - `server`: the listener, connections and request handling (hyper).

/// What a request leads to: `enginehost_core::endpoint` (pure, fuzzed), with the
/// worker's proxy handlers.
mod routes {
    pub(crate) use enginehost_core::endpoint::{Action, Fixed, MAX_FIXED_BODY, headers, status};
    type Handler = std::sync::Arc<dyn crate::contract::ProxyHandler>;
    pub(crate) type Routes = enginehost_core::endpoint::Routes<Handler>;
    pub(crate) type Target = enginehost_core::endpoint::Target<Handler>;
}
mod save;
mod server;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use self::routes::{Action, Fixed, Routes};
pub(crate) use self::server::BodyEnd;
use self::server::{Listener, Pending, Reply, Shared};
use super::{CapResult, TaskHandle, TaskScope, check, invalid, os_error};
use crate::contract::{ByteStream, ProxyHandler, byte_pipe};
use crate::policy::Peers;

/// The most endpoints one task may open.
const MAX_PER_TASK: u32 = 8;

/// The host side of an `endpoint`: the engine's handle.
pub struct Endpoint {
    core: Arc<Core>,
    scope: Arc<TaskScope>,
}

/// What the handle holds: the server ends when the last holder goes. That is
/// the handle, unless the task's scope kept the endpoint past the instance that
/// opened it (contract 0.1.4): then also the scope, until a fresh instance
/// adopts it (`adopt`) or the task ends.
pub(crate) struct Core {
    shared: Arc<Shared>,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Pending>>>,
    address: String,
}

impl Drop for Core {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

/// The host side of a `request`.
pub struct EndpointRequest {
    pending: Pending,
    reply: Option<oneshot::Sender<Reply>>,
    scope: Arc<TaskScope>,
}

impl EndpointRequest {
    fn new(mut pending: Pending, scope: Arc<TaskScope>) -> Self {
        let (dummy, _) = oneshot::channel();
        let reply = std::mem::replace(&mut pending.reply, dummy);
        EndpointRequest {
            pending,
            reply: Some(reply),
            scope,
        }
    }
}

/// Where an endpoint listens.
pub(crate) enum Address {
    /// A unix socket at this path in the task's sandbox directory.
    SandboxSocket(String),
    /// A TCP address (`IP:PORT`) and the peers that may connect.
    Tcp { address: String, peers: Vec<String> },
}

/// What a route leads to.
pub(crate) enum RouteAction {
    /// Queued for `next-request`.
    Engine,
    /// The body goes to the task log with this prefix; the client gets a 204.
    BodyToLog(String),
    /// A fixed answer.
    Fixed {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
}

/// Binds what `address` names, after the policy check.
async fn listen(scope: &TaskScope, address: Address) -> CapResult<(Listener, String)> {
    let policy = scope.engine.policy.clone();
    match address {
        Address::SandboxSocket(rel) => {
            check(&policy, policy.endpoint_listen_sandbox(&rel))?;
            TaskScope::check_relative(&rel)?;
            let sandbox = scope.sandbox()?;
            if let Some(parent) = std::path::Path::new(&rel)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                sandbox
                    .dir
                    .create_dir_all(parent)
                    .map_err(|e| invalid(format!("creating the directory of '{rel}' in the sandbox: {e}")))?;
            }
            // Through the directory's descriptor: beneath the sandbox, and short.
            let via = PathBuf::from(format!("/proc/self/fd/{}", sandbox.dir.as_raw_fd())).join(&rel);
            let listener =
                UnixListener::bind(&via).map_err(|e| os_error(&format!("listening on '{rel}' in the sandbox"), e))?;
            Ok((Listener::Unix(listener), rel))
        }
        Address::Tcp { address, peers } => {
            let addr: SocketAddr = address.parse().map_err(|_| {
                invalid(format!(
                    "'{address}' is not IP:PORT, e.g. \"172.18.0.1:80\" or \"[fd00::1]:80\""
                ))
            })?;
            check(&policy, policy.endpoint_listen_tcp(addr.ip(), addr.port()))?;
            let peers = Peers::parse(&peers).map_err(invalid)?;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| os_error(&format!("listening on {addr}"), e))?;
            let bound = listener.local_addr().map_err(|e| os_error("the bound address", e))?;
            Ok((Listener::Tcp(listener, peers), bound.to_string()))
        }
    }
}

/// `open`: an endpoint for the task at `address` (checked first, in `listen`).
pub(crate) async fn open(task: &TaskHandle, address: Address) -> CapResult<Endpoint> {
    let (scope, log) = (task.scope.clone(), task.ctx.log().clone());
    scope.live()?;
    let (listener, address) = listen(&scope, address).await?;
    scope.count_endpoint(MAX_PER_TASK)?;
    let (queue_tx, queue_rx) = mpsc::channel(server::QUEUE);
    let shared = Arc::new(Shared {
        routes: Mutex::new(Routes::default()),
        queue: queue_tx,
        log,
        cancel: CancellationToken::new(),
        conns: Mutex::default(),
    });
    let max = scope
        .engine
        .policy
        .endpoint_max_connections()
        .unwrap_or(server::DEFAULT_MAX_CONNECTIONS);
    let task = tokio::spawn(server::serve(listener, shared.clone(), max));
    scope.add_host_task(task.abort_handle());
    let core = Arc::new(Core {
        shared,
        queue: Arc::new(tokio::sync::Mutex::new(queue_rx)),
        address,
    });
    let weak: std::sync::Weak<dyn std::any::Any + Send + Sync> = Arc::downgrade(&core) as _;
    scope.add_endpoint(&core.address, weak)?;
    Ok(Endpoint { core, scope })
}

/// `adopt`: the endpoint at `address` (as `address()` gave it) that outlived
/// the instance that opened it (kept because the task has a recovery record),
/// for a fresh instance. Requests not yet taken are still queued for it.
pub(crate) fn adopt(task: &TaskHandle, address: &str) -> CapResult<Endpoint> {
    let kept = task.scope.adopt_endpoint(address)?;
    let core = kept
        .downcast::<Core>()
        .map_err(|_| invalid("the kept endpoint is not an endpoint of this capability"))?;
    Ok(Endpoint {
        core,
        scope: task.scope.clone(),
    })
}

fn action(a: RouteAction) -> CapResult<Action> {
    Ok(match a {
        RouteAction::Engine => Action::Engine,
        RouteAction::BodyToLog(prefix) => Action::BodyToLog(crate::text::shown(&prefix, 200)),
        RouteAction::Fixed { status, headers, body } => {
            if body.len() > routes::MAX_FIXED_BODY {
                return Err(invalid(format!(
                    "a fixed answer's body has {} bytes; at most {}",
                    body.len(),
                    routes::MAX_FIXED_BODY
                )));
            }
            Action::Fixed(Fixed {
                status: routes::status(status).map_err(invalid)?,
                headers: routes::headers(&headers).map_err(invalid)?,
                body: Bytes::from(body),
            })
        }
    })
}

impl Endpoint {
    /// Where it listens (the bound address for TCP, the sandbox path for a socket).
    pub(crate) fn address(&self) -> &str {
        &self.core.address
    }

    /// Adds a route: `method` (any when `None`) and `path` lead to `to`.
    pub(crate) fn add_route(&self, method: Option<&str>, path: &str, to: RouteAction) -> CapResult<()> {
        let to = action(to)?;
        let mut routes = self.core.shared.routes.lock().expect("endpoint routes");
        routes.add_route(method, path, to).map_err(invalid)
    }

    /// Serves `/<name>/...` through one of the worker's proxy handlers.
    pub(crate) fn add_proxy(&self, name: &str, handler: Arc<dyn ProxyHandler>) -> CapResult<()> {
        let mut routes = self.core.shared.routes.lock().expect("endpoint routes");
        routes.add_proxy(name, handler).map_err(invalid)
    }

    /// Stops listening and ends its connections.
    pub(crate) fn close(&self) {
        self.core.shared.cancel.cancel();
    }

    /// The next request on an `engine` route; `None` once the endpoint closed.
    pub(crate) fn next_request(&self) -> impl Future<Output = Option<EndpointRequest>> + Send + use<> {
        let (queue, cancel, scope) = (
            self.core.queue.clone(),
            self.core.shared.cancel.clone(),
            self.scope.clone(),
        );
        async move {
            let next = tokio::select! {
                _ = cancel.cancelled() => None,
                p = async { queue.lock().await.recv().await } => p,
            };
            next.map(|pending| EndpointRequest::new(pending, scope))
        }
    }
}

impl EndpointRequest {
    /// The request's method.
    pub(crate) fn method(&self) -> &str {
        &self.pending.method
    }

    /// The request's target (path and query).
    pub(crate) fn target(&self) -> &str {
        &self.pending.target
    }

    /// The request's headers.
    pub(crate) fn headers(&self) -> &[(String, String)] {
        &self.pending.headers
    }

    /// The body, once.
    pub(crate) fn take_body(&mut self) -> Option<ByteStream> {
        self.pending.body.take()
    }

    /// How the body ended: complete, or cut short.
    pub(crate) fn body_end(&self) -> impl Future<Output = BodyEnd> + Send + use<> {
        let mut end: watch::Receiver<Option<BodyEnd>> = self.pending.body_end.clone();
        async move {
            match end.wait_for(Option::is_some).await {
                Ok(v) => v.unwrap_or(BodyEnd::Truncated),
                // The reader went away with the endpoint: the body did not end well.
                Err(_) => BodyEnd::Truncated,
            }
        }
    }

    /// Answers with `status`, `headers` and `body`; resolves when it was sent.
    pub(crate) fn respond(
        &mut self,
        status: u16,
        headers: &[(String, String)],
        body: ByteStream,
    ) -> impl Future<Output = CapResult<()>> + Send + use<> {
        let sent = (|| {
            let reply = self
                .reply
                .take()
                .ok_or_else(|| invalid("the request was answered already"))?;
            // Unanswerable as asked: the client gets a 500 (the reply dropped), the
            // engine the reason.
            let status = routes::status(status).map_err(invalid)?;
            let headers = routes::headers(headers).map_err(invalid)?;
            let (done, sent) = oneshot::channel();
            reply
                .send(Reply::Respond {
                    status,
                    headers,
                    body,
                    done,
                })
                .map_err(|_| os_error("answering", "the client went away"))?;
            Ok(sent)
        })();
        async move {
            match sent?.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(why)) => Err(os_error("answering", why)),
                Err(_) => Err(os_error("answering", "the connection closed")),
            }
        }
    }

    /// Switches protocols (101 with `headers`): `outgoing` goes to the client,
    /// the returned stream is what the client sends.
    pub(crate) fn upgrade(&mut self, headers: &[(String, String)], outgoing: ByteStream) -> CapResult<ByteStream> {
        if self.pending.upgrade.is_none() {
            return Err(invalid("the request asked for no upgrade (no Upgrade header)"));
        }
        let reply = self
            .reply
            .take()
            .ok_or_else(|| invalid("the request was answered already"))?;
        let headers = routes::headers(headers).map_err(invalid)?;
        let (incoming, stream) = byte_pipe();
        reply
            .send(Reply::Upgrade {
                headers,
                outgoing,
                incoming,
            })
            .map_err(|_| os_error("upgrading", "the client went away"))?;
        Ok(stream)
    }

    /// Writes the body to `path` in the sandbox (at most `max_size` bytes); the
    /// bytes never enter the engine.
    pub(crate) fn save_body(
        &mut self,
        path: String,
        max_size: u64,
    ) -> impl Future<Output = CapResult<u64>> + Send + use<> {
        let scope = self.scope.clone();
        let checked = check(&scope.engine.policy, scope.engine.policy.files_sandbox()).and_then(|()| {
            self.pending
                .body
                .take()
                .ok_or_else(|| invalid("the request's body was taken already (body, or a body-to-log route)"))
        });
        let end = self.pending.body_end.clone();
        async move { save::save_body(&scope, &path, checked?, end, max_size).await }
    }
}
