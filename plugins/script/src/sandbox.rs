//! A running script: the sandbox waits for it and maps its exit.

use std::rc::Rc;

use enginehost_sdk::caps::process::{ExitStatus, Process};
use enginehost_sdk::{Error, Result, Sandbox, SandboxStatus, TaskContext, malformed, spawn_local};

use crate::ScriptEngine;
use crate::result::ScriptResult;

/// How long a killed script gets between TERM and KILL.
const KILL_GRACE_MS: u32 = 5_000;

/// A running script.
pub struct ScriptSandbox(Rc<Task>);

struct Task {
    context: Rc<TaskContext>,
    process: Process,
    status: SandboxStatus,
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

impl ScriptSandbox {
    /// The sandbox of a started script: resolves when it ended, what it left
    /// running was killed and its output was copied.
    pub(crate) fn start(context: Rc<TaskContext>, process: Process) -> ScriptSandbox {
        let task = Rc::new(Task {
            context,
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
        ScriptSandbox(task)
    }
}

impl Sandbox<ScriptEngine> for ScriptSandbox {
    async fn wait_for_result(&self) -> Result<Rc<ScriptResult>> {
        let success = self.0.status.wait().await?;
        Ok(Rc::new(ScriptResult::new(self.0.context.clone(), success)))
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
