//! The engine author's traits, one per contract resource. Every optional method has
//! the seed's Base default, so an engine implements only what it supports. The
//! meaning of each method is documented on the WIT item of the same name
//! (`wit/engine.wit`).
#![allow(async_fn_in_trait)]

use std::rc::Rc;

use serde_json::{Value, json};

use crate::{
    Display, EngineCapabilities, Error, FileHandler, ProxyHandler, Result, Section, StreamReader, TaskContext,
};

/// The schema of an object with no keys at all (the seed's `schematypes.Object{}`).
pub fn empty_object_schema() -> Value {
    json!({"type": "object", "properties": {}, "additionalProperties": false})
}

/// An engine: the seed's `EngineProvider` (config schema, construction) and `Engine`.
pub trait Engine: Sized + 'static {
    /// What `new_sandbox_builder` returns.
    type SandboxBuilder: SandboxBuilder<Self>;
    /// What `SandboxBuilder::start` returns.
    type Sandbox: Sandbox<Self>;
    /// What `Sandbox::new_shell` returns ([`Unsupported`] if shells are not supported).
    type Shell: Shell;
    /// What `Sandbox::wait_for_result` returns.
    type ResultSet: ResultSet;
    /// Volumes ([`Unsupported`] if volumes are not supported).
    type Volume: Volume;
    /// Volume builders ([`Unsupported`] if volumes are not supported).
    type VolumeBuilder: VolumeBuilder<Self>;

    /// JSON Schema of the operator config. Default: an object with no keys.
    fn config_schema() -> Value {
        empty_object_schema()
    }
    /// Constructs the engine from its (already validated) config.
    async fn new(config: Value) -> Result<Self>;
    /// End-user documentation. Default: none.
    fn documentation(&self) -> Vec<Section> {
        Vec::new()
    }
    /// JSON Schema of the engine's keys in `task.payload`. Default: no keys.
    fn payload_schema(&self) -> Value {
        empty_object_schema()
    }
    /// Constant features. Default: unbounded concurrency.
    fn capabilities(&self) -> EngineCapabilities {
        EngineCapabilities { max_concurrency: 0 }
    }
    /// Starts preparing a sandbox; `payload` is valid against `payload_schema`.
    async fn new_sandbox_builder(self: Rc<Self>, context: TaskContext, payload: Value) -> Result<Self::SandboxBuilder>;
    /// JSON Schema of volume options. Default: no keys.
    fn volume_schema(&self) -> Value {
        empty_object_schema()
    }
    /// A volume to fill before use. Default: feature-not-supported.
    async fn new_volume_builder(self: Rc<Self>, _options: Value) -> Result<Self::VolumeBuilder> {
        Err(Error::FeatureNotSupported)
    }
    /// An empty volume. Default: feature-not-supported.
    async fn new_volume(self: Rc<Self>, _options: Value) -> Result<Self::Volume> {
        Err(Error::FeatureNotSupported)
    }
    /// Frees engine-wide resources. Default: nothing to free.
    async fn dispose(&self) -> Result<()> {
        Ok(())
    }
    /// Takes a running sandbox over after the engine's previous instance trapped
    /// (contract 0.1.4): called on a fresh engine (after [`Engine::new`]) with the
    /// task's context and the last record the sandbox left with
    /// [`TaskContext::set_recovery_record`]. Return a sandbox for the same work:
    /// its `wait_for_result` must give the work's real result. Only tasks that
    /// left a record are recovered; what the old instance held (shells, process
    /// and endpoint handles, volumes) is gone. Default: feature-not-supported
    /// (the task fails, as it always did on a trap).
    async fn recover_sandbox(self: Rc<Self>, _context: TaskContext, _record: Vec<u8>) -> Result<Self::Sandbox> {
        Err(Error::FeatureNotSupported)
    }
}

/// Collects what a task needs before it starts.
pub trait SandboxBuilder<E: Engine>: 'static {
    /// Default: feature-not-supported.
    async fn attach_volume(&self, _mountpoint: String, _volume: &E::Volume, _read_only: bool) -> Result<()> {
        Err(Error::FeatureNotSupported)
    }
    /// Default: feature-not-supported.
    async fn attach_proxy(&self, _name: String, _handler: ProxyHandler) -> Result<()> {
        Err(Error::FeatureNotSupported)
    }
    /// Default: feature-not-supported.
    async fn set_environment_variable(&self, _name: String, _value: String) -> Result<()> {
        Err(Error::FeatureNotSupported)
    }
    /// Starts the task (called at most once).
    async fn start(&self) -> Result<E::Sandbox>;
    /// Default: nothing to free.
    async fn discard(&self) -> Result<()> {
        Ok(())
    }
}

