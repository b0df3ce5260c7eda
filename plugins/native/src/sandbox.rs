//! A running native task: its commands in turn, wait, kill, abort and shells.
//!
//! Recovery (contract 0.1.4): while its commands run, a task without caches
//! keeps a [`Record`] (the running command's index and pid, the commands, the
//! environment, the task user's uid). A fresh instance adopts the process and
//! the user and goes on where the task was ([`NativeSandbox::recover`]). Around
//! each spawn the record says a command is starting (no pid): a trap then is not
//! recovered, so no command ever runs twice. Caches (lent volumes) die with the
//! instance, so a task with caches keeps no record.

use std::cell::RefCell;
use std::rc::Rc;

use enginehost_sdk::caps::CapError;
use enginehost_sdk::caps::process::{self, Command, ExitStatus, Output, Process};
use enginehost_sdk::caps::users::{self, TaskUser};
use enginehost_sdk::{Error, Result, Sandbox, SandboxStatus, Shells, StreamReader, TaskContext, spawn_local};
use serde::{Deserialize, Serialize};

use crate::result::NativeResult;
use crate::shell::{self, NativeShell, ShellState};
use crate::volume::{self, Attached};
use crate::{HOME, NativeEngine};

/// How long a killed task gets between TERM and KILL.
const KILL_GRACE_MS: u32 = 5_000;

/// The task's commands: run in turn, each after the one before succeeded.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Commands {
    list: Vec<Vec<String>>,
    announce: bool,
}

/// What a fresh instance needs to take a running task over.
#[derive(Serialize, Deserialize)]
pub(crate) struct Record {
    #[serde(flatten)]
    recording: Recording,
    /// The command running now.
    index: usize,
    /// Its pid; none while it is being started.
    pid: Option<u32>,
}

/// What every record of a task holds (a task with caches keeps none).
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Recording {
    commands: Commands,
    env: Vec<(String, String)>,
    /// The task user's uid, when tasks run as users of their own.
    uid: Option<u32>,
}

impl Recording {
    pub(crate) fn new(commands: &Commands, env: &[(String, String)], user: Option<&TaskUser>) -> Recording {
        Recording {
            commands: commands.clone(),
            env: env.to_vec(),
            uid: user.map(TaskUser::uid),
        }
    }

    /// Records command `index` as starting (`pid` none) or running. A record
    /// that does not fit (a huge environment) leaves the task unrecoverable.
    pub(crate) fn record(&self, context: &TaskContext, index: usize, pid: Option<u32>) {
        let record = Record {
            recording: self.clone(),
            index,
            pid,
        };
        let bytes = serde_json::to_vec(&record).expect("a record serializes");
        if context.set_recovery_record(&bytes).is_err() {
            let _ = context.set_recovery_record(&[]);
        }
    }
}

impl Commands {
    /// `list` is never empty (the payload's check); `announce`: log each one.
    pub(crate) fn new(list: Vec<Vec<String>>, announce: bool) -> Commands {
        Commands { list, announce }
    }

    pub(crate) fn first(&self) -> &[String] {
        &self.list[0]
    }

    /// The task-log line before command `i` (generic-worker's wording), if announced.
    pub(crate) fn announcement(&self, i: usize) -> Option<String> {
        self.announce
            .then(|| format!("Executing command {i}: {}", self.list[i].join(" ")))
    }
}

/// Starts one of the task's commands in its home, its output into the task log.
pub(crate) async fn spawn(
    context: &TaskContext,
    user: Option<&TaskUser>,
    env: &[(String, String)],
    argv: &[String],
) -> Result<Process, CapError> {
    Command::from_argv(argv.to_vec())?
        .envs(env.to_vec())
        .cwd(HOME)
        .stdout(Output::TaskLog(String::new()))
        .stderr(Output::Stdout)
        .spawn(context, user)
        .await
}

/// A running task.
pub struct NativeSandbox(Rc<Task>);

/// What a task and its shells share.
struct Task {
    context: Rc<TaskContext>,
    user: Option<TaskUser>,
    env: Vec<(String, String)>,
    /// The command running now (kill and abort end its tree).
    process: RefCell<Rc<Process>>,
    status: SandboxStatus,
    shells: Rc<Shells<ShellState>>,
    /// Set when the commands have ended: no new shell starts.
    ending: std::cell::Cell<bool>,
    /// The recovery record's keeper (none: the task is not recovered).
    recording: Option<Recording>,
}

impl Task {
    /// Kills every shell (their wait then gives shell-aborted).
    async fn abort_shells(&self) {
        for shell in self.shells.live() {
            let _ = shell.abort().await;
        }
    }

    fn current(&self) -> Rc<Process> {
        self.process.borrow().clone()
    }

    /// Whether the next command may start: the last one succeeded and nobody
    /// killed or aborted the task.
    fn may_go_on(&self) -> bool {
        !self.status.was_killed() && !self.status.is_resolved()
    }

