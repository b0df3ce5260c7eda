//! A running qemu task: wait, kill, abort, shells and the display.

use std::rc::Rc;
use std::time::Duration;

use enginehost_sdk::caps::unix_socket;
use enginehost_sdk::{
    Display, Error, Result, Sandbox, StreamReader, StreamResult, TaskContext, byte_stream, spawn_local,
};
use futures::FutureExt;
use serde_json::json;

use crate::QemuEngine;
use crate::agent::{self};
use crate::qmp::within;
use crate::shell::{self, QemuShell};
use enginehost_sdk::io::{BufReader, CHUNK};

use crate::result::QemuResult;
use crate::task::{KILL_GRACE, SCREEN, SCREEN_DESCRIPTION, Task};

/// A running task.
pub struct QemuSandbox(Rc<Task>);

impl QemuSandbox {
    pub(crate) fn new(task: Rc<Task>) -> Self {
        QemuSandbox(task)
    }
}

impl Sandbox<QemuEngine> for QemuSandbox {
    async fn wait_for_result(&self) -> Result<Rc<QemuResult>> {
        let success = self.0.status.wait().await?;
        Ok(Rc::new(QemuResult::new(self.0.clone(), success)))
    }

    async fn new_shell(&self, command: Vec<String>, tty: bool, stdin: StreamReader<u8>) -> Result<QemuShell> {
        self.0.status.check_running()?;
        shell::start(&self.0.agent, &self.0.shells, command, tty, stdin).await
    }

    async fn list_displays(&self) -> Result<Vec<Display>> {
        self.0.status.check_running()?;
        let (width, height) = screen_size(&self.0.context).await.unwrap_or((0, 0));
        Ok(vec![Display {
            name: SCREEN.into(),
            description: SCREEN_DESCRIPTION.into(),
            width,
            height,
        }])
    }

    async fn open_display(&self, name: String, client: StreamReader<u8>) -> Result<StreamReader<u8>> {
        if name != SCREEN {
            return Err(Error::NoSuchDisplay);
        }
        self.0.status.check_running()?;
        open_display(&self.0, client).await
    }

    async fn abort(&self) -> Result<()> {
        self.0.status.abort()?;
        self.0.agent.keeper.stop();
        for shell in self.0.shells.live() {
            let _ = shell.abort();
        }
        self.0.stop_vm().await;
        Ok(())
    }

    async fn kill(&self) -> Result<()> {
        let task = &self.0;
        if let Some(ended) = task.status.kill() {
            return ended;
        }
        task.agent.keeper.stop();
        task.displays_end.set(());
        // Each shell is aborted on its own connection too: a shell the agent was
        // still starting when kill-process came would miss the group signal.
        for shell in task.shells.live() {
            let _ = shell.abort();
        }
        if task.agent.booted.is_set() {
            if let Some(reply) = within(Duration::from_secs(5), task.agent.ask(json!({"type": "kill-process"})))
                .await
                .flatten()
            {
                agent::empty(&reply, 200).await;
            }
            let ended = within(KILL_GRACE, task.status.wait()).await;
            if ended.is_some() {
                return Ok(());
            }
        }
        task.status.resolve(Ok(false));
        task.stop_vm().await;
        Ok(())
    }
}

/// Opens a connection to qemu's VNC server for `client`: the client's bytes go
/// straight to qemu (host-side); qemu's come back through the engine, so that
/// kill and abort can end the connection while the VM stays up.
async fn open_display(task: &Rc<Task>, client: StreamReader<u8>) -> Result<StreamReader<u8>> {
    let mut from_vnc = unix_socket::relay_in_sandbox(&task.context, "vnc.sock", client)
        .await
        .map_err(|e| Error::NonFatalInternalError(format!("connecting to qemu's VNC server: {}", e.message())))?;
    let (mut to_client, rx) = byte_stream();
    let end = task.displays_end.clone();
    spawn_local(async move {
        let relay = async {
            loop {
                let (result, data) = from_vnc.read(Vec::with_capacity(CHUNK)).await;
                if !data.is_empty() && !to_client.write_all(data).await.is_empty() {
                    return;
                }
                match result {
                    StreamResult::Complete(_) => continue,
                    StreamResult::Dropped | StreamResult::Cancelled => return,
                }
            }
        };
        futures::select! {
            _ = relay.fuse() => {}
            _ = end.wait().fuse() => {}
        }
    });
    Ok(rx)
}

/// The screen's size, from a VNC handshake of our own (RFB 3.8, no security,
/// shared): `(width, height)`.
async fn screen_size(context: &TaskContext) -> Option<(u32, u32)> {
    let vnc = unix_socket::connect_in_sandbox(context, "vnc.sock").await.ok()?;
    let (mut tx, rx) = (vnc.tx, vnc.rx);
    let mut rx = BufReader::new(rx);
    let handshake = async {
        let version = rx.exact(12).await.ok().flatten()?;
        if !version.starts_with(b"RFB 003.") {
            return None;
        }
        tx.write_all(b"RFB 003.008\n".to_vec()).await;
        let count = rx.exact(1).await.ok().flatten()?[0] as usize;
        if count == 0 {
            return None;
        }
        let types = rx.exact(count).await.ok().flatten()?;
        if !types.contains(&1) {
            return None;
        }
        tx.write_all(vec![1]).await;
        let result = rx.exact(4).await.ok().flatten()?;
        if result != [0, 0, 0, 0] {
            return None;
        }
        tx.write_all(vec![1]).await; // ClientInit: shared
        let init = rx.exact(4).await.ok().flatten()?;
        Some((
            u32::from(u16::from_be_bytes([init[0], init[1]])),
            u32::from(u16::from_be_bytes([init[2], init[3]])),
        ))
    };
    within(Duration::from_secs(5), handshake).await.flatten()
}
