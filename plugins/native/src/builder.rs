//! The builder of a native task: its environment, then the start (user, home,
//! the task's context, the command).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use enginehost_sdk::caps::{CapError, files, users};
use enginehost_sdk::{EnvVars, Error, Result, SandboxBuilder, TaskContext, malformed};

use crate::mounts::{self, Mount};
use crate::sandbox::{self, Commands, NativeSandbox};
use crate::volume::{self, Attached, NativeVolume};
use crate::{HOME, NativeEngine, context};

/// Collects the environment.
pub struct NativeBuilder {
    engine: Rc<NativeEngine>,
    context: Rc<TaskContext>,
    url: Option<String>,
    mounts: Vec<Mount>,
    groups: Vec<String>,
    commands: Vec<Vec<String>>,
    announce: bool,
    env: EnvVars,
    volumes: RefCell<Vec<Attached>>,
    started: Cell<bool>,
}

impl NativeBuilder {
    pub(crate) fn new(
        engine: Rc<NativeEngine>,
        context: TaskContext,
        url: Option<String>,
        mounts: Vec<Mount>,
        groups: Vec<String>,
        commands: Vec<Vec<String>>,
        announce: bool,
    ) -> Self {
        NativeBuilder {
            engine,
            context: Rc::new(context),
            url,
            mounts,
            groups,
            commands,
            announce,
            env: EnvVars::default(),
            volumes: RefCell::new(Vec::new()),
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
    async fn attach_volume(&self, mountpoint: String, volume: &NativeVolume, read_only: bool) -> Result<()> {
        if self.started.get() {
            return Err(Error::ContractViolation("attach-volume after start".into()));
        }
        let attached = Attached::new(mountpoint, volume, read_only, &self.volumes.borrow())?;
        self.volumes.borrow_mut().push(attached);
        Ok(())
    }

    async fn set_environment_variable(&self, name: String, value: String) -> Result<()> {
        self.env.set(name, value)
    }

    async fn start(&self) -> Result<NativeSandbox> {
        if self.started.replace(true) {
            return Err(Error::ContractViolation("start was called twice".into()));
        }
        let home = format!("{}/{HOME}", files::sandbox_host_path(&self.context).await?);
        let user = if self.engine.create_user {
            let asked: Vec<&String> = self.groups.iter().filter(|g| !self.engine.groups.contains(g)).collect();
            let mut groups = self.engine.groups.clone();
            groups.extend(asked.iter().map(|g| g.to_string()));
            let user = users::create_user(&self.context, &groups).await.map_err(|e| match e {
                // A group the task asked for and the operator did not grant: the payload's.
                CapError::Denied(d) if asked.iter().any(|g| d.message.contains(&format!("{g:?}"))) => {
                    malformed(format!("task.payload.groups: {}", d.message))
                }
                other => other.into(),
            })?;
            Some(user)
        } else {
            let dir = files::sandbox_dir(&self.context).await?;
            std::fs::create_dir_all(format!("{dir}/{HOME}"))
                .map_err(|e| Error::NonFatalInternalError(format!("creating the task's home: {e}")))?;
            None
        };
        let volumes = self.volumes.borrow().clone();
        volume::lend(&self.context, user.as_ref(), &volumes).await?;
        match self.prepare_and_spawn(user, home, volumes.clone()).await {
            Ok(sandbox) => Ok(sandbox),
            Err(e) => {
                volume::reclaim(&self.context, &volumes).await;
                Err(e)
            }
        }
    }
}

impl NativeBuilder {
    /// The context, the mounts and the first command, in a home with the task's caches.
    async fn prepare_and_spawn(
        &self,
        user: Option<users::TaskUser>,
        home: String,
        volumes: Vec<Attached>,
    ) -> Result<NativeSandbox> {
        if let Some(url) = &self.url {
            context::fetch(&self.context, user.as_ref(), url).await?;
        }
        mounts::apply(&self.context, user.as_ref(), &self.mounts).await?;
        let mut env = self.env.to_vec();
        env.retain(|(k, _)| !matches!(k.as_str(), "HOME" | "USER" | "LOGNAME" | "TASK_WORKDIR"));
        env.push(("TASK_WORKDIR".into(), home.clone()));
        env.push(("HOME".into(), home));
        if let Some(user) = &user {
            env.push(("USER".into(), user.name()));
            env.push(("LOGNAME".into(), user.name()));
        }
        let commands = Commands::new(self.commands.clone(), self.announce);
        let first = commands.first();
        if let Some(line) = commands.announcement(0) {
            self.context.log(&line);
        }
        // Without caches the task can be taken over after a trap (contract 0.1.4).
        let recording = volumes
            .is_empty()
            .then(|| sandbox::Recording::new(&commands, &env, user.as_ref()));
        if let Some(recording) = &recording {
            recording.record(&self.context, 0, None);
        }
        let process = sandbox::spawn(&self.context, user.as_ref(), &env, first)
            .await
            .map_err(start_error)?;
        if let Some(recording) = &recording {
            recording.record(&self.context, 0, Some(process.pid()));
        }
        Ok(NativeSandbox::start(
            self.context.clone(),
            user,
            env,
            process,
            commands,
            volumes,
            recording,
        ))
    }
}
