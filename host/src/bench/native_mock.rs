//! The mock engine written directly against the worker traits, in Rust, without
//! wasm: the yardstick of `enginehost bench` (what the same task costs with no
//! component boundary) and an engine for worker tests that must not depend on a
//! plugin.
//!
//! It takes the wasm mock's payload (`{delay, function, argument}`, the same
//! schema) and behaves as the wasm mock (plugins/mock, docs/engine-contract.md §4.1)
//! for every function, volumes included. Shells and displays are not offered
//! (feature-not-supported / no displays): they are what the RFB and shell
//! machinery of the wasm mock is for, and nothing that uses this engine needs them.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::contract::{
    ByteStream, Capabilities, Display, DisplayConnection, Engine, EngineError, FileHandler, HttpRequest, ProxyHandler,
    Result, ResultSet, Sandbox, SandboxBuilder, Section, Shell, TaskContext, Volume, VolumeBuilder, WorkerControl,
};
use crate::schema::Compiled;

/// The wasm mock's payload schema, the same file.
const PAYLOAD_SCHEMA: &str = include_str!("../../../plugins/mock/payload-schema.json");

fn payload_schema() -> Value {
    serde_json::from_str(PAYLOAD_SCHEMA).expect("the mock's payload schema is JSON")
}

static VALIDATOR: LazyLock<Arc<Compiled>> =
    LazyLock::new(|| Arc::new(Compiled::new(&payload_schema()).expect("the mock's schema compiles")));

/// The native mock engine.
pub struct NativeMock {
    worker: Arc<WorkerControl>,
}

impl NativeMock {
    /// A mock whose `stopNow-sleep` asks `worker` to stop.
    pub fn new(worker: Arc<WorkerControl>) -> Arc<NativeMock> {
        Arc::new(NativeMock { worker })
    }
}

#[derive(serde::Deserialize)]
struct Payload {
    delay: u64,
    function: String,
    argument: String,
}

#[async_trait]
impl Engine for NativeMock {
    fn name(&self) -> &str {
        "native-mock"
    }

    fn documentation(&self) -> Vec<Section> {
        vec![Section {
            title: "Native mock".into(),
            content: "The mock engine without wasm: `delay` ms, then `function` with `argument`.".into(),
        }]
    }

    fn payload_schema(&self) -> Value {
        VALIDATOR.schema().clone()
    }

    fn payload_validator(&self) -> Arc<Compiled> {
        VALIDATOR.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    fn volume_schema(&self) -> Value {
        json!({"type": "object"})
    }

    async fn new_sandbox_builder(&self, context: TaskContext, payload: Value) -> Result<Box<dyn SandboxBuilder>> {
        let payload: Payload = serde_json::from_value(payload)
            .map_err(|e| EngineError::malformed(format!("task.payload does not fit the mock payload schema: {e}")))?;
        if payload.function == "malformed-payload-initial" {
            tokio::time::sleep(Duration::from_millis(payload.delay)).await;
            return Err(EngineError::malformed(payload.argument));
        }
        Ok(Box::new(Builder(Arc::new(Task {
            context,
            payload,
            worker: self.worker.clone(),
            state: Mutex::default(),
            resolution: watch::channel(None).0,
        }))))
    }

    async fn new_volume_builder(&self, _options: Value) -> Result<Box<dyn VolumeBuilder>> {
        Ok(Box::new(MockVolumeBuilder::default()))
    }

    async fn new_volume(&self, _options: Value) -> Result<Arc<dyn Volume>> {
        Ok(Arc::new(MockVolume::default()))
    }

    async fn dispose(&self) -> Result<()> {
        Ok(())
    }
}

/// A volume's files: name → content.
type Files = Arc<Mutex<BTreeMap<String, String>>>;

/// How a task resolved: `Ok(success)` or the error of wait-for-result.
type Resolution = std::result::Result<bool, EngineError>;

#[derive(Default)]
struct State {
    env: BTreeMap<String, String>,
    proxies: BTreeMap<String, Arc<dyn ProxyHandler>>,
    mounts: BTreeMap<String, (Files, bool)>,
    files: BTreeMap<String, String>,
    started: bool,
}

/// One task: builder, sandbox and result set.
struct Task {
    context: TaskContext,
    payload: Payload,
    worker: Arc<WorkerControl>,
    state: Mutex<State>,
    resolution: watch::Sender<Option<Resolution>>,
}

impl Task {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves the task; the first resolution wins.
    fn resolve(&self, resolution: Resolution) -> bool {
        self.resolution.send_if_modified(|r| {
            if r.is_some() {
                return false;
            }
            *r = Some(resolution);
            true
        })
    }