/// A running task.
pub trait Sandbox<E: Engine>: 'static {
    /// Waits for the result; return the same `Rc` every time.
    async fn wait_for_result(&self) -> Result<Rc<E::ResultSet>>;
    /// Default: feature-not-supported.
    async fn new_shell(&self, _command: Vec<String>, _tty: bool, _stdin: StreamReader<u8>) -> Result<E::Shell> {
        Err(Error::FeatureNotSupported)
    }
    /// Default: feature-not-supported.
    async fn list_displays(&self) -> Result<Vec<Display>> {
        Err(Error::FeatureNotSupported)
    }
    /// Default: feature-not-supported.
    async fn open_display(&self, _name: String, _client: StreamReader<u8>) -> Result<StreamReader<u8>> {
        Err(Error::FeatureNotSupported)
    }
    /// Default (the seed's `SandboxBase`): nothing to do.
    async fn abort(&self) -> Result<()> {
        Ok(())
    }
    /// Default: feature-not-supported.
    async fn kill(&self) -> Result<()> {
        Err(Error::FeatureNotSupported)
    }
}

/// A shell in a sandbox.
pub trait Shell: 'static {
    /// Standard output, taken once (`None` afterwards gives the host an empty stream).
    fn stdout(&self) -> Option<StreamReader<u8>> {
        None
    }
    /// Standard error, taken once.
    fn stderr(&self) -> Option<StreamReader<u8>> {
        None
    }
    /// Default: feature-not-supported.
    async fn set_size(&self, _columns: u16, _rows: u16) -> Result<()> {
        Err(Error::FeatureNotSupported)
    }
    /// Default: feature-not-supported.
    async fn abort(&self) -> Result<()> {
        Err(Error::FeatureNotSupported)
    }
    /// Default: feature-not-supported.
    async fn wait(&self) -> Result<bool> {
        Err(Error::FeatureNotSupported)
    }
}

/// What a finished sandbox leaves behind.
pub trait ResultSet: 'static {
    /// Whether the task succeeded.
    fn success(&self) -> bool;
    /// Default: feature-not-supported.
    async fn extract_file(&self, _path: String) -> Result<StreamReader<u8>> {
        Err(Error::FeatureNotSupported)
    }
    /// Default: feature-not-supported.
    async fn extract_folder(&self, _path: String, _handler: &FileHandler) -> Result<()> {
        Err(Error::FeatureNotSupported)
    }
    /// Default: feature-not-supported.
    async fn archive_sandbox(&self) -> Result<StreamReader<u8>> {
        Err(Error::FeatureNotSupported)
    }
    /// Default: nothing to free.
    async fn dispose(&self) -> Result<()> {
        Ok(())
    }
}

/// Storage that outlives tasks.
pub trait Volume: 'static {
    /// Default: nothing to free.
    async fn dispose(&self) -> Result<()> {
        Ok(())
    }
}

/// Fills a volume before first use.
pub trait VolumeBuilder<E: Engine>: 'static {
    /// Default: feature-not-supported.
    async fn write_folder(&self, _name: String) -> Result<()> {
        Err(Error::FeatureNotSupported)
    }
    /// Default: feature-not-supported.
    async fn write_file(&self, _name: String, _data: StreamReader<u8>) -> Result<()> {
        Err(Error::FeatureNotSupported)
    }
    /// Finishes the volume.
    async fn build(&self) -> Result<E::Volume>;
    /// Default: nothing to free.
    async fn discard(&self) -> Result<()> {
        Ok(())
    }
}

/// The associated type to name for a resource the engine does not support: every
/// method answers feature-not-supported.
pub enum Unsupported {}

impl Shell for Unsupported {}

impl ResultSet for Unsupported {
    fn success(&self) -> bool {
        match *self {}
    }
}

impl Volume for Unsupported {}

impl<E: Engine> VolumeBuilder<E> for Unsupported {
    async fn build(&self) -> Result<E::Volume> {
        match *self {}
    }
}
