//! The worker traits implemented over an engine instance's actor: [`WasmEngine`]
//! here, the objects it creates in `objects.rs`, each holding a `handle::Handle`.
//! After a trap, handles of the dead instance fail with its death message, and
//! [`WasmEngine`] starts a fresh instance (calling `init` again) on next use; a
//! task with a recovery record is taken over by it (`recovery.rs`).

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};

use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use futures::FutureExt;
use serde_json::Value;

use super::actor::{Deadline, Instance};
use super::handle::{Handle, TaskSlot, flat};
use super::objects::{WasmSandboxBuilder, WasmVolume, WasmVolumeBuilder};
use super::recovery::{Recovery, RecoveryWindow};
use super::{EngineOptions, LoadedPlugin};
use crate::caps::{CapsCtx, EngineScope, HostEnv, TaskHandle};
use crate::contract::{self, Capabilities, EngineError, Result, Section, TaskContext, WorkerControl};
use crate::policy::{Policy, ResolvedLimits};

/// A schema an engine gave, size-capped and parsed.
fn parse_schema(what: &str, text: &str) -> anyhow::Result<Value> {
    if text.len() > crate::schema::MAX_SCHEMA_BYTES {
        anyhow::bail!(
            "its {what} is {} bytes; at most {} are accepted",
            text.len(),
            crate::schema::MAX_SCHEMA_BYTES
        );
    }
    serde_json::from_str(text).with_context(|| format!("its {what} is not valid JSON"))
}

/// A schema an engine gave, compiled (rejected when too large or invalid).
fn compile_schema(what: &str, text: &str) -> anyhow::Result<Arc<crate::schema::Compiled>> {
    let value = parse_schema(what, text)?;
    crate::schema::Compiled::new(&value)
        .map(Arc::new)
        .map_err(|e| anyhow!("its {what} is rejected: {e}"))
}

/// Instantiates `plugin` once, with nothing granted, to read its config schema.
pub(crate) async fn config_schema(
    plugin: &LoadedPlugin,
    host: Arc<HostEnv>,
    limits: ResolvedLimits,
) -> anyhow::Result<Value> {
    let scope = EngineScope::new(
        host,
        Arc::new(Policy::none(&plugin.name, &plugin.version)),
        process_bounds(&limits),
    );
    let instance = Instance::spawn(plugin, CapsCtx::new(scope, WorkerControl::new(), 0), limits).await?;
    let text = instance
        .call("config-schema", Deadline::Quick, |acc, ex| {
            ex.call_config_schema(acc).boxed()
        })
        .await?;
    parse_schema("config schema", &text)
}

/// What `init` established; constant for the engine's life.
struct Described {
    payload: Arc<crate::schema::Compiled>,
    volume: Arc<crate::schema::Compiled>,
    documentation: Vec<Section>,
    capabilities: Capabilities,
}

/// An engine plugin as a [`contract::Engine`].
pub struct WasmEngine {
    plugin: LoadedPlugin,
    config: String,
    worker: Arc<WorkerControl>,
    scope: Arc<EngineScope>,
    limits: ResolvedLimits,
    /// The live instance and its generation (how many instances came before it).
    current: tokio::sync::Mutex<(Arc<Instance>, u64)>,
    described: Described,
    live_tasks: Arc<AtomicUsize>,
    /// Itself, for the tasks' recovery (which may outlive it).
    me: Weak<WasmEngine>,
    /// The recent recoveries of its tasks (the trap-storm bound).
    recoveries: RecoveryWindow,
}

/// Instantiates (as instance number `generation` of the engine) and calls `init`.
async fn init_instance(
    plugin: &LoadedPlugin,
    config: &str,
    worker: &Arc<WorkerControl>,
    scope: &Arc<EngineScope>,
    generation: u64,
    limits: ResolvedLimits,
) -> anyhow::Result<Arc<Instance>> {
    let caps = CapsCtx::new(scope.clone(), worker.clone(), generation);
    let instance = Instance::spawn(plugin, caps, limits).await?;
    let config = config.to_string();
    instance
        .call("init", Deadline::Init, move |acc, ex| {
            async move { ex.call_init(acc, config).await }.boxed()
        })
        .await
        .map_err(|e| anyhow!(e))?
        .map_err(|e| {
            let e = EngineError::from(e);
            match e.detail() {
                Some(detail) => anyhow!("the engine refused its config: {e}: {detail}"),
                None => anyhow!("the engine refused its config: {e}"),
            }
        })?;
    Ok(instance)
}

