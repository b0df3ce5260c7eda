//! The worker traits implemented over an engine instance's actor. Each contract
//! object holds a [`Handle`]: the instance it lives in and its `ResourceAny`.
//! Dropping a handle releases the guest resource (the WIT `release` function).
//! After a trap, handles of the dead instance fail with its death message, and
//! [`WasmEngine`] starts a fresh instance (calling `init` again) on next use.

use std::any::Any;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use futures::FutureExt;
use serde_json::Value;
use tokio::sync::OnceCell;
use wasmtime::component::{Resource, ResourceAny, StreamReader};

use super::LoadedPlugin;
use super::actor::Instance;
use super::imports::{FileHandlerRes, ProxyHandlerRes, TaskContextRes};
use super::streams::{ChannelSink, ChannelSource};
use crate::contract::{
    self, ByteSink, ByteStream, Capabilities, DisplayConnection, EngineError, FileHandler, ProxyHandler, Result,
    Section, TaskContext, WorkerControl, byte_pipe,
};

/// Which export a handle belongs to (for `release`).
#[derive(Clone, Copy)]
enum Kind {
    SandboxBuilder,
    Sandbox,
    Shell,
    ResultSet,
    Volume,
    VolumeBuilder,
}

/// A guest resource in one instance.
struct Handle {
    instance: Arc<Instance>,
    res: ResourceAny,
    kind: Kind,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let (res, kind) = (self.res, self.kind);
        self.instance.spawn_call(move |acc, ex| {
            async move {
                match kind {
                    Kind::SandboxBuilder => ex.sandbox_builder().call_release(acc, res).await,
                    Kind::Sandbox => ex.sandbox().call_release(acc, res).await,
                    Kind::Shell => ex.shell().call_release(acc, res).await,
                    Kind::ResultSet => ex.result_set().call_release(acc, res).await,
                    Kind::Volume => ex.volume().call_release(acc, res).await,
                    Kind::VolumeBuilder => ex.volume_builder().call_release(acc, res).await,
                }
            }
            .boxed()
        });
    }
}

/// Flattens a call's two layers of errors (the instance's and the engine's).
fn flat<T>(r: Result<std::result::Result<T, super::bindings::types::Error>>) -> Result<T> {
    r?.map_err(EngineError::from)
}

fn parse_schema(what: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("the engine's {what} is not valid JSON"))
}

/// Instantiates `plugin` once to read its config schema.
pub(crate) async fn config_schema(plugin: &LoadedPlugin) -> anyhow::Result<Value> {
    let instance = Instance::spawn(plugin, WorkerControl::new()).await?;
    let text = instance.call(|acc, ex| ex.call_config_schema(acc).boxed()).await?;
    parse_schema("config schema", &text)
}

/// What `init` established; constant for the engine's life.
struct Described {
    payload_schema: Value,
    volume_schema: Value,
    documentation: Vec<Section>,
    capabilities: Capabilities,
}

/// An engine plugin as a [`contract::Engine`].
pub struct WasmEngine {
    plugin: LoadedPlugin,
    config: String,
    worker: Arc<WorkerControl>,
    current: tokio::sync::Mutex<Arc<Instance>>,
    described: Described,
}

/// Instantiates and calls `init`.
async fn init_instance(
    plugin: &LoadedPlugin,
    config: &str,
    worker: &Arc<WorkerControl>,
) -> anyhow::Result<Arc<Instance>> {
    let instance = Instance::spawn(plugin, worker.clone()).await?;
    let config = config.to_string();
    instance
        .call(move |acc, ex| async move { ex.call_init(acc, config).await }.boxed())
        .await
        .map_err(|e| anyhow!(e))?
        .map_err(|e| anyhow!("the engine refused its config: {}", EngineError::from(e)))?;
    Ok(instance)
}

