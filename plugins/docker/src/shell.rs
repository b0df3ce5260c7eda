//! Shells through `exec`: the task's environment, `sh` unless a command is given,
//! with or without a tty (the hijacked stream is then raw, else multiplexed).
//! stdin's end half-closes the connection (dockerd closes the shell's stdin).
//! Docker cannot kill one exec, so an aborted shell's processes are found by a
//! marker in their environment and killed by a second exec (`sh`, `grep`, `kill`
//! in the image); its streams end at once either way.

use std::rc::Rc;

use enginehost_sdk::{
    Error, Result, Shell, ShellOutputs, ShellStatus, Shells, Signal, StreamReader, StreamResult, byte_stream,
    malformed, spawn_local,
};
use futures::future::{Either, select};
use serde_json::json;

use crate::api::escape;
use crate::bytes::{Channel, Reader, Source, copy, demux};
use crate::{DockerEngine, new_name};

/// The environment variable marking a shell's processes.
pub(crate) const MARKER: &str = "ENGINEHOST_SHELL";

/// A task's container, as its shells see it.
pub(crate) struct Container {
    pub(crate) engine: Rc<DockerEngine>,
    /// The container's id.
    pub(crate) id: String,
    /// The task's environment (shells get it too).
    pub(crate) env: Vec<String>,
}

/// One shell's state; the task keeps it to abort it.
pub struct ShellState {
    task: Rc<Container>,
    exec: String,
    marker: String,
    pub(crate) status: ShellStatus,
    /// Ends the streams (abort).
    ended: Signal<()>,
}

impl ShellState {
    /// Ends the shell's streams now.
    pub(crate) fn end(&self) {
        self.ended.set(());
    }

    /// Kills the shell's processes (best effort) and ends its streams.
    async fn kill(&self) {
        kill_marked(&self.task, &self.marker).await;
        self.end();
    }
}

/// Kills (best effort) the processes in `task`'s container whose marker starts
/// with `marker`: one shell's, or (`new_name`'s prefix) every shell's, as a
/// recovery does with the shells of the instance that died.
pub(crate) async fn kill_marked(task: &Container, marker: &str) {
    // The variable's whole entry, at its start (the task cannot set it:
    // `MARKER` is refused as a task variable).
    let script = format!(
        "for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ 2>/dev/null | grep -q '^{MARKER}={marker}' && \
         kill -9 ${{p#/proc/}}; done; true"
    );
    let docker = &task.engine.docker;
    let body = json!({"Cmd": ["sh", "-c", script], "AttachStdout": false, "AttachStderr": false});
    if let Ok(created) = docker
        .json("POST", &format!("/containers/{}/exec", task.id), Some(body))
        .await
        && let Some(id) = created["Id"].as_str()
    {
        let start = json!({"Detach": true, "Tty": false});
        let _ = docker
            .call("POST", &format!("/exec/{}/start", escape(id)), Some(start))
            .await;
        for _ in 0..50 {
            match docker.json("GET", &format!("/exec/{}/json", escape(id)), None).await {
                Ok(v) if v["Running"].as_bool() == Some(true) => {
                    enginehost_sdk::sleep(std::time::Duration::from_millis(20)).await
                }
                _ => break,
            }
        }
    }
}

/// The shell handle.
pub struct DockerShell {
    state: Rc<ShellState>,
    outputs: ShellOutputs,
}

