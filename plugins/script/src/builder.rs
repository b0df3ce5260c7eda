//! The builder of a script task: it collects nothing, and starts the script with
//! the payload on its stdin.

use std::cell::Cell;
use std::rc::Rc;

use enginehost_sdk::caps::CapError;
use enginehost_sdk::caps::files;
use enginehost_sdk::caps::process::{Command, Output};
use enginehost_sdk::{Error, Result, SandboxBuilder, TaskContext, stream_of};
use serde_json::Value;

use crate::ScriptEngine;
use crate::result::ARTIFACTS;
use crate::sandbox::ScriptSandbox;

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
        Ok(ScriptSandbox::start(self.context.clone(), process))
    }
}
