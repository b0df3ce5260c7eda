//! What a finished docker task leaves: its success, and the container's files
//! (artifacts through the archive endpoint).

use std::rc::Rc;

use enginehost_sdk::{Error, FileHandler, Result, ResultSet, StreamReader, byte_stream, malformed, spawn_local};

use crate::api::escape;
use crate::bytes::{Reader, Source};
use crate::made::Made;
use crate::shell::Container;
use crate::tar::{Kind, Tar};

/// What a finished task leaves: success, and the container's files.
pub struct DockerResult {
    container: Rc<Container>,
    made: Rc<Made>,
    success: bool,
}

/// An artifact path: absolute, no trailing `/`.
fn artifact_path(path: &str) -> Result<()> {
    if !path.starts_with('/') || (path.len() > 1 && path.ends_with('/')) || path.contains('\0') {
        return Err(malformed(format!(
            "artifact path {path:?} must be an absolute path in the container without a trailing \"/\", e.g. \
             \"/folder/hello.txt\" or \"/folder\""
        )));
    }
    Ok(())
}

impl DockerResult {
    pub(crate) fn new(container: Rc<Container>, made: Rc<Made>, success: bool) -> Self {
        DockerResult {
            container,
            made,
            success,
        }
    }

    /// The archive of `path` in the container, as a tar stream.
    async fn archive(&self, path: &str) -> Result<Tar> {
        artifact_path(path)?;
        let container = &self.container;
        let target = format!("/containers/{}/archive?path={}", container.id, escape(path));
        match container.engine.docker.call("GET", &target, None).await {
            Ok(r) => Ok(Tar::new(Reader::new(Source::Body(r.into_body())))),
            Err(e) if e.status() == Some(404) => Err(Error::ResourceNotFound),
            Err(e) if e.status() == Some(400) => Err(malformed(format!("artifact path {path:?}: {e}"))),
            Err(e) => Err(container.engine.unavailable(e)),
        }
    }
}

/// Feeds the current entry of `tar` into a new stream, returned at once.
fn entry_stream(mut tar: Tar) -> StreamReader<u8> {
    let (mut tx, rx) = byte_stream();
    spawn_local(async move {
        while let Ok(Some(chunk)) = tar.data().await {
            if !tx.write_all(chunk).await.is_empty() {
                return;
            }
        }
    });
    rx
}

impl ResultSet for DockerResult {
    fn success(&self) -> bool {
        self.success
    }

    async fn extract_file(&self, path: String) -> Result<StreamReader<u8>> {
        let mut tar = self.archive(&path).await?;
        match tar.next().await {
            Ok(Some(entry)) if entry.kind == Kind::File => Ok(entry_stream(tar)),
            Ok(_) => Err(Error::ResourceNotFound),
            Err(e) => Err(Error::NonFatalInternalError(format!(
                "docker: reading the archive of {path}: {e}"
            ))),
        }
    }

    async fn extract_folder(&self, path: String, handler: &FileHandler) -> Result<()> {
        let mut tar = self.archive(&path).await?;
        let broken = |e: String| Error::NonFatalInternalError(format!("docker: reading the archive of {path}: {e}"));
        let base = match tar.next().await.map_err(broken)? {
            Some(entry) if entry.kind == Kind::Dir => entry.path.trim_end_matches('/').to_string(),
            _ => return Err(Error::ResourceNotFound),
        };
        while let Some(entry) = tar.next().await.map_err(broken)? {
            if entry.kind != Kind::File {
                continue;
            }
            let Some(rel) = entry.path.strip_prefix(&format!("{base}/")).map(String::from) else {
                continue;
            };
            let (mut tx, rx) = byte_stream();
            let feed = async {
                while let Ok(Some(chunk)) = tar.data().await {
                    if !tx.write_all(chunk).await.is_empty() {
                        break;
                    }
                }
                drop(tx);
            };
            let (_, handled) = futures::join!(feed, handler.handle_file(rel, rx));
            if handled.is_err() {
                return Err(Error::HandlerInterrupt);
            }
        }
        Ok(())
    }

    async fn dispose(&self) -> Result<()> {
        self.made.remove(false).await;
        Ok(())
    }
}