impl WasmEngine {
    pub(crate) async fn start(
        plugin: LoadedPlugin,
        config: Value,
        worker: Arc<WorkerControl>,
    ) -> anyhow::Result<Arc<Self>> {
        let config = config.to_string();
        let instance = init_instance(&plugin, &config, &worker).await?;
        let (payload, volume, docs, caps) = instance
            .call(|acc, ex| {
                async move {
                    Ok((
                        ex.call_payload_schema(acc).await?,
                        ex.call_volume_schema(acc).await?,
                        ex.call_documentation(acc).await?,
                        ex.call_capabilities(acc).await?,
                    ))
                }
                .boxed()
            })
            .await?;
        let described = Described {
            payload_schema: parse_schema("payload schema", &payload)?,
            volume_schema: parse_schema("volume schema", &volume)?,
            documentation: docs.into_iter().map(Section::from).collect(),
            capabilities: caps.into(),
        };
        Ok(Arc::new(WasmEngine {
            plugin,
            config,
            worker,
            current: tokio::sync::Mutex::new(instance),
            described,
        }))
    }

    /// The live instance, or a fresh one if the last one died.
    async fn instance(&self) -> Result<Arc<Instance>> {
        let mut current = self.current.lock().await;
        if !current.is_alive() {
            *current = init_instance(&self.plugin, &self.config, &self.worker)
                .await
                .map_err(|e| EngineError::PluginFailed {
                    plugin: self.plugin.name.to_string(),
                    reason: format!("restarting: {e:#}"),
                })?;
        }
        Ok(current.clone())
    }
}

#[async_trait]
impl contract::Engine for WasmEngine {
    fn name(&self) -> &str {
        &self.plugin.name
    }
    fn documentation(&self) -> Vec<Section> {
        self.described.documentation.clone()
    }
    fn payload_schema(&self) -> Value {
        self.described.payload_schema.clone()
    }
    fn capabilities(&self) -> Capabilities {
        self.described.capabilities
    }
    fn volume_schema(&self) -> Value {
        self.described.volume_schema.clone()
    }

    async fn new_sandbox_builder(
        &self,
        context: TaskContext,
        payload: Value,
    ) -> Result<Box<dyn contract::SandboxBuilder>> {
        let instance = self.instance().await?;
        let payload = payload.to_string();
        let res = flat(
            instance
                .call(move |acc, ex| {
                    async move {
                        let ctx = acc.with(|mut a| a.get().table.push(TaskContextRes(context)))?;
                        ex.call_new_sandbox_builder(acc, ctx, payload).await
                    }
                    .boxed()
                })
                .await,
        )?;
        Ok(Box::new(WasmSandboxBuilder(Handle {
            instance,
            res,
            kind: Kind::SandboxBuilder,
        })))
    }

    async fn new_volume_builder(&self, options: Value) -> Result<Box<dyn contract::VolumeBuilder>> {
        let instance = self.instance().await?;
        let options = options.to_string();
        let res = flat(
            instance
                .call(move |acc, ex| ex.call_new_volume_builder(acc, options).boxed())
                .await,
        )?;
        Ok(Box::new(WasmVolumeBuilder(Handle {
            instance,
            res,
            kind: Kind::VolumeBuilder,
        })))
    }

    async fn new_volume(&self, options: Value) -> Result<Arc<dyn contract::Volume>> {
        let instance = self.instance().await?;
        let options = options.to_string();
        let res = flat(
            instance
                .call(move |acc, ex| ex.call_new_volume(acc, options).boxed())
                .await,
        )?;
        Ok(Arc::new(WasmVolume(Handle {
            instance,
            res,
            kind: Kind::Volume,
        })))
    }

    async fn dispose(&self) -> Result<()> {
        let instance = self.instance().await?;
        flat(instance.call(|acc, ex| ex.call_dispose(acc).boxed()).await)
    }
}

struct WasmSandboxBuilder(Handle);

