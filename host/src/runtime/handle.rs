//! [`Handle`]: what every contract object of a wasm engine holds, the instance
//! it lives in and its `ResourceAny`, and the task it belongs to ([`TaskSlot`]).
//! Dropping a handle drops the guest resource
//! (`ResourceAny::resource_drop_concurrent`, which runs the guest's destructor;
//! the WIT `release` functions stay for plugins built against older hosts, but
//! this host no longer needs them).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::FutureExt;
use futures::future::BoxFuture;
use wasmtime::component::{ResourceAny, StreamReader};

use super::actor::{Acc, Deadline, Instance};
use crate::caps::TaskScope;
use crate::contract::{ByteStream, EngineError, Result, TaskUsage};
use crate::wit::bindings::EngineExports;
use crate::wit::bindings::types::Error as WitError;
use crate::wit::streams::guest_stream;

/// A guest resource in one instance.
pub(crate) struct Handle {
    pub(crate) instance: Arc<Instance>,
    pub(crate) res: ResourceAny,
    /// The task this object belongs to (builder, sandbox, shells, result set).
    pub(crate) slot: Option<Arc<TaskSlot>>,
}

/// One live task of an engine. When the worker drops the task's last object, the
/// count goes down and the task's capability scope closes (its processes are
/// killed, its users and sandbox directory removed).
pub(crate) struct TaskSlot {
    live: Arc<AtomicUsize>,
    scope: Arc<TaskScope>,
    /// What the task costs the engine (its context's; `accounting`).
    usage: Arc<TaskUsage>,
}

impl TaskSlot {
    pub(crate) fn take(
        live: &Arc<AtomicUsize>,
        max: u64,
        scope: Arc<TaskScope>,
        usage: Arc<TaskUsage>,
    ) -> Option<Arc<TaskSlot>> {
        let taken = live.fetch_add(1, Ordering::SeqCst);
        if taken as u64 >= max {
            live.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Arc::new(TaskSlot {
            live: live.clone(),
            scope,
            usage,
        }))
    }
}

impl Drop for TaskSlot {
    fn drop(&mut self) {
        self.scope.close();
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let res = self.res;
        self.instance
            .spawn_call(move |acc, _| async move { res.resource_drop_concurrent(acc).await }.boxed());
    }
}

/// A call's result before flattening: the instance's error outside, the engine's inside.
pub(crate) type Called<R> = wasmtime::Result<std::result::Result<R, WitError>>;

impl Handle {
    /// Calls into the guest (the call `what`, within `deadline`) with this handle's
    /// resource; flattens both error layers.
    pub(crate) async fn call<R, F>(&self, what: &'static str, deadline: Deadline, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(&'a Acc, &'a EngineExports, ResourceAny) -> BoxFuture<'a, Called<R>> + Send + 'static,
    {
        let res = self.res;
        let task = self.slot.as_ref().map(|s| &s.usage);
        flat(
            self.instance
                .call_for(task, what, deadline, move |acc, ex| f(acc, ex, res))
                .await,
        )
    }

    /// A handle for another resource of the same instance.
    pub(crate) fn sibling(&self, res: ResourceAny) -> Handle {
        Handle {
            instance: self.instance.clone(),
            res,
            slot: self.slot.clone(),
        }
    }
}

/// Pipes a returned guest stream into a [`ByteStream`] (inside a job).
pub(crate) fn stream_result(acc: &Acc, r: std::result::Result<StreamReader<u8>, WitError>) -> Called<ByteStream> {
    Ok(match r {
        Ok(reader) => Ok(guest_stream(acc, reader)?),
        Err(e) => Err(e),
    })
}

/// Flattens a call's two layers of errors (the instance's and the engine's).
pub(crate) fn flat<T>(r: Result<std::result::Result<T, WitError>>) -> Result<T> {
    r?.map_err(EngineError::from)
}
