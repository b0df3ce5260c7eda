//! Shells in the VM: an `exec-shell` action; the agent's reply request is upgraded
//! (`101`, `Upgrade: enginehost-shell`) and carries frames both ways
//! (`[type u8][length u32 BE][payload]`): 0 stdin, 1 stdin EOF, 2 resize, 3 abort
//! to the agent; 10 stdout, 11 stderr, 12 the exit code (or `-signal`) back.
//! The engine keeps its side open until frame 12 (an early EOF is an abort).

use std::rc::Rc;

use enginehost_sdk::{
    Error, Result, Shell, ShellOutputs, ShellStatus, Shells, StreamReader, StreamResult, byte_stream, spawn_local,
};
use futures::StreamExt;
use futures::channel::mpsc;
use serde_json::json;

use crate::agent::Agent;
use enginehost_sdk::io::{BufReader, CHUNK};

/// The largest frame payload the agent may send (PROTOCOL: ≤ 1 MiB).
const MAX_FRAME: usize = 1 << 20;

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + payload.len());
    f.push(kind);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// One shell's state; the task keeps it to end it with the VM.
pub struct ShellState {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    /// Aborted also when the agent reports a signal (`-N`) or the connection
    /// broke before the exit frame.
    status: ShellStatus,
}

impl ShellState {
    /// Asks the agent to kill the shell's processes.
    pub(crate) fn abort(&self) -> Result<()> {
        self.status.begin_abort()?;
        let _ = self.frames.unbounded_send(frame(3, &[]));
        Ok(())
    }

    /// The VM is gone: the shell ends as aborted.
    pub(crate) fn lost(&self) {
        self.status.mark_aborted();
        self.status.exited(false);
        self.frames.close_channel();
    }
}

/// The shell handle.
pub struct QemuShell {
    state: Rc<ShellState>,
    outputs: ShellOutputs,
}

/// Starts a shell in a task's VM (through its guest `agent`), one of `shells`.
pub(crate) async fn start(
    agent: &Agent,
    shells: &Rc<Shells<ShellState>>,
    command: Vec<String>,
    tty: bool,
    mut stdin: StreamReader<u8>,
) -> Result<QemuShell> {
    let request = agent
        .ask(json!({"type": "exec-shell", "command": command, "tty": tty}))
        .await
        .ok_or(Error::SandboxTerminated)?;
    let (mut to_agent, outgoing) = byte_stream();
    let incoming = request
        .upgrade(vec![], outgoing)
        .await
        .map_err(|e| Error::NonFatalInternalError(format!("starting the shell: {}", e.message())))?;
    let (frames, mut queue) = mpsc::unbounded::<Vec<u8>>();
    let state = Rc::new(ShellState {
        frames: frames.clone(),
        status: ShellStatus::new(tty),
    });
    shells.add(state.clone());

    // Frames to the agent, in order, until the exit frame came.
    spawn_local(async move {
        while let Some(f) = queue.next().await {
            if !to_agent.write_all(f).await.is_empty() {
                break;
            }
        }
        drop(request);
    });
    // stdin.
    let stdin_frames = frames;
    spawn_local(async move {
        loop {
            let (result, data) = stdin.read(Vec::with_capacity(CHUNK)).await;
            if !data.is_empty() && stdin_frames.unbounded_send(frame(0, &data)).is_err() {
                return;
            }
            match result {
                StreamResult::Complete(_) => continue,
                StreamResult::Dropped | StreamResult::Cancelled => break,
            }
        }
        let _ = stdin_frames.unbounded_send(frame(1, &[]));
    });
    // Output and the exit code.
    let (mut out_tx, out_rx) = byte_stream();
    let (mut err_tx, err_rx) = byte_stream();
    let reading = state.clone();
    shells.reap(&state, async move {
        let mut rx = BufReader::new(incoming);
        let mut exit = None;
        while let Ok(Some(head)) = rx.exact(5).await {
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            if len > MAX_FRAME {
                break;
            }
            let Ok(Some(payload)) = rx.exact(len).await else { break };
            match head[0] {
                10 => {
                    let _ = out_tx.write_all(payload).await;
                }
                11 => {
                    let _ = err_tx.write_all(payload).await;
                }
                12 if len == 4 => {
                    exit = Some(i32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]));
                    break;
                }
                _ => {}
            }
        }
        drop(out_tx);
        drop(err_tx);
        if exit.is_none_or(|code| code < 0) {
            reading.status.mark_aborted();
        }
        reading.status.exited(exit == Some(0));
        reading.frames.close_channel();
    });
    Ok(QemuShell {
        state,
        outputs: ShellOutputs::new(Some(out_rx), Some(err_rx)),
    })
}

impl Shell for QemuShell {
    fn stdout(&self) -> Option<StreamReader<u8>> {
        self.outputs.stdout()
    }

    fn stderr(&self) -> Option<StreamReader<u8>> {
        self.outputs.stderr()
    }

    async fn set_size(&self, columns: u16, rows: u16) -> Result<()> {
        self.state.status.check_resize()?;
        let mut size = columns.to_be_bytes().to_vec();
        size.extend_from_slice(&rows.to_be_bytes());
        let _ = self.state.frames.unbounded_send(frame(2, &size));
        Ok(())
    }

    async fn abort(&self) -> Result<()> {
        self.state.abort()
    }

    async fn wait(&self) -> Result<bool> {
        self.state.status.wait().await
    }
}