#[async_trait]
impl contract::SandboxBuilder for WasmSandboxBuilder {
    async fn attach_volume(&self, mountpoint: &str, volume: &dyn contract::Volume, read_only: bool) -> Result<()> {
        let Some(volume) = volume.as_any().downcast_ref::<WasmVolume>() else {
            return Err(EngineError::ContractViolation(
                "the volume was not made by a WebAssembly engine".into(),
            ));
        };
        if !Arc::ptr_eq(&volume.0.instance, &self.0.instance) {
            return Err(EngineError::ContractViolation(
                "the volume belongs to another engine instance (another engine, or one lost to a trap)".into(),
            ));
        }
        let (res, vol, mountpoint) = (self.0.res, volume.0.res, mountpoint.to_string());
        flat(
            self.0
                .instance
                .call(move |acc, ex| {
                    async move {
                        ex.sandbox_builder()
                            .call_attach_volume(acc, res, mountpoint, vol, read_only)
                            .await
                    }
                    .boxed()
                })
                .await,
        )
    }

    async fn attach_proxy(&self, name: &str, handler: Arc<dyn ProxyHandler>) -> Result<()> {
        let (res, name) = (self.0.res, name.to_string());
        flat(
            self.0
                .instance
                .call(move |acc, ex| {
                    async move {
                        let h = acc.with(|mut a| a.get().table.push(ProxyHandlerRes(handler)))?;
                        ex.sandbox_builder().call_attach_proxy(acc, res, name, h).await
                    }
                    .boxed()
                })
                .await,
        )
    }

    async fn set_environment_variable(&self, name: &str, value: &str) -> Result<()> {
        let (res, name, value) = (self.0.res, name.to_string(), value.to_string());
        flat(
            self.0
                .instance
                .call(move |acc, ex| {
                    async move {
                        ex.sandbox_builder()
                            .call_set_environment_variable(acc, res, name, value)
                            .await
                    }
                    .boxed()
                })
                .await,
        )
    }

    async fn start(&self) -> Result<Arc<dyn contract::Sandbox>> {
        let res = self.0.res;
        let sandbox = flat(
            self.0
                .instance
                .call(move |acc, ex| async move { ex.sandbox_builder().call_start(acc, res).await }.boxed())
                .await,
        )?;
        let handle = Handle {
            instance: self.0.instance.clone(),
            res: sandbox,
            kind: Kind::Sandbox,
        };
        Ok(Arc::new(WasmSandbox {
            handle,
            result: OnceCell::new(),
        }))
    }

    async fn discard(&self) -> Result<()> {
        let res = self.0.res;
        flat(
            self.0
                .instance
                .call(move |acc, ex| async move { ex.sandbox_builder().call_discard(acc, res).await }.boxed())
                .await,
        )
    }
}

struct WasmSandbox {
    handle: Handle,
    result: OnceCell<Result<Arc<dyn contract::ResultSet>>>,
}

/// Pipes a guest stream into a new [`ByteStream`] (inside a job).
fn guest_stream(acc: &super::actor::Acc, reader: StreamReader<u8>) -> wasmtime::Result<ByteStream> {
    let (sink, stream) = byte_pipe();
    acc.with(|mut a| reader.pipe(&mut a, ChannelSink::new(sink.0)))?;
    Ok(stream)
}

/// A new guest stream fed from the returned [`ByteSink`] (inside a job).
fn host_stream(acc: &super::actor::Acc, source: ByteStream) -> wasmtime::Result<StreamReader<u8>> {
    acc.with(|mut a| StreamReader::new(&mut a, ChannelSource::new(source)))
}

#[async_trait]
impl contract::Sandbox for WasmSandbox {
    async fn wait_for_result(&self) -> Result<Arc<dyn contract::ResultSet>> {
        let handle = &self.handle;
        self.result
            .get_or_init(|| async move {
                let res = handle.res;
                let (rs, success) = flat(
                    handle
                        .instance
                        .call(move |acc, ex| {
                            async move {
                                match ex.sandbox().call_wait_for_result(acc, res).await? {
                                    Ok(rs) => Ok(Ok((rs, ex.result_set().call_success(acc, rs).await?))),
                                    Err(e) => Ok(Err(e)),
                                }
                            }
                            .boxed()
                        })
                        .await,
                )?;
                let handle = Handle {
                    instance: handle.instance.clone(),
                    res: rs,
                    kind: Kind::ResultSet,
                };
                Ok(Arc::new(WasmResultSet { handle, success }) as Arc<dyn contract::ResultSet>)
            })
            .await
            .clone()
    }

