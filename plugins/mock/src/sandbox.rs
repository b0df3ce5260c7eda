//! One object is builder, sandbox and result set (seed `mocksandbox.go`).
//!
//! `start` spawns the task: sleep `delay` → run the function → wait for every
//! session (shells, displays) → resolve once. Kill resolves with `success=false`,
//! Abort with `sandbox-aborted`; both end every session. The first resolution wins.
//!
//! Functions: `true`/`false`; `write-volume <mount>/<file>:<data>`;
//! `read-volume <mount>/<file>` (logs it, succeeds iff non-empty); `get-url`
//! (feature-not-supported: the host grants no network yet); `ping-proxy <url>`;
//! `write-log`/`write-error-log` (log, then succeed/fail); `write-log-sleep` (log,
//! sleep 500 ms, succeed); `write-files <p> <p>…` (each holds `Hello World`);
//! `print-env-var <name>`; `fatal-internal-error`, `nonfatal-internal-error`,
//! `malformed-payload-after-start` (wait-for-result returns that error);
//! `stopNow-sleep` (asks the worker to stop, sleeps 500 ms, succeeds);
//! `trap-engine` (panics: the instance traps, and with it every task on it that
//! cannot be recovered).
//!
//! Recovery (contract 0.1.4): a started task with no volume and no proxy (those
//! live in the instance) records its payload, environment and the wall-clock
//! time its delay ends ([`Record`]); a fresh instance takes it over while it is
//! still in its delay ([`MockTask::recover`]). When the delay ends the record is
//! cleared: the function's effects would not be repeated.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use enginehost_sdk::wit::enginehost::engine::host::stop_now;
use enginehost_sdk::{
    Display, Engine, Error, FileHandler, HttpRequest, ProxyHandler, Result, ResultSet, Sandbox, SandboxBuilder,
    SandboxStatus, Shells, StreamReader, TaskContext, malformed, sleep, spawn_local, stream_of,
};

use enginehost_sdk::wasip3::clocks::system_clock;
use serde::{Deserialize, Serialize};

use crate::Payload;
use crate::display::{self, DisplayConn};
use crate::shell::{self, MockShell, ShellState};
use crate::volume::{MockVolume, VolumeFiles};

/// How a task resolved: `Ok(success)` or the error wait-for-result returns.
pub type Resolution = std::result::Result<bool, Error>;

/// The state of one mock task, from builder to result set.
pub struct MockTask {
    pub(crate) context: TaskContext,
    payload: Payload,
    env: RefCell<BTreeMap<String, String>>,
    proxies: RefCell<BTreeMap<String, Rc<ProxyHandler>>>,
    mounts: RefCell<BTreeMap<String, (VolumeFiles, bool)>>,
    files: RefCell<BTreeMap<String, String>>,
    started: Cell<bool>,
    status: SandboxStatus,
    /// The open sessions: the task resolves when none is left.
    shells: Rc<Shells<ShellState>>,
    displays: Rc<Shells<DisplayConn>>,
}

/// The builder handle.
pub struct MockSandboxBuilder(Rc<MockTask>);
/// The sandbox handle.
pub struct MockSandbox(pub(crate) Rc<MockTask>);

impl MockSandboxBuilder {
    pub(crate) fn new(context: TaskContext, payload: Payload) -> Self {
        MockSandboxBuilder(Rc::new(MockTask {
            context,
            payload,
            env: RefCell::default(),
            proxies: RefCell::default(),
            mounts: RefCell::default(),
            files: RefCell::default(),
            started: Cell::new(false),
            status: SandboxStatus::new(),
            shells: Rc::new(Shells::new()),
            displays: Rc::new(Shells::new()),
        }))
    }
}

fn insert_named<V>(map: &RefCell<BTreeMap<String, V>>, what: &str, name: String, value: V) -> Result<()> {
    if name.contains(' ') {
        return Err(malformed(format!(
            "MockEngine {what} names cannot contain space, got '{name}'"
        )));
    }
    let mut map = map.borrow_mut();
    if map.contains_key(&name) {
        return Err(Error::NamingConflict);
    }
    map.insert(name, value);
    Ok(())
}

/// Generic over the engine type so that wrappers (test fixtures) can reuse the mock.
impl<E: Engine<Sandbox = MockSandbox, Volume = MockVolume>> SandboxBuilder<E> for MockSandboxBuilder {
    async fn attach_volume(&self, mountpoint: String, volume: &MockVolume, read_only: bool) -> Result<()> {
        if mountpoint.contains(' ') {
            return Err(malformed("MockEngine mountpoints cannot contain space"));
        }
        insert_named(
            &self.0.mounts,
            "mountpoint",
            mountpoint,
            (volume.files.clone(), read_only),
        )
    }

