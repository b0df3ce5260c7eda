//! The mock engine (seed: `engines/mock`, docs/engine-contract.md §4.1): runs no
//! processes, but implements every part of the contract with fixed behaviour, so the
//! host, the worker and the conformance suite can be exercised end to end.
//!
//! Payload: `{"delay": ms, "function": name, "argument": string}` (all required).
//! After `delay` ms the function runs; see [`sandbox`] for each function. Shells
//! ([`shell`]), the `MockDisplay` RFB server ([`display`]) and in-memory volumes
//! ([`volume`]) follow the seed; [`session`] is what shells and displays share.

pub mod display;
pub mod sandbox;
pub mod session;
pub mod shell;
pub mod volume;

use std::rc::Rc;

use enginehost_sdk::{Engine, Result, TaskContext, malformed, sleep};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use sandbox::{MockSandbox, MockSandboxBuilder, MockTask};
pub use shell::MockShell;
pub use volume::{MockVolume, MockVolumeBuilder};

/// The payload schema (shared with the host's native mock,
/// `host/src/native_mock.rs`): `delay`, `function` (every function of
/// [`sandbox`]) and `argument`, all required.
pub const PAYLOAD_SCHEMA: &str = include_str!("../payload-schema.json");

/// The mock payload.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Payload {
    /// Milliseconds to wait before running `function`.
    pub delay: u64,
    /// One of the functions of [`sandbox`].
    pub function: String,
    /// The function's argument.
    pub argument: String,
}

/// The mock engine; stateless (volumes belong to their owners).
pub struct MockEngine;

impl Engine for MockEngine {
    type SandboxBuilder = MockSandboxBuilder;
    type Sandbox = MockSandbox;
    type Shell = MockShell;
    type ResultSet = MockTask;
    type Volume = MockVolume;
    type VolumeBuilder = MockVolumeBuilder;

    async fn new(_config: Value) -> Result<Self> {
        Ok(MockEngine)
    }

    fn payload_schema(&self) -> Value {
        serde_json::from_str(PAYLOAD_SCHEMA).expect("the mock's payload schema is JSON")
    }

    async fn new_sandbox_builder(self: Rc<Self>, context: TaskContext, payload: Value) -> Result<MockSandboxBuilder> {
        let payload: Payload = serde_json::from_value(payload)
            .map_err(|e| malformed(format!("task.payload does not fit the mock payload schema: {e}")))?;
        if payload.function == "malformed-payload-initial" {
            sleep(std::time::Duration::from_millis(payload.delay)).await;
            return Err(malformed(payload.argument));
        }
        Ok(MockSandboxBuilder::new(context, payload))
    }

    async fn new_volume_builder(self: Rc<Self>, _options: Value) -> Result<MockVolumeBuilder> {
        Ok(MockVolumeBuilder::default())
    }

    async fn new_volume(self: Rc<Self>, _options: Value) -> Result<MockVolume> {
        Ok(MockVolume::default())
    }

    async fn recover_sandbox(self: Rc<Self>, context: TaskContext, record: Vec<u8>) -> Result<MockSandbox> {
        MockTask::recover(context, &record)
    }
}

// Without the `export` feature the crate is a library other engines can wrap.
#[cfg(all(target_arch = "wasm32", feature = "export"))]
enginehost_sdk::export_engine!(MockEngine);