    async fn new_shell(&self, command: &[String], tty: bool) -> Result<Box<dyn contract::Shell>> {
        let (res, command) = (self.handle.res, command.to_vec());
        let (stdin_sink, stdin) = byte_pipe();
        let (shell, stdout, stderr) = flat(
            self.handle
                .instance
                .call(move |acc, ex| {
                    async move {
                        let stdin = host_stream(acc, stdin)?;
                        let shell = match ex.sandbox().call_new_shell(acc, res, command, tty, stdin).await? {
                            Ok(shell) => shell,
                            Err(e) => return Ok(Err(e)),
                        };
                        let stdout = ex.shell().call_stdout(acc, shell).await?;
                        let stderr = ex.shell().call_stderr(acc, shell).await?;
                        Ok(Ok((shell, guest_stream(acc, stdout)?, guest_stream(acc, stderr)?)))
                    }
                    .boxed()
                })
                .await,
        )?;
        Ok(Box::new(WasmShell {
            handle: Handle {
                instance: self.handle.instance.clone(),
                res: shell,
                kind: Kind::Shell,
            },
            stdin: Mutex::new(Some(stdin_sink)),
            stdout: Mutex::new(Some(stdout)),
            stderr: Mutex::new(Some(stderr)),
        }))
    }

    async fn list_displays(&self) -> Result<Vec<contract::Display>> {
        let res = self.handle.res;
        let displays = flat(
            self.handle
                .instance
                .call(move |acc, ex| async move { ex.sandbox().call_list_displays(acc, res).await }.boxed())
                .await,
        )?;
        Ok(displays.into_iter().map(Into::into).collect())
    }

    async fn open_display(&self, name: &str) -> Result<DisplayConnection> {
        let (res, name) = (self.handle.res, name.to_string());
        let (input, client) = byte_pipe();
        let output = flat(
            self.handle
                .instance
                .call(move |acc, ex| {
                    async move {
                        let client = host_stream(acc, client)?;
                        match ex.sandbox().call_open_display(acc, res, name, client).await? {
                            Ok(server) => Ok(Ok(guest_stream(acc, server)?)),
                            Err(e) => Ok(Err(e)),
                        }
                    }
                    .boxed()
                })
                .await,
        )?;
        Ok(DisplayConnection { input, output })
    }

    async fn abort(&self) -> Result<()> {
        let res = self.handle.res;
        flat(
            self.handle
                .instance
                .call(move |acc, ex| async move { ex.sandbox().call_abort(acc, res).await }.boxed())
                .await,
        )
    }

    async fn kill(&self) -> Result<()> {
        let res = self.handle.res;
        flat(
            self.handle
                .instance
                .call(move |acc, ex| async move { ex.sandbox().call_kill(acc, res).await }.boxed())
                .await,
        )
    }
}

struct WasmShell {
    handle: Handle,
    stdin: Mutex<Option<ByteSink>>,
    stdout: Mutex<Option<ByteStream>>,
    stderr: Mutex<Option<ByteStream>>,
}

#[async_trait]
impl contract::Shell for WasmShell {
    fn stdin(&self) -> Option<ByteSink> {
        self.stdin.lock().expect("shell lock").take()
    }
    fn stdout(&self) -> Option<ByteStream> {
        self.stdout.lock().expect("shell lock").take()
    }
    fn stderr(&self) -> Option<ByteStream> {
        self.stderr.lock().expect("shell lock").take()
    }
    async fn set_size(&self, columns: u16, rows: u16) -> Result<()> {
        let res = self.handle.res;
        flat(
            self.handle
                .instance
                .call(move |acc, ex| async move { ex.shell().call_set_size(acc, res, columns, rows).await }.boxed())
                .await,
        )
    }
    async fn abort(&self) -> Result<()> {
        let res = self.handle.res;
        flat(
            self.handle
                .instance
                .call(move |acc, ex| async move { ex.shell().call_abort(acc, res).await }.boxed())
                .await,
        )
    }
    async fn wait(&self) -> Result<bool> {
        let res = self.handle.res;
        flat(
            self.handle
                .instance
                .call(move |acc, ex| async move { ex.shell().call_wait(acc, res).await }.boxed())
                .await,
        )
    }
}

