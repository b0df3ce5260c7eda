//! The worker traits: the engine contract as async Rust traits, mirroring
//! `wit/engine.wit` item for item. The worker and the conformance suite use only
//! this module; nothing here names wasmtime. The WIT comments are the reference for
//! what each operation means; the seed is docs/engine-contract.md §2.
#![deny(missing_docs)]

mod context;
mod error;
mod log;
pub mod metrics;
mod streams;
mod usage;

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use serde_json::Value;

pub use context::{TaskContext, TaskInfo, WorkerControl, scopes_cover};
pub use error::EngineError;
pub use log::{LogReader, TaskLog};
pub use streams::{ByteSink, ByteStream, byte_pipe};
pub use usage::{TaskUsage, UsageReport};

/// `Result` with [`EngineError`].
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// A markdown section of end-user documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The section title.
    pub title: String,
    /// Markdown; may use `###` and deeper.
    pub content: String,
}

/// Features that need an up-front check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Most sandboxes at once; 0 = unbounded.
    pub max_concurrency: u32,
}

/// A display a sandbox offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Display {
    /// Its name, for `open_display`.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// Pixels; 0 = unknown.
    pub width: u32,
    /// Pixels; 0 = unknown.
    pub height: u32,
}

/// An open display: write the VNC client's bytes into `input`, read the RFB
/// server's bytes from `output`. Dropping `input` ends the client side.
pub struct DisplayConnection {
    /// Client to server.
    pub input: ByteSink,
    /// Server to client.
    pub output: ByteStream,
}

/// An HTTP request from the sandbox to an attached proxy (prefix stripped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path with the proxy name stripped, e.g. `/v1/ping`.
    pub path: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// The proxy handler's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The HTTP status code.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Answers the requests a sandbox makes to an attached proxy name.
#[async_trait]
pub trait ProxyHandler: Send + Sync {
    /// Handles one request.
    async fn handle(&self, request: HttpRequest) -> HttpResponse;
}

/// Called by `extract_folder` for each file: a relative `/`-separated path and its
/// contents. An `Err` interrupts the iteration.
pub type FileHandler = Arc<dyn Fn(String, ByteStream) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Where an engine's code came from: what a signed record of a task (the chain of
/// trust) names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Provenance {
    /// The plugin's version (its metadata).
    pub version: String,
    /// The sha256 of the plugin's `.wasm`, hex.
    pub sha256: String,
}

/// An engine, constructed from its config by the plugin runtime.
#[async_trait]
pub trait Engine: Send + Sync {
    /// The engine's name (`mock`).
    fn name(&self) -> &str;
    /// The code the engine runs (none for an engine built into the host).
    fn provenance(&self) -> Option<Provenance> {
        None
    }
    /// End-user documentation.
    fn documentation(&self) -> Vec<Section>;
    /// JSON Schema of the engine's keys in `task.payload`.
    fn payload_schema(&self) -> Value;
    /// The payload schema, compiled once (when the engine started).
    fn payload_validator(&self) -> Arc<crate::schema::Compiled>;
    /// Constant features.
    fn capabilities(&self) -> Capabilities;
    /// JSON Schema of volume options.
    fn volume_schema(&self) -> Value;
    /// Starts preparing a sandbox; `payload` holds only the engine's keys, valid.
    async fn new_sandbox_builder(&self, context: TaskContext, payload: Value) -> Result<Box<dyn SandboxBuilder>>;
    /// A volume to fill before use.
    async fn new_volume_builder(&self, options: Value) -> Result<Box<dyn VolumeBuilder>>;
    /// An empty volume.
    async fn new_volume(&self, options: Value) -> Result<Arc<dyn Volume>>;
    /// Frees engine-wide resources; call after every other object is gone.
    async fn dispose(&self) -> Result<()>;
    /// Tears the engine's live instance down as a trap does, with `reason` (the
    /// conformance suite's Recover case). False when there is no instance to
    /// tear down (an engine built into the host).
    async fn inject_trap(&self, _reason: &str) -> bool {
        false
    }
}

