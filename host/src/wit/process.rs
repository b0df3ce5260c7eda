//! Glue of `interface process` (`crate::caps::process`): WIT commands, signals
//! and exit statuses converted; streams bridged.

use wasmtime::component::{Accessor, Resource, StreamReader};

use super::bindings::process::{self as wit, Input, Output, Signal, Size};
use super::streams::{guest_stream, host_stream};
use super::{Caps, WitResult, wit as w};
use crate::caps::os::spawn::ExitStatus;
use crate::caps::process::{Command, Input as In, OutputTo};
use crate::caps::{self, CapsCtxView, Process, TaskHandle, TaskUser};

fn signal_number(sig: Signal) -> i32 {
    match sig {
        Signal::Hup => libc::SIGHUP,
        Signal::Int => libc::SIGINT,
        Signal::Quit => libc::SIGQUIT,
        Signal::Kill => libc::SIGKILL,
        Signal::Term => libc::SIGTERM,
        Signal::Usr1 => libc::SIGUSR1,
        Signal::Usr2 => libc::SIGUSR2,
        Signal::Stop => libc::SIGSTOP,
        Signal::Cont => libc::SIGCONT,
    }
}

fn exit_status(s: ExitStatus) -> wit::ExitStatus {
    match s {
        ExitStatus::Code(c) => wit::ExitStatus::Code(c),
        ExitStatus::Signal(s) => wit::ExitStatus::Signal(s),
    }
}

fn output(o: Output) -> OutputTo {
    match o {
        Output::Null => OutputTo::Null,
        Output::Pipe => OutputTo::Pipe,
        Output::TaskLog(prefix) => OutputTo::TaskLog(prefix),
        Output::File(rel) => OutputTo::File(rel),
        Output::Stdout => OutputTo::Stdout,
    }
}

fn process<T>(acc: &Accessor<T, Caps>, r: &Resource<Process>) -> wasmtime::Result<Process> {
    acc.with(|mut a| Ok(Process(a.get().table.get(r)?.0.clone())))
}

impl<T> wit::HostWithStore<T> for Caps {
    async fn spawn(
        acc: &Accessor<T, Self>,
        r: Resource<TaskHandle>,
        command: wit::Command,
        user: Option<Resource<TaskUser>>,
    ) -> wasmtime::Result<WitResult<Resource<Process>>> {
        // The engine's stdin bytes are taken over before any check: a refused call
        // then ends the engine's stream cleanly.
        let stdin = match command.stdin {
            Input::Null => In::Null,
            Input::Bytes(data) => In::Bytes(guest_stream(acc, data)?),
            Input::File(rel) => In::File(rel),
        };
        let command = Command {
            argv: command.argv,
            env: command.env,
            cwd: command.cwd,
            stdin,
            stdout: output(command.stdout),
            stderr: output(command.stderr),
            pty: command.pty.map(|Size { columns, rows }| (columns, rows)),
        };
        let (task, user) = acc.with(|mut a| -> wasmtime::Result<(TaskHandle, Option<TaskUser>)> {
            let view = a.get();
            let task = view.table.get(&r)?.clone();
            let user = match &user {
                Some(u) => Some(view.table.get(u)?.clone()),
                None => None,
            };
            Ok((task, user))
        })?;
        match caps::process::spawn(&task, command, user.as_ref()).await {
            Ok(process) => Ok(Ok(acc.with(|mut a| a.get().table.push(process))?)),
            Err(e) => Ok(Err(e.into())),
        }
    }
}

impl wit::Host for CapsCtxView<'_> {
    fn adopt(&mut self, r: Resource<TaskHandle>, pid: u32) -> wasmtime::Result<WitResult<Resource<Process>>> {
        let task = self.table.get(&r)?.clone();
        match caps::process::adopt(&task, pid) {
            Ok(process) => Ok(Ok(self.table.push(process)?)),
            Err(e) => Ok(Err(e.into())),
        }
    }
}

impl<T> wit::HostProcessWithStore<T> for Caps {
    async fn take_stdout(acc: &Accessor<T, Self>, r: Resource<Process>) -> wasmtime::Result<Option<StreamReader<u8>>> {
        match process(acc, &r)?.take_stdout() {
            Some(stream) => Ok(Some(host_stream(acc, stream)?)),
            None => Ok(None),
        }
    }

    async fn take_stderr(acc: &Accessor<T, Self>, r: Resource<Process>) -> wasmtime::Result<Option<StreamReader<u8>>> {
        match process(acc, &r)?.take_stderr() {
            Some(stream) => Ok(Some(host_stream(acc, stream)?)),
            None => Ok(None),
        }
    }

    async fn wait(acc: &Accessor<T, Self>, r: Resource<Process>) -> wasmtime::Result<wit::ExitStatus> {
        let wait = process(acc, &r)?.wait();
        Ok(exit_status(wait.await))
    }

    async fn drained(acc: &Accessor<T, Self>, r: Resource<Process>) -> wasmtime::Result<()> {
        let drained = process(acc, &r)?.drained();
        drained.await;
        Ok(())
    }

    async fn kill_tree(
        acc: &Accessor<T, Self>,
        r: Resource<Process>,
        grace_ms: u32,
    ) -> wasmtime::Result<WitResult<()>> {
        let kill = process(acc, &r)?.kill_tree(grace_ms);
        kill.await;
        Ok(Ok(()))
    }
}

impl wit::HostProcess for CapsCtxView<'_> {
    fn pid(&mut self, r: Resource<Process>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&r)?.pid())
    }

    fn signal(&mut self, r: Resource<Process>, sig: Signal, tree: bool) -> wasmtime::Result<WitResult<()>> {
        Ok(w(self.table.get(&r)?.signal(signal_number(sig), tree)))
    }

    fn resize(&mut self, r: Resource<Process>, size: Size) -> wasmtime::Result<WitResult<()>> {
        Ok(w(self.table.get(&r)?.resize(size.columns, size.rows)))
    }

    fn drop(&mut self, r: Resource<Process>) -> wasmtime::Result<()> {
        // Dropping the last Arc kills the tree (ProcEntry's Drop).
        self.table.delete(r)?;
        Ok(())
    }
}
