//! Mock shells (seed `mockshell.go`): read all of stdin, then `print-hello` writes
//! `Hello World` to stdout and `No error!` to stderr and exits true; `exit-false`
//! exits false; `sleep` sleeps 100 ms and exits true; anything else writes
//! `unknown command` and exits true. Both pipes then end. Commands and ttys are not
//! supported; `set-size` answers feature-not-supported.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use enginehost_sdk::{Error, Result, Shell, Shells, Signal, StreamReader, byte_stream, read_all, sleep};

use crate::session::Outlet;

/// Shared between the shell handle, its task and the sandbox (which aborts it).
pub struct ShellState {
    stdout: Outlet,
    stderr: Outlet,
    result: Signal<Result<bool>>,
}

impl ShellState {
    /// Resolves the shell (first wins) and ends both pipes.
    pub fn finish(&self, result: Result<bool>) -> bool {
        let won = self.result.set(result);
        self.stdout.close();
        self.stderr.close();
        won
    }
}

/// The shell handle.
pub struct MockShell {
    state: Rc<ShellState>,
    stdout: RefCell<Option<StreamReader<u8>>>,
    stderr: RefCell<Option<StreamReader<u8>>>,
}

/// Starts a shell, one of a task's `shells`, reading its script from `stdin`.
pub(crate) fn start(shells: &Rc<Shells<ShellState>>, stdin: StreamReader<u8>) -> MockShell {
    let (out_tx, out_rx) = byte_stream();
    let (err_tx, err_rx) = byte_stream();
    let state = Rc::new(ShellState {
        stdout: Outlet::new(out_tx),
        stderr: Outlet::new(err_tx),
        result: Signal::new(),
    });
    shells.add(state.clone());
    let s = state.clone();
    shells.reap(&state, async move {
        let script = read_all(stdin).await;
        let script = String::from_utf8_lossy(&script);
        let success = match script.trim() {
            "print-hello" => {
                s.stdout.send(b"Hello World".to_vec()).await;
                s.stderr.send(b"No error!".to_vec()).await;
                true
            }
            "exit-false" => false,
            "sleep" => {
                sleep(Duration::from_millis(100)).await;
                true
            }
            _ => {
                s.stdout.send(b"unknown command".to_vec()).await;
                true
            }
        };
        s.finish(Ok(success));
    });
    MockShell {
        state,
        stdout: RefCell::new(Some(out_rx)),
        stderr: RefCell::new(Some(err_rx)),
    }
}

impl Shell for MockShell {
    fn stdout(&self) -> Option<StreamReader<u8>> {
        self.stdout.borrow_mut().take()
    }

    fn stderr(&self) -> Option<StreamReader<u8>> {
        self.stderr.borrow_mut().take()
    }

    async fn abort(&self) -> Result<()> {
        if self.state.finish(Err(Error::ShellAborted)) {
            Ok(())
        } else {
            Err(Error::ShellTerminated)
        }
    }

    async fn wait(&self) -> Result<bool> {
        self.state.result.wait().await
    }
}
