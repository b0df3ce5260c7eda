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

/// The host path of `task`'s sandbox directory, for processes (`HOME`, arguments).
pub async fn sandbox_host_path(task: &TaskContext) -> Result<String, CapError> {
    raw::sandbox_host_path(task).await
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

/// Moves the directory `state_path` (relative to the engine's state directory)
/// into `task`'s sandbox as `sandbox_path` (its parent must exist), for the task
/// alone; with `owner`, what a task user made in it becomes that user's (symlinks
/// themselves, never their targets). A writable cache kept across tasks is lent
/// so. Needs `files.engine` and `files.sandbox`.
pub async fn lend_dir(
    task: &TaskContext,
    state_path: &str,
    sandbox_path: &str,
    owner: Option<&crate::caps::users::TaskUser>,
) -> Result<(), CapError> {
    raw::lend_dir(task, state_path.into(), sandbox_path.into(), owner).await
}

/// Moves the directory `sandbox_path` of `task`'s sandbox back to `state_path`
/// in the engine's state directory; not-found when the task replaced it by
/// something that is not a directory. Call it after the task's processes ended.
pub async fn reclaim_dir(task: &TaskContext, sandbox_path: &str, state_path: &str) -> Result<(), CapError> {
    raw::reclaim_dir(task, sandbox_path.into(), state_path.into()).await
}

/// Removes `path` (relative to the engine's state directory) and everything
/// beneath it, at any depth, on the host; a missing path is fine. Prefer it to
/// `std::fs::remove_dir_all` for trees a task shaped (the host's walk is bounded
/// and never follows a symlink). Needs `files.engine`.
pub async fn remove_state(path: &str) -> Result<(), CapError> {
    raw::remove_state(path.into()).await
}

/// `text` (a download's error, say) with every `http://` or `https://` URL in it
/// replaced by `<URL>`: for a URL that carries a secret (a signed URL), whose
/// redirects may too.
pub fn without_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("http://").into_iter().chain(rest.find("https://")).min() {
        out.push_str(&rest[..at]);
        out.push_str("<URL>");
        rest = &rest[at..];
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | ',' | ')' | '>'))
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Streams the regular file `path` under `root` (both relative to the task's
/// sandbox directory); the host reads it, so handing the stream on (from
/// `extract-file`) moves no byte through the engine. Symlinks must stay in `root`.
pub async fn open_file(task: &TaskContext, root: &str, path: &str) -> Result<crate::StreamReader<u8>, CapError> {
    raw::open_file(task, root.into(), path.into()).await
}

/// The regular files under `path` (relative to `root`), recursively, relative to
/// `path`, sorted; symlinks are never followed.
pub async fn list_files(task: &TaskContext, root: &str, path: &str) -> Result<Vec<String>, CapError> {
    raw::list_files(task, root.into(), path.into()).await
}

/// How many files [`extract_folder`] hands to the worker at once.
pub const EXTRACT_CONCURRENCY: usize = 4;

/// Serves `extract-folder` from a task's files: every regular file under `folder`
/// (relative to `root`, both in the task's sandbox) goes to `handler`, read by the
/// host, up to [`EXTRACT_CONCURRENCY`] at once. After a handler error no new call
/// starts, the ones in flight finish, and the result is `handler-interrupt`; a
/// missing folder is `resource-not-found` before any call. A file that disappears
/// or cannot be read meanwhile is skipped.
pub async fn extract_folder(
    task: &TaskContext,
    root: &str,
    folder: &str,
    handler: &crate::FileHandler,
) -> Result<(), crate::Error> {
    use futures::StreamExt;
    let folder = folder.trim_start_matches('/').trim_end_matches('/');
    let found = list_files(task, root, folder).await.map_err(|e| match e {
        CapError::NotFound(_) => crate::Error::ResourceNotFound,
        other => other.into(),
    })?;
    let interrupted = std::cell::Cell::new(false);
    let calls = futures::stream::iter(found).map(|rel| {
        let interrupted = &interrupted;
        async move {
            if interrupted.get() {
                return;
            }
            let full = if folder.is_empty() {
                rel.clone()
            } else {
                format!("{folder}/{rel}")
            };
            let Ok(data) = open_file(task, root, &full).await else {
                return;
            };
            if handler.handle_file(rel, data).await.is_err() {
                interrupted.set(true);
            }
        }
    });
    calls.buffer_unordered(EXTRACT_CONCURRENCY).collect::<Vec<()>>().await;
    if interrupted.get() {
        Err(crate::Error::HandlerInterrupt)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::without_urls;

    #[test]
    fn no_url_is_repeated() {
        assert_eq!(
            without_urls("fetching https://q/api/x?bewit=abc: 403 (to 'http://b/y?t=1')"),
            "fetching <URL> 403 (to '<URL>')"
        );
        assert_eq!(without_urls("no URL here"), "no URL here");
    }
}
