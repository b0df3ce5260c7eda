//! WIT ↔ contract conversions, in one place. Text an engine sends (error
//! messages and details) is made safe here, once: control characters escaped,
//! lengths bounded (`crate::text`).

use super::bindings::types as wit;
use crate::contract::{Capabilities, Display, EngineError, Section};
use crate::text::shown;

/// The longest message or detail kept from an engine, in characters.
const MAX_MESSAGE: usize = 4096;
/// The most malformed-payload messages kept from an engine.
const MAX_MESSAGES: usize = 64;

impl From<wit::Error> for EngineError {
    fn from(e: wit::Error) -> Self {
        use wit::Error as W;
        let safe = |d: String| shown(&d, MAX_MESSAGE);
        match e {
            W::MalformedPayload(messages) => {
                let mut kept: Vec<String> = messages
                    .iter()
                    .take(MAX_MESSAGES)
                    .map(|m| shown(m, MAX_MESSAGE))
                    .collect();
                if messages.len() > MAX_MESSAGES {
                    kept.push(format!("… and {} more messages", messages.len() - MAX_MESSAGES));
                }
                EngineError::MalformedPayload(kept)
            }
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
            W::NonFatalInternalError(d) => EngineError::NonFatalInternalError(safe(d)),
            W::FatalInternalError(d) => EngineError::FatalInternalError(safe(d)),
            W::ContractViolation(d) => EngineError::ContractViolation(safe(d)),
        }
    }
}

impl From<wit::Section> for Section {
    fn from(s: wit::Section) -> Self {
        Section {
            title: shown(&s.title, 200),
            content: s.content.chars().take(64 * 1024).collect(),
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
            name: shown(&d.name, 200),
            description: shown(&d.description, 1000),
            width: d.width,
            height: d.height,
        }
    }
}
