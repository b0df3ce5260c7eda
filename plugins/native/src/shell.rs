//! Shells in a native task (interactive sessions): `/bin/bash` unless a command is
//! given, in the task's home, environment and user, with or without a pty. The
//! task's result waits for every shell; kill and abort end them (their wait then
//! gives shell-aborted).

use std::rc::Rc;

use enginehost_sdk::caps::CapError;
use enginehost_sdk::caps::process::{Command, Output, Process, Size};
use enginehost_sdk::caps::users::TaskUser;
use enginehost_sdk::{Result, Shell, ShellOutputs, ShellStatus, Shells, StreamReader, TaskContext, malformed};

use crate::HOME;

/// The shell when the command is empty.
const DEFAULT_SHELL: &str = "/bin/bash";

/// One shell's state; the task keeps it to abort it.
pub struct ShellState {
    process: Process,
    status: ShellStatus,
}

impl ShellState {
    /// Kills the shell and what it started.
    pub(crate) async fn abort(&self) -> Result<()> {
        self.status.begin_abort()?;
        self.process.kill_tree(0).await?;
        Ok(())
    }
}

/// The shell handle.
pub struct NativeShell {
    state: Rc<ShellState>,
    outputs: ShellOutputs,
}

/// Starts a shell of a task (its context, user and environment), one of `shells`.
pub(crate) async fn start(
    context: &TaskContext,
    user: Option<&TaskUser>,
    env: &[(String, String)],
    shells: &Rc<Shells<ShellState>>,
    command: Vec<String>,
    tty: bool,
    stdin: StreamReader<u8>,
) -> Result<NativeShell> {
    let argv = if command.is_empty() {
        vec![DEFAULT_SHELL.to_string()]
    } else {
        command
    };
    let mut cmd = Command::from_argv(argv)
        .map_err(|e| malformed(e.message()))?
        .envs(env.to_vec())
        .cwd(HOME)
        .stdin_bytes(stdin)
        .stdout(Output::Pipe)
        .stderr(if tty { Output::Null } else { Output::Pipe });
    if tty {
        cmd = cmd.pty(80, 24);
    }
    let process = cmd.spawn(context, user).await.map_err(|e| match e {
        CapError::Invalid(why) | CapError::NotFound(why) => malformed(format!("Unable to start the shell: {why}")),
        other => other.into(),
    })?;
    let stdout = process.take_stdout().await;
    let stderr = if tty { None } else { process.take_stderr().await };
    let state = Rc::new(ShellState {
        process,
        status: ShellStatus::new(tty),
    });
    shells.add(state.clone());
    let waiting = state.clone();
    shells.reap(&state, async move {
        let status = waiting.process.wait().await;
        // What the shell left running holds its output open; it goes too.
        let _ = waiting.process.kill_tree(0).await;
        waiting.status.exited(status.success());
    });
    Ok(NativeShell {
        state,
        outputs: ShellOutputs::new(stdout, stderr),
    })
}

impl Shell for NativeShell {
    fn stdout(&self) -> Option<StreamReader<u8>> {
        self.outputs.stdout()
    }

    fn stderr(&self) -> Option<StreamReader<u8>> {
        self.outputs.stderr()
    }

    async fn set_size(&self, columns: u16, rows: u16) -> Result<()> {
        self.state.status.check_resize()?;
        self.state.process.resize(Size { columns, rows })?;
        Ok(())
    }

    async fn abort(&self) -> Result<()> {
        self.state.abort().await
    }

    async fn wait(&self) -> Result<bool> {
        self.state.status.wait().await
    }
}
