//! A running docker task: wait, kill, abort and shells.
//!
//! Recovery (contract 0.1.4): the container lives on in dockerd when the
//! engine's instance dies, so the task keeps a [`Record`]: its container, and
//! how many bytes of its stdout and stderr are in the task log (rewritten right
//! after each log write). A fresh instance ([`DockerSandbox::recover`]) finds
//! the container, kills the dead instance's shells in it, and goes on with the
//! container's output from `logs?follow`, skipping what the log has. A task
//! that cannot be taken over (proxies or caches, whose endpoint and lent
//! volumes die with the instance; killed; output that docker's log would not
//! give back byte for byte, [`Faithful`]) keeps a record all the same, marked
//! not to be resumed: a fresh instance then only removes its container.

use std::cell::RefCell;
use std::rc::Rc;

use enginehost_sdk::{Error, Result, Sandbox, SandboxStatus, Shells, Signal, StreamReader, TaskContext, spawn_local};
use serde::{Deserialize, Serialize};

use crate::DockerEngine;
use crate::api::escape;
use crate::bytes::{Channel, Faithful, LogLines, Reader, Source, demux};
use crate::made::Made;
use crate::result::DockerResult;
use crate::shell::{self, Container, DockerShell, ShellState};
use enginehost_sdk::http::Upgraded;

/// What a fresh instance needs to take the task over: its container, and the
/// bytes of its stdout and stderr that are in the task log already.
#[derive(Serialize, Deserialize, Clone)]
struct Record {
    container: String,
    out: u64,
    err: u64,
    /// The engine instance that wrote it (its idle networks go at a recovery).
    #[serde(default)]
    instance: String,
    /// False: the task is not taken over; a recovery only removes it.
    resume: bool,
}

/// A running task: its container (shared with its shells), what was made for
/// it, its status and its shells.
struct Task {
    context: Rc<TaskContext>,
    container: Rc<Container>,
    made: Rc<Made>,
    status: SandboxStatus,
    shells: Rc<Shells<ShellState>>,
    /// Its recovery record as last written (none after abort).
    record: RefCell<Option<Record>>,
}

impl Task {
    fn mark_shells_aborted(&self) -> Vec<Rc<ShellState>> {
        let shells = self.shells.live();
        for shell in &shells {
            shell.status.mark_aborted();
        }
        shells
    }

    /// Whether the task may still be taken over after a trap.
    fn resumes(&self) -> bool {
        self.record.borrow().as_ref().is_some_and(|r| r.resume)
    }

    /// Writes the record with the log's counts, when the task may be resumed.
    fn record_counts(&self, out: u64, err: u64) {
        let mut record = self.record.borrow_mut();
        if let Some(r) = record.as_mut().filter(|r| r.resume) {
            (r.out, r.err) = (out, err);
            save(&self.context, r);
        }
    }

    /// The task is not to be taken over any more, only removed.
    fn stop_resuming(&self) {
        let mut record = self.record.borrow_mut();
        if let Some(r) = record.as_mut().filter(|r| r.resume) {
            r.resume = false;
            save(&self.context, r);
        }
    }

    /// Nothing is left to take over or remove (abort removed it).
    fn forget(&self) {
        if self.record.borrow_mut().take().is_some() {
            let _ = self.context.set_recovery_record(&[]);
        }
    }
}

