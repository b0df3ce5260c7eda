//! The `process` imports. In `spawn`, the policy checks (run-as, pty, exec, the
//! per-task limit) come before anything touches the host; every other call acts
//! only on the process it is called on.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use wasmtime::component::{Accessor, HasSelf, Resource, StreamReader};

use super::egress;
use super::resolve::{check_env, resolve};
use super::{CopyGuard, ProcEntry, ProcessRes, copy};
use crate::caps::os::cgroup::Cgroup;
use crate::caps::os::spawn::{self, ExitStatus, Ids, Output, SpawnSpec, Stderr, Stdin};
use crate::caps::scope::{SandboxDir, TaskScope};
use crate::caps::{CapResult, TaskUserRes, denied, invalid, os_error};
use crate::contract::{ByteStream, TaskLog, byte_pipe};
use crate::policy::{RunAs, TaskEgress};
use crate::runtime::HostState;
use crate::runtime::bindings::process::{self as wit, Command, Input, Output as WitOutput, Signal, Size};
use crate::runtime::imports::TaskContextRes;
use crate::runtime::streams::{guest_stream, host_stream};

/// How long a process may take to die after KILL before the host stops waiting.
const GRACE_CAP: Duration = Duration::from_secs(300);

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

/// Where an output goes on the host side of the spawn.
enum Route {
    Null,
    Pipe,
    Log(String),
    File(std::fs::File),
    Stdout,
}

fn route(sandbox: &SandboxDir, out: WitOutput, is_stderr: bool) -> CapResult<Route> {
    Ok(match out {
        WitOutput::Null => Route::Null,
        WitOutput::Pipe => Route::Pipe,
        WitOutput::TaskLog(prefix) => Route::Log(prefix),
        WitOutput::File(rel) => Route::File(sandbox.open_file(&rel, true)?),
        WitOutput::Stdout if is_stderr => Route::Stdout,
        WitOutput::Stdout => return Err(invalid("stdout cannot go to `stdout`; that is for stderr")),
    })
}

fn spec_output(r: &mut Route) -> Output {
    match std::mem::replace(r, Route::Null) {
        Route::Null | Route::Stdout => Output::Null,
        Route::Pipe => {
            *r = Route::Pipe;
            Output::Pipe
        }
        Route::Log(p) => {
            *r = Route::Log(p);
            Output::Pipe
        }
        Route::File(f) => Output::File(f),
    }
}

/// What `spawn` learns from the Store before it leaves it.
struct Request {
    log: TaskLog,
    scope: Arc<TaskScope>,
    user: Option<(Ids, bool)>,
    /// The engine's stdin bytes, taken over before any check (a refused call then
    /// ends the engine's stream cleanly).
    stdin_bytes: Option<ByteStream>,
}

