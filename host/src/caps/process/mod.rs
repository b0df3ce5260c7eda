//! The `process` capability: host processes for a task, started in its sandbox
//! directory, as the worker's user or a task user, each in a cgroup of its own
//! under the task's (or a session of its own, in the fallback).
//!
//! Granted by `[plugins.NAME.process]`: `exec` (patterns the resolved executable
//! must match), `run-as` ("worker", "task-user"), `pty`, `search-path`,
//! `max-per-task`, `env-allow`, `network`. The checks come first in [`spawn`], before anything
//! touches the host. The registry of a task's processes ([`ProcEntry`]) lives in
//! its `TaskScope`, outside the wasmtime Store.
//!
//! - `resolve`: argv[0] → the executable, and the names the policy matches.
//! - `copy`: the host copies of process output into the task log.
//! - `start`: [`spawn`] and [`Process`], what the imports call.
//! - `egress`: the task network's proxy (`network = { connect = [...] }`).

mod copy;
mod egress;
mod resolve;
mod start;

pub use start::Process;
pub(crate) use start::spawn;

/// `adopt`: a process of the task that outlived the instance that started it
/// (kept because the task has a recovery record), for a fresh instance.
pub(crate) fn adopt(task: &super::TaskHandle, pid: u32) -> super::CapResult<Process> {
    let kept = task.scope.adopt_process(pid)?;
    let entry = kept
        .into_any()
        .downcast::<ProcEntry>()
        .map_err(|_| super::invalid("the kept process is not a process of this capability"))?;
    Ok(Process(entry))
}

use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncRead;
use tokio::sync::watch;

use super::os::cgroup::Cgroup;
use super::os::pty::PtyControl;
use super::os::spawn::{Child, ExitStatus};
use crate::contract::ByteStream;

/// Where a process's stdin comes from.
pub(crate) enum Input {
    /// Nothing (end of file).
    Null,
    /// The engine's bytes.
    Bytes(ByteStream),
    /// A file in the sandbox.
    File(String),
}

/// Where a process's stdout or stderr goes.
pub(crate) enum OutputTo {
    /// Nowhere.
    Null,
    /// To the engine (`take-stdout`/`take-stderr`).
    Pipe,
    /// Into the task log, each line with this prefix (the host copies it).
    TaskLog(String),
    /// Into a file in the sandbox.
    File(String),
    /// stderr only: where stdout goes.
    Stdout,
}

/// What to start.
pub(crate) struct Command {
    /// The program and its arguments.
    pub(crate) argv: Vec<String>,
    /// Its whole environment.
    pub(crate) env: Vec<(String, String)>,
    /// The working directory, relative to the sandbox.
    pub(crate) cwd: String,
    pub(crate) stdin: Input,
    pub(crate) stdout: OutputTo,
    pub(crate) stderr: OutputTo,
    /// A pty of this many columns and rows.
    pub(crate) pty: Option<(u16, u16)>,
}

/// A pipe end the engine may still take (`take-stdout`/`take-stderr`).
type Pipe = Pin<Box<dyn AsyncRead + Send>>;

/// One started process: how to signal it, wait for it and its copies.
pub(crate) struct ProcEntry {
    child: Child,
    /// Its own cgroup (its tree), when trees are killed by cgroup.
    cgroup: Option<Cgroup>,
    pty: Option<PtyControl>,
    stdout: Mutex<Option<Pipe>>,
    stderr: Mutex<Option<Pipe>>,
    /// Host copies (task-log) still running.
    copies: watch::Sender<usize>,
}

impl super::scope::TaskProcess for ProcEntry {
    fn kill_now(&self) {
        ProcEntry::kill_now(self);
    }
    fn pid(&self) -> u32 {
        self.child.pid()
    }
    fn into_any(self: std::sync::Arc<Self>) -> std::sync::Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

impl ProcEntry {
    /// Kills the process and everything it started, now (synchronous, cheap).
    pub(crate) fn kill_now(&self) {
        match &self.cgroup {
            Some(cgroup) => cgroup.kill(),
            None => self.child.signal_group(libc::SIGKILL),
        }
        let _ = self.child.signal(libc::SIGKILL);
    }

    /// Sends `sig` to every process of its tree.
    fn signal_tree(&self, sig: i32) {
        match &self.cgroup {
            Some(cgroup) => cgroup.signal(sig),
            None => self.child.signal_group(sig),
        }
        let _ = self.child.signal(sig);
    }

    /// Whether any process of its tree is left.
    fn tree_alive(&self) -> bool {
        match &self.cgroup {
            Some(cgroup) => cgroup.is_populated(),
            None => self.child.status().borrow().is_none(),
        }
    }

    /// TERM to the tree, KILL after `grace`, then waits until the tree is empty.
    async fn kill_tree(&self, grace: Duration) {
        self.signal_tree(libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while self.tree_alive() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.kill_now();
        match &self.cgroup {
            Some(cgroup) => {
                cgroup.wait_empty(Duration::from_secs(10)).await;
            }
            None => {
                self.child.wait().await;
            }
        }
    }

    /// The exit status once the process exited.
    async fn wait(&self) -> ExitStatus {
        self.child.wait().await
    }

    /// Resolves when every host copy reached end of file.
    async fn drained(&self) {
        let mut rx = self.copies.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

impl Drop for ProcEntry {
    fn drop(&mut self) {
        // The last handle is gone (the engine dropped it, or the task ended).
        self.kill_now();
        if let Some(cgroup) = &self.cgroup {
            let _ = cgroup.remove(); // fails while processes are still dying; the task cleanup retries
        }
    }
}

/// Counts one running host copy; the count goes down when it is dropped.
pub(crate) struct CopyGuard(watch::Sender<usize>);

impl CopyGuard {
    fn new(copies: &watch::Sender<usize>) -> Self {
        copies.send_modify(|n| *n += 1);
        CopyGuard(copies.clone())
    }
}

impl Drop for CopyGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}
