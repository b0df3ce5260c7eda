//! `files.open-file` and `files.list-files`: the host reads a task's files for the
//! engine (artifacts), beneath a root inside the task's sandbox directory. The
//! root and every path below it are opened with cap-std, which refuses `..`,
//! absolute paths and symlinks that lead out of the root; FIFOs and devices are
//! never read; listing never follows a symlink.

use std::path::Path;
use std::sync::Arc;

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt as _};

use crate::caps::os::tree;
use crate::caps::scope::TaskScope;
use crate::caps::{CapResult, invalid, not_found, os_error};
use crate::contract::{ByteStream, byte_pipe};

/// Most files `list-files` returns.
pub(crate) const MAX_FILES: usize = 100_000;
/// Most directory levels `list-files` descends.
pub(crate) const MAX_DEPTH: usize = 256;
/// Most entries (files, directories, anything) `list-files` looks at.
pub(crate) const MAX_ENTRIES: usize = 1_000_000;
/// Bytes per read of `open-file`.
const CHUNK: usize = 256 * 1024;

/// Opens `root` beneath the task's sandbox.
fn root_dir(scope: &TaskScope, root: &str) -> CapResult<Dir> {
    TaskScope::check_relative(root)?;
    let sandbox = scope.sandbox()?;
    let root = if root.is_empty() { "." } else { root };
    sandbox
        .dir
        .open_dir(root)
        .map_err(|e| not_found(format!("'{root}' in the sandbox: {e}")))
}

/// Opens the regular file `path` beneath `root` and streams it from a host task.
pub(crate) fn open_file(scope: &Arc<TaskScope>, root: &str, path: &str) -> CapResult<ByteStream> {
    let dir = root_dir(scope, root)?;
    if path.is_empty() || Path::new(path).is_absolute() {
        return Err(invalid(format!(
            "'{path}' must be a non-empty path relative to '{root}'"
        )));
    }
    let mut options = OpenOptions::new();
    options.read(true).custom_flags(libc::O_NONBLOCK);
    let file = dir
        .open_with(path, &options)
        .map_err(|e| not_found(format!("'{path}': {e}")))?;
    let meta = file.metadata().map_err(|e| os_error("reading file metadata", e))?;
    if !meta.is_file() {
        return Err(not_found(format!("'{path}' is not a regular file")));
    }
    let mut file = file.into_std();
    let (sink, stream) = byte_pipe();
    // One blocking thread per file, reading in large chunks (tokio's file I/O would
    // hand every read to the blocking pool on its own); it ends when the reader is
    // gone, so a task's end (which drops the stream) stops it too.
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        loop {
            // read_to_end into fresh capacity: no zeroing of the buffer first.
            let mut buf = Vec::with_capacity(CHUNK);
            match (&mut file).take(CHUNK as u64).read_to_end(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if !sink.blocking_send(buf) {
                        return;
                    }
                }
            }
        }
    });
    Ok(stream)
}

/// The regular files under `path` (beneath `root`), relative to `path`, sorted.
/// Iterative and symlink-free ([`tree::list_files`]): a tree deeper than
/// [`MAX_DEPTH`] or with more than [`MAX_ENTRIES`] entries is an error naming the
/// bound, never a stack overflow.
pub(crate) async fn list_files(scope: &Arc<TaskScope>, root: &str, path: &str) -> CapResult<Vec<String>> {
    let dir = root_dir(scope, root)?;
    let path = path.trim_end_matches('/').to_string();
    tokio::task::spawn_blocking(move || {
        let top = if path.is_empty() { "." } else { path.as_str() };
        let start = dir.open_dir(top).map_err(|e| not_found(format!("'{path}': {e}")))?;
        let budget = tree::Budget {
            max_depth: MAX_DEPTH,
            max_files: MAX_FILES,
            max_entries: MAX_ENTRIES,
        };
        tree::list_files(start.into_std_file().into(), budget).map_err(|e| match e {
            tree::WalkError::Io(e) => os_error("reading a directory", e),
            e => invalid(format!("listing '{path}': {e}")),
        })
    })
    .await
    .map_err(|e| os_error("listing files", e))?
}
