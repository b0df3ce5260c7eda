//! The plugin runtime: the wasmtime `Engine` and `Linker`, and loading an engine
//! plugin as a [`contract::Engine`](crate::contract::Engine). The only module
//! that builds a Store or a Linker.
//!
//! What a plugin imports is linked from `crate::wit` (the glue over `crate::caps`)
//! and WASI; this module never implements an import itself.
//!
//! - `state`: the Store data ([`HostState`]: a `WasiView` and a `caps::CapsView`),
//!   and the WASI context (what the policy grants).
//! - `actor`: one task per engine instance, owning its Store and event loop.
//! - `accounting`: which task each moment of an instance's time belongs to.
//! - `floor`: the benchmark's floor, plain async calls into a trivial component.
//! - `watchdog`: the deadlines of an instance's calls, on one coarse timer.
//! - `adapter`: [`WasmEngine`].
//! - `handle`: the handle every contract object holds, and its task slot.
//! - `objects`: the contract objects (sandbox, shell, result set, ...) over the actor.
//! - `limits`, `cache`: the Store's limits and the compile cache.

mod accounting;
mod actor;
mod adapter;
mod cache;
mod floor;
mod handle;
mod limits;
mod objects;
mod recovery;
mod state;
mod watchdog;

use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use wasmtime::component::{Component, Linker};

pub use adapter::WasmEngine;
pub use floor::Floor;
pub use state::HostState;

use crate::caps::HostEnv;
use crate::contract::WorkerControl;
use crate::policy::{Capabilities, HostSettings, ResolvedLimits};
use crate::wit::bindings;
use enginehost_core::metadata::Metadata;

/// A compiled-and-linked plugin, ready to instantiate (cheap to clone).
#[derive(Clone)]
pub struct LoadedPlugin {
    pub(crate) name: Arc<str>,
    pub(crate) version: Arc<str>,
    /// The sha256 of its `.wasm`, hex.
    pub(crate) sha256: Arc<str>,
    /// What the plugin asks for (its `capabilities.toml`).
    pub(crate) requested: Arc<Capabilities>,
    pub(crate) pre: wasmtime::component::InstancePre<HostState>,
    /// Where its `engine` exports are (looked up once, loaded per instance).
    pub(crate) indices: bindings::EnginePluginIndices,
    /// Where its optional `recovery` export is (contract 0.1.4), if it has one.
    pub(crate) recovery: Option<bindings::RecoveryIndices>,
    /// Whether the engine it was compiled for interrupts guests (the CPU slice).
    pub(crate) epochs: bool,
    /// Whether its instances account each task's time (`[host] accounting`).
    pub(crate) accounting: bool,
    /// Whether it was loaded from the compile cache (not compiled).
    pub(crate) from_cache: bool,
}

impl LoadedPlugin {
    /// The engine's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// What the plugin asks the operator for.
    pub fn requested(&self) -> &Capabilities {
        &self.requested
    }
    /// Whether it was loaded from the compile cache instead of compiled.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }
}

/// How an engine is started.
#[derive(Default)]
pub struct EngineOptions {
    /// The engine's config (its `[engines.NAME]` table), valid against its schema.
    pub config: serde_json::Value,
    /// What the operator grants the plugin (its `[plugins.NAME]` tables).
    pub grants: Capabilities,
    /// The worker's controls (stop-now).
    pub worker: Arc<WorkerControl>,
    /// Time, memory and size limits (`[limits]`, `[plugins.NAME.limits]`).
    pub limits: ResolvedLimits,
}

/// The wasmtime engine and linker shared by every plugin of a process, and the
/// host side of capabilities (made on the first engine start).
pub struct Runtime {
    engine: wasmtime::Engine,
    linker: Linker<HostState>,
    settings: HostSettings,
    host: OnceLock<Arc<HostEnv>>,
    /// Advances the epoch for the CPU slice (`None`: guests are not interrupted).
    _ticker: Option<limits::Ticker>,
    /// Compiled plugins kept for the next start (`None`: always compile).
    cache: OnceLock<Option<cache::CompileCache>>,
}

impl Runtime {
    /// A runtime with the default host settings.
    pub fn new() -> anyhow::Result<Self> {
        Self::with_host(HostSettings::default())
    }

    /// A runtime with the contract's host API, the capability imports and WASI,
    /// whose capabilities live under `settings` (`[host]` of the operator config).
    pub fn with_host(settings: HostSettings) -> anyhow::Result<Self> {
        Self::build(settings, true)
    }

    /// A runtime whose guests are never interrupted (no epoch checks in compiled
    /// code, no CPU slice): only for measuring what the checks cost.
    pub fn without_cpu_limit(settings: HostSettings) -> anyhow::Result<Self> {
        Self::build(settings, false)
    }

