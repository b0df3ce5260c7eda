//! A running child: its stdio ends, its exit status (published by a reaper task) and pidfd-based signalling.
//!
//! Owns: reaping (a tokio task owns the `tokio::process::Child` and awaits it, so the status is known even if nobody
//! waits), the pidfd, and the parent ends of the child's pipes or pty master.
//!
//! Must not: kill anything on drop (a dropped handle leaves the process running; tree cleanup is the caller's cgroup
//! kill), or signal by bare pid once the child may have been reaped (pid reuse): signals go through the pidfd.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::pty::PtyControl;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called exit(code).
    Code(u8),
    /// It was killed by this signal.
    Signal(u8),
}

type Reader = Pin<Box<dyn AsyncRead + Send + Sync>>;
type Writer = Pin<Box<dyn AsyncWrite + Send + Sync>>;

/// The parent ends of the child's stdio, filled in by `spawn`.
#[derive(Default)]
pub(super) struct Streams {
    pub stdin: Option<Writer>,
    pub stdout: Option<Reader>,
    pub stderr: Option<Reader>,
}

/// A spawned process. Dropping it neither kills nor waits: the reaper task still collects the exit status.
pub struct Child {
    pid: u32,
    pidfd: Option<OwnedFd>,
    streams: Streams,
    pty: Option<PtyControl>,
    status: watch::Receiver<Option<ExitStatus>>,
}

/// Wraps the spawned tokio child: opens its pidfd and starts the reaper. Infallible on purpose: the child runs.
pub(super) fn start(child: tokio::process::Child, streams: Streams, pty: Option<PtyControl>) -> Child {
    let pid = child.id().expect("a child that was never awaited has a pid");
    // Right after spawn, before the reaper exists, the child cannot have been reaped: the pidfd names this process.
    // SAFETY: pidfd_open has no memory arguments; a non-negative result is a new fd that we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    let pidfd = if fd >= 0 {
        // SAFETY: see above.
        Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    } else {
        tracing::warn!(
            "pidfd_open({pid}): {}; signals fall back to kill(pid)",
            io::Error::last_os_error()
        );
        None
    };
    let (tx, status) = watch::channel(None);
    tokio::spawn(reap(child, tx));
    Child {
        pid,
        pidfd,
        streams,
        pty,
        status,
    }
}

async fn reap(mut child: tokio::process::Child, tx: watch::Sender<Option<ExitStatus>>) {
    let status = match child.wait().await {
        Ok(s) => map_status(s),
        Err(e) => {
            // Only if someone else reaped it (SIGCHLD ignored, a stray waitpid(-1)); the status is lost.
            tracing::error!(
                "waiting for child {}: {e}; reporting exit code 255",
                child.id().unwrap_or(0)
            );
            ExitStatus::Code(255)
        }
    };
    tx.send_replace(Some(status));
}

impl Child {
    /// Its pid (also its process group and session id, see `setsid` in [`super::spawn::spawn`]).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Pipe stdin (or the pty master's write side); shutdown/drop = EOF (for a pty, dropping it just stops writing).
    pub fn take_stdin(&mut self) -> Option<Pin<Box<dyn AsyncWrite + Send>>> {
        self.streams.stdin.take().map(|w| w as Pin<Box<dyn AsyncWrite + Send>>)
    }

    /// Pipe stdout (or the pty master's read side; EIO after the slave closes = EOF).
    pub fn take_stdout(&mut self) -> Option<Pin<Box<dyn AsyncRead + Send>>> {
        self.streams.stdout.take().map(|r| r as Pin<Box<dyn AsyncRead + Send>>)
    }

    /// Pipe stderr; always None with a pty (stderr is the terminal).
    pub fn take_stderr(&mut self) -> Option<Pin<Box<dyn AsyncRead + Send>>> {
        self.streams.stderr.take().map(|r| r as Pin<Box<dyn AsyncRead + Send>>)
    }

    /// The pty's control handle (cloneable), if spawned with one.
    pub fn pty(&self) -> Option<PtyControl> {
        self.pty.clone()
    }

    /// The exit status, once known; the receiver is cheap to clone (a reaper task owns the process).
    pub fn status(&self) -> watch::Receiver<Option<ExitStatus>> {
        self.status.clone()
    }

    /// Waits for the exit status. If the runtime shuts down before the child exits (the reaper is dropped), this
    /// never resolves; that only happens while everything is being torn down anyway.
    pub async fn wait(&self) -> ExitStatus {
        let mut rx = self.status.clone();
        // Copied out at once: the watch guard must not live across an await (Send).
        let status = rx.wait_for(Option::is_some).await.ok().and_then(|s| *s);
        match status {
            Some(s) => s,
            None => std::future::pending().await,
        }
    }

    /// Signals the process itself through a pidfd (no pid-reuse race); Ok(()) if it already exited.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        let r = match &self.pidfd {
            // SAFETY: pidfd_send_signal with a valid pidfd and a null siginfo.
            Some(fd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    sig,
                    std::ptr::null::<u8>(),
                    0,
                )
            },
            None if self.status.borrow().is_some() => return Ok(()),
            // SAFETY: kill(2) has no memory-safety preconditions. (No pidfd: a small reuse race remains.)
            None => unsafe { libc::kill(self.pid as i32, sig) as libc::c_long },
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Signals its process group (the child is a session leader: setsid), ignoring ESRCH. The fallback tree kill:
    /// it misses anything that called setsid/setpgid itself, which only a cgroup (or a per-task uid) catches.
    pub fn signal_group(&self, sig: i32) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        if unsafe { libc::kill(-(self.pid as i32), sig) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                tracing::warn!("killpg({}, {sig}): {e}", self.pid);
            }
        }
    }
}

/// Maps std's wait status: a signal number if it was killed, else the exit code.
fn map_status(s: std::process::ExitStatus) -> ExitStatus {
    match (s.signal(), s.code()) {
        (Some(sig), _) => ExitStatus::Signal(sig as u8),
        (None, Some(code)) => ExitStatus::Code(code as u8),
        (None, None) => ExitStatus::Code(255),
    }
}
