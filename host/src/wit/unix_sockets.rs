//! Glue of `interface unix-sockets` (`crate::caps::unix_socket`).

use wasmtime::component::{Accessor, Resource, StreamReader};

use super::bindings::unix_sockets as wit;
use super::streams::{guest_stream, host_stream};
use super::{Caps, WitResult, task};
use crate::caps::{self, CapsCtxView, TaskHandle};

impl<T> wit::HostWithStore<T> for Caps {
    async fn connect(
        acc: &Accessor<T, Self>,
        path: String,
        outgoing: StreamReader<u8>,
    ) -> wasmtime::Result<WitResult<StreamReader<u8>>> {
        // Taken over first: a refused call then ends the engine's stream cleanly.
        let outgoing = guest_stream(acc, outgoing)?;
        let engine = acc.with(|mut a| a.get().ctx.engine.clone());
        match caps::unix_socket::connect(&engine, &path, outgoing).await {
            Ok(incoming) => Ok(Ok(host_stream(acc, incoming)?)),
            Err(e) => Ok(Err(e.into())),
        }
    }

    async fn connect_in_sandbox(
        acc: &Accessor<T, Self>,
        r: Resource<TaskHandle>,
        path: String,
        outgoing: StreamReader<u8>,
    ) -> wasmtime::Result<WitResult<StreamReader<u8>>> {
        let outgoing = guest_stream(acc, outgoing)?;
        let task = acc.with(|mut a| task(a.get(), &r))?;
        match caps::unix_socket::connect_in_sandbox(&task.scope, &path, outgoing).await {
            Ok(incoming) => Ok(Ok(host_stream(acc, incoming)?)),
            Err(e) => Ok(Err(e.into())),
        }
    }
}

impl wit::Host for CapsCtxView<'_> {}
