//! The one `bindgen!` of the contract (`wit/engine.wit`). Imported resources map
//! onto the capability layer's types (`crate::caps`) and the worker's handlers
//! (`super::host`), so that a handle in the Store's table holds the domain value.

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

pub(crate) use generated::enginehost::engine::{caps, endpoint, files, host, process, types, unix_sockets, users};
pub(crate) use generated::exports::enginehost::engine::engine::Guest as EngineExports;
pub(crate) use generated::{EnginePlugin, EnginePluginPre};
