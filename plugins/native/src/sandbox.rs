//! A running native task: wait, kill, abort and shells.

use std::rc::Rc;

use enginehost_sdk::caps::process::Process;
use enginehost_sdk::caps::users::TaskUser;
use enginehost_sdk::{Result, Sandbox, SandboxStatus, Shells, StreamReader, TaskContext, spawn_local};

use crate::NativeEngine;
use crate::result::NativeResult;
use crate::shell::{self, NativeShell, ShellState};

/// How long a killed task gets between TERM and KILL.
const KILL_GRACE_MS: u32 = 5_000;

/// A running task.
pub struct NativeSandbox(Rc<Task>);

/// What a task and its shells share.
struct Task {
    context: Rc<TaskContext>,
    user: Option<TaskUser>,
    env: Vec<(String, String)>,
    process: Process,
    status: SandboxStatus,
    shells: Rc<Shells<ShellState>>,
}

impl Task {
    /// Kills every shell (their wait then gives shell-aborted).
    async fn abort_shells(&self) {
        for shell in self.shells.live() {
            let _ = shell.abort().await;
        }
    }
}

impl NativeSandbox {
    /// The sandbox of a started command: resolves when the command ended, what it
    /// left running was killed, its output was copied and every shell ended.
    pub(crate) fn start(
        context: Rc<TaskContext>,
        user: Option<TaskUser>,
        env: Vec<(String, String)>,
        process: Process,
    ) -> NativeSandbox {
        let task = Rc::new(Task {
            context,
            user,
            env,
            process,
            status: SandboxStatus::new(),
            shells: Rc::new(Shells::new()),
        });
        let waiting = task.clone();
        spawn_local(async move {
            let status = waiting.process.wait().await;
            // Whatever the command left running goes, or its output never ends.
            let _ = waiting.process.kill_tree(0).await;
            waiting.process.drained().await;
            waiting.shells.idle().await;
            waiting
                .status
                .resolve(Ok(status.success() && !waiting.status.was_killed()));
        });
        NativeSandbox(task)
    }
}

impl Sandbox<NativeEngine> for NativeSandbox {
    async fn wait_for_result(&self) -> Result<Rc<NativeResult>> {
        let success = self.0.status.wait().await?;
        Ok(Rc::new(NativeResult::new(self.0.context.clone(), success)))
    }

    async fn new_shell(&self, command: Vec<String>, tty: bool, stdin: StreamReader<u8>) -> Result<NativeShell> {
        self.0.status.check_running()?;
        let task = &self.0;
        shell::start(
            &task.context,
            task.user.as_ref(),
            &task.env,
            &task.shells,
            command,
            tty,
            stdin,
        )
        .await
    }

    async fn abort(&self) -> Result<()> {
        self.0.status.abort()?;
        self.0.abort_shells().await;
        let _ = self.0.process.kill_tree(0).await;
        Ok(())
    }

    async fn kill(&self) -> Result<()> {
        if let Some(ended) = self.0.status.kill() {
            return ended;
        }
        self.0.abort_shells().await;
        self.0.process.kill_tree(KILL_GRACE_MS).await?;
        Ok(())
    }
}