async fn spawn_checked(req: Request, command: Command) -> CapResult<Arc<ProcEntry>> {
    let Request {
        log,
        scope,
        user,
        stdin_bytes,
    } = req;
    let policy = scope.engine.policy.clone();
    // The checks: nothing below this block happens unless the policy allows it.
    let who = if user.is_some() { RunAs::TaskUser } else { RunAs::Worker };
    if let Err(d) = policy.run_as(who) {
        return denied(&policy, d);
    }
    if command.pty.is_some()
        && let Err(d) = policy.pty()
    {
        return denied(&policy, d);
    }
    let argv0 = command.argv.first().cloned().unwrap_or_default();
    let search_path = policy.search_path();
    let early = resolve(&argv0, &search_path, None, &command.cwd)?;
    if let Err(d) = policy.exec(&early.candidates) {
        return denied(&policy, d);
    }
    // The loader's, shells' and interpreters' variables make a granted program run
    // other code: only by name, from both sides' env-allow.
    for (name, _) in &command.env {
        if let Err(d) = policy.env(name) {
            return denied(&policy, d);
        }
    }
    scope.count_spawn(policy.max_processes_per_task())?;
    check_env(&command.env)?;
    if let Some((_, belongs)) = &user
        && !belongs
    {
        return Err(invalid("the user belongs to another task"));
    }

    let sandbox = scope.sandbox()?;
    let resolved = resolve(&argv0, &search_path, Some(&sandbox.path), &command.cwd)?;
    TaskScope::check_relative(&command.cwd)?;
    let cwd_rel = if command.cwd.is_empty() {
        "."
    } else {
        command.cwd.as_str()
    };
    let cwd: OwnedFd = sandbox
        .dir
        .open_dir(cwd_rel)
        .map_err(|e| invalid(format!("working directory '{}': {e}", command.cwd)))?
        .into_std_file()
        .into();

    let pty = command.pty.map(|Size { columns, rows }| (columns, rows));
    let stdin = match command.stdin {
        Input::Null | Input::Bytes(_) if pty.is_some() || stdin_bytes.is_some() => Stdin::Pipe,
        Input::Null | Input::Bytes(_) => Stdin::Null,
        Input::File(_) if pty.is_some() => return Err(invalid("with a pty, stdin must be null or bytes")),
        Input::File(rel) => Stdin::File(sandbox.open_file(&rel, false)?),
    };
    let mut out = route(&sandbox, command.stdout, false)?;
    let mut err = route(&sandbox, command.stderr, true)?;
    if pty.is_some() && matches!(out, Route::File(_)) {
        return Err(invalid("with a pty, stdout must be null, pipe or task-log"));
    }
    let stdout = if pty.is_some() {
        Output::Pipe
    } else {
        spec_output(&mut out)
    };
    let stderr = match (&err, pty) {
        (_, Some(_)) => Stderr::Null,
        (Route::Stdout, None) => Stderr::Stdout,
        _ => match spec_output(&mut err) {
            Output::Null => Stderr::Null,
            Output::Pipe => Stderr::Pipe,
            Output::File(f) => Stderr::File(f),
        },
    };

    let cgroup = match scope.cgroup()? {
        Some(task_cgroup) => {
            let name = format!("p{}", scope.spawned());
            Some(Cgroup::create(&task_cgroup, &name).map_err(|e| os_error("creating the process's cgroup", e))?)
        }
        None => None,
    };
    let cgroup_procs = match &cgroup {
        Some(c) => Some(c.open_procs().map_err(|e| os_error("opening cgroup.procs", e))?),
        None => None,
    };
    let also_join = scope.bounds_to_join()?;
    let mut env = command.env;
    let netns = match policy.task_network() {
        TaskEgress::None => Some(scope.netns()?.0),
        TaskEgress::Proxy => {
            let (ns, fresh) = scope.netns()?;
            if fresh {
                egress::start(&scope, &ns, log.clone())?;
            }
            egress::add_proxy_env(&mut env);
            Some(ns)
        }
        TaskEgress::Host => None,
    };
    let spec = SpawnSpec {
        program: resolved.program,
        argv: command.argv,
        env,
        cwd,
        ids: user.map(|(ids, _)| ids),
        cgroup_procs,
        also_join,
        netns,
        stdin,
        stdout,
        stderr,
        pty,
    };
    let mut child = spawn::spawn(spec).map_err(|e| invalid(format!("cannot start '{argv0}': {e}")))?;

    // When it exits, the task log says which of the task's limits were hit meanwhile.
    let mut status = child.status();
    let (hits_scope, hits_log) = (scope.clone(), log.clone());
    let reporter = tokio::spawn(async move {
        let _ = status.wait_for(Option::is_some).await;
        for hit in hits_scope.bound_hits() {
            hits_log.log_error(&hit);
        }
    });
    scope.add_host_task(reporter.abort_handle());

    let (copies, _) = watch::channel(0usize);
    let child_stdout = child.take_stdout();
    let child_stderr = child.take_stderr();
    let child_stdin = child.take_stdin();
    let entry = Arc::new(ProcEntry {
        pty: child.pty(),
        child,
        cgroup,
        stdout: Mutex::new(None),
        stderr: Mutex::new(None),
        copies,
    });
    scope.add_process(&entry)?;
    for (pipe, route, slot) in [(child_stdout, out, &entry.stdout), (child_stderr, err, &entry.stderr)] {
        let Some(pipe) = pipe else { continue };
        match route {
            Route::Log(prefix) => {
                let guard = CopyGuard::new(&entry.copies);
                let task = tokio::spawn(copy::to_log(pipe, log.clone(), prefix, guard));
                scope.add_host_task(task.abort_handle());
            }
            _ => *slot.lock().expect("pipe slot") = Some(pipe),
        }
    }
    if let (Some(mut writer), Some(mut bytes)) = (child_stdin, stdin_bytes) {
        let task = tokio::spawn(async move {
            while let Some(chunk) = bytes.next_chunk().await {
                if writer.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let _ = writer.shutdown().await;
        });
        scope.add_host_task(task.abort_handle());
    }
    Ok(entry)
}

impl<T> wit::HostWithStore<T> for HasSelf<HostState> {
    async fn spawn(
        acc: &Accessor<T, Self>,
        task: Resource<TaskContextRes>,
        mut command: Command,
        user: Option<Resource<TaskUserRes>>,
    ) -> wasmtime::Result<CapResult<Resource<ProcessRes>>> {
        let stdin_bytes = match std::mem::replace(&mut command.stdin, Input::Null) {
            Input::Bytes(data) => Some(guest_stream(acc, data)?),
            other => {
                command.stdin = other;
                None
            }
        };
        let req = acc.with(|mut a| -> wasmtime::Result<Request> {
            let state = a.get();
            let t = state.table.get(&task)?;
            let (log, scope) = (t.ctx.log().clone(), t.scope.clone());
            let user = match &user {
                Some(u) => {
                    let u = state.table.get(u)?;
                    Some((u.ids(), scope.has_user(u.user.uid)))
                }
                None => None,
            };
            Ok(Request {
                log,
                scope,
                user,
                stdin_bytes,
            })
        })?;
        match spawn_checked(req, command).await {
            Ok(entry) => Ok(Ok(acc.with(|mut a| a.get().table.push(ProcessRes(entry)))?)),
            Err(e) => Ok(Err(e)),
        }
    }
}

impl wit::Host for HostState {}

fn entry(state: &mut HostState, r: &Resource<ProcessRes>) -> wasmtime::Result<Arc<ProcEntry>> {
    Ok(state.table.get(r)?.0.clone())
}

/// A pipe the engine takes, as a guest stream (copied through a bounded channel).
fn pipe_stream<T>(
    acc: &Accessor<T, HasSelf<HostState>>,
    pipe: Option<super::Pipe>,
) -> wasmtime::Result<Option<StreamReader<u8>>> {
    let Some(mut pipe) = pipe else { return Ok(None) };
    let (sink, stream): (_, ByteStream) = byte_pipe();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !sink.send(buf[..n].to_vec()).await {
                        break;
                    }
                }
            }
        }
    });
    Ok(Some(host_stream(acc, stream)?))
}

