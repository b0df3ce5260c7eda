//! Extracting a task's artifacts into a directory: a file artifact lands at
//! `<dir>/<name>`, a directory artifact's files under `<dir>/<name>/`. Names and
//! the paths an engine reports must stay inside `<dir>`: an engine is not trusted.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

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
}

/// `rel` as a path inside `base`, or an error saying why not.
pub fn confined(base: &Path, rel: &str) -> Result<PathBuf, String> {
    let path = Path::new(rel);
    if rel.is_empty() || rel.contains('\\') {
        return Err(format!("'{rel}' is not a relative '/'-separated path"));
    }
    for part in path.components() {
        if !matches!(part, Component::Normal(_)) {
            return Err(format!("'{rel}' must be a relative path without '..' or a leading '/'"));
        }
    }
    Ok(base.join(path))
}

/// Writes `data` to `target` on a blocking thread of its own (one per file: tokio's
/// file I/O would hand every write to the blocking pool separately).
async fn write_stream(target: PathBuf, mut data: ByteStream) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        let mut file = std::fs::File::create(&target).map_err(|e| format!("creating {}: {e}", target.display()))?;
        while let Some(chunk) = data.blocking_next_chunk() {
            file.write_all(&chunk)
                .map_err(|e| format!("writing {}: {e}", target.display()))?;
        }
        file.flush().map_err(|e| format!("writing {}: {e}", target.display()))
    })
    .await
    .map_err(|e| format!("writing {}: {e}", "an artifact"))?
}

/// Why an artifact could not be extracted.
#[derive(Debug)]
pub enum ArtifactError {
    /// The artifact's name is not a safe relative path.
    BadName(String),
    /// The engine's error (not found, not supported, ...).
    Engine(EngineError),
    /// Writing the files failed.
    Io(String),
}

/// Extracts `spec` from `result` into `dir`.
pub async fn extract(result: &dyn ResultSet, spec: &ArtifactSpec, dir: &Path) -> Result<(), ArtifactError> {
    let target = confined(dir, &spec.name).map_err(ArtifactError::BadName)?;
    match spec.kind {
        ArtifactKind::File => {
            let data = result.extract_file(&spec.path).await.map_err(ArtifactError::Engine)?;
            write_stream(target, data).await.map_err(ArtifactError::Io)
        }
        ArtifactKind::Directory => {
            // The first write failure; the engine only learns that a handler failed.
            let failure = Arc::new(std::sync::Mutex::new(None::<String>));
            let (f, base) = (failure.clone(), target);
            let handler: FileHandler = Arc::new(move |rel: String, data: ByteStream| {
                let (f, base) = (f.clone(), base.clone());
                async move {
                    let written = match confined(&base, &rel) {
                        Ok(path) => write_stream(path, data).await,
                        Err(e) => Err(format!("the engine reported an unsafe path: {e}")),
                    };
                    if let Err(e) = &written {
                        f.lock().expect("artifact failure lock").get_or_insert(e.clone());
                    }
                    written
                }
                .boxed()
            });
            let outcome = result.extract_folder(&spec.path, handler).await;
            if let Some(e) = failure.lock().expect("artifact failure lock").take() {
                return Err(ArtifactError::Io(e));
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
