//! `request.save-body`: a request body written into a file of the task's sandbox
//! by the host, so that a guest agent's upload (an artifact) reaches the worker
//! through `files.open-file` without entering the engine, and a body that broke
//! off is an error instead of a short file.

use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use super::server::BodyEnd;
use crate::caps::{CapResult, TaskScope, invalid, os_error};
use crate::contract::ByteStream;

/// Copies `body` into `rel` (created or truncated) beneath the sandbox, at most
/// `max` bytes; the size once the body ended complete.
pub(super) async fn save_body(
    scope: &TaskScope,
    rel: &str,
    mut body: ByteStream,
    mut end: watch::Receiver<Option<BodyEnd>>,
    max: u64,
) -> CapResult<u64> {
    let file = scope.sandbox()?.open_file(rel, true)?;
    let mut file = tokio::fs::File::from_std(file);
    let mut size = 0u64;
    while let Some(chunk) = body.next_chunk().await {
        size += chunk.len() as u64;
        if size > max {
            // Dropping `body` makes the server read the rest and drop it.
            return Err(invalid(format!(
                "the request body is larger than {max} bytes (the engine's limit); '{rel}' holds the first {} bytes",
                size - chunk.len() as u64
            )));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| os_error(&format!("writing '{rel}' in the sandbox"), e))?;
    }
    file.flush()
        .await
        .map_err(|e| os_error(&format!("writing '{rel}' in the sandbox"), e))?;
    let ended = match end.wait_for(Option::is_some).await {
        Ok(v) => v.unwrap_or(BodyEnd::Truncated),
        Err(_) => BodyEnd::Truncated,
    };
    match ended {
        BodyEnd::Complete => Ok(size),
        BodyEnd::Truncated => Err(os_error(
            "receiving the request body",
            format!("it broke off after {size} bytes (the client went away); '{rel}' holds what arrived"),
        )),
    }
}
