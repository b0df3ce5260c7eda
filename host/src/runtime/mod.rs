//! The plugin runtime: the wasmtime `Engine` and `Linker`, and loading an engine
//! plugin as a [`contract::Engine`](crate::contract::Engine). The only module
//! that builds a Store or a Linker.
//!
//! - `bindings`: the `bindgen!` of `wit/engine.wit`.
//! - `state`: the Store data, and the WASI context (grants nothing).
//! - `imports`: the host API engines import (task context, handlers).
//! - `streams`: component-model streams ↔ worker byte channels.
//! - `actor`: one task per engine instance, owning its Store and event loop.
//! - `adapter`: [`WasmEngine`] and the handle every contract object holds.
//! - `objects`: the contract objects (sandbox, shell, result set, ...) over the actor.
//! - `convert`: WIT ↔ contract types, in one place.

mod actor;
mod adapter;
mod bindings;
mod convert;
pub(crate) mod imports;
mod objects;
mod state;
mod streams;

use std::sync::Arc;

use anyhow::Context as _;
use wasmtime::component::{Component, HasSelf, Linker};

pub use adapter::{MAX_LIVE_TASKS, WasmEngine};
pub use state::HostState;

use crate::contract::WorkerControl;

/// A compiled-and-linked plugin, ready to instantiate (cheap to clone).
#[derive(Clone)]
pub struct LoadedPlugin {
    pub(crate) name: Arc<str>,
    pub(crate) pre: bindings::EnginePluginPre<HostState>,
}

/// The wasmtime engine and linker shared by every plugin of a process.
pub struct Runtime {
    engine: wasmtime::Engine,
    linker: Linker<HostState>,
}

impl Runtime {
    /// A runtime with the contract's host API and WASI (granting nothing).
    pub fn new() -> anyhow::Result<Self> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model_async(true);
        let engine = wasmtime::Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("configuring wasmtime")?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI 0.2")?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI 0.3")?;
        bindings::host::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)
            .context("linking the enginehost host API")?;
        bindings::types::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)
            .context("linking the enginehost types")?;
        Ok(Runtime { engine, linker })
    }

    /// Compiles a component and links it against the host API.
    ///
    /// # Errors
    /// When the bytes are not a valid component, or it imports something the host
    /// does not offer (the message names the import).
    pub fn load(&self, name: &str, wasm: &[u8]) -> anyhow::Result<LoadedPlugin> {
        let component = Component::new(&self.engine, wasm)
            .map_err(anyhow::Error::from)
            .context("compiling the component")?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("linking the component")?;
        let pre = bindings::EnginePluginPre::new(pre)
            .map_err(anyhow::Error::from)
            .context("checking the component's exports")?;
        Ok(LoadedPlugin { name: name.into(), pre })
    }

    /// Starts the engine of `plugin` with `config` (a JSON object valid against its
    /// config schema): instantiates it and calls `init`.
    pub async fn start_engine(
        &self,
        plugin: &LoadedPlugin,
        config: serde_json::Value,
        worker: Arc<WorkerControl>,
    ) -> anyhow::Result<Arc<WasmEngine>> {
        WasmEngine::start(plugin.clone(), config, worker).await
    }

    /// The config schema of a plugin (instantiates it once, without `init`).
    pub async fn config_schema(&self, plugin: &LoadedPlugin) -> anyhow::Result<serde_json::Value> {
        adapter::config_schema(plugin).await
    }
}
