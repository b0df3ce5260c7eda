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
//! until `close`, its handle's drop, or the end of its task, whichever is first.
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
use wasmtime::component::{Accessor, HasSelf, Resource, StreamReader};

use self::routes::{Action, Fixed, Routes};
use self::server::{BodyEnd, Listener, Pending, Reply, Shared};
use super::{CapResult, TaskScope, denied, invalid, os_error};
use crate::contract::{ByteStream, byte_pipe};
use crate::policy::Peers;
use crate::runtime::HostState;
use crate::runtime::bindings::endpoint as wit;
use crate::runtime::imports::{ProxyHandlerRes, TaskContextRes};
use crate::runtime::streams::{guest_stream, host_stream};

/// The most endpoints one task may open.
const MAX_PER_TASK: u32 = 8;

/// The host side of an `endpoint`.
pub struct EndpointRes {
    shared: Arc<Shared>,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Pending>>>,
    address: String,
    scope: Arc<TaskScope>,
}

impl Drop for EndpointRes {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

/// The host side of a `request`.
pub struct EndpointRequestRes {
    pending: Pending,
    reply: Option<oneshot::Sender<Reply>>,
    scope: Arc<TaskScope>,
}

impl EndpointRequestRes {
    fn new(mut pending: Pending, scope: Arc<TaskScope>) -> Self {
        let (dummy, _) = oneshot::channel();
        let reply = std::mem::replace(&mut pending.reply, dummy);
        EndpointRequestRes {
            pending,
            reply: Some(reply),
            scope,
        }
    }
}

/// Binds what `address` names, after the policy check.
async fn listen(scope: &TaskScope, address: wit::Address) -> CapResult<(Listener, String)> {
    let policy = scope.engine.policy.clone();
    match address {
        wit::Address::SandboxSocket(rel) => {
            if let Err(d) = policy.endpoint_listen_sandbox(&rel) {
                return denied(&policy, d);
            }
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
        wit::Address::Tcp(tcp) => {
            let addr: SocketAddr = tcp.address.parse().map_err(|_| {
                invalid(format!(
                    "'{}' is not IP:PORT, e.g. \"172.18.0.1:80\" or \"[fd00::1]:80\"",
                    tcp.address
                ))
            })?;
            if let Err(d) = policy.endpoint_listen_tcp(addr.ip(), addr.port()) {
                return denied(&policy, d);
            }
            let peers = Peers::parse(&tcp.peers).map_err(invalid)?;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| os_error(&format!("listening on {addr}"), e))?;
            let bound = listener.local_addr().map_err(|e| os_error("the bound address", e))?;
            Ok((Listener::Tcp(listener, peers), bound.to_string()))
        }
    }
}

impl<T> wit::HostWithStore<T> for HasSelf<HostState> {
    async fn open(
        acc: &Accessor<T, Self>,
        task: Resource<TaskContextRes>,
        address: wit::Address,
    ) -> wasmtime::Result<CapResult<Resource<EndpointRes>>> {
        let (scope, log) = acc.with(|mut a| -> wasmtime::Result<_> {
            let res = a.get().table.get(&task)?;
            Ok((res.scope.clone(), res.ctx.log().clone()))
        })?;
        let opened = async {
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
            Ok(EndpointRes {
                shared,
                queue: Arc::new(tokio::sync::Mutex::new(queue_rx)),
                address,
                scope: scope.clone(),
            })
        };
        match opened.await {
            Ok(res) => Ok(Ok(acc.with(|mut a| a.get().table.push(res))?)),
            Err(e) => Ok(Err(e)),
        }
    }
}

impl wit::Host for HostState {}

fn action(a: wit::Action) -> CapResult<Action> {
    Ok(match a {
        wit::Action::Engine => Action::Engine,
        wit::Action::BodyToLog(prefix) => Action::BodyToLog(crate::text::shown(&prefix, 200)),
        wit::Action::Fixed((head, body)) => {
            if body.len() > routes::MAX_FIXED_BODY {
                return Err(invalid(format!(
                    "a fixed answer's body has {} bytes; at most {}",
                    body.len(),
                    routes::MAX_FIXED_BODY
                )));
            }
            Action::Fixed(Fixed {
                status: routes::status(head.status).map_err(invalid)?,
                headers: routes::headers(&head.headers).map_err(invalid)?,
                body: Bytes::from(body),
            })
        }
    })
}

impl wit::HostEndpoint for HostState {
    fn address(&mut self, r: Resource<EndpointRes>) -> wasmtime::Result<String> {
        Ok(self.table.get(&r)?.address.clone())
    }

