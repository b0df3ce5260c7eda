//! The `bindgen!`s of the contract (`wit/engine.wit`). Imported resources map
//! onto the capability layer's types (`crate::caps`) and the worker's handlers
//! (`super::host`), so that a handle in the Store's table holds the domain value.
//! The world `engine-plugin` is what every plugin has; the optional `recovery`
//! export (0.1.4) comes from a second `bindgen!` of `recoverable-engine-plugin`
//! that reuses the first one's interfaces, and is looked up per plugin
//! ([`RecoveryIndices::new`] fails for a plugin without it).

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "engine-plugin",
        imports: { default: trappable },
        exports: { default: async | store },
        with: {
            "enginehost:engine/host.task-context": crate::caps::TaskHandle,
            "enginehost:engine/host.proxy-handler": crate::wit::host::ProxyHandlerRes,
            "enginehost:engine/host.file-handler": crate::wit::host::FileHandlerRes,
            "enginehost:engine/process.process": crate::caps::Process,
            "enginehost:engine/users.task-user": crate::caps::TaskUser,
            "enginehost:engine/endpoint.endpoint": crate::caps::Endpoint,
            "enginehost:engine/endpoint.request": crate::caps::EndpointRequest,
        },
    });
}

mod recoverable {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "recoverable-engine-plugin",
        imports: { default: trappable },
        exports: { default: async | store },
        with: {
            "enginehost:engine/types": super::generated::enginehost::engine::types,
            "enginehost:engine/host": super::generated::enginehost::engine::host,
            "enginehost:engine/caps": super::generated::enginehost::engine::caps,
            "enginehost:engine/files": super::generated::enginehost::engine::files,
            "enginehost:engine/users": super::generated::enginehost::engine::users,
            "enginehost:engine/process": super::generated::enginehost::engine::process,
            "enginehost:engine/unix-sockets": super::generated::enginehost::engine::unix_sockets,
            "enginehost:engine/endpoint": super::generated::enginehost::engine::endpoint,
        },
    });
}

pub(crate) use generated::EnginePluginIndices;
pub(crate) use generated::enginehost::engine::{caps, endpoint, files, host, process, types, unix_sockets, users};
pub(crate) use generated::exports::enginehost::engine::engine::Guest as EngineGuest;
pub(crate) use recoverable::exports::enginehost::engine::recovery::{
    Guest as RecoveryGuest, GuestIndices as RecoveryIndices,
};

/// What a job of an instance's actor calls: the engine's exports (through
/// `Deref`, so `ex.call_init(..)` reads as before) and, when the plugin has it,
/// the `recovery` export.
pub(crate) struct EngineExports {
    pub(crate) engine: EngineGuest,
    pub(crate) recovery: Option<RecoveryGuest>,
}

impl std::ops::Deref for EngineExports {
    type Target = EngineGuest;
    fn deref(&self) -> &EngineGuest {
        &self.engine
    }
}