    async fn attach_proxy(&self, name: String, handler: ProxyHandler) -> Result<()> {
        insert_named(&self.0.proxies, "proxy", name, Rc::new(handler))
    }

    async fn set_environment_variable(&self, name: String, value: String) -> Result<()> {
        insert_named(&self.0.env, "environment variable", name, value)
    }

    async fn start(&self) -> Result<MockSandbox> {
        if self.0.started.replace(true) {
            return Err(Error::ContractViolation(
                "start was called twice on one sandbox builder".into(),
            ));
        }
        let delay = self.0.payload.delay;
        if self.0.mounts.borrow().is_empty() && self.0.proxies.borrow().is_empty() {
            let record = Record {
                payload: self.0.payload.clone(),
                env: self.0.env.borrow().clone(),
                due_ms: now_ms().saturating_add(delay),
            };
            let bytes = serde_json::to_vec(&record).expect("a record serializes");
            if let Err(e) = self.0.context.set_recovery_record(&bytes) {
                self.0.log(&format!("the task cannot be recovered after a trap: {e}"));
            }
        }
        self.0.clone().run(Duration::from_millis(delay));
        Ok(MockSandbox(self.0.clone()))
    }
}

/// What a fresh instance needs to take a mock task over.
#[derive(Serialize, Deserialize)]
pub struct Record {
    payload: Payload,
    env: BTreeMap<String, String>,
    /// When the delay ends: milliseconds since the Unix epoch.
    due_ms: u64,
}

/// The wall clock in milliseconds since the Unix epoch (shared by every instance).
fn now_ms() -> u64 {
    let now = system_clock::now();
    u64::try_from(now.seconds).unwrap_or(0) * 1000 + u64::from(now.nanoseconds / 1_000_000)
}

impl MockTask {
    /// Takes a task over from `record` (a fresh instance after a trap): the rest
    /// of its delay, then its function.
    pub fn recover(context: TaskContext, record: &[u8]) -> Result<MockSandbox> {
        let record: Record = serde_json::from_slice(record)
            .map_err(|e| Error::NonFatalInternalError(format!("the mock's recovery record does not parse: {e}")))?;
        let remaining = record.due_ms.saturating_sub(now_ms());
        let builder = MockSandboxBuilder::new(context, record.payload);
        let task = builder.0;
        *task.env.borrow_mut() = record.env;
        task.started.set(true);
        task.clone().run(Duration::from_millis(remaining));
        Ok(MockSandbox(task))
    }

    /// Runs the task: `delay`, the function, every session's end, the result.
    fn run(self: Rc<Self>, delay: Duration) {
        spawn_local(async move {
            sleep(delay).await;
            if self.status.is_resolved() {
                return; // killed or aborted during the delay
            }
            // From here on a fresh instance would repeat the function's effects.
            let _ = self.context.set_recovery_record(&[]);
            let result = self.run_function().await;
            // Every session (shells and displays) ends first.
            while !(self.shells.is_empty() && self.displays.is_empty()) {
                self.shells.idle().await;
                self.displays.idle().await;
            }
            self.resolve(result);
        });
    }

    /// Resolves the task (first call wins); a winner ends every session.
    pub(crate) fn resolve(&self, resolution: Resolution) -> bool {
        if !self.status.resolve(resolution) {
            return false;
        }
        // Resolved (also by kill or abort): nothing is left to take over.
        let _ = self.context.set_recovery_record(&[]);
        for shell in self.shells.live() {
            shell.finish(Err(Error::ShellAborted));
            self.shells.remove(&shell);
        }
        for conn in self.displays.live() {
            conn.close();
            self.displays.remove(&conn);
        }
        true
    }

    fn log(&self, message: &str) {
        self.context.log(message);
    }

