//! One native task: the builder (env vars), the start (user, home, context, the
//! command), the sandbox (wait, kill, abort, shells) and the result set (files in
//! the home).

use std::cell::Cell;
use std::rc::Rc;

use enginehost_sdk::caps::process::{Command, Output, Process};
use enginehost_sdk::caps::users::TaskUser;
use enginehost_sdk::caps::{CapError, files, users};
use enginehost_sdk::{
    EnvVars, Error, FileHandler, Result, ResultSet, Sandbox, SandboxBuilder, SandboxStatus, Shells, StreamReader,
    TaskContext, malformed, spawn_local,
};

use crate::shell::{self, NativeShell, ShellState};
use crate::{HOME, NativeEngine, Payload, context};
/// How long a killed task gets between TERM and KILL.
const KILL_GRACE_MS: u32 = 5_000;

/// Collects the environment.
pub struct NativeBuilder {
    engine: Rc<NativeEngine>,
    context: Rc<TaskContext>,
    payload: Payload,
    env: EnvVars,
    started: Cell<bool>,
}

impl NativeBuilder {
    pub(crate) fn new(engine: Rc<NativeEngine>, context: TaskContext, payload: Payload) -> Self {
        NativeBuilder {
            engine,
            context: Rc::new(context),
            payload,
            env: EnvVars::default(),
            started: Cell::new(false),
        }
    }
}

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
        for shell in self.shells.take_all() {
            let _ = shell.abort().await;
        }
    }
}

/// A start failure that is the task author's: the command cannot run.
fn start_error(e: CapError) -> Error {
    match e {
        CapError::Invalid(why) | CapError::NotFound(why) => {
            malformed(format!("Unable to start specified command: {why}"))
        }
        other => other.into(),
    }
}

impl SandboxBuilder<NativeEngine> for NativeBuilder {
    async fn set_environment_variable(&self, name: String, value: String) -> Result<()> {
        self.env.set(name, value)
    }

    async fn start(&self) -> Result<NativeSandbox> {
        if self.started.replace(true) {
            return Err(Error::ContractViolation("start was called twice".into()));
        }
        let home = format!("{}/{HOME}", files::sandbox_host_path(&self.context).await?);
        let user = if self.engine.create_user {
            Some(users::create_user(&self.context, &self.engine.groups).await?)
        } else {
            let dir = files::sandbox_dir(&self.context).await?;
            std::fs::create_dir_all(format!("{dir}/{HOME}"))
                .map_err(|e| Error::NonFatalInternalError(format!("creating the task's home: {e}")))?;
            None
        };
        if let Some(url) = &self.payload.context {
            context::fetch(&self.context, user.as_ref(), url).await?;
        }
        let mut env = self.env.to_vec();
        env.retain(|(k, _)| !matches!(k.as_str(), "HOME" | "USER" | "LOGNAME"));
        env.push(("HOME".into(), home));
        if let Some(user) = &user {
            env.push(("USER".into(), user.name()));
            env.push(("LOGNAME".into(), user.name()));
        }
        let process = Command::from_argv(self.payload.command.clone())
            .map_err(start_error)?
            .envs(env.clone())
            .cwd(HOME)
            .stdout(Output::TaskLog(String::new()))
            .stderr(Output::Stdout)
            .spawn(&self.context, user.as_ref())
            .await
            .map_err(start_error)?;
        let task = Rc::new(Task {
            context: self.context.clone(),
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
        Ok(NativeSandbox(task))
    }
}

impl Sandbox<NativeEngine> for NativeSandbox {
    async fn wait_for_result(&self) -> Result<Rc<NativeResult>> {
        let success = self.0.status.wait().await?;
        Ok(Rc::new(NativeResult {
            context: self.0.context.clone(),
            success,
        }))
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

/// What a finished task leaves: success, and the files in its home.
pub struct NativeResult {
    context: Rc<TaskContext>,
    success: bool,
}

fn read_error(e: CapError) -> Error {
    match e {
        CapError::NotFound(_) => Error::ResourceNotFound,
        CapError::Invalid(why) => malformed(format!("Unable to evaluate path: {why}")),
        other => other.into(),
    }
}

impl ResultSet for NativeResult {
    fn success(&self) -> bool {
        self.success
    }

    async fn extract_file(&self, path: String) -> Result<StreamReader<u8>> {
        files::open_file(&self.context, HOME, path.trim_start_matches('/'))
            .await
            .map_err(read_error)
    }

    async fn extract_folder(&self, path: String, handler: &FileHandler) -> Result<()> {
        files::extract_folder(&self.context, HOME, &path, handler).await
    }
}