/// Writes `record`; one that does not fit (it always does) is dropped.
fn save(context: &TaskContext, record: &Record) {
    let bytes = serde_json::to_vec(record).unwrap_or_default();
    if context.set_recovery_record(&bytes).is_err() {
        let _ = context.set_recovery_record(&[]);
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
    /// shell ended. `resume`: the task may be taken over after a trap.
    pub(crate) fn start(
        context: Rc<TaskContext>,
        container: Container,
        made: Rc<Made>,
        output: Output,
        resume: bool,
    ) -> DockerSandbox {
        let Output { mut reader, keep, skip } = output;
        let record = Record {
            container: container.id.clone(),
            out: skip.0,
            err: skip.1,
            instance: container.engine.instance.clone(),
            resume,
        };
        save(&context, &record);
        let task = Rc::new(Task {
            context,
            container: Rc::new(container),
            made,
            status: SandboxStatus::new(),
            shells: Rc::new(Shells::new()),
            record: RefCell::new(Some(record)),
        });
        // The output, live, until the container's streams close.
        let logged = Signal::new();
        let (mut log, done) = (LogLines::new(&task.context), logged.clone());
        let mut err_log = LogLines::new(&task.context);
        let logging = task.clone();
        spawn_local(async move {
            let _keep_open = keep;
            let (mut skip_out, mut skip_err) = skip;
            let (mut faithful_out, mut faithful_err) = (Faithful::default(), Faithful::default());
            let _ = demux(&mut reader, async |channel, bytes| {
                let (lines, left, faithful) = match channel {
                    Channel::Stdout => (&mut log, &mut skip_out, &mut faithful_out),
                    Channel::Stderr => (&mut err_log, &mut skip_err, &mut faithful_err),
                    Channel::System => {
                        // dockerd could not read the logs: say so, and take it
                        // as the end of the output.
                        let why = String::from_utf8_lossy(&bytes).trim().to_string();
                        crate::bytes::note(&logging.context, &format!("dockerd: {why}")).await;
                        logging.stop_resuming();
                        return;
                    }
                };
                let skipped = (*left).min(bytes.len() as u64);
                *left -= skipped;
                let bytes = &bytes[skipped as usize..];
                if bytes.is_empty() {
                    return;
                }
                if logging.resumes() && !faithful.check(bytes) {
                    logging.stop_resuming();
                }
                lines.push(bytes).await;
                // No await between the write and the record.
                logging.record_counts(skip.0 + log.delivered(), skip.1 + err_log.delivered());
            })
            .await;
            log.finish().await;
            err_log.finish().await;
            // A character cut off at the end would come back as U+FFFD.
            if !(faithful_out.complete() && faithful_err.complete()) {
                logging.stop_resuming();
            }
            logging.record_counts(skip.0 + log.delivered(), skip.1 + err_log.delivered());
            if skip_out > 0 || skip_err > 0 {
                crate::bytes::note(
                    &logging.context,
                    &format!(
                        "The container's output after the engine's restart was {skip_out} bytes (stdout) and \
                         {skip_err} bytes (stderr) shorter than the log already had: docker's log of it was cut \
                         (rotated or dropped); what it wrote meanwhile may be missing"
                    ),
                )
                .await;
            }
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
        // What the instances that died under the task left (the one that made
        // the container, the one that wrote the record), once this task's
        // container is removed or taken over.
        let mut dead: Vec<String> = [
            inspected["Config"]["Labels"]["enginehost.instance"]
                .as_str()
                .unwrap_or_default(),
            &record.instance,
        ]
        .into_iter()
        .filter(|d| !d.is_empty() && *d != engine.instance)
        .map(String::from)
        .collect();
        dead.dedup();
        let sweep = || {
            for instance in &dead {
                spawn_local(sweep_dead_instance(engine.clone(), instance.clone()));
            }
        };
        let removed = async |why: String| {
            made.remove(false).await;
            sweep();
            Error::NonFatalInternalError(format!("{why}; its container {} was removed", record.container))
        };
        if !record.resume {
            return Err(removed(
                "the task is not taken over (it has proxies or caches, was killed, or wrote output that docker's log \
                 does not give back byte for byte)"
                    .into(),
            )
            .await);
        }
        // The log must give back every byte the task wrote, from the start.
        let log = &inspected["HostConfig"]["LogConfig"];
        let (driver, options) = (log["Type"].as_str().unwrap_or("?"), &log["Config"]);
        if driver != "json-file" || !options["max-size"].is_null() || options["mode"].as_str() == Some("non-blocking") {
            return Err(removed(format!(
                "the task is not taken over: its output after the restart would come from dockerd's log, which must \
                 be the json-file driver without max-size and in blocking mode; this container logs with {driver} \
                 {options}"
            ))
            .await);
        }
        shell::kill_marked(&container, "enginehost-").await;
        sweep();
        let logs = docker
            .call(
                "GET",
                &format!("/containers/{id}/logs?follow=1&stdout=1&stderr=1"),
                None,
            )
            .await
            .map_err(|e| match e.status() {
                Some(_) => Error::NonFatalInternalError(format!(
                    "dockerd refused the output of container {}: {e}",
                    record.container
                )),
                None => engine.unavailable(e),
            })?;
        let output = Output {
            reader: Reader::new(Source::Body(logs.into_body())),
            keep: None,
            skip: (record.out, record.err),
        };
        Ok(DockerSandbox::start(Rc::new(context), container, made, output, true))
    }
}

/// Removes what the dead instance `dead` made and nothing uses any more: its
/// spare network, and volumes (every handle to them died with it). dockerd
/// refuses to remove a network a running container is in, or a volume a
/// container has mounted, so the tasks still to be taken over keep theirs (and
/// each one's recovery sweeps again).
async fn sweep_dead_instance(engine: Rc<DockerEngine>, dead: String) {
    let filter = escape(&serde_json::json!({"label": [format!("enginehost.instance={dead}")]}).to_string());
    let docker = &engine.docker;
    if let Ok(found) = docker.json("GET", &format!("/networks?filters={filter}"), None).await {
        for network in found.as_array().into_iter().flatten() {
            if let Some(id) = network["Id"].as_str() {
                crate::cleanup::remove(docker, &crate::cleanup::Job::Network(id.into())).await;
            }
        }
    }
    if let Ok(found) = docker.json("GET", &format!("/volumes?filters={filter}"), None).await {
        for volume in found["Volumes"].as_array().into_iter().flatten() {
            if let Some(name) = volume["Name"].as_str() {
                crate::cleanup::remove(docker, &crate::cleanup::Job::Volume(name.into())).await;
            }
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
        // Marked first, forgotten once removed: a trap in between leaves a
        // record with which a fresh instance removes the container.
        self.task.stop_resuming();
        for shell in self.task.mark_shells_aborted() {
            shell.end();
        }
        self.task.made.remove(false).await;
        self.task.forget();
        Ok(())
    }

    async fn kill(&self) -> Result<()> {
        if let Some(ended) = self.task.status.kill() {
            return ended;
        }
        self.task.stop_resuming();
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
