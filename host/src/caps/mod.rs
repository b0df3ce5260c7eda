//! Capabilities: what an engine may do on the host beyond its task context, each
//! behind one choke point that checks the plugin's [`Policy`] (its request ∩ the
//! operator's grant) before anything happens, and each denied with an error that
//! names the config key that would allow it.
//!
//! This is the domain layer (the wasmtime-wasi pattern, docs/design.md): it never
//! names a generated WIT type or the Store's data. What it asks of the embedder is
//! [`CapsView`], a projection onto [`CapsCtxView`] (its [`CapsCtx`] and the
//! resource table); `crate::wit` unpacks handles, converts and calls one function
//! here per import. Every entry point is check-then-act: its first statements are
//! the policy checks.
//!
//! - `error`: [`CapError`], converted to the WIT's at the edge.
//! - `task`: [`TaskHandle`], what an engine's `task-context` is on the host.
//! - `scope`: [`HostEnv`] (per runtime: work dir, tree-kill mode, janitor),
//!   [`EngineScope`] (per engine: its directories, cgroup and live tasks) and
//!   `TaskScope` (per task: sandbox dir, cgroup, users, processes), the unit of
//!   cleanup (a *capability scope*, not a Taskcluster scope). Both registries live
//!   outside the wasmtime Store; `scope::janitor` journals and cleans up.
//! - `os`: processes, cgroups, ptys and users at the operating-system level.
//! - `files`, `process`, `users`, `unix_socket`: the capabilities of contract
//!   0.1.1; `endpoint`: the per-task HTTP server of 0.1.2.
//! - `log_lines`: cutting bytes for the task log into prefixed lines.
//! - `net`: outbound sockets through WASI, checked per address and per name.

pub(crate) mod endpoint;
mod error;
pub(crate) mod files;
pub(crate) mod log_lines;
pub(crate) mod net;
pub(crate) mod os;
pub(crate) mod process;
mod scope;
mod task;
pub(crate) mod unix_socket;
pub(crate) mod users;

use std::sync::Arc;

use wasmtime::component::ResourceTable;

pub use endpoint::{Endpoint, EndpointRequest};
pub use error::{CapError, CapResult};
pub(crate) use error::{check, denied, invalid, not_found, os_error};
pub(crate) use files::preopens;
pub use process::Process;
pub use scope::{EngineScope, HostEnv, ProcessBounds, default_work_dir};
pub(crate) use scope::{InstanceGuard, TaskScope};
pub use task::TaskHandle;
pub use users::TaskUser;

pub(crate) use net::NetCheck;

use crate::contract::WorkerControl;

/// What one Store knows about its capabilities.
pub struct CapsCtx {
    /// The engine the Store serves (its policy, directories and tasks).
    pub(crate) engine: Arc<EngineScope>,
    /// Names resolved through the checked lookup, for the socket check.
    pub(crate) net: Arc<NetCheck>,
    /// The worker the engine may ask to stop (`stop-now`).
    pub(crate) worker: Arc<WorkerControl>,
    /// Ends the instance's tasks when the Store is dropped (trap, dispose).
    pub(crate) guard: InstanceGuard,
}

impl CapsCtx {
    /// The context of a new instance of `engine`, serving `worker`.
    pub(crate) fn new(engine: Arc<EngineScope>, worker: Arc<WorkerControl>, generation: u64) -> Self {
        CapsCtx {
            net: Arc::new(NetCheck::new(engine.policy.clone())),
            guard: InstanceGuard::new(engine.clone(), generation),
            worker,
            engine,
        }
    }

    /// `stop-now`: the engine asks the worker to stop taking tasks.
    pub(crate) fn stop_now(&self) {
        self.worker.stop_now();
    }
}

/// What the capability layer asks of the Store's data: its [`CapsCtx`] and the
/// resource table that holds the handles (task contexts, processes, users, ...).
pub trait CapsView: Send {
    /// The projection the capability imports work on.
    fn caps(&mut self) -> CapsCtxView<'_>;
}

/// A Store's capability context and resource table, borrowed together.
pub struct CapsCtxView<'a> {
    /// The capability context.
    pub ctx: &'a mut CapsCtx,
    /// The Store's resource table.
    pub table: &'a mut ResourceTable,
}
