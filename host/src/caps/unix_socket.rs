//! The `unix-sockets` capability: connections to unix domain sockets the operator
//! granted by exact path (`[plugins.NAME.unix-sockets] connect`), or to sockets a
//! task's processes made in its sandbox directory (`sandbox:*`, `sandbox:<path>`).
//! Bytes are relayed by the host between the socket and the engine's streams; the
//! number of open connections per engine is capped by `max-connections`.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::os::beneath;
use super::{CapResult, EngineScope, TaskScope, check, invalid, os_error};
use crate::contract::{ByteStream, byte_pipe};

/// Releases a connection slot when the relay ends.
struct Slot(Arc<AtomicU32>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn take_slot(open: &Arc<AtomicU32>, max: Option<u32>) -> CapResult<Slot> {
    let n = open.fetch_add(1, Ordering::SeqCst);
    let slot = Slot(open.clone());
    if let Some(max) = max
        && n >= max
    {
        return Err(invalid(format!(
            "the engine already has {max} unix socket connections open, the operator's limit (unix-sockets.max-connections)"
        )));
    }
    Ok(slot)
}

/// Connects to the socket `socket` holds (an `O_PATH` descriptor, opened without
/// following a symlink: the object checked is the object connected) and relays;
/// returns the peer's stream and the relay's abort handle.
async fn relay(
    shown: &str,
    socket: OwnedFd,
    mut outgoing: ByteStream,
    slot: Slot,
) -> CapResult<(ByteStream, tokio::task::AbortHandle)> {
    let stream = beneath::connect(&socket)
        .await
        .map_err(|e| os_error(&format!("connecting to {shown}"), e))?;
    drop(socket);
    let (sink, incoming) = byte_pipe();
    let (mut read, mut write) = stream.into_split();
    let task = tokio::spawn(async move {
        let _slot = slot;
        let to_peer = async move {
            while let Some(chunk) = outgoing.next_chunk().await {
                if write.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = write.shutdown().await;
        };
        let from_peer = async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if !sink.send(buf[..n].to_vec()).await {
                            return;
                        }
                    }
                }
            }
        };
        // The connection lives until the peer closes (the engine's end of its
        // outgoing stream only shuts the write side down).
        tokio::join!(to_peer, from_peer);
    });
    Ok((incoming, task.abort_handle()))
}

/// `path` with `.` and doubled slashes removed; `None` if it is not absolute or has `..`.
fn normalize(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return None;
    }
    Some(p.components().filter(|c| !matches!(c, Component::CurDir)).collect())
}

/// `connect`: a connection to the socket at `path`, granted by exact path; the
/// host relays `outgoing` to it and returns what the peer sends.
pub(crate) async fn connect(engine: &EngineScope, path: &str, outgoing: ByteStream) -> CapResult<ByteStream> {
    let policy = &engine.policy;
    let Some(norm) = normalize(path) else {
        return Err(invalid(format!(
            "'{path}' is not an absolute path without '..'; for a socket in the task's sandbox use connect-in-sandbox"
        )));
    };
    check(policy, policy.unix_connect(&norm))?;
    let slot = take_slot(&engine.unix_connections.0, policy.unix_max_connections())?;
    let shown = norm.display().to_string();
    let socket = beneath::socket_at(&norm).map_err(|e| invalid(format!("cannot connect: {e}")))?;
    Ok(relay(&shown, socket, outgoing, slot).await?.0)
}

/// `connect-in-sandbox`: a connection to a socket a task's process made at `path`
/// in its sandbox; the relay ends with the task.
pub(crate) async fn connect_in_sandbox(
    scope: &Arc<TaskScope>,
    path: &str,
    outgoing: ByteStream,
) -> CapResult<ByteStream> {
    let policy = &scope.engine.policy;
    check(policy, policy.unix_connect_sandbox(path))?;
    TaskScope::check_relative(path)?;
    let slot = take_slot(&scope.engine.unix_connections.0, policy.unix_max_connections())?;
    let sandbox = scope.sandbox()?;
    // Opened beneath the sandbox's descriptor with no symlink followed on the way
    // or at the end, then connected through that descriptor: a symlink a task
    // planted, or swaps in after this check, is refused, never followed (and the
    // 108-byte sun_path limit does not bite).
    let socket = beneath::socket_beneath(sandbox.dir.as_fd(), Path::new(path))
        .map_err(|e| invalid(format!("in the sandbox: {e}")))?;
    let (reader, abort) = relay(&format!("sandbox:{path}"), socket, outgoing, slot).await?;
    scope.add_host_task(abort);
    Ok(reader)
}

#[cfg(test)]
mod tests {
    use super::normalize;
    use std::path::Path;

    #[test]
    fn paths_are_normalized_lexically() {
        assert_eq!(
            normalize("/var//run/./docker.sock").unwrap(),
            Path::new("/var/run/docker.sock")
        );
        assert!(normalize("var/run/x").is_none());
        assert!(normalize("/var/../etc/x").is_none());
    }
}
