//! The task's endpoint: an HTTP/1.1 server the host runs for one task, on a unix
//! socket in its sandbox directory or on a TCP address the operator granted
//! (`[plugins.NAME.endpoint] listen`). It is what a task's container or VM reaches
//! as `http://taskcluster/...`.
//!
//! ```ignore
//! use enginehost_sdk::caps::endpoint::{self, Action};
//! let ep = endpoint::open(&task, endpoint::tcp("172.18.0.1:80", &["172.18.0.0/16"])).await?;
//! ep.add_proxy(&name, &handler)?;                       // answered host-side
//! ep.add_route(&endpoint::route(Some("GET"), "/engine/v1/execute", Action::Engine))?;
//! while let Some(request) = ep.next_request().await {
//!     request.respond_bytes(200, &[("content-type", "application/json")], body).await?;
//! }
//! ```
//! Proxy bytes, fixed answers and `body-to-log` bodies never enter the engine;
//! a stream the engine hands back that the host made (a request body, an
//! `open-file`) is copied host-side.

use super::CapError;
use crate::wit::enginehost::engine::endpoint as raw;
pub use crate::wit::enginehost::engine::endpoint::{
    Action, Address, BodyEnd, Endpoint, Request, Response, Route, TcpAddress,
};
use crate::{TaskContext, stream_of};

/// Starts an endpoint for `task` at `address` ([`sandbox_socket`] or [`tcp`]).
pub async fn open(task: &TaskContext, address: Address) -> Result<Endpoint, CapError> {
    raw::open(task, address).await
}

/// An endpoint of `task` that outlived the instance that opened it, again: in
/// [`Engine::recover_sandbox`](crate::Engine::recover_sandbox), with the address
/// its `address()` gave (contract 0.1.4). Its listener, connections, routes,
/// proxies and the requests not yet taken are all still there; requests the old
/// instance held unanswered were answered 500.
///
/// # Errors
/// `not-found` when no kept endpoint of the task has `address`.
pub fn adopt(task: &TaskContext, address: &str) -> Result<Endpoint, CapError> {
    raw::adopt(task, address)
}

/// A unix socket at `path` in the task's sandbox directory.
pub fn sandbox_socket(path: &str) -> Address {
    Address::SandboxSocket(path.into())
}

/// A TCP address (`IP:PORT`), reachable only from `peers` (addresses or CIDRs;
/// none = anyone who can reach it).
pub fn tcp(address: &str, peers: &[&str]) -> Address {
    Address::Tcp(TcpAddress {
        address: address.into(),
        peers: peers.iter().map(|p| p.to_string()).collect(),
    })
}

/// A route for `method` (`None` = any) on `path` (a trailing `*` makes it a prefix).
pub fn route(method: Option<&str>, path: &str, action: Action) -> Route {
    Route {
        method: method.map(String::from),
        path: path.into(),
        action,
    }
}

/// A fixed answer, for [`Action::Fixed`].
pub fn fixed(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Action {
    Action::Fixed((head(status, headers), body.into()))
}

/// An answer's head.
pub fn head(status: u16, headers: &[(&str, &str)]) -> Response {
    Response {
        status,
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
    }
}

impl Request {
    /// Answers with `body` (a `content-length` is added).
    pub async fn respond_bytes(&self, status: u16, headers: &[(&str, &str)], body: Vec<u8>) -> Result<(), CapError> {
        let mut head = head(status, headers);
        head.headers.push(("content-length".into(), body.len().to_string()));
        self.respond(head, stream_of(body)).await
    }

    /// The value of the header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}