    fn add_route(&mut self, r: Resource<EndpointRes>, route: wit::Route) -> wasmtime::Result<CapResult<()>> {
        let shared = self.table.get(&r)?.shared.clone();
        let added = action(route.action).and_then(|a| {
            let mut routes = shared.routes.lock().expect("endpoint routes");
            routes
                .add_route(route.method.as_deref(), &route.path, a)
                .map_err(invalid)
        });
        Ok(added)
    }

    fn add_proxy(
        &mut self,
        r: Resource<EndpointRes>,
        name: String,
        handler: Resource<ProxyHandlerRes>,
    ) -> wasmtime::Result<CapResult<()>> {
        let handler = self.table.get(&handler)?.0.clone();
        let shared = self.table.get(&r)?.shared.clone();
        let mut routes = shared.routes.lock().expect("endpoint routes");
        Ok(routes.add_proxy(&name, handler).map_err(invalid))
    }

    fn close(&mut self, r: Resource<EndpointRes>) -> wasmtime::Result<()> {
        self.table.get(&r)?.shared.cancel.cancel();
        Ok(())
    }

    fn drop(&mut self, r: Resource<EndpointRes>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl<T> wit::HostEndpointWithStore<T> for HasSelf<HostState> {
    async fn next_request(
        acc: &Accessor<T, Self>,
        r: Resource<EndpointRes>,
    ) -> wasmtime::Result<Option<Resource<EndpointRequestRes>>> {
        let (queue, cancel, scope) = acc.with(|mut a| -> wasmtime::Result<_> {
            let res = a.get().table.get(&r)?;
            Ok((res.queue.clone(), res.shared.cancel.clone(), res.scope.clone()))
        })?;
        let next = tokio::select! {
            _ = cancel.cancelled() => None,
            p = async { queue.lock().await.recv().await } => p,
        };
        match next {
            Some(pending) => {
                Ok(Some(acc.with(|mut a| {
                    a.get().table.push(EndpointRequestRes::new(pending, scope))
                })?))
            }
            None => Ok(None),
        }
    }
}

impl wit::HostRequest for HostState {
    fn method(&mut self, r: Resource<EndpointRequestRes>) -> wasmtime::Result<String> {
        Ok(self.table.get(&r)?.pending.method.clone())
    }
    fn target(&mut self, r: Resource<EndpointRequestRes>) -> wasmtime::Result<String> {
        Ok(self.table.get(&r)?.pending.target.clone())
    }
    fn headers(&mut self, r: Resource<EndpointRequestRes>) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.table.get(&r)?.pending.headers.clone())
    }
    fn drop(&mut self, r: Resource<EndpointRequestRes>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl<T> wit::HostRequestWithStore<T> for HasSelf<HostState> {
    async fn body(
        acc: &Accessor<T, Self>,
        r: Resource<EndpointRequestRes>,
    ) -> wasmtime::Result<Option<StreamReader<u8>>> {
        let body: Option<ByteStream> =
            acc.with(|mut a| -> wasmtime::Result<_> { Ok(a.get().table.get_mut(&r)?.pending.body.take()) })?;
        match body {
            Some(stream) => Ok(Some(host_stream(acc, stream)?)),
            None => Ok(None),
        }
    }

    async fn body_end(acc: &Accessor<T, Self>, r: Resource<EndpointRequestRes>) -> wasmtime::Result<wit::BodyEnd> {
        let mut end: watch::Receiver<Option<BodyEnd>> =
            acc.with(|mut a| -> wasmtime::Result<_> { Ok(a.get().table.get(&r)?.pending.body_end.clone()) })?;
        let end = match end.wait_for(Option::is_some).await {
            Ok(v) => v.unwrap_or(BodyEnd::Truncated),
            // The reader went away with the endpoint: the body did not end well.
            Err(_) => BodyEnd::Truncated,
        };
        Ok(match end {
            BodyEnd::Complete => wit::BodyEnd::Complete,
            BodyEnd::Truncated => wit::BodyEnd::Truncated,
        })
    }

    async fn respond(
        acc: &Accessor<T, Self>,
        r: Resource<EndpointRequestRes>,
        head: wit::Response,
        body: StreamReader<u8>,
    ) -> wasmtime::Result<CapResult<()>> {
        let body = guest_stream(acc, body)?;
        let reply = acc.with(|mut a| -> wasmtime::Result<_> { Ok(a.get().table.get_mut(&r)?.reply.take()) })?;
        let Some(reply) = reply else {
            return Ok(Err(invalid("the request was answered already")));
        };
        let checked = routes::status(head.status).and_then(|s| Ok((s, routes::headers(&head.headers)?)));
        let (status, headers) = match checked {
            Ok(v) => v,
            Err(why) => {
                // Unanswerable as asked: the client gets a 500, the engine the reason.
                drop(reply);
                return Ok(Err(invalid(why)));
            }
        };
        let (done, sent) = oneshot::channel();
        if reply
            .send(Reply::Respond {
                status,
                headers,
                body,
                done,
            })
            .is_err()
        {
            return Ok(Err(os_error("answering", "the client went away")));
        }
        Ok(match sent.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(os_error("answering", why)),
            Err(_) => Err(os_error("answering", "the connection closed")),
        })
    }

    async fn upgrade(
        acc: &Accessor<T, Self>,
        r: Resource<EndpointRequestRes>,
        headers: Vec<(String, String)>,
        outgoing: StreamReader<u8>,
    ) -> wasmtime::Result<CapResult<StreamReader<u8>>> {
        let outgoing = guest_stream(acc, outgoing)?;
        let (reply, asked) = acc.with(|mut a| -> wasmtime::Result<_> {
            let res = a.get().table.get_mut(&r)?;
            let asked = res.pending.upgrade.is_some();
            Ok((if asked { res.reply.take() } else { None }, asked))
        })?;
        if !asked {
            return Ok(Err(invalid("the request asked for no upgrade (no Upgrade header)")));
        }
        let Some(reply) = reply else {
            return Ok(Err(invalid("the request was answered already")));
        };
        let headers = match routes::headers(&headers) {
            Ok(h) => h,
            Err(why) => return Ok(Err(invalid(why))),
        };
        let (incoming, stream) = byte_pipe();
        if reply
            .send(Reply::Upgrade {
                headers,
                outgoing,
                incoming,
            })
            .is_err()
        {
            return Ok(Err(os_error("upgrading", "the client went away")));
        }
        Ok(Ok(host_stream(acc, stream)?))
    }

    async fn save_body(
        acc: &Accessor<T, Self>,
        r: Resource<EndpointRequestRes>,
        path: String,
        max_size: u64,
    ) -> wasmtime::Result<CapResult<u64>> {
        let (body, end, scope) = acc.with(|mut a| -> wasmtime::Result<_> {
            let res = a.get().table.get_mut(&r)?;
            Ok((res.pending.body.take(), res.pending.body_end.clone(), res.scope.clone()))
        })?;
        let policy = scope.engine.policy.clone();
        if let Err(d) = policy.files_sandbox() {
            return Ok(denied(&policy, d));
        }
        let Some(body) = body else {
            return Ok(Err(invalid(
                "the request's body was taken already (body, or a body-to-log route)",
            )));
        };
        Ok(save::save_body(&scope, &path, body, end, max_size).await)
    }
}
