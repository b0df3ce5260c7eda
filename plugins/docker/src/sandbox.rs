//! A running docker task: wait, kill, abort and shells.

use std::cell::RefCell;
use std::rc::Rc;

use enginehost_sdk::{Result, Sandbox, SandboxStatus, Shells, Signal, StreamReader, TaskContext, spawn_local};

use crate::DockerEngine;
use crate::bytes::{Channel, LogLines, Reader, Source, demux};
use crate::made::Made;
use crate::result::DockerResult;
use crate::shell::{self, Container, DockerShell, ShellState};
use enginehost_sdk::http::Upgraded;

/// A running task: its container (shared with its shells), what was made for
/// it, its status and its shells.
struct Task {
    context: Rc<TaskContext>,
    container: Rc<Container>,
    made: Rc<Made>,
    status: SandboxStatus,
    shells: Rc<Shells<ShellState>>,
}

impl Task {
    fn mark_shells_aborted(&self) -> Vec<Rc<ShellState>> {
        let shells = self.shells.live();
        for shell in &shells {
            shell.status.mark_aborted();
        }
        shells
    }
}

/// A running task.
pub struct DockerSandbox {
    task: Rc<Task>,
    result: RefCell<Option<Rc<DockerResult>>>,
}

impl DockerSandbox {
    /// The sandbox of a started container: its output goes to the task log live;
    /// it resolves when the container exited, its output was copied and every
    /// shell ended.
    pub(crate) fn start(
        context: Rc<TaskContext>,
        container: Container,
        made: Rc<Made>,
        attached: Upgraded,
    ) -> DockerSandbox {
        let task = Rc::new(Task {
            context,
            container: Rc::new(container),
            made,
            status: SandboxStatus::new(),
            shells: Rc::new(Shells::new()),
        });
        // The output, live, until the container's streams close.
        let logged = Signal::new();
        let (mut log, done) = (LogLines::new(&task.context), logged.clone());
        let mut err_log = LogLines::new(&task.context);
        spawn_local(async move {
            let mut reader = Reader::with_head(Source::Raw(attached.rx), attached.head);
            let _keep_open = attached.tx;
            let _ = demux(&mut reader, async |channel, bytes| match channel {
                Channel::Stdout => log.push(&bytes).await,
                Channel::Stderr => err_log.push(&bytes).await,
            })
            .await;
            log.finish().await;
            err_log.finish().await;
            done.set(());
        });
        let waiting = task.clone();
        spawn_local(async move {
            let container = &waiting.container;
            let exit = container
                .engine
                .docker
                .json("POST", &format!("/containers/{}/wait", container.id), None)
                .await;
            logged.wait().await;
            waiting.shells.idle().await;
            let result = match exit {
                Ok(v) => {
                    // docker-worker's onExitStatus rules read it (contract 0.1.3).
                    if let Some(code) = v["StatusCode"].as_i64().and_then(|c| i32::try_from(c).ok()) {
                        waiting.context.set_exit_code(code);
                    }
                    Ok(v["StatusCode"].as_i64() == Some(0) && !waiting.status.was_killed())
                }
                Err(e) => Err(container.engine.unavailable(e)),
            };
            waiting.status.resolve(result);
        });
        DockerSandbox {
            task,
            result: RefCell::default(),
        }
    }
}

impl Sandbox<DockerEngine> for DockerSandbox {
    async fn wait_for_result(&self) -> Result<Rc<DockerResult>> {
        let success = self.task.status.wait().await?;
        let mut result = self.result.borrow_mut();
        let result = result.get_or_insert_with(|| {
            Rc::new(DockerResult::new(
                self.task.container.clone(),
                self.task.made.clone(),
                success,
            ))
        });
        Ok(result.clone())
    }

    async fn new_shell(&self, command: Vec<String>, tty: bool, stdin: StreamReader<u8>) -> Result<DockerShell> {
        self.task.status.check_running()?;
        shell::start(&self.task.container, &self.task.shells, command, tty, stdin).await
    }

    async fn abort(&self) -> Result<()> {
        self.task.status.abort()?;
        for shell in self.task.mark_shells_aborted() {
            shell.end();
        }
        self.task.made.remove(false).await;
        Ok(())
    }

    async fn kill(&self) -> Result<()> {
        if let Some(ended) = self.task.status.kill() {
            return ended;
        }
        self.task.mark_shells_aborted();
        let container = &self.task.container;
        let target = format!("/containers/{}/stop?t={}", container.id, container.engine.kill_grace);
        match container.engine.docker.call("POST", &target, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(304) || e.status() == Some(404) => Ok(()),
            Err(e) => Err(container.engine.unavailable(e)),
        }
    }
}
