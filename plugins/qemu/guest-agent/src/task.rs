//! The task: `GET /engine/v1/execute` (retried until the host answers), the command in its own
//! session with stdout and stderr merged on one pipe, that pipe streamed live as a chunked
//! `POST /engine/v1/log`, then `PUT /engine/v1/success|failed`. Also owns the agent's shared
//! state (task env, running pids) and kill-process (SIGTERM, SIGKILL 5 s later).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, PipeReader, Read};
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::http::{self, ChunkedRequest};
use crate::reaper::{self, Exit};
use crate::{log, sys};

/// How long output may stay open after the task's process exited (a process that left the
/// task's session can hold the pipe): then the log is closed anyway.
const OUTPUT_GRACE: Duration = Duration::from_secs(5);
/// kill-process: SIGTERM first, SIGKILL this much later if the process is still there.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// The answer of `GET /engine/v1/execute`.
#[derive(Deserialize)]
pub struct Execute {
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// State shared by the task and the action threads.
pub struct Agent {
    /// The full environment of the task and its shells (`sys::task_env`).
    pub env: BTreeMap<String, String>,
    task: Mutex<Option<i32>>,
    shells: Mutex<BTreeSet<i32>>,
}

impl Agent {
    pub fn new(payload_env: &BTreeMap<String, String>) -> Agent {
        Agent {
            env: sys::task_env(payload_env),
            task: Mutex::new(None),
            shells: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn add_shell(&self, pid: i32) {
        self.shells.lock().unwrap().insert(pid);
    }

    pub fn remove_shell(&self, pid: i32) {
        self.shells.lock().unwrap().remove(&pid);
    }

    /// kill-process: SIGTERM to the task's and every shell's process group, SIGKILL to those
    /// still running 5 s later. Returns at once.
    pub fn kill(&self) {
        let mut pids: Vec<i32> = self.shells.lock().unwrap().iter().copied().collect();
        pids.extend(*self.task.lock().unwrap());
        pids.retain(|&p| reaper::signal_group_if_running(p, libc::SIGTERM));
        if !pids.is_empty() {
            thread::spawn(move || {
                thread::sleep(KILL_GRACE);
                for p in pids {
                    reaper::signal_group_if_running(p, libc::SIGKILL);
                }
            });
        }
    }
}

/// Retry delays: every 100 ms for the first second, then growing to 1 s.
pub struct Backoff {
    tries: u32,
    delay: Duration,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            tries: 0,
            delay: Duration::from_millis(100),
        }
    }

    /// Sleeps; returns true every 10th time (for rate-limited logging).
    pub fn sleep(&mut self) -> bool {
        thread::sleep(self.delay);
        self.tries += 1;
        if self.tries >= 10 {
            self.delay = (self.delay * 3 / 2).min(Duration::from_secs(1));
        }
        self.tries % 10 == 1
    }
}

/// Asks for the task until the host gives a valid answer (it may not be listening yet).
pub fn fetch_execute() -> Execute {
    let mut backoff = Backoff::new();
    loop {
        let why = match http::request("GET", "/engine/v1/execute", &[], b"", Duration::from_secs(60)) {
            Ok((200, body)) => match serde_json::from_slice::<Execute>(&body) {
                Ok(e) => return e,
                Err(e) => format!("bad execute answer: {e}"),
            },
            Ok((status, _)) => format!("execute answered {status}"),
            Err(e) => format!("execute: {e}"),
        };
        if backoff.sleep() {
            log!("{why} (retrying)");
        }
    }
}

/// A started task: its output pipe and log request, and its pid (None if it could not start).
pub struct Running {
    pid: Option<i32>,
    output: Option<PipeReader>,
    log: Option<ChunkedRequest>,
}

/// Opens the log request and starts the command. A command that cannot start is reported in the
/// log and ends as `failed` with exit code 127.
pub fn start(agent: &Agent, command: &[String]) -> Running {
    let mut log = ChunkedRequest::start(
        "POST",
        "/engine/v1/log",
        &[("Content-Type", "application/octet-stream")],
    )
    .map_err(|e| log!("cannot open the log request: {e}"))
    .ok();
    let started = (|| {
        if command.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
        }
        let (reader, writer) = io::pipe()?;
        let mut cmd = sys::command(command, &agent.env);
        cmd.stdin(Stdio::null()).stdout(writer.try_clone()?).stderr(writer);
        let child = reaper::spawn(&mut cmd, true)?;
        Ok((child.id() as i32, reader)) // `cmd` drops here: the parent's write ends close
    })();
    match started {
        Ok((pid, reader)) => {
            *agent.task.lock().unwrap() = Some(pid);
            Running {
                pid: Some(pid),
                output: Some(reader),
                log,
            }
        }
        Err(e) => {
            let msg = format!("enginehost-agent: cannot run {command:?}: {e}\n");
            if let Some(l) = &mut log {
                let _ = l.chunk(msg.as_bytes());
            }
            Running {
                pid: None,
                output: None,
                log,
            }
        }
    }
}

