//! A running docker task: wait, kill, abort and shells.
//!
//! Recovery (contract 0.1.4): the container lives on in dockerd when the
//! engine's instance dies, so the task keeps a [`Record`] of its container and of
//! how many bytes of its stdout and stderr are in the task log already (updated
//! after each write, with no await in between, so a trap between the two cannot
//! happen). A fresh instance ([`DockerSandbox::recover`]) finds the container,
//! kills the dead instance's shells in it, and goes on with the container's
//! output from `logs?follow`, skipping what the log has: nothing is lost or
//! written twice. Tasks with proxies or caches keep no record (their endpoint
//! and lent volumes die with the instance); kill and abort clear it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use enginehost_sdk::{Error, Result, Sandbox, SandboxStatus, Shells, Signal, StreamReader, TaskContext, spawn_local};
use serde::{Deserialize, Serialize};

use crate::DockerEngine;
use crate::api::escape;
use crate::bytes::{Channel, LogLines, Reader, Source, demux};
use crate::made::Made;
use crate::result::DockerResult;
use crate::shell::{self, Container, DockerShell, ShellState};
use enginehost_sdk::http::Upgraded;

/// What a fresh instance needs to take the task over: its container, and the
/// bytes of its stdout and stderr that are in the task log already.
#[derive(Serialize, Deserialize, Default, Clone)]
struct Record {
    container: String,
    out: u64,
    err: u64,
}

/// A running task: its container (shared with its shells), what was made for
/// it, its status and its shells.
struct Task {
    context: Rc<TaskContext>,
    container: Rc<Container>,
    made: Rc<Made>,
    status: SandboxStatus,
    shells: Rc<Shells<ShellState>>,
    /// Whether the task keeps a recovery record (cleared by kill and abort).
    recorded: Cell<bool>,
}

impl Task {
    fn mark_shells_aborted(&self) -> Vec<Rc<ShellState>> {
        let shells = self.shells.live();
        for shell in &shells {
            shell.status.mark_aborted();
        }
        shells
    }

    /// Writes the record (when the task keeps one); one that does not fit
    /// leaves the task unrecoverable.
    fn record(&self, record: &Record) {
        if !self.recorded.get() {
            return;
        }
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        if self.context.set_recovery_record(&bytes).is_err() {
            self.forget();
        }
    }

    /// The task is not to be taken over any more.
    fn forget(&self) {
        if self.recorded.replace(false) {
            let _ = self.context.set_recovery_record(&[]);
        }
    }
}

/// The container's output as this instance reads it: from the attach made
/// before the start, or (after a recovery) from its logs.
pub(crate) struct Output {
    reader: Reader,
    /// Kept open while the output is read (the attach's half to dockerd).
    keep: Option<enginehost_sdk::StreamWriter<u8>>,
    /// Bytes of stdout and stderr already in the task log, skipped.
    skip: (u64, u64),
}