/// Collects what a task needs before it starts. All methods may race.
#[async_trait]
pub trait SandboxBuilder: Send + Sync {
    /// Mounts a volume of this engine.
    async fn attach_volume(&self, mountpoint: &str, volume: &dyn Volume, read_only: bool) -> Result<()>;
    /// Routes the sandbox's requests for `name` to `handler`.
    async fn attach_proxy(&self, name: &str, handler: Arc<dyn ProxyHandler>) -> Result<()>;
    /// Sets an environment variable; a second set of one name is a naming conflict.
    async fn set_environment_variable(&self, name: &str, value: &str) -> Result<()>;
    /// Starts the task (at most once).
    async fn start(&self) -> Result<Arc<dyn Sandbox>>;
    /// Frees what the builder holds; a no-op after a successful start.
    async fn discard(&self) -> Result<()>;
}

/// A running task.
#[async_trait]
pub trait Sandbox: Send + Sync {
    /// Waits for the result; repeated calls return the same result set or error.
    async fn wait_for_result(&self) -> Result<Arc<dyn ResultSet>>;
    /// Starts a shell (an empty command means the default shell).
    async fn new_shell(&self, command: &[String], tty: bool) -> Result<Box<dyn Shell>>;
    /// The displays the sandbox offers.
    async fn list_displays(&self) -> Result<Vec<Display>>;
    /// Opens a display's raw RFB stream.
    async fn open_display(&self, name: &str) -> Result<DisplayConnection>;
    /// Kills and discards everything; wait then gives sandbox-aborted.
    async fn abort(&self) -> Result<()>;
    /// Kills the task; wait then gives a failed result set.
    async fn kill(&self) -> Result<()>;
    /// The engine did not end the task (kill and abort were ignored): stop the
    /// engine itself; calls in flight on it then fail. Default: nothing to stop.
    async fn terminate(&self, _reason: &str) {}
}

/// A shell in a sandbox.
#[async_trait]
pub trait Shell: Send + Sync {
    /// Standard input (taken once); dropping it sends end-of-file.
    fn stdin(&self) -> Option<ByteSink>;
    /// Standard output (taken once); ends cleanly when the shell ends.
    fn stdout(&self) -> Option<ByteStream>;
    /// Standard error (taken once); ends cleanly when the shell ends.
    fn stderr(&self) -> Option<ByteStream>;
    /// Resizes the tty.
    async fn set_size(&self, columns: u16, rows: u16) -> Result<()>;
    /// Kills the shell.
    async fn abort(&self) -> Result<()>;
    /// Waits for the shell: true iff it exited 0.
    async fn wait(&self) -> Result<bool>;
}

/// What a finished sandbox leaves behind.
#[async_trait]
pub trait ResultSet: Send + Sync {
    /// Whether the task succeeded.
    fn success(&self) -> bool;
    /// The contents of one file.
    async fn extract_file(&self, path: &str) -> Result<ByteStream>;
    /// Calls `handler` for every file under `path`.
    async fn extract_folder(&self, path: &str, handler: FileHandler) -> Result<()>;
    /// A tar of the whole sandbox.
    async fn archive_sandbox(&self) -> Result<ByteStream>;
    /// Frees everything but attached volumes.
    async fn dispose(&self) -> Result<()>;
    /// The engine stopped making progress (an extraction stalled): stop the engine
    /// itself; calls in flight on it then fail. Default: nothing to stop.
    async fn terminate(&self, _reason: &str) {}
}

/// Storage that outlives tasks.
#[async_trait]
pub trait Volume: Send + Sync {
    /// Deletes the storage.
    async fn dispose(&self) -> Result<()>;
    /// Whether the volume is gone with the engine instance that made it (a trap):
    /// a worker keeping it for later tasks drops it instead. Default: never.
    fn is_lost(&self) -> bool {
        false
    }
    /// For engines to recognise their own volumes.
    fn as_any(&self) -> &dyn Any;
}

/// Fills a volume before first use.
#[async_trait]
pub trait VolumeBuilder: Send + Sync {
    /// Creates a folder.
    async fn write_folder(&self, name: &str) -> Result<()>;
    /// Writes a file with the bytes of `data`.
    async fn write_file(&self, name: &str, data: ByteStream) -> Result<()>;
    /// Finishes the volume.
    async fn build(&self) -> Result<Arc<dyn Volume>>;
    /// Abandons the builder.
    async fn discard(&self) -> Result<()>;
}