    fn resolved(&self) -> Option<Resolution> {
        self.resolution.borrow().clone()
    }

    fn log(&self, message: &str) {
        self.context.log().log(message);
    }

    async fn run_function(&self) -> Resolution {
        let arg = self.payload.argument.as_str();
        match self.payload.function.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            "write-volume" => Ok(self.write_volume(arg)),
            "read-volume" => Ok(self.read_volume(arg)),
            "get-url" => Err(EngineError::FeatureNotSupported),
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
                tokio::time::sleep(Duration::from_millis(500)).await;
                Ok(true)
            }
            "write-files" => {
                let mut state = self.state();
                for path in arg.split(' ').filter(|p| !p.is_empty()) {
                    state.files.insert(path.to_string(), "Hello World".to_string());
                }
                Ok(true)
            }
            "print-env-var" => {
                let value = self.state().env.get(arg).cloned();
                self.log(value.as_deref().unwrap_or(""));
                Ok(value.is_some())
            }
            "fatal-internal-error" => Err(EngineError::FatalInternalError(
                "the mock was asked to fail fatally".into(),
            )),
            "nonfatal-internal-error" => Err(EngineError::NonFatalInternalError("the mock was asked to fail".into())),
            "malformed-payload-after-start" => Err(EngineError::malformed(arg)),
            "stopNow-sleep" => {
                self.worker.stop_now();
                tokio::time::sleep(Duration::from_millis(500)).await;
                Ok(true)
            }
            // Built into the host, it has no instance to trap.
            "trap-engine" => Err(EngineError::NonFatalInternalError(
                "the native mock cannot trap: it is not a WebAssembly instance".into(),
            )),
            other => Err(EngineError::malformed(format!("unknown mock function '{other}'"))),
        }
    }

    fn mount_and_file<'a>(&self, arg: &'a str) -> Option<(Files, bool, &'a str)> {
        let (mount, rest) = arg.split_once('/')?;
        let (files, read_only) = self.state().mounts.get(mount).cloned()?;
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
        lock(&files).insert(file.to_string(), data.to_string());
        true
    }

    fn read_volume(&self, arg: &str) -> bool {
        let Some((files, _, file)) = self.mount_and_file(arg) else {
            return false;
        };
        let content = lock(&files).get(file).cloned().unwrap_or_default();
        self.log(&content);
        !content.is_empty()
    }

    async fn ping_proxy(&self, url: &str) -> bool {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let Some(handler) = self.state().proxies.get(host).cloned() else {
            self.log(&format!("No proxy for hostname: {host}"));
            return false;
        };
        self.log("Pinging");
        let response = handler
            .handle(HttpRequest {
                method: "GET".into(),
                path: path.into(),
                headers: Vec::new(),
                body: Vec::new(),
            })
            .await;
        self.log(&String::from_utf8_lossy(&response.body));
        response.status == 200
    }
}

fn lock(files: &Files) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
    files.lock().unwrap_or_else(|e| e.into_inner())
}

/// Inserts a named thing, with the mock's rules (no spaces, no duplicates).
fn insert_named<V>(map: &mut BTreeMap<String, V>, what: &str, name: &str, value: V) -> Result<()> {
    if name.contains(' ') {
        return Err(EngineError::malformed(format!(
            "MockEngine {what} names cannot contain space, got '{name}'"
        )));
    }
    if map.contains_key(name) {
        return Err(EngineError::NamingConflict);
    }
    map.insert(name.to_string(), value);
    Ok(())
}

struct Builder(Arc<Task>);

#[async_trait]
impl SandboxBuilder for Builder {
    async fn attach_volume(&self, mountpoint: &str, volume: &dyn Volume, read_only: bool) -> Result<()> {
        let Some(volume) = volume.as_any().downcast_ref::<MockVolume>() else {
            return Err(EngineError::ContractViolation(
                "a volume of another engine was attached".into(),
            ));
        };
        if mountpoint.contains(' ') {
            return Err(EngineError::malformed("MockEngine mountpoints cannot contain space"));
        }
        let files = volume.0.clone();
        insert_named(&mut self.0.state().mounts, "mountpoint", mountpoint, (files, read_only))
    }

    async fn attach_proxy(&self, name: &str, handler: Arc<dyn ProxyHandler>) -> Result<()> {
        insert_named(&mut self.0.state().proxies, "proxy", name, handler)
    }

    async fn set_environment_variable(&self, name: &str, value: &str) -> Result<()> {
        insert_named(&mut self.0.state().env, "environment variable", name, value.to_string())
    }

