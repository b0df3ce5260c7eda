//! Shells in a native task (interactive sessions): `/bin/bash` unless a command is
//! given, in the task's home, environment and user, with or without a pty. The
//! task's result waits for every shell; kill and abort end them (their wait then
//! gives shell-aborted).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use enginehost_sdk::caps::CapError;
use enginehost_sdk::caps::process::{Command, Output, Process, Size};
use enginehost_sdk::{Error, Result, Shell, Signal, StreamReader, malformed, spawn_local};

use crate::sandbox::{HOME, Task};

/// The shell when the command is empty.
const DEFAULT_SHELL: &str = "/bin/bash";

/// One shell's state; the task keeps it to abort it.
pub struct ShellState {
    process: Process,
    tty: bool,
    aborted: Cell<bool>,
    exit: Signal<bool>,
}

impl ShellState {
    /// Kills the shell and what it started.
    pub(crate) async fn abort(&self) -> Result<()> {
        if self.exit.is_set() {
            return Err(Error::ShellTerminated);
        }
        self.aborted.set(true);
        self.process.kill_tree(0).await?;
        Ok(())
    }
}

/// The shell handle.
pub struct NativeShell {
    state: Rc<ShellState>,
    stdout: RefCell<Option<StreamReader<u8>>>,
    stderr: RefCell<Option<StreamReader<u8>>>,
}

/// Starts a shell of `task`.
pub(crate) async fn start(
    task: &Rc<Task>,
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
        .envs(task.env.clone())
        .cwd(HOME)
        .stdin_bytes(stdin)
        .stdout(Output::Pipe)
        .stderr(if tty { Output::Null } else { Output::Pipe });
    if tty {
        cmd = cmd.pty(80, 24);
    }
    let process = cmd
        .spawn(&task.context, task.user.as_ref())
        .await
        .map_err(|e| match e {
            CapError::Invalid(why) | CapError::NotFound(why) => malformed(format!("Unable to start the shell: {why}")),
            other => other.into(),
        })?;
    let stdout = process.take_stdout().await;
    let stderr = if tty { None } else { process.take_stderr().await };
    let state = Rc::new(ShellState {
        process,
        tty,
        aborted: Cell::new(false),
        exit: Signal::new(),
    });
    task.sessions.open();
    task.shells.borrow_mut().push(state.clone());
    let (waiting, owner) = (state.clone(), task.clone());
    spawn_local(async move {
        let status = waiting.process.wait().await;
        // What the shell left running holds its output open; it goes too.
        let _ = waiting.process.kill_tree(0).await;
        waiting.exit.set(status.success());
        owner.shells.borrow_mut().retain(|s| !Rc::ptr_eq(s, &waiting));
        owner.sessions.close();
    });
    Ok(NativeShell {
        state,
        stdout: RefCell::new(stdout),
        stderr: RefCell::new(stderr),
    })
}

impl Shell for NativeShell {
    fn stdout(&self) -> Option<StreamReader<u8>> {
        self.stdout.borrow_mut().take()
    }

    fn stderr(&self) -> Option<StreamReader<u8>> {
        self.stderr.borrow_mut().take()
    }

    async fn set_size(&self, columns: u16, rows: u16) -> Result<()> {
        if !self.state.tty {
            return Err(Error::FeatureNotSupported);
        }
        if self.state.aborted.get() {
            return Err(Error::ShellAborted);
        }
        if self.state.exit.is_set() {
            return Err(Error::ShellTerminated);
        }
        self.state.process.resize(Size { columns, rows })?;
        Ok(())
    }

    async fn abort(&self) -> Result<()> {
        self.state.abort().await
    }

    async fn wait(&self) -> Result<bool> {
        let success = self.state.exit.wait().await;
        if self.state.aborted.get() {
            return Err(Error::ShellAborted);
        }
        Ok(success)
    }
}
