//! An HTTP/1.1 client over the capability imports (feature `http`): hyper 1.x
//! (`client`, `http1`) on a [`WitIo`] adapter. Each request gets a connection of
//! its own (no pool: a connection is one host call away), whose hyper task runs
//! on [`spawn_local`](crate::spawn_local); chunked and close-delimited bodies are
//! hyper's, and an upgrade (`101 Switching Protocols`, dockerd's attach and exec
//! hijack) hands the raw streams back as an [`Upgraded`].
//!
//! ```ignore
//! use enginehost_sdk::http::{UnixClient, request};
//! let docker = UnixClient::new("/var/run/docker.sock");
//! let response = docker.send(request("GET", "/_ping", None)?).await?;
//! let body = enginehost_sdk::http::read_body(response.into_body(), 1 << 20).await?;
//! ```

mod io;

use std::fmt;

pub use bytes::Bytes;
pub use http_body_util::Full;
pub use hyper::body::Incoming;
pub use hyper::{Request, Response, StatusCode};
pub use io::WitIo;

use http_body_util::BodyExt;

use crate::caps::{CapError, unix_socket};
use crate::{StreamReader, StreamWriter};

/// Why a request failed.
#[derive(Debug)]
pub enum HttpError {
    /// The connection was refused by the host (not granted, limit, OS error).
    Connect(CapError),
    /// The HTTP exchange failed (the peer closed, a malformed answer, ...).
    Http(String),
    /// A body was larger than the caller accepts.
    TooLarge(usize),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Connect(e) => f.write_str(&e.message()),
            HttpError::Http(why) => write!(f, "HTTP: {why}"),
            HttpError::TooLarge(n) => write!(f, "the answer is larger than {n} bytes"),
        }
    }
}

impl From<hyper::Error> for HttpError {
    fn from(e: hyper::Error) -> Self {
        HttpError::Http(e.to_string())
    }
}

/// A request with an optional body (`Host: localhost`, as docker expects some host).
///
/// # Errors
/// When the method or target is not valid HTTP.
pub fn request(method: &str, target: &str, body: Option<Vec<u8>>) -> Result<Request<Full<Bytes>>, HttpError> {
    let mut builder = Request::builder()
        .method(method)
        .uri(target)
        .header("host", "localhost");
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| HttpError::Http(format!("building {method} {target}: {e}")))
}

/// An HTTP server behind a unix socket the operator granted.
#[derive(Clone)]
pub struct UnixClient {
    path: String,
}

/// An upgraded connection: the raw byte streams after `101 Switching Protocols`.
pub struct Upgraded {
    /// The server's bytes; `head` comes first.
    pub rx: StreamReader<u8>,
    /// Bytes the server sent right after its answer's head, already read.
    pub head: Vec<u8>,
    /// Our bytes to the server; dropping it half-closes the connection.
    pub tx: StreamWriter<u8>,
}

impl UnixClient {
    /// A client of the socket at `path` (absolute host path).
    pub fn new(path: impl Into<String>) -> Self {
        UnixClient { path: path.into() }
    }

    /// The socket's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    async fn connect(&self) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, HttpError> {
        let conn = unix_socket::connect(&self.path).await.map_err(HttpError::Connect)?;
        let io = WitIo::new(conn.rx, conn.tx);
        let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        crate::spawn_local(async move {
            let _ = connection.with_upgrades().await;
        });
        Ok(sender)
    }

    /// Sends `request` on a new connection; the answer's body streams as it comes.
    ///
    /// # Errors
    /// The connection is refused or the exchange fails.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, HttpError> {
        let mut sender = self.connect().await?;
        Ok(sender.send_request(request).await?)
    }

    /// Sends `request` (which asks for an upgrade) and, on `101`, returns the raw
    /// streams. Any other answer is returned as `Err(Ok(response))` for the caller
    /// to read.
    ///
    /// # Errors
    /// The connection is refused or the exchange fails (outer error).
    pub async fn upgrade(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Result<Upgraded, Response<Incoming>>, HttpError> {
        let mut sender = self.connect().await?;
        let response = sender.send_request(request).await?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(Err(response));
        }
        let upgraded = hyper::upgrade::on(response).await?;
        let parts = upgraded
            .downcast::<WitIo>()
            .map_err(|_| HttpError::Http("the upgraded connection is not a WitIo".into()))?;
        let (rx, tx, mut head) = parts.io.into_parts();
        head.splice(0..0, parts.read_buf.iter().copied());
        match (rx, tx) {
            (Some(rx), Some(tx)) => Ok(Ok(Upgraded { rx, head, tx })),
            _ => Err(HttpError::Http("the connection closed during the upgrade".into())),
        }
    }
}

/// Reads a whole body, refusing more than `limit` bytes.
///
/// # Errors
/// The body breaks off, or is larger than `limit`.
pub async fn read_body(mut body: Incoming, limit: usize) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if out.len() + data.len() > limit {
                return Err(HttpError::TooLarge(limit));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// The next piece of a body's data (`None` at its end).
///
/// # Errors
/// The body breaks off (a chunked body without its last chunk, a short one).
pub async fn next_data(body: &mut Incoming) -> Result<Option<Bytes>, HttpError> {
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}