impl<T> wit::HostProcessWithStore<T> for HasSelf<HostState> {
    async fn take_stdout(
        acc: &Accessor<T, Self>,
        r: Resource<ProcessRes>,
    ) -> wasmtime::Result<Option<StreamReader<u8>>> {
        let e = acc.with(|mut a| entry(a.get(), &r))?;
        let pipe = e.stdout.lock().expect("pipe slot").take();
        pipe_stream(acc, pipe)
    }

    async fn take_stderr(
        acc: &Accessor<T, Self>,
        r: Resource<ProcessRes>,
    ) -> wasmtime::Result<Option<StreamReader<u8>>> {
        let e = acc.with(|mut a| entry(a.get(), &r))?;
        let pipe = e.stderr.lock().expect("pipe slot").take();
        pipe_stream(acc, pipe)
    }

    async fn wait(acc: &Accessor<T, Self>, r: Resource<ProcessRes>) -> wasmtime::Result<wit::ExitStatus> {
        let e = acc.with(|mut a| entry(a.get(), &r))?;
        Ok(exit_status(e.wait().await))
    }

    async fn drained(acc: &Accessor<T, Self>, r: Resource<ProcessRes>) -> wasmtime::Result<()> {
        let e = acc.with(|mut a| entry(a.get(), &r))?;
        e.drained().await;
        Ok(())
    }

    async fn kill_tree(
        acc: &Accessor<T, Self>,
        r: Resource<ProcessRes>,
        grace_ms: u32,
    ) -> wasmtime::Result<CapResult<()>> {
        let e = acc.with(|mut a| entry(a.get(), &r))?;
        e.kill_tree(Duration::from_millis(grace_ms.into()).min(GRACE_CAP)).await;
        Ok(Ok(()))
    }
}

impl wit::HostProcess for HostState {
    fn pid(&mut self, r: Resource<ProcessRes>) -> wasmtime::Result<u32> {
        Ok(entry(self, &r)?.child.pid())
    }

    fn signal(&mut self, r: Resource<ProcessRes>, sig: Signal, tree: bool) -> wasmtime::Result<CapResult<()>> {
        let e = entry(self, &r)?;
        let sig = signal_number(sig);
        if tree {
            e.signal_tree(sig);
            return Ok(Ok(()));
        }
        Ok(e.child
            .signal(sig)
            .map_err(|err| os_error("signalling the process", err)))
    }

    fn resize(&mut self, r: Resource<ProcessRes>, size: Size) -> wasmtime::Result<CapResult<()>> {
        let e = entry(self, &r)?;
        let Some(pty) = &e.pty else {
            return Ok(Err(invalid("the process has no pty to resize")));
        };
        Ok(pty
            .resize(size.columns, size.rows)
            .map_err(|err| os_error("resizing the pty", err)))
    }

    fn drop(&mut self, r: Resource<ProcessRes>) -> wasmtime::Result<()> {
        // Dropping the last Arc kills the tree (ProcEntry's Drop).
        self.table.delete(r)?;
        Ok(())
    }
}
