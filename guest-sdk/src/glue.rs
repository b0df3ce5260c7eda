//! Adapts the SDK traits to the generated `Guest*` traits. One instance serves one
//! engine: `init` stores it in a thread-local, every other call finds it there.
//! Nothing here is meant for engine authors.

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;

use crate::traits::{self, Engine, ResultSet as _, Sandbox as _, SandboxBuilder as _, Shell as _, VolumeBuilder as _};
use crate::wit::enginehost::engine::types::{Display, EngineCapabilities, Error, Section};
use crate::wit::exports::enginehost::engine::engine as x;
use crate::wit::exports::enginehost::engine::recovery as r;
use crate::{FileHandler, ProxyHandler, Result, StreamReader, TaskContext, empty_stream};

thread_local! {
    static ENGINE: RefCell<Option<Rc<dyn Any>>> = const { RefCell::new(None) };
}

fn engine<E: Engine>() -> Result<Rc<E>> {
    let any = ENGINE.with(|e| e.borrow().clone());
    match any.map(|a| a.downcast::<E>()) {
        Some(Ok(engine)) => Ok(engine),
        _ => Err(Error::ContractViolation(
            "the engine was used before `init` succeeded".into(),
        )),
    }
}

fn parse(what: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| Error::MalformedPayload(vec![format!("{what} is not valid JSON: {e}")]))
}

/// The type `export_engine!` exports: implements the generated `Guest` for `E`.
pub struct Exports<E>(PhantomData<E>);

#[doc(hidden)]
pub struct BuilderRes<E: Engine>(E::SandboxBuilder);
#[doc(hidden)]
pub struct SandboxRes<E: Engine>(E::Sandbox);
#[doc(hidden)]
pub struct ShellRes<E: Engine>(E::Shell);
#[doc(hidden)]
pub struct ResultSetRes<E: Engine>(Rc<E::ResultSet>);
#[doc(hidden)]
pub struct VolumeRes<E: Engine>(E::Volume);
#[doc(hidden)]
pub struct VolumeBuilderRes<E: Engine>(E::VolumeBuilder);

impl<E: Engine> x::Guest for Exports<E> {
    type SandboxBuilder = BuilderRes<E>;
    type Sandbox = SandboxRes<E>;
    type Shell = ShellRes<E>;
    type ResultSet = ResultSetRes<E>;
    type Volume = VolumeRes<E>;
    type VolumeBuilder = VolumeBuilderRes<E>;

    fn config_schema() -> String {
        E::config_schema().to_string()
    }
    async fn init(config: String) -> Result<()> {
        let engine = E::new(parse("the engine config", &config)?).await?;
        ENGINE.with(|e| *e.borrow_mut() = Some(Rc::new(engine) as Rc<dyn Any>));
        Ok(())
    }
    fn documentation() -> Vec<Section> {
        engine::<E>().map(|e| e.documentation()).unwrap_or_default()
    }
    fn payload_schema() -> String {
        engine::<E>()
            .map(|e| e.payload_schema())
            .unwrap_or_else(|_| traits::empty_object_schema())
            .to_string()
    }
    fn capabilities() -> EngineCapabilities {
        engine::<E>()
            .map(|e| e.capabilities())
            .unwrap_or(EngineCapabilities { max_concurrency: 0 })
    }
    async fn new_sandbox_builder(context: TaskContext, payload: String) -> Result<x::SandboxBuilder> {
        let payload = parse("task.payload", &payload)?;
        let builder = engine::<E>()?.new_sandbox_builder(context, payload).await?;
        Ok(x::SandboxBuilder::new(BuilderRes::<E>(builder)))
    }
    fn volume_schema() -> String {
        engine::<E>()
            .map(|e| e.volume_schema())
            .unwrap_or_else(|_| traits::empty_object_schema())
            .to_string()
    }
    async fn new_volume_builder(options: String) -> Result<x::VolumeBuilder> {
        let options = parse("the volume options", &options)?;
        let builder = engine::<E>()?.new_volume_builder(options).await?;
        Ok(x::VolumeBuilder::new(VolumeBuilderRes::<E>(builder)))
    }
    async fn new_volume(options: String) -> Result<x::Volume> {
        let options = parse("the volume options", &options)?;
        let volume = engine::<E>()?.new_volume(options).await?;
        Ok(x::Volume::new(VolumeRes::<E>(volume)))
    }
    async fn dispose() -> Result<()> {
        engine::<E>()?.dispose().await
    }
}

