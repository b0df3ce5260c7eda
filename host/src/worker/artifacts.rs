//! Extracting a task's artifacts into a directory: a file artifact lands at
//! `<dir>/<name>`, a directory artifact's files under `<dir>/<name>/`. Names and
//! the paths an engine reports must stay inside `<dir>`: an engine is not trusted.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde::Deserialize;

use crate::contract::{ByteStream, EngineError, FileHandler, ResultSet};

/// What to extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// One file.
    File,
    /// A folder, recursively.
    Directory,
}

/// One artifact of a task file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactSpec {
    /// `file` or `directory`.
    #[serde(rename = "type")]
    pub kind: ArtifactKind,
    /// The path in the engine's format.
    pub path: String,
    /// Where it lands, relative to the artifacts directory.
    pub name: String,
    /// When it expires (RFC 3339; the task's `expires` when absent, never later).
    #[serde(default)]
    pub expires: Option<String>,
    /// Its content type (a file's; guessed from each name when absent).
    #[serde(default, rename = "contentType")]
    pub content_type: Option<String>,
    /// `identity` (the default) or `gzip` (compressed by the worker, served with
    /// `Content-Encoding: gzip`).
    #[serde(default, rename = "contentEncoding")]
    pub content_encoding: Option<String>,
    /// When set, a missing file is not an error: no error artifact is made.
    #[serde(default)]
    pub optional: bool,
}

impl ArtifactSpec {
    /// An artifact with no optional field set.
    pub fn new(kind: ArtifactKind, path: &str, name: &str) -> ArtifactSpec {
        ArtifactSpec {
            kind,
            path: path.to_string(),
            name: name.to_string(),
            expires: None,
            content_type: None,
            content_encoding: None,
            optional: false,
        }
    }
}

/// Most parts an artifact path may have (the host lists at most 256 levels).
pub const MAX_PATH_PARTS: usize = 257;
/// Most bytes of an artifact path (the kernel's PATH_MAX).
pub const MAX_PATH_LEN: usize = 4096;

/// `rel` as a path inside `base`, or an error saying why not.
pub fn confined(base: &Path, rel: &str) -> Result<PathBuf, String> {
    let path = Path::new(rel);
    if rel.is_empty() || rel.contains('\\') {
        return Err(format!("'{rel}' is not a relative '/'-separated path"));
    }
    let mut depth = 0;
    for part in path.components() {
        if !matches!(part, Component::Normal(_)) {
            return Err(format!("'{rel}' must be a relative path without '..' or a leading '/'"));
        }
        depth += 1;
    }
    if depth > MAX_PATH_PARTS || rel.len() > MAX_PATH_LEN {
        return Err(format!(
            "'{}' is longer than an artifact path may be ({MAX_PATH_PARTS} parts, {MAX_PATH_LEN} bytes)",
            crate::text::shown(rel, 80)
        ));
    }
    Ok(base.join(path))
}

/// Bounds on what a task's artifacts may be (`[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactLimits {
    /// Bytes of one file.
    pub file_size: u64,
    /// Bytes of all of the task's artifacts.
    pub task_size: u64,
    /// Files of one directory artifact.
    pub files: u64,
    /// How long a stream or an extraction may make no progress.
    pub stall: Duration,
}

impl Default for ArtifactLimits {
    fn default() -> Self {
        ArtifactLimits {
            file_size: 4 << 30,
            task_size: 16 << 30,
            files: 100_000,
            stall: Duration::from_secs(60),
        }
    }
}

/// What one task's extractions share: the limits, the bytes written so far, and
/// the moment of the last progress (a chunk written, a file begun).
#[derive(Clone)]
pub struct Budget {
    limits: ArtifactLimits,
    task_bytes: Arc<AtomicU64>,
    last_progress: Arc<std::sync::Mutex<Instant>>,
}

impl Budget {
    /// A fresh budget for one task.
    pub fn new(limits: ArtifactLimits) -> Budget {
        Budget {
            limits,
            task_bytes: Arc::default(),
            last_progress: Arc::new(std::sync::Mutex::new(Instant::now())),
        }
    }

    fn progress(&self) {
        *self.last_progress.lock().expect("progress lock") = Instant::now();
    }

    fn since_progress(&self) -> Duration {
        self.last_progress.lock().expect("progress lock").elapsed()
    }
}