    async fn start(&self) -> Result<Arc<dyn Sandbox>> {
        if std::mem::replace(&mut self.0.state().started, true) {
            return Err(EngineError::ContractViolation(
                "start was called twice on one sandbox builder".into(),
            ));
        }
        let task = self.0.clone();
        tokio::spawn(async move {
            if task.payload.delay > 0 {
                let mut resolved = task.resolution.subscribe();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(task.payload.delay)) => {}
                    _ = resolved.wait_for(Option::is_some) => return,
                }
            }
            if task.resolved().is_some() {
                return; // killed or aborted during the delay
            }
            let result = task.run_function().await;
            task.resolve(result);
        });
        Ok(Arc::new(MockSandbox(self.0.clone())))
    }

    async fn discard(&self) -> Result<()> {
        Ok(())
    }
}

struct MockSandbox(Arc<Task>);

#[async_trait]
impl Sandbox for MockSandbox {
    async fn wait_for_result(&self) -> Result<Arc<dyn ResultSet>> {
        let mut resolved = self.0.resolution.subscribe();
        let resolution = resolved
            .wait_for(Option::is_some)
            .await
            .map_err(|_| EngineError::ContractViolation("the task is gone".into()))?
            .clone();
        match resolution {
            Some(Ok(_)) => Ok(Arc::new(MockResults(self.0.clone()))),
            Some(Err(e)) => Err(e),
            None => unreachable!("waited for a resolution"),
        }
    }

    async fn new_shell(&self, _command: &[String], _tty: bool) -> Result<Box<dyn Shell>> {
        Err(EngineError::FeatureNotSupported)
    }

    async fn list_displays(&self) -> Result<Vec<Display>> {
        Ok(Vec::new())
    }

    async fn open_display(&self, _name: &str) -> Result<DisplayConnection> {
        Err(EngineError::NoSuchDisplay)
    }

    async fn abort(&self) -> Result<()> {
        if self.0.resolve(Err(EngineError::SandboxAborted)) {
            Ok(())
        } else {
            Err(EngineError::SandboxTerminated)
        }
    }

    async fn kill(&self) -> Result<()> {
        if self.0.resolve(Ok(false)) {
            return Ok(());
        }
        match self.0.resolved() {
            Some(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

struct MockResults(Arc<Task>);

#[async_trait]
impl ResultSet for MockResults {
    fn success(&self) -> bool {
        matches!(self.0.resolved(), Some(Ok(true)))
    }

    async fn extract_file(&self, path: &str) -> Result<ByteStream> {
        match self.0.state().files.get(path) {
            Some(content) if !content.is_empty() => Ok(ByteStream::from_bytes(content.clone().into_bytes())),
            _ => Err(EngineError::ResourceNotFound),
        }
    }

    async fn extract_folder(&self, path: &str, handler: FileHandler) -> Result<()> {
        let prefix = if path.ends_with('/') {
            path.to_string()
        } else {
            format!("{path}/")
        };
        let matches: Vec<(String, String)> = self
            .0
            .state()
            .files
            .iter()
            .filter_map(|(p, c)| p.strip_prefix(&prefix).map(|rel| (rel.to_string(), c.clone())))
            .collect();
        if matches.is_empty() {
            return Err(EngineError::ResourceNotFound);
        }
        let calls = matches
            .into_iter()
            .map(|(rel, content)| handler(rel, ByteStream::from_bytes(content.into_bytes())));
        let results = futures::future::join_all(calls).await;
        if results.iter().any(|r| r.is_err()) {
            Err(EngineError::HandlerInterrupt)
        } else {
            Ok(())
        }
    }

    async fn archive_sandbox(&self) -> Result<ByteStream> {
        Err(EngineError::FeatureNotSupported)
    }

    async fn dispose(&self) -> Result<()> {
        Ok(())
    }
}

/// An in-memory volume.
#[derive(Default)]
struct MockVolume(Files);

#[async_trait]
impl Volume for MockVolume {
    async fn dispose(&self) -> Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[derive(Default)]
struct MockVolumeBuilder {
    files: Files,
}

#[async_trait]
impl VolumeBuilder for MockVolumeBuilder {
    async fn write_folder(&self, _name: &str) -> Result<()> {
        Ok(())
    }

    async fn write_file(&self, name: &str, data: ByteStream) -> Result<()> {
        let bytes = data.read_to_end().await;
        lock(&self.files).insert(name.to_string(), String::from_utf8_lossy(&bytes).into_owned());
        Ok(())
    }

    async fn build(&self) -> Result<Arc<dyn Volume>> {
        Ok(Arc::new(MockVolume(self.files.clone())))
    }

    async fn discard(&self) -> Result<()> {
        Ok(())
    }
}