    fn build(settings: HostSettings, epochs: bool) -> anyhow::Result<Self> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model_async(true);
        config.epoch_interruption(epochs);
        let engine = wasmtime::Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("configuring wasmtime")?;
        let mut linker = Linker::new(&engine);
        link(&mut linker)?;
        let ticker = epochs.then(|| limits::Ticker::start(&engine));
        Ok(Runtime {
            engine,
            linker,
            settings,
            host: OnceLock::new(),
            _ticker: ticker,
            cache: OnceLock::new(),
        })
    }

    /// The compile cache, opened on first use (`[host] compile-cache`, `cache-dir`).
    fn cache(&self) -> Option<&cache::CompileCache> {
        self.cache
            .get_or_init(|| {
                if self.settings.compile_cache == Some(false) {
                    return None;
                }
                let dir = match &self.settings.cache_dir {
                    Some(dir) => dir.clone(),
                    None => self
                        .settings
                        .work_dir
                        .clone()
                        .unwrap_or_else(crate::caps::default_work_dir)
                        .join("cache"),
                };
                cache::CompileCache::open(&dir)
            })
            .as_ref()
    }

    /// Compiles `wasm`, or loads it from the compile cache (then `true`).
    fn compile(&self, wasm: &[u8]) -> anyhow::Result<(Component, bool)> {
        if let Some(cache) = self.cache()
            && let Some(component) = cache.get(&self.engine, wasm)
        {
            crate::contract::metrics::Metrics::global().compile_cache_hits.inc();
            return Ok((component, true));
        }
        crate::contract::metrics::Metrics::global().compile_cache_misses.inc();
        let component = Component::new(&self.engine, wasm)
            .map_err(anyhow::Error::from)
            .context("compiling the component")?;
        if let Some(cache) = self.cache() {
            cache.put(&self.engine, wasm, &component);
        }
        Ok((component, false))
    }

    /// The host side of capabilities: made once, on first use (it prepares the work
    /// directory and cleans up after a worker that was killed).
    ///
    /// # Errors
    /// When the work directory cannot be made or the tree-kill mode is unusable.
    pub fn host(&self) -> anyhow::Result<&Arc<HostEnv>> {
        if let Some(host) = self.host.get() {
            return Ok(host);
        }
        let host = HostEnv::new(&self.settings)?;
        Ok(self.host.get_or_init(|| host))
    }

    /// Waits until every cleanup is done (task users removed, sandbox directories
    /// and cgroups gone).
    pub async fn drain(&self) {
        if let Some(host) = self.host.get() {
            host.drain().await;
        }
    }

    /// Before the process exits, once every engine is dropped: the cleanup, then
    /// this process's cgroup subtree.
    pub async fn shutdown(&self) {
        if let Some(host) = self.host.get() {
            host.shutdown().await;
        }
    }

    /// Compiles a component and links it against the host API; its version and
    /// requests come from its metadata sections.
    ///
    /// # Errors
    /// When the metadata is missing or wrong, the bytes are not a valid component,
    /// or it imports something the host does not offer (the message names the
    /// import).
    pub fn load(&self, name: &str, wasm: &[u8]) -> anyhow::Result<LoadedPlugin> {
        let meta = enginehost_core::metadata::read(wasm).map_err(|r| anyhow::anyhow!("{r}"))?;
        self.load_read(name, wasm, meta)
    }

    /// [`Runtime::load`] with the metadata already read from `wasm` (the catalog
    /// reads it once, to check it before anything is compiled).
    ///
    /// # Errors
    /// As [`Runtime::load`], but for the metadata.
    pub fn load_read(&self, name: &str, wasm: &[u8], meta: Metadata) -> anyhow::Result<LoadedPlugin> {
        let (version, requested) = (meta.version, meta.capabilities);
        let started = std::time::Instant::now();
        let (component, from_cache) = self.compile(wasm)?;
        tracing::debug!(plugin = name, from_cache, elapsed = ?started.elapsed(), "plugin compiled or loaded");
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("linking the component")?;
        let indices = bindings::EnginePluginIndices::new(&pre)
            .map_err(anyhow::Error::from)
            .context("checking the component's exports")?;
        let recovery = bindings::RecoveryIndices::new(&pre).ok();
        Ok(LoadedPlugin {
            indices,
            recovery,
            name: name.into(),
            version: version.into(),
            sha256: cache::hex(&<sha2::Sha256 as sha2::Digest>::digest(wasm)).into(),
            requested: Arc::new(requested),
            pre,
            epochs: self._ticker.is_some(),
            accounting: self.settings.accounting != Some(false),
            from_cache,
        })
    }

    /// Starts the engine of `plugin`: instantiates it and calls `init` with
    /// `options.config` (valid against its config schema), under the policy of its
    /// request and `options.grants`.
    pub async fn start_engine(&self, plugin: &LoadedPlugin, options: EngineOptions) -> anyhow::Result<Arc<WasmEngine>> {
        WasmEngine::start(plugin.clone(), self.host()?.clone(), options).await
    }

    /// The config schema of a plugin (instantiates it once, without `init`, with
    /// nothing granted).
    pub async fn config_schema(
        &self,
        plugin: &LoadedPlugin,
        limits: ResolvedLimits,
    ) -> anyhow::Result<serde_json::Value> {
        adapter::config_schema(plugin, self.host()?.clone(), limits).await
    }
}

/// Everything a plugin may import: WASI 0.2 and 0.3 (with a checked name lookup),
/// the host API and the capability imports (`crate::wit`).
fn link(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    use wasmtime_wasi::p3;
    fn ctx(r: wasmtime::Result<()>, what: &str) -> anyhow::Result<()> {
        r.map_err(anyhow::Error::from)
            .with_context(|| format!("linking {what}"))
    }
    ctx(wasmtime_wasi::p2::add_to_linker_async(linker), "WASI 0.2")?;
    ctx(p3::cli::add_to_linker(linker), "WASI 0.3 cli")?;
    ctx(p3::clocks::add_to_linker(linker), "WASI 0.3 clocks")?;
    ctx(p3::filesystem::add_to_linker(linker), "WASI 0.3 filesystem")?;
    ctx(p3::random::add_to_linker(linker), "WASI 0.3 random")?;
    ctx(
        p3::bindings::sockets::types::add_to_linker::<_, wasmtime_wasi::sockets::WasiSockets>(linker, |s| {
            wasmtime_wasi::sockets::WasiSocketsView::sockets(s)
        }),
        "WASI 0.3 sockets",
    )?;
    crate::wit::add_to_linker(linker)?;
    Ok(())
}
