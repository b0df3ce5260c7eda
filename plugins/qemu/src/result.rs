//! What a finished qemu task leaves: its success, and the guest's files (the
//! VM runs until the result set is disposed of).

use std::rc::Rc;

use enginehost_sdk::caps::files;
use enginehost_sdk::{Error, FileHandler, Result, ResultSet, StreamReader};
use serde_json::{Value, json};

use crate::agent::{self};

use crate::task::{GUEST_HOME, MAX_ARTIFACT, Task};

/// What a finished task leaves: success, and the guest's files (the VM runs until
/// the result set is disposed of).
pub struct QemuResult {
    task: Rc<Task>,
    success: bool,
}

/// A guest path for an artifact path (relative ones are under the home).
fn guest_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{GUEST_HOME}/{path}")
    }
}

impl QemuResult {
    pub(crate) fn new(task: Rc<Task>, success: bool) -> Self {
        QemuResult { task, success }
    }

    /// Fetches one guest file into the sandbox (host-side) and streams it.
    async fn fetch(&self, path: &str) -> Result<StreamReader<u8>> {
        let task = &self.task;
        let reply = task
            .agent
            .ask(json!({"type": "get-artifact", "path": guest_path(path)}))
            .await
            .ok_or(Error::ResourceNotFound)?;
        if reply.header("x-enginehost-error").is_some() {
            agent::empty(&reply, 200).await;
            return Err(Error::ResourceNotFound);
        }
        let n = task.artifacts.get();
        task.artifacts.set(n + 1);
        let name = format!("artifact-{n}");
        let saved = reply.save_body(format!("artifacts/{name}"), MAX_ARTIFACT).await;
        agent::empty(&reply, 200).await;
        saved.map_err(|e| Error::NonFatalInternalError(format!("fetching {path} from the VM: {}", e.message())))?;
        files::open_file(&task.context, "artifacts", &name)
            .await
            .map_err(|e| Error::NonFatalInternalError(format!("reading {path}: {}", e.message())))
    }
}

impl ResultSet for QemuResult {
    fn success(&self) -> bool {
        self.success
    }

    async fn extract_file(&self, path: String) -> Result<StreamReader<u8>> {
        self.fetch(&path).await
    }

    async fn extract_folder(&self, path: String, handler: &FileHandler) -> Result<()> {
        let folder = guest_path(&path);
        let folder = folder.trim_end_matches('/');
        let reply = self
            .task
            .agent
            .ask(json!({"type": "list-folder", "path": folder}))
            .await
            .ok_or(Error::ResourceNotFound)?;
        let listing: Value = serde_json::from_slice(&agent::small_body(&reply).await).unwrap_or(Value::Null);
        agent::empty(&reply, 200).await;
        if listing["notFound"].as_bool() != Some(false) {
            return Err(Error::ResourceNotFound);
        }
        let prefix = format!("{folder}/");
        for file in listing["files"].as_array().into_iter().flatten() {
            let Some(file) = file.as_str() else { continue };
            let Some(rel) = file.strip_prefix(&prefix) else {
                continue;
            };
            let Ok(data) = self.fetch(file).await else { continue };
            if handler.handle_file(rel.to_string(), data).await.is_err() {
                return Err(Error::HandlerInterrupt);
            }
        }
        Ok(())
    }

    async fn dispose(&self) -> Result<()> {
        self.task.stop_vm().await;
        Ok(())
    }
}
