//! One script task: the builder starts the process, the sandbox waits for it and
//! maps its exit, the result set reads `artifacts/`.

use std::cell::Cell;
use std::rc::Rc;

use enginehost_sdk::caps::CapError;
use enginehost_sdk::caps::files;
use enginehost_sdk::caps::process::{Command, ExitStatus, Output, Process};
use enginehost_sdk::{
    Error, FileHandler, Result, ResultSet, Sandbox, SandboxBuilder, SandboxStatus, StreamReader, TaskContext,
    malformed, spawn_local, stream_of,
};
use serde_json::Value;

use crate::ScriptEngine;

/// Where the script's artifacts are, relative to its working directory.
const ARTIFACTS: &str = "artifacts";
/// How long a killed script gets between TERM and KILL.
const KILL_GRACE_MS: u32 = 5_000;

/// Collects nothing: the script engine has no env vars, proxies or volumes.
pub struct ScriptBuilder {
    command: Vec<String>,
    context: Rc<TaskContext>,
    payload: Value,
    started: Cell<bool>,
}

impl ScriptBuilder {
    pub(crate) fn new(command: Vec<String>, context: TaskContext, payload: Value) -> Self {
        ScriptBuilder {
            command,
            context: Rc::new(context),
            payload,
            started: Cell::new(false),
        }
    }
}

/// A running script.
pub struct ScriptSandbox(Rc<Task>);

struct Task {
    context: Rc<TaskContext>,
    process: Process,
    status: SandboxStatus,
}

/// What a finished script leaves: its success and its `artifacts/`.
pub struct ScriptResult {
    context: Rc<TaskContext>,
    success: bool,
}

/// The meaning of the script's exit (docs/engine-contract.md §4.2).
fn outcome(status: ExitStatus, killed: bool) -> Result<bool> {
    match status {
        _ if killed => Ok(false),
        ExitStatus::Code(0) => Ok(true),
        ExitStatus::Code(1) => Ok(false),
        ExitStatus::Code(2) => Err(malformed("task.payload parameters are not permitted")),
        ExitStatus::Code(3) => Err(Error::NonFatalInternalError("the script exited with code 3".into())),
        ExitStatus::Code(4) => Err(Error::FatalInternalError("the script exited with code 4".into())),
        ExitStatus::Code(c) => Err(Error::FatalInternalError(format!(
            "the script exited with code {c}; only 0 (success), 1 (failure), 2 (malformed payload), 3 and 4 \
             (internal errors) are defined"
        ))),
        ExitStatus::Signal(s) => Err(Error::FatalInternalError(format!(
            "the script was killed by signal {s}"
        ))),
    }
}

impl SandboxBuilder<ScriptEngine> for ScriptBuilder {
    async fn start(&self) -> Result<ScriptSandbox> {
        if self.started.replace(true) {
            return Err(Error::ContractViolation("start was called twice".into()));
        }
        let dir = files::sandbox_dir(&self.context).await?;
        std::fs::create_dir_all(format!("{dir}/{ARTIFACTS}"))
            .map_err(|e| Error::NonFatalInternalError(format!("creating {ARTIFACTS}/: {e}")))?;
        let payload = serde_json::to_vec(&self.payload).expect("a JSON value serializes");
        let process = Command::from_argv(self.command.clone())?
            .env("TASK_ID", self.context.task_id())
            .env("RUN_ID", self.context.run_id().to_string())
            .stdin_bytes(stream_of(payload))
            .stdout(Output::TaskLog(String::new()))
            .stderr(Output::TaskLog("[worker:error] ".into()))
            .spawn(&self.context, None)
            .await
            .map_err(|e: CapError| Error::NonFatalInternalError(format!("starting the script: {}", e.message())))?;
        let task = Rc::new(Task {
            context: self.context.clone(),
            process,
            status: SandboxStatus::new(),
        });
        let waiting = task.clone();
        spawn_local(async move {
            let status = waiting.process.wait().await;
            // What the script left running goes too, or its output never ends.
            let _ = waiting.process.kill_tree(0).await;
            waiting.process.drained().await;
            waiting.status.resolve(outcome(status, waiting.status.was_killed()));
        });
        Ok(ScriptSandbox(task))
    }
}

impl Sandbox<ScriptEngine> for ScriptSandbox {
    async fn wait_for_result(&self) -> Result<Rc<ScriptResult>> {
        let success = self.0.status.wait().await?;
        Ok(Rc::new(ScriptResult {
            context: self.0.context.clone(),
            success,
        }))
    }

    async fn abort(&self) -> Result<()> {
        self.0.status.abort()?;
        let _ = self.0.process.kill_tree(0).await;
        Ok(())
    }

    async fn kill(&self) -> Result<()> {
        if let Some(ended) = self.0.status.kill() {
            return ended;
        }
        self.0.process.kill_tree(KILL_GRACE_MS).await?;
        Ok(())
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
