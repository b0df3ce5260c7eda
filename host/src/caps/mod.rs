//! Capabilities: what an engine may do on the host beyond its task context, each
//! behind one choke point that checks the plugin's [`Policy`] (its request ∩ the
//! operator's grant) before anything happens, and each denied with an error that
//! names the config key that would allow it.
//!
//! - `scope`: [`HostEnv`] (per runtime: work dir, tree-kill mode, janitor),
//!   [`EngineScope`] (per engine: its directories, cgroup and live tasks) and
//!   `TaskScope` (per task: sandbox dir, cgroup, users, processes), the unit of
//!   cleanup. Both registries live outside the wasmtime Store.
//! - `janitor`: the journal written before anything is created, cleanup in the
//!   background, replay after a crash.
//! - `os`: processes, cgroups, ptys and users at the operating-system level.
//! - `files`, `process`, `users`, `unix_socket`: the WIT imports of contract 0.1.1;
//!   `endpoint`: the per-task HTTP server of 0.1.2.
//! - `log_lines`: cutting bytes for the task log into prefixed lines.
//! - `net`: outbound sockets through WASI, checked per address and per name.
//!
//! Nothing here is reachable but through the imports; `runtime` links them and
//! hands each Store its [`CapsCtx`].

mod endpoint;
mod files;
mod janitor;
pub(crate) mod log_lines;
mod net;
pub(crate) mod os;
pub(crate) mod process;
mod scope;
mod unix_socket;
mod users;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

pub use endpoint::{EndpointRequestRes, EndpointRes};
pub(crate) use files::preopens;
pub use scope::{EngineScope, HostEnv, ProcessBounds, default_work_dir};
pub(crate) use scope::{InstanceGuard, TaskScope};
pub use users::TaskUserRes;

pub(crate) use net::{NetCheck, link_name_lookup};
pub use process::ProcessRes;

use crate::policy::{Denied, Policy};
use crate::runtime::HostState;
use crate::runtime::bindings::caps as wit;

/// What one Store knows about its capabilities.
pub struct CapsCtx {
    /// The engine the Store serves (its policy, directories and tasks).
    pub(crate) engine: Arc<EngineScope>,
    /// Names resolved through the checked lookup, for the socket check.
    pub(crate) net: Arc<NetCheck>,
    /// Ends the instance's tasks when the Store is dropped (trap, dispose).
    pub(crate) _guard: InstanceGuard,
}

impl CapsCtx {
    /// The context of a new instance of `engine`.
    pub(crate) fn new(engine: Arc<EngineScope>, generation: u64) -> Self {
        CapsCtx {
            net: Arc::new(NetCheck::new(engine.policy.clone())),
            _guard: InstanceGuard::new(engine.clone(), generation),
            engine,
        }
    }

    /// The plugin's policy.
    pub(crate) fn policy(&self) -> &Arc<Policy> {
        &self.engine.policy
    }
}

/// A capability call's error, as the WIT has it.
pub(crate) type CapResult<T> = Result<T, wit::CapError>;

impl From<Denied> for wit::CapError {
    fn from(d: Denied) -> Self {
        wit::CapError::Denied(wit::Denied {
            capability: d.capability,
            request: d.request,
            grant_key: d.grant_key,
            message: d.message,
        })
    }
}

/// An operating-system error, for the operator's log.
pub(crate) fn os_error(what: &str, e: impl std::fmt::Display) -> wit::CapError {
    wit::CapError::Os(format!("{what}: {e}"))
}

/// An argument that is not acceptable.
pub(crate) fn invalid(why: impl Into<String>) -> wit::CapError {
    wit::CapError::Invalid(why.into())
}

/// Logs a denial for the operator (the engine gets the same text).
pub(crate) fn denied<T>(policy: &Policy, d: Denied) -> CapResult<T> {
    tracing::warn!(plugin = policy.plugin(), grant_key = %d.grant_key, "{}", d.message);
    Err(d.into())
}

/// Links the capability interfaces of contract 0.1.1 and 0.1.2 (each call checks
/// the policy).
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use crate::runtime::bindings as b;
    b::caps::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    b::files::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    b::users::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    b::process::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    b::unix_sockets::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    b::endpoint::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    Ok(())
}

impl wit::Host for HostState {}
