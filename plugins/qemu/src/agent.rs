//! The host side of the guest agent's protocol (docs/engines/qemu-agent.md), served
//! on the task's endpoint: `execute` hands out the command, the log body goes
//! into the task log host-side (a `body-to-log` route), `success`/`failed` report
//! the result, and actions (artifacts, shells, kill) go out through long polls,
//! their answers coming back as `reply?id=` requests.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use enginehost_sdk::caps::endpoint::{self, Action, BodyEnd, Endpoint, Request};
use enginehost_sdk::{Error, Signal, StreamResult, TaskContext, sleep, spawn_local};
use futures::FutureExt;
use futures::channel::oneshot;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::recovery::{Keeper, Record};

/// How long a poll is held when there is nothing to do (the agent waits 90 s).
const POLL_HOLD: Duration = Duration::from_secs(25);
/// The largest JSON body read from the agent.
const MAX_JSON: usize = 1 << 20;
/// How long a task taken over waits for the log's end after the result.
const LOG_GRACE: Duration = Duration::from_secs(5);

/// Now, in milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How the agent reported the task's end.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub enum Reported {
    Exit(i64),
    Signal(i64),
}

/// The agent's side of one task.
pub struct Agent {
    /// The agent's first `execute` (the boot is over).
    pub booted: Signal<()>,
    /// `success` or `failed`.
    pub reported: Signal<Reported>,
    /// How the log body ended.
    pub log_end: Signal<BodyEnd>,
    /// The VM is gone: actions fail from now on.
    pub gone: Signal<()>,
    /// The body of `execute` (JSON).
    execute: String,
    actions: RefCell<VecDeque<Value>>,
    wake: RefCell<Signal<()>>,
    waiting: RefCell<HashMap<String, oneshot::Sender<Request>>>,
    next_id: Cell<u64>,
    /// Which instance of the task this is (see `recovery`; above 0 when taken
    /// over from a record): action ids are `<epoch>.<n>`.
    epoch: u32,
    /// qemu's pid, once it runs: from then on each step is recorded.
    pid: Cell<Option<u32>>,
    /// When the boot must be over (Unix ms; kept across recoveries).
    boot_by_ms: Cell<u64>,
    pub keeper: Keeper,
}

/// Reads a small body (at most [`MAX_JSON`] bytes).
pub async fn small_body(request: &Request) -> Vec<u8> {
    let Some(mut rx) = request.body().await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    loop {
        let (result, chunk) = rx.read(Vec::with_capacity(16 * 1024)).await;
        if out.len() + chunk.len() > MAX_JSON {
            return out;
        }
        out.extend_from_slice(&chunk);
        match result {
            StreamResult::Complete(_) => continue,
            StreamResult::Dropped | StreamResult::Cancelled => return out,
        }
    }
}

/// Answers with an empty body (errors mean the agent went away: nothing to do).
pub async fn empty(request: &Request, status: u16) {
    let _ = request.respond_bytes(status, &[], Vec::new()).await;
}

impl Agent {
    pub fn new(context: Rc<TaskContext>, command: &[String], env: &[(String, String)]) -> Rc<Agent> {
        let env: serde_json::Map<String, Value> = env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        Rc::new(Self::with(
            context,
            json!({"command": command, "env": env}).to_string(),
            0,
        ))
    }

    fn with(context: Rc<TaskContext>, execute: String, epoch: u32) -> Agent {
        Agent {
            booted: Signal::new(),
            reported: Signal::new(),
            log_end: Signal::new(),
            gone: Signal::new(),
            execute,
            actions: RefCell::default(),
            wake: RefCell::new(Signal::new()),
            waiting: RefCell::default(),
            next_id: Cell::new(1),
            epoch,
            pid: Cell::new(None),
            boot_by_ms: Cell::new(0),
            keeper: Keeper::new(context),
        }
    }

    /// The agent's side of a task taken over from `record`: where the protocol
    /// was, and the next epoch (recorded at once).
    pub fn restore(context: Rc<TaskContext>, record: &Record) -> Rc<Agent> {
        let agent = Self::with(context, record.execute.clone(), record.epoch + 1);
        if record.booted {
            agent.booted.set(());
        }
        if let Some(complete) = record.log_complete {
            agent.log_end.set(if complete {
                BodyEnd::Complete
            } else {
                BodyEnd::Truncated
            });
        }
        if let Some(reported) = record.reported {
            agent.reported.set(reported);
        }
        agent.running(record.pid, record.boot_by_ms);
        Rc::new(agent)
    }

    /// qemu runs as `pid` and must boot by `boot_by_ms`: the task can be taken
    /// over from now on.
    pub fn running(&self, pid: u32, boot_by_ms: u64) {
        self.pid.set(Some(pid));
        self.boot_by_ms.set(boot_by_ms);
        self.save();
    }

    /// How long the boot may still take.
    pub fn boot_left(&self) -> Duration {
        Duration::from_millis(self.boot_by_ms.get().saturating_sub(unix_ms()))
    }

    /// How the log request ended, once it did. The agent reports the result
    /// after its log request ended, but on another connection, so the log's
    /// end may come just after the result. A task taken over in the moment the
    /// old instance had the log request and had not recorded it would wait for
    /// it forever: then, after a grace, the log counts as whole.
    pub async fn log_ended(&self) -> BodyEnd {
        if self.epoch == 0 {
            return self.log_end.wait().await;
        }
        futures::select! {
            end = self.log_end.wait().fuse() => end,
            _ = sleep(LOG_GRACE).fuse() => BodyEnd::Complete,
        }
    }

