//! [`CapError`]: why a capability call failed, in the capability layer's own
//! terms (`wit/` converts it to the WIT's `cap-error` at the edge).

use crate::policy::{Denied, Policy};

/// Why a capability call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapError {
    /// The plugin's request and the operator's grant do not both allow it.
    Denied(Denied),
    /// The task the call names has ended: nothing new can be started for it.
    TaskEnded,
    /// A file or directory does not exist, is not of the kind asked for, or is
    /// reached through a symlink that leads out of where it must be.
    NotFound(String),
    /// An argument is not acceptable: which one, and why.
    Invalid(String),
    /// The operating system refused (for the operator's log).
    Os(String),
}

/// A capability call's result.
pub type CapResult<T> = Result<T, CapError>;

impl std::fmt::Display for CapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CapError::Denied(d) => f.write_str(&d.message),
            CapError::TaskEnded => f.write_str("the task has ended"),
            CapError::NotFound(s) => write!(f, "not found: {s}"),
            CapError::Invalid(s) => write!(f, "invalid: {s}"),
            CapError::Os(s) => write!(f, "the operating system refused: {s}"),
        }
    }
}

impl std::error::Error for CapError {}

/// An operating-system error, for the operator's log.
pub(crate) fn os_error(what: &str, e: impl std::fmt::Display) -> CapError {
    CapError::Os(format!("{what}: {e}"))
}

/// An argument that is not acceptable.
pub(crate) fn invalid(why: impl Into<String>) -> CapError {
    CapError::Invalid(why.into())
}

/// Something that is not there (or not of the kind asked for).
pub(crate) fn not_found(what: impl std::fmt::Display) -> CapError {
    CapError::NotFound(what.to_string())
}

/// Logs a denial for the operator (the engine gets the same text).
pub(crate) fn denied<T>(policy: &Policy, d: Denied) -> CapResult<T> {
    tracing::warn!(plugin = policy.plugin(), grant_key = %d.grant_key, "{}", d.message);
    Err(CapError::Denied(d))
}

/// The policy check every capability entry point starts with: `Ok` or the
/// logged denial.
pub(crate) fn check(policy: &Policy, allowed: Result<(), Denied>) -> CapResult<()> {
    match allowed {
        Ok(()) => Ok(()),
        Err(d) => denied(policy, d),
    }
}
