//! [`EngineError`]: every error of the contract, with the seed's exact messages,
//! plus the host's own failure of a plugin (a trap). Conversion from the WIT
//! variant lives in `runtime/convert.rs`, nowhere else.

/// An error an engine operation reports. Each variant's message (the seed's exact text)
/// is its documentation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)]
pub enum EngineError {
    /// The payload is not acceptable; each message is shown to the task's author.
    #[error("malformed-payload error: {}", .0.join("\n"))]
    MalformedPayload(Vec<String>),
    #[error("Feature not supported by the current engine")]
    FeatureNotSupported,
    #[error("The engine doesn't support mutable volume attachments")]
    MutableMountNotSupported,
    #[error("The engine doesn't support immutable volume attachements")]
    ImmutableMountNotSupported,
    #[error("The SandboxBuilder was discarded while StartSandbox() was running")]
    SandboxBuilderDiscarded,
    #[error("The referenced resource wasn't found")]
    ResourceNotFound,
    #[error("Handler returned an error and interrupted iteration")]
    HandlerInterrupt,
    #[error("The Sandbox has terminated")]
    SandboxTerminated,
    #[error("Execution of sandbox was aborted")]
    SandboxAborted,
    #[error("The shell has already terminated")]
    ShellTerminated,
    #[error("The shell was aborted")]
    ShellAborted,
    #[error("No such display exists")]
    NoSuchDisplay,
    #[error("Conflicting name is already in use")]
    NamingConflict,
    #[error("Engine is cannot run more than Engine.Capabilities().MaxCurrency sandbox in parallel")]
    MaxConcurrencyExceeded,
    #[error("Engine is not available in the current configuration")]
    EngineNotSupported,
    /// Already reported; the task resolves as internal-error, the worker goes on.
    /// The detail is for the operator's log.
    #[error("Encountered a non-fatal internal error")]
    NonFatalInternalError(String),
    /// Already reported; the worker must stop. The detail is for the operator's log.
    #[error("Encountered a fatal internal error")]
    FatalInternalError(String),
    /// The caller broke the call order.
    #[error("contract violation: {0}")]
    ContractViolation(String),
    /// The plugin itself failed (a trap, or the instance is gone); every call in
    /// flight on that engine fails with this, and the next use gets a fresh instance.
    #[error("engine plugin '{plugin}' failed: {reason}")]
    PluginFailed {
        /// The engine's name.
        plugin: String,
        /// The trap or failure.
        reason: String,
    },
}

impl EngineError {
    /// A malformed-payload error with one message.
    pub fn malformed(message: impl Into<String>) -> Self {
        EngineError::MalformedPayload(vec![message.into()])
    }

    /// The detail of an internal error, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            EngineError::NonFatalInternalError(d) | EngineError::FatalInternalError(d) if !d.is_empty() => Some(d),
            EngineError::PluginFailed { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EngineError;

    #[test]
    fn messages_are_the_seeds() {
        assert_eq!(
            EngineError::SandboxAborted.to_string(),
            "Execution of sandbox was aborted"
        );
        assert_eq!(
            EngineError::NonFatalInternalError("x".into()).to_string(),
            "Encountered a non-fatal internal error"
        );
        assert_eq!(
            EngineError::MalformedPayload(vec!["a".into(), "b".into()]).to_string(),
            "malformed-payload error: a\nb"
        );
    }
}
