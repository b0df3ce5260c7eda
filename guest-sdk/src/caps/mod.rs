//! Capability wrappers: what an engine may do on the host beyond its task log —
//! processes ([`process`]), the sandbox and state directories and downloads
//! ([`files`]), per-task users ([`users`]), unix sockets ([`unix_socket`]) and
//! the task's HTTP endpoint ([`endpoint`], contract 0.1.2).
//! Outbound TCP/UDP and name lookups go through WASI 0.3 (`wasip3::sockets`).
//!
//! Nothing is granted by default. An engine lists what it needs in
//! `capabilities.toml` beside its `Cargo.toml` (embedded by [`export_engine!`]);
//! the operator grants it under `[plugins.NAME.*]` in the worker's config; every
//! call is checked against both. A refused call returns [`CapError::Denied`], whose
//! message names the config key that would allow it: pass it on (`?` turns a
//! [`CapError`] into a non-fatal internal error carrying that message).
//!
//! [`export_engine!`]: crate::export_engine

pub mod endpoint;
pub mod files;
pub mod process;
pub mod unix_socket;
pub mod users;

pub use crate::wit::enginehost::engine::caps::{CapError, Denied};

impl CapError {
    /// The whole message for a person (a denial names the config key to change).
    pub fn message(&self) -> String {
        match self {
            CapError::Denied(d) => d.message.clone(),
            CapError::TaskEnded => "the task has ended: its processes, users and files are gone".into(),
            CapError::NotFound(what) => format!("not found: {what}"),
            CapError::Invalid(why) => format!("invalid argument: {why}"),
            CapError::Os(why) => format!("the host refused: {why}"),
        }
    }
}

impl From<CapError> for crate::Error {
    /// A capability failure is the operator's or the host's business, not the task
    /// author's: a non-fatal internal error whose detail is the whole message.
    fn from(e: CapError) -> Self {
        crate::Error::NonFatalInternalError(e.message())
    }
}
