//! The task's sandbox directory, the engine's state directory, and host-side
//! downloads. Both directories are also reachable through WASI (`std::fs` works on
//! them), but WASI 0.2 file calls block the whole engine while they run: use them
//! for metadata and small files, and let the host move bulk bytes (process output
//! with `task-log`, downloads with [`download`]).

use super::CapError;
use crate::TaskContext;
use crate::wit::enginehost::engine::files as raw;

/// The guest path of `task`'s sandbox directory (`/sandboxes/<key>`), created on
/// first use and deleted when the task ends. Needs `files.sandbox`.
pub async fn sandbox_dir(task: &TaskContext) -> Result<String, CapError> {
    raw::sandbox_dir(task).await
}

/// The guest path of the engine's state directory (`/engine`). Needs `files.engine`.
pub fn state_dir() -> Result<String, CapError> {
    raw::state_dir()
}

/// Downloads `url` (http or https) into `dest` (relative to the sandbox directory)
/// on the host, under the `network.connect` grant; returns the size.
pub async fn download(task: &TaskContext, url: &str, dest: &str) -> Result<u64, CapError> {
    raw::download(task, url.into(), dest.into()).await
}
