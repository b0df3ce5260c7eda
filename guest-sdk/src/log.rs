//! Task-log helpers. `TaskContext::log`/`log_error` write `[taskcluster] ` and
//! `[taskcluster:error] ` lines; [`write_log_bytes`] writes raw bytes (the seed's
//! `LogDrain`), for instance a process's output.

use crate::{TaskContext, byte_stream};

/// Writes `bytes` to the task log as they are (no prefix, no added newline).
pub async fn write_log_bytes(context: &TaskContext, bytes: Vec<u8>) {
    let (mut tx, rx) = byte_stream();
    let writer = async move {
        let _ = tx.write_all(bytes).await;
        drop(tx);
    };
    futures::join!(writer, context.write_log(rx));
}