/// Writes `data` to `target` on a blocking thread of its own (one per file: tokio's
/// file I/O would hand every write to the blocking pool separately), within the
/// budget's size limits and stall timeout.
async fn write_stream(target: PathBuf, mut data: ByteStream, budget: Budget) -> Result<(), WriteError> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| WriteError::Io(format!("creating {}: {e}", parent.display())))?;
        }
        let mut file = std::fs::File::create(&target)
            .map_err(|e| WriteError::Io(format!("creating {}: {e}", target.display())))?;
        let limits = budget.limits;
        let mut size = 0u64;
        loop {
            // A timer only when the next chunk is not there yet (a timer per chunk
            // costs a trip through the runtime's timer wheel).
            let next = match data.try_next_chunk() {
                Some(ready) => Ok(ready),
                None => handle.block_on(tokio::time::timeout(limits.stall, data.next_chunk())),
            };
            let chunk = match next {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(_) => {
                    return Err(WriteError::Io(format!(
                        "{}: the engine sent nothing for {:?} (limits.stall-timeout)",
                        target.display(),
                        limits.stall
                    )));
                }
            };
            size += chunk.len() as u64;
            if size > limits.file_size {
                return Err(WriteError::TooLarge(format!(
                    "{} is larger than {} bytes (limits.artifact-size)",
                    target.display(),
                    limits.file_size
                )));
            }
            let total = budget.task_bytes.fetch_add(chunk.len() as u64, Ordering::SeqCst) + chunk.len() as u64;
            if total > limits.task_size {
                return Err(WriteError::TooLarge(format!(
                    "the task's artifacts are larger than {} bytes (limits.task-artifacts-size)",
                    limits.task_size
                )));
            }
            file.write_all(&chunk)
                .map_err(|e| WriteError::Io(format!("writing {}: {e}", target.display())))?;
            budget.progress();
        }
        file.flush()
            .map_err(|e| WriteError::Io(format!("writing {}: {e}", target.display())))
    })
    .await
    .map_err(|e| WriteError::Io(format!("writing an artifact: {e}")))?
}

/// Why writing one file failed.
#[derive(Debug, Clone)]
enum WriteError {
    /// A size or count limit was reached (the message names it).
    TooLarge(String),
    /// The engine stalled, or the file could not be written.
    Io(String),
}

impl WriteError {
    fn message(&self) -> &str {
        match self {
            WriteError::TooLarge(m) | WriteError::Io(m) => m,
        }
    }
}

impl From<WriteError> for ArtifactError {
    fn from(e: WriteError) -> ArtifactError {
        match e {
            WriteError::TooLarge(m) => ArtifactError::TooLarge(m),
            WriteError::Io(m) => ArtifactError::Io(m),
        }
    }
}

/// Why an artifact could not be extracted.
#[derive(Debug)]
pub enum ArtifactError {
    /// The artifact's name is not a safe relative path.
    BadName(String),
    /// The engine's error (not found, not supported, ...).
    Engine(EngineError),
    /// Writing the files failed, or the engine stalled on a file.
    Io(String),
    /// A size or count limit was reached (the message names it).
    TooLarge(String),
    /// The engine stopped making progress; its instance was stopped.
    Stalled(String),
}

/// Extracts `spec` from `result` into `dir`, within `budget`.
pub async fn extract(
    result: &dyn ResultSet,
    spec: &ArtifactSpec,
    dir: &Path,
    budget: &Budget,
) -> Result<(), ArtifactError> {
    let target = confined(dir, &spec.name).map_err(ArtifactError::BadName)?;
    budget.progress();
    match spec.kind {
        ArtifactKind::File => {
            let data = result.extract_file(&spec.path).await.map_err(ArtifactError::Engine)?;
            let written = write_stream(target.clone(), data, budget.clone()).await;
            if written.is_err() {
                let _ = std::fs::remove_file(&target);
            }
            written.map_err(ArtifactError::from)
        }
        ArtifactKind::Directory => {
            // The first write failure; the engine only learns that a handler failed.
            let failure = Arc::new(std::sync::Mutex::new(None::<WriteError>));
            let files = Arc::new(AtomicU64::new(0));
            let (f, base, b) = (failure.clone(), target, budget.clone());
            let handler: FileHandler = Arc::new(move |rel: String, data: ByteStream| {
                let (f, base, b, files) = (f.clone(), base.clone(), b.clone(), files.clone());
                async move {
                    b.progress();
                    let written = if files.fetch_add(1, Ordering::SeqCst) >= b.limits.files {
                        Err(WriteError::TooLarge(format!(
                            "the directory has more than {} files (limits.artifact-files)",
                            b.limits.files
                        )))
                    } else {
                        match confined(&base, &rel) {
                            Ok(path) => write_stream(path, data, b).await,
                            Err(e) => Err(WriteError::Io(format!("the engine reported an unsafe path: {e}"))),
                        }
                    };
                    if let Err(e) = &written {
                        f.lock().expect("artifact failure lock").get_or_insert(e.clone());
                    }
                    written.map_err(|e| e.message().to_string())
                }
                .boxed()
            });
            let extraction = result.extract_folder(&spec.path, handler);
            tokio::pin!(extraction);
            let outcome = loop {
                tokio::select! {
                    outcome = &mut extraction => break outcome,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {
                        if budget.since_progress() > budget.limits.stall {
                            let reason = format!(
                                "extracting {} made no progress for {:?} (limits.stall-timeout); the engine was stopped",
                                spec.path, budget.limits.stall
                            );
                            result.terminate(&reason).await;
                            return Err(ArtifactError::Stalled(reason));
                        }
                    }
                }
            };
            if let Some(e) = failure.lock().expect("artifact failure lock").take() {
                return Err(e.into());
            }
            outcome.map_err(ArtifactError::Engine)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::confined;
    use std::path::Path;

    #[test]
    fn paths_stay_inside() {
        let base = Path::new("/a");
        assert_eq!(confined(base, "b/c.txt").unwrap(), Path::new("/a/b/c.txt"));
        for bad in ["", "/etc/passwd", "../x", "b/../../x", "b\\c", "./"] {
            assert!(confined(base, bad).is_err(), "{bad}");
        }
    }
}
