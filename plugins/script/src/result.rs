//! What a finished script leaves: its success and its `artifacts/`.

use std::rc::Rc;

use enginehost_sdk::caps::{CapError, files};
use enginehost_sdk::{Error, FileHandler, Result, ResultSet, StreamReader, TaskContext, malformed};

/// Where the script's artifacts are, relative to its working directory.
pub(crate) const ARTIFACTS: &str = "artifacts";

/// What a finished script leaves: its success and its `artifacts/`.
pub struct ScriptResult {
    context: Rc<TaskContext>,
    success: bool,
}

impl ScriptResult {
    pub(crate) fn new(context: Rc<TaskContext>, success: bool) -> Self {
        ScriptResult { context, success }
    }
}

/// The path of an artifact below `artifacts/` (a leading `/` is allowed).
fn artifact_path(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

/// A capability error while reading artifacts, as the contract's error.
fn read_error(e: CapError) -> Error {
    match e {
        CapError::NotFound(_) => Error::ResourceNotFound,
        CapError::Invalid(why) => malformed(format!("artifact path: {why}")),
        other => other.into(),
    }
}

impl ResultSet for ScriptResult {
    fn success(&self) -> bool {
        self.success
    }

    async fn extract_file(&self, path: String) -> Result<StreamReader<u8>> {
        files::open_file(&self.context, ARTIFACTS, &artifact_path(&path))
            .await
            .map_err(read_error)
    }

    async fn extract_folder(&self, path: String, handler: &FileHandler) -> Result<()> {
        files::extract_folder(&self.context, ARTIFACTS, &path, handler).await
    }
}