/// Starts a shell in a task's container, one of `shells`.
pub(crate) async fn start(
    task: &Rc<Container>,
    shells: &Rc<Shells<ShellState>>,
    command: Vec<String>,
    tty: bool,
    stdin: StreamReader<u8>,
) -> Result<DockerShell> {
    let docker = &task.engine.docker;
    let marker = new_name();
    let mut env = task.env.clone();
    env.push(format!("{MARKER}={marker}"));
    let cmd = if command.is_empty() {
        vec!["sh".to_string()]
    } else {
        command
    };
    let body = json!({
        "Cmd": cmd, "Env": env, "Tty": tty,
        "AttachStdin": true, "AttachStdout": true, "AttachStderr": true,
    });
    let created = docker
        .json("POST", &format!("/containers/{}/exec", task.id), Some(body))
        .await
        .map_err(|e| match e.status() {
            Some(409) => Error::SandboxTerminated,
            Some(400..=499) => malformed(format!("Unable to start the shell: {e}")),
            _ => task.engine.unavailable(e),
        })?;
    let exec = created["Id"].as_str().unwrap_or_default().to_string();
    let upgraded = docker
        .upgrade(
            &format!("/exec/{}/start", escape(&exec)),
            Some(json!({"Detach": false, "Tty": tty})),
        )
        .await
        .map_err(|e| match e.status() {
            Some(409) => Error::SandboxTerminated,
            Some(400..=599) => malformed(format!("Unable to start the shell: {e}")),
            _ => task.engine.unavailable(e),
        })?;
    let state = Rc::new(ShellState {
        task: task.clone(),
        exec,
        marker,
        status: ShellStatus::new(tty),
        ended: Signal::new(),
    });
    let (mut out_tx, out_rx) = byte_stream();
    let (mut err_tx, err_rx) = byte_stream();
    shells.add(state.clone());
    // stdin → the connection; its end half-closes it.
    let (mut tx, ended) = (upgraded.tx, state.ended.clone());
    spawn_local(async move {
        let mut stdin = stdin;
        let pump = async {
            loop {
                let (result, chunk) = stdin.read(Vec::with_capacity(crate::bytes::CHUNK)).await;
                if !chunk.is_empty() && !tx.write_all(chunk).await.is_empty() {
                    return;
                }
                if !matches!(result, StreamResult::Complete(_)) {
                    return;
                }
            }
        };
        let _ = select(std::pin::pin!(pump), std::pin::pin!(ended.wait())).await;
    });
    // The connection → stdout and stderr, then the exit code.
    let waiting = state.clone();
    shells.reap(&state, async move {
        let mut reader = Reader::with_head(Source::Raw(upgraded.rx), upgraded.head);
        let output = async {
            if waiting.status.tty() {
                let _ = copy(&mut reader, async |bytes| {
                    let _ = out_tx.write_all(bytes).await;
                })
                .await;
            } else {
                let _ = demux(&mut reader, async |channel, bytes| {
                    let _ = match channel {
                        Channel::Stdout => out_tx.write_all(bytes).await,
                        Channel::Stderr | Channel::System => err_tx.write_all(bytes).await,
                    };
                })
                .await;
            }
        };
        let finished = matches!(
            select(std::pin::pin!(output), std::pin::pin!(waiting.ended.wait())).await,
            Either::Left(_)
        );
        drop(reader);
        drop(out_tx);
        drop(err_tx);
        let success = finished && exit_code(&waiting).await == Some(0);
        waiting.status.exited(success);
    });
    Ok(DockerShell {
        state,
        outputs: ShellOutputs::new(Some(out_rx), Some(err_rx)),
    })
}

/// The exec's exit code, once dockerd reports it stopped (a moment after its
/// streams closed).
async fn exit_code(state: &ShellState) -> Option<i64> {
    let docker = &state.task.engine.docker;
    for _ in 0..100 {
        let v = docker
            .json("GET", &format!("/exec/{}/json", escape(&state.exec)), None)
            .await
            .ok()?;
        if v["Running"].as_bool() != Some(true) {
            return v["ExitCode"].as_i64();
        }
        enginehost_sdk::sleep(std::time::Duration::from_millis(20)).await;
    }
    None
}

impl Shell for DockerShell {
    fn stdout(&self) -> Option<StreamReader<u8>> {
        self.outputs.stdout()
    }

    fn stderr(&self) -> Option<StreamReader<u8>> {
        self.outputs.stderr()
    }

    async fn set_size(&self, columns: u16, rows: u16) -> Result<()> {
        self.state.status.check_resize()?;
        let target = format!("/exec/{}/resize?h={rows}&w={columns}", escape(&self.state.exec));
        self.state
            .task
            .engine
            .docker
            .call("POST", &target, None)
            .await
            .map_err(|e| self.state.task.engine.unavailable(e))?;
        Ok(())
    }

    async fn abort(&self) -> Result<()> {
        self.state.status.begin_abort()?;
        self.state.kill().await;
        Ok(())
    }

    async fn wait(&self) -> Result<bool> {
        self.state.status.wait().await
    }
}
