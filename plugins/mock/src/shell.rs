//! Mock shells (seed `mockshell.go`): read all of stdin, then `print-hello` writes
//! `Hello World` to stdout and `No error!` to stderr and exits true; `exit-false`
//! exits false; `sleep` sleeps 100 ms and exits true; anything else writes
//! `unknown command` and exits true. Both pipes then end. Commands and ttys are not
//! supported; `set-size` answers feature-not-supported.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use enginehost_sdk::{
    Error, Result, Shell, Signal, StreamReader, StreamWriter, byte_stream, read_all, sleep, spawn_local,
};

use crate::sandbox::MockTask;

/// Shared between the shell handle, its task and the sandbox (which aborts it).
pub struct ShellState {
    stdout: RefCell<Option<StreamWriter<u8>>>,
    stderr: RefCell<Option<StreamWriter<u8>>>,
    result: Signal<Result<bool>>,
    session_closed: Cell<bool>,
    task: Rc<MockTask>,
}

impl ShellState {
    /// Resolves the shell (first wins), ends both pipes and the session.
    pub fn finish(&self, result: Result<bool>) -> bool {
        let won = self.result.set(result);
        self.stdout.borrow_mut().take();
        self.stderr.borrow_mut().take();
        if !self.session_closed.replace(true) {
            self.task.sessions.close();
        }
        won
    }

    async fn write(&self, pipe: &RefCell<Option<StreamWriter<u8>>>, text: &str) {
        let Some(mut writer) = pipe.borrow_mut().take() else {
            return;
        };
        let _ = writer.write_all(text.as_bytes().to_vec()).await;
        if !self.result.is_set() {
            *pipe.borrow_mut() = Some(writer);
        }
    }
}

/// The shell handle.
pub struct MockShell {
    state: Rc<ShellState>,
    stdout: RefCell<Option<StreamReader<u8>>>,
    stderr: RefCell<Option<StreamReader<u8>>>,
}

/// Starts a shell on `task` reading its script from `stdin`.
pub(crate) fn start(task: &Rc<MockTask>, stdin: StreamReader<u8>) -> MockShell {
    let (out_tx, out_rx) = byte_stream();
    let (err_tx, err_rx) = byte_stream();
    task.sessions.open();
    let state = Rc::new(ShellState {
        stdout: RefCell::new(Some(out_tx)),
        stderr: RefCell::new(Some(err_tx)),
        result: Signal::new(),
        session_closed: Cell::new(false),
        task: task.clone(),
    });
    task.shells.borrow_mut().push(state.clone());
    let s = state.clone();
    spawn_local(async move {
        let script = read_all(stdin).await;
        let script = String::from_utf8_lossy(&script);
        let success = match script.trim() {
            "print-hello" => {
                s.write(&s.stdout, "Hello World").await;
                s.write(&s.stderr, "No error!").await;
                true
            }
            "exit-false" => false,
            "sleep" => {
                sleep(Duration::from_millis(100)).await;
                true
            }
            _ => {
                s.write(&s.stdout, "unknown command").await;
                true
            }
        };
        s.finish(Ok(success));
        s.task.shells.borrow_mut().retain(|other| !Rc::ptr_eq(other, &s));
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
