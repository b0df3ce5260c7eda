//! What the host offers an engine (`interface host` of the WIT): the task context,
//! the proxy and file handlers, and stop-now. Every method reaches only the
//! resource it is called on; a bad handle traps (a host bug or a hostile guest).

use std::sync::Arc;

use tokio::sync::oneshot;
use wasmtime::component::{Accessor, HasSelf, Resource, StreamReader};

use super::bindings::{host, types};
use super::state::HostState;
use super::streams::{LogSink, guest_stream};
use crate::caps::TaskScope;
use crate::contract::{self, FileHandler, ProxyHandler, TaskContext};

/// The host side of a `task-context`: the worker's context and the task's
/// capability scope.
pub struct TaskContextRes {
    pub(crate) ctx: TaskContext,
    pub(crate) scope: Arc<TaskScope>,
}
/// The host side of a `proxy-handler`.
pub struct ProxyHandlerRes(pub(crate) Arc<dyn ProxyHandler>);
/// The host side of a `file-handler`.
pub struct FileHandlerRes(pub(crate) FileHandler);

/// The longest line `log`/`log-error` keep, in characters (a message's lines are
/// each prefixed; control characters escaped: no forged lines).
const MAX_LOG_LINE: usize = 64 * 1024;
/// The most lines one `log`/`log-error` call writes.
const MAX_LOG_LINES: usize = 1000;

/// The context while its task lives; `None` once the task ended (a kept context
/// then writes nothing).
fn live_context(state: &mut HostState, r: &Resource<TaskContextRes>) -> wasmtime::Result<Option<TaskContext>> {
    let res = state.table.get(r)?;
    Ok((!res.scope.has_ended()).then(|| res.ctx.clone()))
}

impl host::Host for HostState {
    fn stop_now(&mut self) -> wasmtime::Result<()> {
        self.worker.stop_now();
        Ok(())
    }
}

/// A context kept past its task answers as an empty one: no task id, run 0, no
/// scopes (so `has-scopes` is false for any non-empty set). The WIT functions
/// cannot fail, and trapping would end the engine's other tasks too.
impl host::HostTaskContext for HostState {
    fn task_id(&mut self, r: Resource<TaskContextRes>) -> wasmtime::Result<String> {
        Ok(live_context(self, &r)?
            .map(|c| c.info().task_id.clone())
            .unwrap_or_default())
    }
    fn run_id(&mut self, r: Resource<TaskContextRes>) -> wasmtime::Result<u32> {
        Ok(live_context(self, &r)?.map_or(0, |c| c.info().run_id))
    }
    fn scopes(&mut self, r: Resource<TaskContextRes>) -> wasmtime::Result<Vec<String>> {
        Ok(live_context(self, &r)?
            .map(|c| c.info().scopes.clone())
            .unwrap_or_default())
    }
    fn has_scopes(&mut self, r: Resource<TaskContextRes>, sets: Vec<Vec<String>>) -> wasmtime::Result<bool> {
        Ok(live_context(self, &r)?.is_some_and(|c| c.has_scopes(&sets)))
    }
    fn log(&mut self, r: Resource<TaskContextRes>, message: String) -> wasmtime::Result<()> {
        if let Some(ctx) = live_context(self, &r)? {
            for line in crate::text::lines(&message, MAX_LOG_LINE, MAX_LOG_LINES) {
                ctx.log().log(&line);
            }
        }
        Ok(())
    }
    fn log_error(&mut self, r: Resource<TaskContextRes>, message: String) -> wasmtime::Result<()> {
        if let Some(ctx) = live_context(self, &r)? {
            for line in crate::text::lines(&message, MAX_LOG_LINE, MAX_LOG_LINES) {
                ctx.log().log_error(&line);
            }
        }
        Ok(())
    }
    fn drop(&mut self, r: Resource<TaskContextRes>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl<T> host::HostTaskContextWithStore<T> for HasSelf<HostState> {
    async fn write_log(
        acc: &Accessor<T, Self>,
        r: Resource<TaskContextRes>,
        mut data: StreamReader<u8>,
    ) -> wasmtime::Result<u64> {
        let (done, written) = oneshot::channel();
        acc.with(|mut a| match live_context(a.get(), &r)? {
            Some(ctx) => data.pipe(&mut a, LogSink::new(ctx.log().clone(), done)),
            // The task ended: its log takes nothing more (the engine's writes end).
            None => data.close(&mut a),
        })?;
        Ok(written.await.unwrap_or(0))
    }

    async fn cancelled(acc: &Accessor<T, Self>, r: Resource<TaskContextRes>) -> wasmtime::Result<()> {
        let (ctx, scope) = acc.with(|mut a| -> wasmtime::Result<_> {
            let res = a.get().table.get(&r)?;
            Ok((res.ctx.clone(), res.scope.clone()))
        })?;
        if scope.has_ended() {
            return Ok(()); // over: nothing to wait for
        }
        ctx.cancelled().await;
        Ok(())
    }
}

impl host::HostProxyHandler for HostState {
    fn drop(&mut self, r: Resource<ProxyHandlerRes>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl<T> host::HostProxyHandlerWithStore<T> for HasSelf<HostState> {
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

impl host::HostFileHandler for HostState {
    fn drop(&mut self, r: Resource<FileHandlerRes>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl<T> host::HostFileHandlerWithStore<T> for HasSelf<HostState> {
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

impl types::Host for HostState {}
