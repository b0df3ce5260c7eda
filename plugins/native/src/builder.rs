//! The builder of a native task: its environment, then the start (user, home,
//! the task's context, the command).

use std::cell::Cell;
use std::rc::Rc;

use enginehost_sdk::caps::process::{Command, Output};
use enginehost_sdk::caps::{CapError, files, users};
use enginehost_sdk::{EnvVars, Error, Result, SandboxBuilder, TaskContext, malformed};

use crate::sandbox::NativeSandbox;
use crate::{HOME, NativeEngine, Payload, context};

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
        Ok(NativeSandbox::start(self.context.clone(), user, env, process))
    }
}
