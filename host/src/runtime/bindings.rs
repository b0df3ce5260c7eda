//! The one `bindgen!` of the contract (`wit/engine.wit`). Imported resources map to
//! the host types in `runtime/imports.rs` and `caps/`.

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "engine-plugin",
        imports: { default: trappable },
        exports: { default: async | store },
        with: {
            "enginehost:engine/host.task-context": crate::runtime::imports::TaskContextRes,
            "enginehost:engine/host.proxy-handler": crate::runtime::imports::ProxyHandlerRes,
            "enginehost:engine/host.file-handler": crate::runtime::imports::FileHandlerRes,
            "enginehost:engine/process.process": crate::caps::ProcessRes,
            "enginehost:engine/users.task-user": crate::caps::TaskUserRes,
            "enginehost:engine/endpoint.endpoint": crate::caps::EndpointRes,
            "enginehost:engine/endpoint.request": crate::caps::EndpointRequestRes,
        },
    });
}

pub(crate) use generated::enginehost::engine::{caps, endpoint, files, host, process, types, unix_sockets, users};
pub(crate) use generated::exports::enginehost::engine::engine::Guest as EngineExports;
pub(crate) use generated::{EnginePlugin, EnginePluginPre};