impl Output {
    pub(crate) fn attached(attached: Upgraded) -> Output {
        Output {
            reader: Reader::with_head(Source::Raw(attached.rx), attached.head),
            keep: Some(attached.tx),
            skip: (0, 0),
        }
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
    /// shell ended. `recorded`: the task keeps a recovery record.
    pub(crate) fn start(
        context: Rc<TaskContext>,
        container: Container,
        made: Rc<Made>,
        output: Output,
        recorded: bool,
    ) -> DockerSandbox {
        let task = Rc::new(Task {
            context,
            container: Rc::new(container),
            made,
            status: SandboxStatus::new(),
            shells: Rc::new(Shells::new()),
            recorded: Cell::new(recorded),
        });
        let Output { mut reader, keep, skip } = output;
        let mut record = Record {
            container: task.container.id.clone(),
            out: skip.0,
            err: skip.1,
        };
        task.record(&record);
        // The output, live, until the container's streams close.
        let logged = Signal::new();
        let (mut log, done) = (LogLines::new(&task.context), logged.clone());
        let mut err_log = LogLines::new(&task.context);
        let logging = task.clone();
        spawn_local(async move {
            let _keep_open = keep;
            let (mut skip_out, mut skip_err) = skip;
            let _ = demux(&mut reader, async |channel, bytes| {
                let (lines, left) = match channel {
                    Channel::Stdout => (&mut log, &mut skip_out),
                    Channel::Stderr => (&mut err_log, &mut skip_err),
                };
                let skipped = (*left).min(bytes.len() as u64);
                *left -= skipped;
                if skipped as usize == bytes.len() {
                    return;
                }
                lines.push(&bytes[skipped as usize..]).await;
                record.out = skip.0 + log.delivered();
                record.err = skip.1 + err_log.delivered();
                logging.record(&record);
            })
            .await;
            log.finish().await;
            err_log.finish().await;
            record.out = skip.0 + log.delivered();
            record.err = skip.1 + err_log.delivered();
            logging.record(&record);
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

    /// Takes over the task of `record` after its engine instance died: the same
    /// container, its output from where the task log stopped. The dead
    /// instance's shells are killed; the task's command goes on untouched.
    pub(crate) async fn recover(
        engine: Rc<DockerEngine>,
        context: TaskContext,
        record: &[u8],
    ) -> Result<DockerSandbox> {
        let record: Record = serde_json::from_slice(record)
            .map_err(|e| Error::NonFatalInternalError(format!("the docker engine's recovery record: {e}")))?;
        let docker = &engine.docker;
        let id = escape(&record.container);
        let inspected = docker
            .json("GET", &format!("/containers/{id}/json"), None)
            .await
            .map_err(|e| match e.status() {
                Some(404) => Error::NonFatalInternalError(format!(
                    "the task's container {} is gone from dockerd",
                    record.container
                )),
                _ => engine.unavailable(e),
            })?;
        // The record names a container of this very task, or nothing is taken.
        let task = format!("{}/{}", context.task_id(), context.run_id());
        if inspected["Config"]["Labels"]["enginehost.task"].as_str() != Some(task.as_str()) {
            return Err(Error::NonFatalInternalError(format!(
                "container {} is not the container of task {task}",
                record.container
            )));
        }
        let made = Made::new(engine.clone());
        *made.container.borrow_mut() = Some(record.container.clone());
        let network = inspected["NetworkSettings"]["Networks"]
            .as_object()
            .and_then(|n| n.values().find_map(|v| v["NetworkID"].as_str()));
        *made.network.borrow_mut() = network.map(String::from);
        let env = inspected["Config"]["Env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        let container = Container {
            engine: engine.clone(),
            id: record.container.clone(),
            env,
        };
        shell::kill_marked(&container, "enginehost-").await;
        if let Some(dead) = inspected["Config"]["Labels"]["enginehost.instance"].as_str()
            && dead != engine.instance
        {
            spawn_local(remove_idle_networks(engine.clone(), dead.to_string()));
        }
        let logs = docker
            .call(
                "GET",
                &format!("/containers/{id}/logs?follow=1&stdout=1&stderr=1"),
                None,
            )
            .await
            .map_err(|e| {
                Error::NonFatalInternalError(format!(
                    "reading the output of container {} from dockerd (its log driver must keep logs, e.g. \
                     json-file or local): {e}",
                    record.container
                ))
            })?;
        let output = Output {
            reader: Reader::new(Source::Body(logs.into_body())),
            keep: None,
            skip: (record.out, record.err),
        };
        Ok(DockerSandbox::start(Rc::new(context), container, made, output, true))
    }
}

/// Removes the networks that the dead instance `dead` made and nothing runs in
/// any more (its spare): dockerd refuses to remove one that a running container
/// is in ("has active endpoints"), so the tasks still to be taken over keep theirs.
async fn remove_idle_networks(engine: Rc<DockerEngine>, dead: String) {
    let filter = escape(&serde_json::json!({"label": [format!("enginehost.instance={dead}")]}).to_string());
    let Ok(found) = engine
        .docker
        .json("GET", &format!("/networks?filters={filter}"), None)
        .await
    else {
        return;
    };
    for network in found.as_array().into_iter().flatten() {
        if let Some(id) = network["Id"].as_str() {
            let _ = engine
                .docker
                .call("DELETE", &format!("/networks/{}", escape(id)), None)
                .await;
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
        self.task.forget();
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
        self.task.forget();
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