impl WasmEngine {
    pub(crate) async fn start(
        plugin: LoadedPlugin,
        host: Arc<HostEnv>,
        options: EngineOptions,
    ) -> anyhow::Result<Arc<Self>> {
        let EngineOptions {
            config,
            grants,
            worker,
            limits,
        } = options;
        let policy = Policy::new(&plugin.name, &plugin.version, (*plugin.requested).clone(), grants);
        for ungranted in policy.ungranted() {
            tracing::info!(engine = %plugin.name, "requested but not granted (its use will fail): {ungranted}");
        }
        let scope = EngineScope::new(host, Arc::new(policy), process_bounds(&limits));
        let config = config.to_string();
        let instance = init_instance(&plugin, &config, &worker, &scope, 0, limits).await?;
        let (payload, volume, docs, caps) = instance
            .call("the schema and capability calls", Deadline::Quick, |acc, ex| {
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
            payload: compile_schema("payload schema", &payload)?,
            volume: compile_schema("volume schema", &volume)?,
            documentation: docs.into_iter().map(Section::from).collect(),
            capabilities: caps.into(),
        };
        Ok(Arc::new_cyclic(|me| WasmEngine {
            plugin,
            config,
            worker,
            scope,
            limits,
            current: tokio::sync::Mutex::new((instance, 0)),
            described,
            live_tasks: Arc::default(),
            me: me.clone(),
            recoveries: RecoveryWindow::default(),
        }))
    }

    /// The recent recoveries of the engine's tasks.
    pub(crate) fn recoveries(&self) -> &RecoveryWindow {
        &self.recoveries
    }

    /// The live instance and its generation, or a fresh one if the last one died.
    pub(crate) async fn instance(&self) -> Result<(Arc<Instance>, u64)> {
        let mut current = self.current.lock().await;
        if !current.0.is_alive() {
            let generation = current.1 + 1;
            let instance = init_instance(
                &self.plugin,
                &self.config,
                &self.worker,
                &self.scope,
                generation,
                self.limits,
            )
            .await
            .map_err(|e| EngineError::PluginFailed {
                plugin: self.plugin.name.to_string(),
                reason: format!("restarting: {e:#}"),
            })?;
            let metrics = crate::contract::metrics::Metrics::global();
            metrics
                .instance_restarts
                .get_or_create(&crate::contract::metrics::Metrics::engine(&self.plugin.name))
                .inc();
            *current = (instance, generation);
        }
        Ok(current.clone())
    }
}

#[async_trait]
impl contract::Engine for WasmEngine {
    fn name(&self) -> &str {
        &self.plugin.name
    }
    fn provenance(&self) -> Option<contract::Provenance> {
        Some(contract::Provenance {
            version: self.plugin.version.to_string(),
            sha256: self.plugin.sha256.to_string(),
        })
    }
    fn documentation(&self) -> Vec<Section> {
        self.described.documentation.clone()
    }
    fn payload_schema(&self) -> Value {
        self.described.payload.schema().clone()
    }
    fn payload_validator(&self) -> Arc<crate::schema::Compiled> {
        self.described.payload.clone()
    }
    fn capabilities(&self) -> Capabilities {
        self.described.capabilities
    }
    fn volume_schema(&self) -> Value {
        self.described.volume.schema().clone()
    }

    async fn new_sandbox_builder(
        &self,
        context: TaskContext,
        payload: Value,
    ) -> Result<Box<dyn contract::SandboxBuilder>> {
        let (instance, generation) = self.instance().await?;
        let scope = self.scope.new_task(generation);
        let usage = context.usage().clone();
        let slot = TaskSlot::take(&self.live_tasks, self.limits.live_tasks, scope.clone(), usage.clone())
            .ok_or(EngineError::MaxConcurrencyExceeded)?;
        if self.plugin.accounting {
            usage.set_engine(&self.plugin.name);
        }
        let payload = payload.to_string();
        let recovery = Recovery::new(self.me.clone(), context.clone(), scope.clone());
        let res = flat(
            instance
                .call_for(Some(&usage), "new-sandbox-builder", Deadline::Quick, move |acc, ex| {
                    async move {
                        let ctx = acc.with(|mut a| a.get().table.push(TaskHandle::new(context, scope)))?;
                        ex.call_new_sandbox_builder(acc, ctx, payload).await
                    }
                    .boxed()
                })
                .await,
        )?;
        Ok(Box::new(WasmSandboxBuilder {
            handle: Handle {
                instance,
                res,
                slot: Some(slot),
            },
            recovery,
            started: Default::default(),
        }))
    }

    async fn new_volume_builder(&self, options: Value) -> Result<Box<dyn contract::VolumeBuilder>> {
        let (instance, _) = self.instance().await?;
        let options = options.to_string();
        let res = flat(
            instance
                .call("new-volume-builder", Deadline::Quick, move |acc, ex| {
                    ex.call_new_volume_builder(acc, options).boxed()
                })
                .await,
        )?;
        Ok(Box::new(WasmVolumeBuilder(Handle {
            instance,
            res,
            slot: None,
        })))
    }

    async fn new_volume(&self, options: Value) -> Result<Arc<dyn contract::Volume>> {
        let (instance, _) = self.instance().await?;
        let options = options.to_string();
        let res = flat(
            instance
                .call("new-volume", Deadline::Quick, move |acc, ex| {
                    ex.call_new_volume(acc, options).boxed()
                })
                .await,
        )?;
        Ok(Arc::new(WasmVolume(Handle {
            instance,
            res,
            slot: None,
        })))
    }

    async fn dispose(&self) -> Result<()> {
        let (instance, _) = self.instance().await?;
        flat(
            instance
                .call("dispose", Deadline::Quick, |acc, ex| ex.call_dispose(acc).boxed())
                .await,
        )
    }

    async fn inject_trap(&self, reason: &str) -> bool {
        let (instance, _) = self.current.lock().await.clone();
        tracing::warn!(engine = %self.plugin.name, "tearing the engine's instance down: {reason}");
        instance.kill(reason.to_string());
        true
    }
}

/// The bounds of the engine's task processes, from its limits.
fn process_bounds(limits: &ResolvedLimits) -> crate::caps::ProcessBounds {
    crate::caps::ProcessBounds {
        pids: limits.task_pids,
        memory: limits.task_memory,
    }
}
