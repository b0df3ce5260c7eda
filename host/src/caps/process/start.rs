//! Starting a process ([`spawn`]) and acting on one ([`Process`]). In `spawn`,
//! the policy checks (run-as, pty, exec, env, the per-task limit) come before
//! anything touches the host; every other call acts only on the process it is
//! called on.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use super::egress;
use super::resolve::{check_env, resolve};
use super::{Command, CopyGuard, Input, OutputTo, ProcEntry, copy};
use crate::caps::os::cgroup::Cgroup;
use crate::caps::os::spawn::{self, ExitStatus, Output, SpawnSpec, Stderr, Stdin};
use crate::caps::scope::{SandboxDir, TaskScope};
use crate::caps::{CapResult, TaskHandle, TaskUser, check, invalid, os_error};
use crate::contract::{ByteStream, byte_pipe};
use crate::policy::{RunAs, TaskEgress};

/// How long a process may take to die after KILL before the host stops waiting.
const GRACE_CAP: Duration = Duration::from_secs(300);

/// Where an output goes on the host side of the spawn.
enum Route {
    Null,
    Pipe,
    Log(String),
    File(std::fs::File),
    Stdout,
}

fn route(sandbox: &SandboxDir, out: OutputTo, is_stderr: bool) -> CapResult<Route> {
    Ok(match out {
        OutputTo::Null => Route::Null,
        OutputTo::Pipe => Route::Pipe,
        OutputTo::TaskLog(prefix) => Route::Log(prefix),
        OutputTo::File(rel) => Route::File(sandbox.open_file(&rel, true)?),
        OutputTo::Stdout if is_stderr => Route::Stdout,
        OutputTo::Stdout => return Err(invalid("stdout cannot go to `stdout`; that is for stderr")),
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

/// `spawn`: starts `command` for the task, as the worker's user or as `user` (a
/// user of this task), in its sandbox directory and its own cgroup.
pub(crate) async fn spawn(task: &TaskHandle, mut command: Command, user: Option<&TaskUser>) -> CapResult<Process> {
    let scope = task.scope.clone();
    let policy = scope.engine.policy.clone();
    // The checks: nothing below this block happens unless the policy allows it.
    let who = if user.is_some() { RunAs::TaskUser } else { RunAs::Worker };
    check(&policy, policy.run_as(who))?;
    if command.pty.is_some() {
        check(&policy, policy.pty())?;
    }
    let argv0 = command.argv.first().cloned().unwrap_or_default();
    let search_path = policy.search_path();
    let early = resolve(&argv0, &search_path, None, &command.cwd)?;
    check(&policy, policy.exec(&early.candidates))?;
    // The loader's, shells' and interpreters' variables make a granted program run
    // other code: only by name, from both sides' env-allow.
    for (name, _) in &command.env {
        check(&policy, policy.env(name))?;
    }
    let log = task.ctx.log().clone();
    let user = user.map(|u| (u.ids(), scope.has_user(u.uid())));
    let stdin_bytes = match std::mem::replace(&mut command.stdin, Input::Null) {
        Input::Bytes(data) => Some(data),
        other => {
            command.stdin = other;
            None
        }
    };
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

    let pty = command.pty;
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
    let weak: std::sync::Weak<ProcEntry> = Arc::downgrade(&entry);
    scope.add_process(weak)?;
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
    Ok(Process(entry))
}

/// The host side of a `process`: dropping the last handle kills its tree.
pub struct Process(pub(crate) Arc<ProcEntry>);

impl Process {
    /// Its pid.
    pub(crate) fn pid(&self) -> u32 {
        self.0.child.pid()
    }

    /// Its stdout, once, when it was a `pipe` (copied through a bounded channel).
    pub(crate) fn take_stdout(&self) -> Option<ByteStream> {
        pipe_stream(self.0.stdout.lock().expect("pipe slot").take())
    }

    /// Its stderr, once, when it was a `pipe`.
    pub(crate) fn take_stderr(&self) -> Option<ByteStream> {
        pipe_stream(self.0.stderr.lock().expect("pipe slot").take())
    }

    /// Resolves with its exit status.
    pub(crate) fn wait(&self) -> impl Future<Output = ExitStatus> + Send + use<> {
        let entry = self.0.clone();
        async move { entry.wait().await }
    }

    /// Resolves when every host copy of its output reached end of file.
    pub(crate) fn drained(&self) -> impl Future<Output = ()> + Send + use<> {
        let entry = self.0.clone();
        async move { entry.drained().await }
    }

    /// TERM to its tree, KILL after `grace_ms` (at most five minutes), then waits
    /// until the tree is empty.
    pub(crate) fn kill_tree(&self, grace_ms: u32) -> impl Future<Output = ()> + Send + use<> {
        let entry = self.0.clone();
        async move {
            entry
                .kill_tree(Duration::from_millis(grace_ms.into()).min(GRACE_CAP))
                .await
        }
    }

    /// Sends `sig` (a signal number) to the process, or to its whole tree.
    pub(crate) fn signal(&self, sig: i32, tree: bool) -> CapResult<()> {
        if tree {
            self.0.signal_tree(sig);
            return Ok(());
        }
        self.0
            .child
            .signal(sig)
            .map_err(|err| os_error("signalling the process", err))
    }

    /// Resizes its pty.
    pub(crate) fn resize(&self, columns: u16, rows: u16) -> CapResult<()> {
        let Some(pty) = &self.0.pty else {
            return Err(invalid("the process has no pty to resize"));
        };
        pty.resize(columns, rows)
            .map_err(|err| os_error("resizing the pty", err))
    }
}

/// A pipe the engine takes, as a byte stream (copied through a bounded channel).
fn pipe_stream(pipe: Option<super::Pipe>) -> Option<ByteStream> {
    let mut pipe = pipe?;
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
    Some(stream)
}