    /// Runs the current command to its end, then each next one while they
    /// succeed; whether all succeeded. What each left running is killed.
    async fn run(&self, commands: Commands, mut i: usize) -> bool {
        loop {
            let process = self.current();
            let status = process.wait().await;
            if let ExitStatus::Code(code) = status {
                self.context.set_exit_code(i32::from(code));
            }
            // Whatever the command left running goes, or its output never ends.
            let _ = process.kill_tree(0).await;
            process.drained().await;
            i += 1;
            if !status.success() || i == commands.list.len() || !self.may_go_on() {
                return status.success();
            }
            if let Some(line) = commands.announcement(i) {
                self.context.log(&line);
            }
            if let Some(recording) = &self.recording {
                recording.record(&self.context, i, None);
            }
            match spawn(&self.context, self.user.as_ref(), &self.env, &commands.list[i]).await {
                Ok(next) => {
                    if let Some(recording) = &self.recording
                        && self.may_go_on()
                    {
                        recording.record(&self.context, i, Some(next.pid()));
                    }
                    let next = Rc::new(next);
                    *self.process.borrow_mut() = next.clone();
                    // A kill or abort during the spawn reached the command before.
                    if !self.may_go_on() {
                        let _ = next.kill_tree(0).await;
                    }
                }
                Err(e) => {
                    self.context.log_error(&format!("Unable to start command {i}: {e}"));
                    return false;
                }
            }
        }
    }
}

impl NativeSandbox {
    /// The sandbox of a started command: resolves when the command ended, what it
    /// left running was killed, its output was copied, every shell ended and the
    /// task's caches were taken back.
    pub(crate) fn start(
        context: Rc<TaskContext>,
        user: Option<TaskUser>,
        env: Vec<(String, String)>,
        process: Process,
        commands: Commands,
        volumes: Vec<Attached>,
        recording: Option<Recording>,
    ) -> NativeSandbox {
        Self::resume(context, user, env, process, commands, 0, volumes, recording)
    }

    /// Takes a running task over from its `record` (a fresh instance after a
    /// trap): the task user and the running command's process are adopted.
    pub(crate) fn recover(context: TaskContext, record: &[u8]) -> Result<NativeSandbox> {
        let record: Record = serde_json::from_slice(record)
            .map_err(|e| Error::NonFatalInternalError(format!("the native engine's recovery record: {e}")))?;
        let Some(pid) = record.pid else {
            return Err(Error::NonFatalInternalError(format!(
                "the engine failed while command {} was being started; it is not run again",
                record.index
            )));
        };
        let recording = record.recording;
        let user = recording.uid.map(|uid| users::adopt_user(&context, uid)).transpose()?;
        let process = process::adopt(&context, pid)?;
        Ok(Self::resume(
            Rc::new(context),
            user,
            recording.env.clone(),
            process,
            recording.commands.clone(),
            record.index,
            Vec::new(),
            Some(recording),
        ))
    }

    /// The sandbox of a task whose command `index` runs as `process`.
    #[allow(clippy::too_many_arguments)]
    fn resume(
        context: Rc<TaskContext>,
        user: Option<TaskUser>,
        env: Vec<(String, String)>,
        process: Process,
        commands: Commands,
        index: usize,
        volumes: Vec<Attached>,
        recording: Option<Recording>,
    ) -> NativeSandbox {
        let task = Rc::new(Task {
            context,
            user,
            env,
            process: RefCell::new(Rc::new(process)),
            status: SandboxStatus::new(),
            shells: Rc::new(Shells::new()),
            ending: std::cell::Cell::new(false),
            recording,
        });
        let waiting = task.clone();
        spawn_local(async move {
            let success = waiting.run(commands, index).await;
            // The commands are over: nothing is left to take over.
            let _ = waiting.context.set_recovery_record(&[]);
            waiting.ending.set(true);
            waiting.shells.idle().await;
            // Every process of the task has ended: its caches go back.
            volume::reclaim(&waiting.context, &volumes).await;
            waiting.status.resolve(Ok(success && !waiting.status.was_killed()));
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
        if self.0.ending.get() {
            // The commands ended: the task is finishing (its caches go back).
            return Err(enginehost_sdk::Error::SandboxTerminated);
        }
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
        // Being ended: a fresh instance must not take it over and go on.
        let _ = self.0.context.set_recovery_record(&[]);
        self.0.abort_shells().await;
        let _ = self.0.current().kill_tree(0).await;
        Ok(())
    }

    async fn kill(&self) -> Result<()> {
        if let Some(ended) = self.0.status.kill() {
            return ended;
        }
        // Being ended: a fresh instance must not take it over and go on.
        let _ = self.0.context.set_recovery_record(&[]);
        self.0.abort_shells().await;
        self.0.current().kill_tree(KILL_GRACE_MS).await?;
        Ok(())
    }
}
