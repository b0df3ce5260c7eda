//! Host processes for a task: a [`Command`] builder over the `process` import.
//!
//! ```ignore
//! use enginehost_sdk::caps::process::{Command, Output};
//! let p = Command::new("/bin/sh")
//!     .args(["-c", "echo hello"])
//!     .env("TASK_ID", task_id)
//!     .stdout(Output::TaskLog(String::new()))        // straight into the task log
//!     .stderr(Output::TaskLog("[worker:error] ".into()))
//!     .spawn(&context, None)
//!     .await?;
//! let status = p.wait().await;                        // the process itself exited
//! p.kill_tree(0).await?;                              // anything it left behind
//! p.drained().await;                                  // every log line is written
//! ```
//! `argv[0]` is an absolute path, `./rel` (in the sandbox dir) or a bare name looked
//! up in the operator's `process.search-path`. Nothing of the host's environment is
//! inherited. Dropping a [`Process`] kills it and everything it started; so does the
//! end of its task.

use super::CapError;
pub use crate::caps::users::TaskUser;
use crate::wit::enginehost::engine::process as raw;
pub use crate::wit::enginehost::engine::process::{ExitStatus, Input, Output, Process, Signal, Size};
use crate::{StreamReader, TaskContext};

/// A process to start (the `command` record, built step by step).
pub struct Command {
    raw: raw::Command,
}

impl Command {
    /// Runs `program` with no arguments, no environment, in the sandbox directory,
    /// with stdin, stdout and stderr null.
    pub fn new(program: impl Into<String>) -> Self {
        Command {
            raw: raw::Command {
                argv: vec![program.into()],
                env: Vec::new(),
                cwd: String::new(),
                stdin: Input::Null,
                stdout: Output::Null,
                stderr: Output::Null,
                pty: None,
            },
        }
    }

    /// A command from a whole argv (`argv[0]` is the program).
    ///
    /// # Errors
    /// `invalid` when `argv` is empty.
    pub fn from_argv(argv: Vec<String>) -> Result<Self, CapError> {
        let Some(program) = argv.first() else {
            return Err(CapError::Invalid(
                "the command is empty; give at least the program".into(),
            ));
        };
        let mut cmd = Command::new(program.clone());
        cmd.raw.argv = argv;
        Ok(cmd)
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.raw.argv.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.raw.argv.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable (the environment starts empty).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.raw.env.push((name.into(), value.into()));
        self
    }

    /// Sets environment variables.
    pub fn envs<I: IntoIterator<Item = (K, V)>, K: Into<String>, V: Into<String>>(mut self, vars: I) -> Self {
        self.raw.env.extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// The working directory, relative to the sandbox directory ("" = itself).
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.raw.cwd = dir.into();
        self
    }

    /// Feeds stdin from the engine's bytes (its end is end of file).
    pub fn stdin_bytes(mut self, data: StreamReader<u8>) -> Self {
        self.raw.stdin = Input::Bytes(data);
        self
    }

    /// Feeds stdin from a regular file in the sandbox directory.
    pub fn stdin_file(mut self, path: impl Into<String>) -> Self {
        self.raw.stdin = Input::File(path.into());
        self
    }

    /// Where stdout goes.
    pub fn stdout(mut self, to: Output) -> Self {
        self.raw.stdout = to;
        self
    }

    /// Where stderr goes ([`Output::Stdout`]: with stdout, in order).
    pub fn stderr(mut self, to: Output) -> Self {
        self.raw.stderr = to;
        self
    }

    /// Runs on a new terminal of `columns`×`rows` (needs `process.pty`).
    pub fn pty(mut self, columns: u16, rows: u16) -> Self {
        self.raw.pty = Some(Size { columns, rows });
        self
    }

    /// Starts the process for `task`, as `user` (a task user) or else as the
    /// worker's user.
    pub async fn spawn(self, task: &TaskContext, user: Option<&TaskUser>) -> Result<Process, CapError> {
        raw::spawn(task, self.raw, user).await
    }
}

impl ExitStatus {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Code(0))
    }
}

/// A process of `task` that outlived the instance that started it, again: in
/// [`Engine::recover_sandbox`](crate::Engine::recover_sandbox), with a pid the
/// task's recovery record kept (contract 0.1.4). Only processes of a task that
/// had a record when its instance died are kept, each until adopted once.
///
/// # Errors
/// `not-found` when no kept process of the task has `pid`.
pub fn adopt(task: &TaskContext, pid: u32) -> Result<Process, CapError> {
    raw::adopt(task, pid)
}
