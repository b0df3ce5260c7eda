//! What every shell keeps to answer the contract's rules the same way: whether it
//! has a terminal, whether it was aborted, its exit, and its output streams (each
//! handed out once).

use std::cell::{Cell, RefCell};

use crate::sync::Signal;
use crate::{Error, Result, StreamReader};

/// A shell's status: terminal or not, aborted or not, and its success once it
/// exited.
pub struct ShellStatus {
    tty: bool,
    aborted: Cell<bool>,
    exit: Signal<bool>,
}

impl ShellStatus {
    /// A running shell.
    pub fn new(tty: bool) -> Self {
        ShellStatus {
            tty,
            aborted: Cell::new(false),
            exit: Signal::new(),
        }
    }

    /// Whether the shell has a terminal.
    pub fn tty(&self) -> bool {
        self.tty
    }

    /// Records that the shell exited (the first call counts).
    pub fn exited(&self, success: bool) {
        self.exit.set(success);
    }

    /// Marks the shell aborted (its sandbox was aborted or killed): its `wait` then
    /// gives shell-aborted.
    pub fn mark_aborted(&self) {
        self.aborted.set(true);
    }

    /// `set-size`'s errors: feature-not-supported without a terminal, then
    /// shell-aborted, then shell-terminated.
    pub fn check_resize(&self) -> Result<()> {
        if !self.tty {
            Err(Error::FeatureNotSupported)
        } else if self.aborted.get() {
            Err(Error::ShellAborted)
        } else if self.exit.is_set() {
            Err(Error::ShellTerminated)
        } else {
            Ok(())
        }
    }

    /// The start of `abort`: shell-terminated once the shell exited, else marks
    /// it aborted (the caller then ends it).
    pub fn begin_abort(&self) -> Result<()> {
        if self.exit.is_set() {
            return Err(Error::ShellTerminated);
        }
        self.aborted.set(true);
        Ok(())
    }

    /// `wait`: the shell's success once it exited, or shell-aborted.
    pub async fn wait(&self) -> Result<bool> {
        let success = self.exit.wait().await;
        if self.aborted.get() {
            return Err(Error::ShellAborted);
        }
        Ok(success)
    }
}

/// A shell's stdout and stderr, each handed out once (`Shell::stdout`/`stderr`).
pub struct ShellOutputs {
    stdout: RefCell<Option<StreamReader<u8>>>,
    stderr: RefCell<Option<StreamReader<u8>>>,
}

impl ShellOutputs {
    /// The streams (`None` for one the shell does not have, stderr with a tty).
    pub fn new(stdout: Option<StreamReader<u8>>, stderr: Option<StreamReader<u8>>) -> Self {
        ShellOutputs {
            stdout: RefCell::new(stdout),
            stderr: RefCell::new(stderr),
        }
    }

    /// stdout, the first time.
    pub fn stdout(&self) -> Option<StreamReader<u8>> {
        self.stdout.borrow_mut().take()
    }

    /// stderr, the first time.
    pub fn stderr(&self) -> Option<StreamReader<u8>> {
        self.stderr.borrow_mut().take()
    }
}