impl Running {
    /// Streams the output to EOF, waits for the exit, closes the log, then reports the result.
    pub fn finish(mut self) {
        let (tx, rx) = mpsc::channel();
        if let Some(pid) = self.pid {
            thread::spawn(move || tx.send(reaper::wait(pid)));
        }
        let seen = self.output.take().and_then(|output| self.stream(output, &rx));
        let exit = match (seen, self.pid) {
            (Some(exit), _) => exit,
            (None, Some(_)) => rx.recv().unwrap(),
            (None, None) => Exit::Code(127),
        };
        if let Some(l) = self.log.take() {
            match l.finish(Duration::from_secs(60)) {
                Ok(s) if (200..300).contains(&s) => {}
                Ok(s) => log!("log request answered {s}"),
                Err(e) => log!("log request failed: {e}"),
            }
        }
        report(exit);
    }

    /// One chunk per read. Stops at EOF, or OUTPUT_GRACE after the exit if the pipe stays open.
    /// Returns the exit status if it arrived meanwhile.
    fn stream(&mut self, mut output: PipeReader, exited: &mpsc::Receiver<Exit>) -> Option<Exit> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut exited_at: Option<(Instant, Exit)> = None;
        loop {
            if exited_at.is_none() {
                exited_at = exited.try_recv().ok().map(|e| (Instant::now(), e));
            }
            if let Some((at, _)) = exited_at
                && at.elapsed() > OUTPUT_GRACE
            {
                self.send(b"\nenginehost-agent: output still open 5 s after the task exited; log closed\n");
                break;
            }
            let mut pfd = libc::pollfd {
                fd: output.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
                continue;
            }
            match output.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.send(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log!("reading task output: {e}");
                    break;
                }
            }
        }
        exited_at.map(|(_, e)| e)
    }

    fn send(&mut self, data: &[u8]) {
        if let Some(l) = &mut self.log
            && let Err(e) = l.chunk(data)
        {
            log!("log request broke: {e}; output is dropped from here on");
            self.log.take().unwrap().abandon();
        }
    }
}

/// `PUT /engine/v1/success` (exit code 0) or `/failed`, retried until the host takes it.
fn report(exit: Exit) {
    let (path, body) = match exit {
        Exit::Code(0) => ("/engine/v1/success", serde_json::json!({ "exitCode": 0 })),
        Exit::Code(c) => ("/engine/v1/failed", serde_json::json!({ "exitCode": c })),
        Exit::Signal(s) => ("/engine/v1/failed", serde_json::json!({ "signal": s })),
    };
    let body = body.to_string();
    let mut backoff = Backoff::new();
    loop {
        match http::request(
            "PUT",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
            Duration::from_secs(60),
        ) {
            Ok((s, _)) if (200..300).contains(&s) => return,
            Ok((s, _)) => log!("{path} answered {s} (retrying)"),
            Err(e) => log!("{path}: {e} (retrying)"),
        }
        backoff.sleep();
    }
}
