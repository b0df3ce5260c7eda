//! The lifecycle rules every sandbox shares (the seed's `engines.Sandbox`
//! contract, docs/engine-contract.md §2.3), written once:
//!
//! - [`SandboxStatus`]: the sandbox's resolution (the first one wins), whether it
//!   was killed, and what a late call answers: `abort` after the end is
//!   `sandbox-terminated`, `kill` after the end answers with the end's result, a
//!   new shell after the end is `sandbox-aborted` (aborted) or
//!   `sandbox-terminated`.
//! - [`Shells`]: the live shells of a sandbox; the result waits for them
//!   ([`Shells::idle`]), kill and abort end them ([`Shells::live`]), and each
//!   one leaves the set when its process is reaped ([`Shells::reap`]).
//!
//! ```ignore
//! async fn abort(&self) -> Result<()> {
//!     self.status.abort()?;                 // sandbox-terminated once it ended
//!     for shell in self.shells.live() { let _ = shell.abort().await; }
//!     self.process.kill_tree(0).await?;
//!     Ok(())
//! }
//! ```

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use crate::sync::{Sessions, Signal};
use crate::{Error, Result};

/// A sandbox's resolution and what a call after it answers. `R` is what the
/// sandbox resolves with (`bool`, its success, for most engines).
pub struct SandboxStatus<R: Clone = bool> {
    resolution: Signal<Result<R>>,
    killed: Cell<bool>,
}

impl<R: Clone> Default for SandboxStatus<R> {
    fn default() -> Self {
        SandboxStatus {
            resolution: Signal::new(),
            killed: Cell::new(false),
        }
    }
}

impl<R: Clone> SandboxStatus<R> {
    /// A running sandbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves the sandbox; returns whether this call did (the first one wins).
    pub fn resolve(&self, result: Result<R>) -> bool {
        self.resolution.set(result)
    }

    /// The resolution, if the sandbox ended.
    pub fn get(&self) -> Option<Result<R>> {
        self.resolution.get()
    }

    /// Whether the sandbox ended.
    pub fn is_resolved(&self) -> bool {
        self.resolution.is_set()
    }

    /// Waits for the resolution (`wait-for-result`).
    pub async fn wait(&self) -> Result<R> {
        self.resolution.wait().await
    }

    /// Whether `kill` was called before the end (a killed task is not a success).
    pub fn was_killed(&self) -> bool {
        self.killed.get()
    }

    /// What `new-shell` answers once the sandbox ended: `sandbox-aborted` after an
    /// abort, else `sandbox-terminated`; `Ok` while it runs.
    pub fn check_running(&self) -> Result<()> {
        match self.resolution.get() {
            None => Ok(()),
            Some(Err(Error::SandboxAborted)) => Err(Error::SandboxAborted),
            Some(_) => Err(Error::SandboxTerminated),
        }
    }

    /// `abort`: resolves the sandbox with `sandbox-aborted`; `sandbox-terminated`
    /// when it had ended already (then the caller does nothing more).
    pub fn abort(&self) -> Result<()> {
        if self.resolution.set(Err(Error::SandboxAborted)) {
            Ok(())
        } else {
            Err(Error::SandboxTerminated)
        }
    }

    /// `kill`: `Some(answer)` when the sandbox had ended already (kill answers
    /// with how it ended, and does nothing more); else marks it killed and
    /// returns `None` (the caller then stops the work).
    pub fn kill(&self) -> Option<Result<()>> {
        if let Some(resolved) = self.resolution.get() {
            return Some(resolved.map(|_| ()));
        }
        self.killed.set(true);
        None
    }
}

/// The live shells of a sandbox (shared with the tasks that reap them).
pub struct Shells<S> {
    list: RefCell<Vec<Rc<S>>>,
    sessions: Sessions,
}

impl<S> Default for Shells<S> {
    fn default() -> Self {
        Shells {
            list: RefCell::default(),
            sessions: Sessions::new(),
        }
    }
}

impl<S: 'static> Shells<S> {
    /// No shell.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a started shell: it counts as a session until [`Shells::reap`]
    /// removes it.
    pub fn add(&self, shell: Rc<S>) {
        self.sessions.open();
        self.list.borrow_mut().push(shell);
    }

    /// Reaps `shell` in the background: once `exited` completes (the shell's
    /// process ended and was cleaned up), it leaves the set and its session
    /// closes.
    pub fn reap(self: &Rc<Self>, shell: &Rc<S>, exited: impl Future<Output = ()> + 'static) {
        let (shells, shell) = (self.clone(), shell.clone());
        crate::spawn_local(async move {
            exited.await;
            shells.remove(&shell);
        });
    }

    /// Removes `shell` (it ended) and closes its session.
    pub fn remove(&self, shell: &Rc<S>) {
        let mut list = self.list.borrow_mut();
        let before = list.len();
        list.retain(|s| !Rc::ptr_eq(s, shell));
        if list.len() < before {
            drop(list);
            self.sessions.close();
        }
    }

    /// Every live shell, for kill and abort to end (they stay counted until
    /// reaped).
    pub fn live(&self) -> Vec<Rc<S>> {
        self.list.borrow().clone()
    }

    /// The number of live shells.
    pub fn len(&self) -> usize {
        self.list.borrow().len()
    }

    /// Whether no shell is live.
    pub fn is_empty(&self) -> bool {
        self.list.borrow().is_empty()
    }

    /// Waits until every shell was reaped (a result waits for its shells).
    pub async fn idle(&self) {
        self.sessions.idle().await
    }
}