    async fn run_function(&self) -> Resolution {
        let arg = self.payload.argument.as_str();
        match self.payload.function.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            "write-volume" => Ok(self.write_volume(arg)),
            "read-volume" => Ok(self.read_volume(arg)),
            "get-url" => Err(Error::FeatureNotSupported),
            "ping-proxy" => Ok(self.ping_proxy(arg).await),
            "write-log" => {
                self.log(arg);
                Ok(true)
            }
            "write-error-log" => {
                self.log(arg);
                Ok(false)
            }
            "write-log-sleep" => {
                self.log(arg);
                sleep(Duration::from_millis(500)).await;
                Ok(true)
            }
            "write-files" => {
                let mut files = self.files.borrow_mut();
                for path in arg.split(' ').filter(|p| !p.is_empty()) {
                    files.insert(path.to_string(), "Hello World".to_string());
                }
                Ok(true)
            }
            "print-env-var" => {
                let value = self.env.borrow().get(arg).cloned();
                self.log(value.as_deref().unwrap_or(""));
                Ok(value.is_some())
            }
            "fatal-internal-error" => Err(Error::FatalInternalError("the mock was asked to fail fatally".into())),
            "nonfatal-internal-error" => Err(Error::NonFatalInternalError("the mock was asked to fail".into())),
            "malformed-payload-after-start" => Err(malformed(arg)),
            "stopNow-sleep" => {
                stop_now();
                sleep(Duration::from_millis(500)).await;
                Ok(true)
            }
            "trap-engine" => panic!("the mock was asked to trap"),
            other => Err(malformed(format!("unknown mock function '{other}'"))),
        }
    }

    fn mount_and_file<'a>(&self, arg: &'a str) -> Option<(VolumeFiles, bool, &'a str)> {
        let (mount, rest) = arg.split_once('/')?;
        let (files, read_only) = self.mounts.borrow().get(mount).cloned()?;
        Some((files, read_only, rest))
    }

    fn write_volume(&self, arg: &str) -> bool {
        let Some((files, read_only, rest)) = self.mount_and_file(arg) else {
            return false;
        };
        let Some((file, data)) = rest.split_once(':') else {
            return false;
        };
        if read_only {
            return false;
        }
        files.borrow_mut().insert(file.to_string(), data.to_string());
        true
    }

    fn read_volume(&self, arg: &str) -> bool {
        let Some((files, _, file)) = self.mount_and_file(arg) else {
            return false;
        };
        let content = files.borrow().get(file).cloned().unwrap_or_default();
        self.log(&content);
        !content.is_empty()
    }

    async fn ping_proxy(&self, url: &str) -> bool {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let Some(handler) = self.proxies.borrow().get(host).cloned() else {
            self.log(&format!("No proxy for hostname: {host}"));
            return false;
        };
        self.log("Pinging");
        let request = HttpRequest {
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        let response = handler.handle_request(request).await;
        self.log(&String::from_utf8_lossy(&response.body));
        response.status == 200
    }
}

impl<E: Engine<ResultSet = MockTask, Shell = MockShell>> Sandbox<E> for MockSandbox {
    async fn wait_for_result(&self) -> Result<Rc<MockTask>> {
        self.0.status.wait().await?;
        Ok(self.0.clone())
    }

    async fn new_shell(&self, command: Vec<String>, tty: bool, stdin: StreamReader<u8>) -> Result<MockShell> {
        if !command.is_empty() || tty {
            return Err(Error::FeatureNotSupported);
        }
        self.0.status.check_running()?;
        Ok(shell::start(&self.0.shells, stdin))
    }

    async fn list_displays(&self) -> Result<Vec<Display>> {
        Ok(vec![display::mock_display()])
    }

    async fn open_display(&self, name: String, client: StreamReader<u8>) -> Result<StreamReader<u8>> {
        if name != display::NAME {
            return Err(Error::NoSuchDisplay);
        }
        self.0.status.check_running()?;
        let task = self.0.clone();
        let log = move |line: &str| {
            if !task.status.is_resolved() {
                task.context.log(line);
            }
        };
        Ok(display::open(&self.0.displays, client, log))
    }

    async fn abort(&self) -> Result<()> {
        if self.0.resolve(Err(Error::SandboxAborted)) {
            Ok(())
        } else {
            Err(Error::SandboxTerminated)
        }
    }

    async fn kill(&self) -> Result<()> {
        // The mock has nothing to stop: a kill is the end, with failure.
        if let Some(ended) = self.0.status.kill() {
            return ended;
        }
        self.0.resolve(Ok(false));
        Ok(())
    }
}

impl ResultSet for MockTask {
    fn success(&self) -> bool {
        matches!(self.status.get(), Some(Ok(true)))
    }

    async fn extract_file(&self, path: String) -> Result<StreamReader<u8>> {
        let content = self.files.borrow().get(&path).cloned().unwrap_or_default();
        if content.is_empty() {
            return Err(Error::ResourceNotFound);
        }
        Ok(stream_of(content.into_bytes()))
    }

    async fn extract_folder(&self, path: String, handler: &FileHandler) -> Result<()> {
        let prefix = if path.ends_with('/') { path } else { format!("{path}/") };
        let matches: Vec<(String, String)> = self
            .files
            .borrow()
            .iter()
            .filter_map(|(p, c)| p.strip_prefix(&prefix).map(|rel| (rel.to_string(), c.clone())))
            .collect();
        if matches.is_empty() {
            return Err(Error::ResourceNotFound);
        }
        // Like the seed: every handler runs, concurrently; any error interrupts.
        let calls = matches
            .into_iter()
            .map(|(rel, content)| handler.handle_file(rel, stream_of(content.into_bytes())));
        let results = futures::future::join_all(calls).await;
        if results.iter().any(|r| r.is_err()) {
            Err(Error::HandlerInterrupt)
        } else {
            Ok(())
        }
    }
}
