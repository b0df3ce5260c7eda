//! WIT ↔ contract conversions, in one place.

use super::bindings::types as wit;
use crate::contract::{Capabilities, Display, EngineError, Section};

impl From<wit::Error> for EngineError {
    fn from(e: wit::Error) -> Self {
        use wit::Error as W;
        match e {
            W::MalformedPayload(messages) => EngineError::MalformedPayload(messages),
            W::FeatureNotSupported => EngineError::FeatureNotSupported,
            W::MutableMountNotSupported => EngineError::MutableMountNotSupported,
            W::ImmutableMountNotSupported => EngineError::ImmutableMountNotSupported,
            W::SandboxBuilderDiscarded => EngineError::SandboxBuilderDiscarded,
            W::ResourceNotFound => EngineError::ResourceNotFound,
            W::HandlerInterrupt => EngineError::HandlerInterrupt,
            W::SandboxTerminated => EngineError::SandboxTerminated,
            W::SandboxAborted => EngineError::SandboxAborted,
            W::ShellTerminated => EngineError::ShellTerminated,
            W::ShellAborted => EngineError::ShellAborted,
            W::NoSuchDisplay => EngineError::NoSuchDisplay,
            W::NamingConflict => EngineError::NamingConflict,
            W::MaxConcurrencyExceeded => EngineError::MaxConcurrencyExceeded,
            W::EngineNotSupported => EngineError::EngineNotSupported,
            W::NonFatalInternalError(d) => EngineError::NonFatalInternalError(d),
            W::FatalInternalError(d) => EngineError::FatalInternalError(d),
            W::ContractViolation(d) => EngineError::ContractViolation(d),
        }
    }
}

impl From<wit::Section> for Section {
    fn from(s: wit::Section) -> Self {
        Section {
            title: s.title,
            content: s.content,
        }
    }
}

impl From<wit::EngineCapabilities> for Capabilities {
    fn from(c: wit::EngineCapabilities) -> Self {
        Capabilities {
            max_concurrency: c.max_concurrency,
        }
    }
}

impl From<wit::Display> for Display {
    fn from(d: wit::Display) -> Self {
        Display {
            name: d.name,
            description: d.description,
            width: d.width,
            height: d.height,
        }
    }
}