    /// Records where the protocol is (called right after each step).
    fn save(&self) {
        let Some(pid) = self.pid.get() else { return };
        self.keeper.save(&Record {
            pid,
            boot_by_ms: self.boot_by_ms.get(),
            epoch: self.epoch,
            execute: self.execute.clone(),
            booted: self.booted.is_set(),
            log_complete: self.log_end.get().map(|end| matches!(end, BodyEnd::Complete)),
            reported: self.reported.get(),
        });
    }

    /// The routes of the protocol on `ep`.
    pub fn routes(ep: &Endpoint) -> Result<(), Error> {
        let add = |method: &str, path: &str, action: Action| {
            ep.add_route(&endpoint::route(Some(method), path, action))
                .map_err(|e| Error::NonFatalInternalError(format!("adding the route {path}: {}", e.message())))
        };
        add("GET", "/engine/v1/execute", Action::Engine)?;
        add("POST", "/engine/v1/log", Action::BodyToLog(String::new()))?;
        add("PUT", "/engine/v1/success", Action::Engine)?;
        add("PUT", "/engine/v1/failed", Action::Engine)?;
        add("GET", "/engine/v1/poll", Action::Engine)?;
        add("POST", "/engine/v1/reply", Action::Engine)?;
        ep.add_route(&endpoint::route(
            None,
            "/engine/*",
            endpoint::fixed(404, &[("content-type", "text/plain")], "no such engine path\n"),
        ))
        .map_err(|e| Error::NonFatalInternalError(format!("adding the route /engine/*: {}", e.message())))
    }

    /// Serves the endpoint's engine requests until it closes.
    pub async fn serve(self: Rc<Self>, ep: Rc<Endpoint>) {
        while let Some(request) = ep.next_request().await {
            let agent = self.clone();
            spawn_local(async move { agent.handle(request).await });
        }
    }

    async fn handle(&self, request: Request) {
        let target = request.target();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        match path {
            "/engine/v1/execute" => {
                if self.booted.set(()) {
                    self.save();
                }
                let _ = request
                    .respond_bytes(
                        200,
                        &[("content-type", "application/json")],
                        self.execute.clone().into_bytes(),
                    )
                    .await;
            }
            "/engine/v1/log" => {
                let end = request.body_end().await;
                if self.log_end.set(end) {
                    self.save();
                }
                empty(&request, 200).await;
            }
            "/engine/v1/success" | "/engine/v1/failed" => {
                let body: Value = serde_json::from_slice(&small_body(&request).await).unwrap_or(Value::Null);
                let reported = match (body["exitCode"].as_i64(), body["signal"].as_i64()) {
                    (Some(code), _) => Reported::Exit(code),
                    (None, Some(signal)) => Reported::Signal(signal),
                    _ => return empty(&request, 400).await,
                };
                if self.reported.set(reported) {
                    self.save();
                }
                empty(&request, 200).await;
            }
            "/engine/v1/poll" => self.poll(request).await,
            "/engine/v1/reply" => {
                let id = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("id="))
                    .unwrap_or_default()
                    .to_string();
                let waiter = self.waiting.borrow_mut().remove(&id);
                match waiter {
                    Some(tx) => {
                        if let Err(request) = tx.send(request) {
                            empty(&request, 410).await;
                        }
                    }
                    None => empty(&request, 404).await,
                }
            }
            _ => empty(&request, 404).await,
        }
    }

    async fn poll(&self, request: Request) {
        let give_up = sleep(POLL_HOLD).fuse();
        futures::pin_mut!(give_up);
        loop {
            let next = self.actions.borrow_mut().pop_front();
            if let Some(action) = next {
                let body = action.to_string().into_bytes();
                if request
                    .respond_bytes(200, &[("content-type", "application/json")], body)
                    .await
                    .is_err()
                {
                    // The agent went away before it had it: the next poll gets it.
                    self.actions.borrow_mut().push_front(action);
                }
                return;
            }
            let wake = self.wake.borrow().clone();
            futures::select! {
                _ = wake.wait().fuse() => continue,
                _ = give_up => break,
                _ = self.gone.wait().fuse() => break,
            }
        }
        let _ = request
            .respond_bytes(
                200,
                &[("content-type", "application/json")],
                br#"{"type":"none"}"#.to_vec(),
            )
            .await;
    }

    /// Sends `action` (its `type` and fields; the id is added) to the agent and
    /// waits for its reply request. `None` if the VM went away first.
    pub async fn ask(&self, mut action: Value) -> Option<Request> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let id = format!("{}.{id}", self.epoch);
        action["id"] = json!(id);
        let (tx, rx) = oneshot::channel();
        self.waiting.borrow_mut().insert(id.clone(), tx);
        self.actions.borrow_mut().push_back(action);
        let wake = std::mem::replace(&mut *self.wake.borrow_mut(), Signal::new());
        wake.set(());
        let answer = futures::select! {
            r = rx.fuse() => r.ok(),
            _ = self.gone.wait().fuse() => None,
        };
        if answer.is_none() {
            self.waiting.borrow_mut().remove(&id);
            self.actions.borrow_mut().retain(|a| a["id"] != json!(id));
        }
        answer
    }
}

/// Where the task's log ends: a note the engine writes itself.
pub async fn note(context: &TaskContext, line: &str) {
    enginehost_sdk::write_log_bytes(context, format!("[qemu] {line}\n").into_bytes()).await;
}
