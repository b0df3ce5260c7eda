//! A running native task: its commands in turn, wait, kill, abort and shells.

use std::cell::RefCell;
use std::rc::Rc;

use enginehost_sdk::caps::CapError;
use enginehost_sdk::caps::process::{Command, ExitStatus, Output, Process};
use enginehost_sdk::caps::users::TaskUser;
use enginehost_sdk::{Result, Sandbox, SandboxStatus, Shells, StreamReader, TaskContext, spawn_local};

use crate::result::NativeResult;
use crate::shell::{self, NativeShell, ShellState};
use crate::volume::{self, Attached};
use crate::{HOME, NativeEngine};

/// How long a killed task gets between TERM and KILL.
const KILL_GRACE_MS: u32 = 5_000;

/// The task's commands: run in turn, each after the one before succeeded.
pub(crate) struct Commands {
    list: Vec<Vec<String>>,
    announce: bool,
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
    async fn run(&self, commands: Commands) -> bool {
        let mut i = 0;
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
            match spawn(&self.context, self.user.as_ref(), &self.env, &commands.list[i]).await {
                Ok(next) => {
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
    ) -> NativeSandbox {
        let task = Rc::new(Task {
            context,
            user,
            env,
            process: RefCell::new(Rc::new(process)),
            status: SandboxStatus::new(),
            shells: Rc::new(Shells::new()),
            ending: std::cell::Cell::new(false),
        });
        let waiting = task.clone();
        spawn_local(async move {
            let success = waiting.run(commands).await;
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
        self.0.abort_shells().await;
        let _ = self.0.current().kill_tree(0).await;
        Ok(())
    }

    async fn kill(&self) -> Result<()> {
        if let Some(ended) = self.0.status.kill() {
            return ended;
        }
        self.0.abort_shells().await;
        self.0.current().kill_tree(KILL_GRACE_MS).await?;
        Ok(())
    }
}