struct WasmResultSet {
    handle: Handle,
    success: bool,
}

#[async_trait]
impl contract::ResultSet for WasmResultSet {
    fn success(&self) -> bool {
        self.success
    }

    async fn extract_file(&self, path: &str) -> Result<ByteStream> {
        let (res, path) = (self.handle.res, path.to_string());
        flat(
            self.handle
                .instance
                .call(move |acc, ex| {
                    async move {
                        match ex.result_set().call_extract_file(acc, res, path).await? {
                            Ok(reader) => Ok(Ok(guest_stream(acc, reader)?)),
                            Err(e) => Ok(Err(e)),
                        }
                    }
                    .boxed()
                })
                .await,
        )
    }

    async fn extract_folder(&self, path: &str, handler: FileHandler) -> Result<()> {
        let (res, path) = (self.handle.res, path.to_string());
        flat(
            self.handle
                .instance
                .call(move |acc, ex| {
                    async move {
                        let h: Resource<FileHandlerRes> =
                            acc.with(|mut a| a.get().table.push(FileHandlerRes(handler)))?;
                        let borrowed = Resource::new_borrow(h.rep());
                        let result = ex.result_set().call_extract_folder(acc, res, path, borrowed).await;
                        acc.with(|mut a| a.get().table.delete(h))?;
                        result
                    }
                    .boxed()
                })
                .await,
        )
    }

    async fn archive_sandbox(&self) -> Result<ByteStream> {
        let res = self.handle.res;
        flat(
            self.handle
                .instance
                .call(move |acc, ex| {
                    async move {
                        match ex.result_set().call_archive_sandbox(acc, res).await? {
                            Ok(reader) => Ok(Ok(guest_stream(acc, reader)?)),
                            Err(e) => Ok(Err(e)),
                        }
                    }
                    .boxed()
                })
                .await,
        )
    }

    async fn dispose(&self) -> Result<()> {
        let res = self.handle.res;
        flat(
            self.handle
                .instance
                .call(move |acc, ex| async move { ex.result_set().call_dispose(acc, res).await }.boxed())
                .await,
        )
    }
}

struct WasmVolume(Handle);

#[async_trait]
impl contract::Volume for WasmVolume {
    async fn dispose(&self) -> Result<()> {
        let res = self.0.res;
        flat(
            self.0
                .instance
                .call(move |acc, ex| async move { ex.volume().call_dispose(acc, res).await }.boxed())
                .await,
        )
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct WasmVolumeBuilder(Handle);

#[async_trait]
impl contract::VolumeBuilder for WasmVolumeBuilder {
    async fn write_folder(&self, name: &str) -> Result<()> {
        let (res, name) = (self.0.res, name.to_string());
        flat(
            self.0
                .instance
                .call(move |acc, ex| async move { ex.volume_builder().call_write_folder(acc, res, name).await }.boxed())
                .await,
        )
    }

    async fn write_file(&self, name: &str, data: ByteStream) -> Result<()> {
        let (res, name) = (self.0.res, name.to_string());
        flat(
            self.0
                .instance
                .call(move |acc, ex| {
                    async move {
                        let data = host_stream(acc, data)?;
                        ex.volume_builder().call_write_file(acc, res, name, data).await
                    }
                    .boxed()
                })
                .await,
        )
    }

    async fn build(&self) -> Result<Arc<dyn contract::Volume>> {
        let res = self.0.res;
        let volume = flat(
            self.0
                .instance
                .call(move |acc, ex| async move { ex.volume_builder().call_build(acc, res).await }.boxed())
                .await,
        )?;
        Ok(Arc::new(WasmVolume(Handle {
            instance: self.0.instance.clone(),
            res: volume,
            kind: Kind::Volume,
        })))
    }

    async fn discard(&self) -> Result<()> {
        let res = self.0.res;
        flat(
            self.0
                .instance
                .call(move |acc, ex| async move { ex.volume_builder().call_discard(acc, res).await }.boxed())
                .await,
        )
    }
}
