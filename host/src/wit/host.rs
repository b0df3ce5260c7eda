//! Glue of `interface host`: the task context (a [`TaskHandle`]), the proxy and
//! file handlers the worker attaches, and stop-now. Every method reaches only
//! the resource it is called on; a bad handle traps (a host bug or a hostile
//! guest). A context kept past its task answers as an empty one (the task log
//! takes nothing more).

use std::sync::Arc;

use tokio::sync::oneshot;
use wasmtime::component::{Accessor, Resource, StreamReader};

use super::bindings::{host, types};
use super::streams::{LogSink, guest_stream};
use super::{Caps, task};
use crate::caps::{CapsCtxView, TaskHandle};
use crate::contract::{self, FileHandler, ProxyHandler};

/// The host side of a `proxy-handler`.
pub struct ProxyHandlerRes(pub(crate) Arc<dyn ProxyHandler>);
/// The host side of a `file-handler`.
pub struct FileHandlerRes(pub(crate) FileHandler);

impl host::Host for CapsCtxView<'_> {
    fn stop_now(&mut self) -> wasmtime::Result<()> {
        self.ctx.stop_now();
        Ok(())
    }
}

/// The WIT functions of a context cannot fail, and trapping would end the
/// engine's other tasks too: an ended task answers empty (`TaskHandle`).
impl host::HostTaskContext for CapsCtxView<'_> {
    fn task_id(&mut self, r: Resource<TaskHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&r)?.task_id())
    }
    fn run_id(&mut self, r: Resource<TaskHandle>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&r)?.run_id())
    }
    fn scopes(&mut self, r: Resource<TaskHandle>) -> wasmtime::Result<Vec<String>> {
        Ok(self.table.get(&r)?.scopes())
    }
    fn has_scopes(&mut self, r: Resource<TaskHandle>, sets: Vec<Vec<String>>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&r)?.has_scopes(&sets))
    }
    fn log(&mut self, r: Resource<TaskHandle>, message: String) -> wasmtime::Result<()> {
        self.table.get(&r)?.log(&message, false);
        Ok(())
    }
    fn log_error(&mut self, r: Resource<TaskHandle>, message: String) -> wasmtime::Result<()> {
        self.table.get(&r)?.log(&message, true);
        Ok(())
    }
    fn set_exit_code(&mut self, r: Resource<TaskHandle>, code: i32) -> wasmtime::Result<()> {
        self.table.get(&r)?.set_exit_code(code);
        Ok(())
    }
    fn set_recovery_record(
        &mut self,
        r: Resource<TaskHandle>,
        record: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(self.table.get(&r)?.set_recovery_record(record))
    }
    fn drop(&mut self, r: Resource<TaskHandle>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl<T> host::HostTaskContextWithStore<T> for Caps {
    async fn write_log(
        acc: &Accessor<T, Self>,
        r: Resource<TaskHandle>,
        mut data: StreamReader<u8>,
    ) -> wasmtime::Result<u64> {
        let (done, written) = oneshot::channel();
        acc.with(|mut a| {
            let log = a.get().table.get(&r)?.live().map(|c| c.log().clone());
            match log {
                Some(log) => data.pipe(&mut a, LogSink::new(log, done)),
                // The task ended: its log takes nothing more (the engine's writes end).
                None => data.close(&mut a),
            }
        })?;
        Ok(written.await.unwrap_or(0))
    }

    async fn cancelled(acc: &Accessor<T, Self>, r: Resource<TaskHandle>) -> wasmtime::Result<()> {
        let cancelled = acc.with(|mut a| task(a.get(), &r))?.cancelled();
        cancelled.await;
        Ok(())
    }
}

impl host::HostProxyHandler for CapsCtxView<'_> {
    fn drop(&mut self, r: Resource<ProxyHandlerRes>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl<T> host::HostProxyHandlerWithStore<T> for Caps {
    async fn handle_request(
        acc: &Accessor<T, Self>,
        r: Resource<ProxyHandlerRes>,
        request: types::HttpRequest,
    ) -> wasmtime::Result<types::HttpResponse> {
        let handler = acc.with(|mut a| a.get().table.get(&r).map(|h| h.0.clone()))?;
        let request = contract::HttpRequest {
            method: request.method,
            path: request.path,
            headers: request.headers,
            body: request.body,
        };
        let response = handler.handle(request).await;
        Ok(types::HttpResponse {
            status: response.status,
            headers: response.headers,
            body: response.body,
        })
    }
}

impl host::HostFileHandler for CapsCtxView<'_> {
    fn drop(&mut self, r: Resource<FileHandlerRes>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl<T> host::HostFileHandlerWithStore<T> for Caps {
    async fn handle_file(
        acc: &Accessor<T, Self>,
        r: Resource<FileHandlerRes>,
        path: String,
        data: StreamReader<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        let handler = acc.with(|mut a| a.get().table.get(&r).map(|h| h.0.clone()))?;
        let stream = guest_stream(acc, data)?;
        Ok(handler(path, stream).await)
    }
}