impl<E: Engine> r::Guest for Exports<E> {
    async fn recover_sandbox(context: TaskContext, data: Vec<u8>) -> Result<x::Sandbox> {
        let sandbox = engine::<E>()?.recover_sandbox(context, data).await?;
        Ok(x::Sandbox::new(SandboxRes::<E>(sandbox)))
    }
}

impl<E: Engine> x::GuestSandboxBuilder for BuilderRes<E> {
    async fn attach_volume(&self, mountpoint: String, volume: x::VolumeBorrow<'_>, read_only: bool) -> Result<()> {
        let volume = &volume.get::<VolumeRes<E>>().0;
        traits::SandboxBuilder::attach_volume(&self.0, mountpoint, volume, read_only).await
    }
    async fn attach_proxy(&self, name: String, handler: ProxyHandler) -> Result<()> {
        self.0.attach_proxy(name, handler).await
    }
    async fn set_environment_variable(&self, name: String, value: String) -> Result<()> {
        self.0.set_environment_variable(name, value).await
    }
    async fn start(&self) -> Result<x::Sandbox> {
        Ok(x::Sandbox::new(SandboxRes::<E>(self.0.start().await?)))
    }
    async fn discard(&self) -> Result<()> {
        traits::SandboxBuilder::discard(&self.0).await
    }
    fn release(this: x::SandboxBuilder) {
        drop(this)
    }
}

impl<E: Engine> x::GuestSandbox for SandboxRes<E> {
    async fn wait_for_result(&self) -> Result<x::ResultSet> {
        Ok(x::ResultSet::new(ResultSetRes::<E>(self.0.wait_for_result().await?)))
    }
    async fn new_shell(&self, command: Vec<String>, tty: bool, stdin: StreamReader<u8>) -> Result<x::Shell> {
        Ok(x::Shell::new(ShellRes::<E>(
            self.0.new_shell(command, tty, stdin).await?,
        )))
    }
    async fn list_displays(&self) -> Result<Vec<Display>> {
        self.0.list_displays().await
    }
    async fn open_display(&self, name: String, client: StreamReader<u8>) -> Result<StreamReader<u8>> {
        self.0.open_display(name, client).await
    }
    async fn abort(&self) -> Result<()> {
        traits::Sandbox::abort(&self.0).await
    }
    async fn kill(&self) -> Result<()> {
        self.0.kill().await
    }
    fn release(this: x::Sandbox) {
        drop(this)
    }
}

impl<E: Engine> x::GuestShell for ShellRes<E> {
    fn stdout(&self) -> StreamReader<u8> {
        self.0.stdout().unwrap_or_else(empty_stream)
    }
    fn stderr(&self) -> StreamReader<u8> {
        self.0.stderr().unwrap_or_else(empty_stream)
    }
    async fn set_size(&self, columns: u16, rows: u16) -> Result<()> {
        self.0.set_size(columns, rows).await
    }
    async fn abort(&self) -> Result<()> {
        traits::Shell::abort(&self.0).await
    }
    async fn wait(&self) -> Result<bool> {
        self.0.wait().await
    }
    fn release(this: x::Shell) {
        drop(this)
    }
}

impl<E: Engine> x::GuestResultSet for ResultSetRes<E> {
    fn success(&self) -> bool {
        self.0.success()
    }
    async fn extract_file(&self, path: String) -> Result<StreamReader<u8>> {
        self.0.extract_file(path).await
    }
    async fn extract_folder(&self, path: String, handler: &FileHandler) -> Result<()> {
        self.0.extract_folder(path, handler).await
    }
    async fn archive_sandbox(&self) -> Result<StreamReader<u8>> {
        self.0.archive_sandbox().await
    }
    async fn dispose(&self) -> Result<()> {
        traits::ResultSet::dispose(&*self.0).await
    }
    fn release(this: x::ResultSet) {
        drop(this)
    }
}

impl<E: Engine> x::GuestVolume for VolumeRes<E> {
    async fn dispose(&self) -> Result<()> {
        traits::Volume::dispose(&self.0).await
    }
    fn release(this: x::Volume) {
        drop(this)
    }
}

impl<E: Engine> x::GuestVolumeBuilder for VolumeBuilderRes<E> {
    async fn write_folder(&self, name: String) -> Result<()> {
        self.0.write_folder(name).await
    }
    async fn write_file(&self, name: String, data: StreamReader<u8>) -> Result<()> {
        self.0.write_file(name, data).await
    }
    async fn build(&self) -> Result<x::Volume> {
        Ok(x::Volume::new(VolumeRes::<E>(self.0.build().await?)))
    }
    async fn discard(&self) -> Result<()> {
        traits::VolumeBuilder::discard(&self.0).await
    }
    fn release(this: x::VolumeBuilder) {
        drop(this)
    }
}
