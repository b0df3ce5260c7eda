//! Unix domain sockets the operator granted (`unix-sockets.connect`).

use super::CapError;
use crate::wit::enginehost::engine::unix_sockets as raw;
use crate::{StreamReader, StreamWriter, TaskContext, byte_stream};

/// A connected socket: write into `tx` (dropping it shuts the write side down),
/// read the peer's bytes from `rx`.
pub struct UnixConnection {
    /// The engine's bytes to the peer.
    pub tx: StreamWriter<u8>,
    /// The peer's bytes.
    pub rx: StreamReader<u8>,
}

/// Connects to the granted socket at the absolute host path `path`.
pub async fn connect(path: &str) -> Result<UnixConnection, CapError> {
    let (tx, outgoing) = byte_stream();
    let rx = raw::connect(path.into(), outgoing).await?;
    Ok(UnixConnection { tx, rx })
}

/// Connects to a socket a process of `task` made in its sandbox directory
/// (`path` relative to it; granted as `sandbox:*` or `sandbox:<path>`).
pub async fn connect_in_sandbox(task: &TaskContext, path: &str) -> Result<UnixConnection, CapError> {
    let (tx, outgoing) = byte_stream();
    let rx = raw::connect_in_sandbox(task, path.into(), outgoing).await?;
    Ok(UnixConnection { tx, rx })
}

/// Connects to a socket in `task`'s sandbox as [`connect_in_sandbox`] does, with
/// a stream the engine already has as the bytes to send (a display client's
/// stream, say: the host relays it to the socket without the engine copying it);
/// returns the peer's bytes.
pub async fn relay_in_sandbox(
    task: &TaskContext,
    path: &str,
    outgoing: StreamReader<u8>,
) -> Result<StreamReader<u8>, CapError> {
    raw::connect_in_sandbox(task, path.into(), outgoing).await
}
