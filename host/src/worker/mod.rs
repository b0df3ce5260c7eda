//! The worker: runs one task on a [`contract::Engine`](crate::contract::Engine)
//! through the seed's stages (docs/engine-contract.md §1.2): validate → build → start →
//! wait (with maxRunTime and cancellation) → extract artifacts → dispose. Uses the
//! contract only.
//!
//! - `task`: the task file and the stages (what `enginehost run` and `enginehost
//!   worker` both run a task through).
//! - `artifacts`: extracting files and folders into an artifacts directory.
//! - `caches`: writable caches kept across tasks (the engines' volumes).
//! - `interactive`: the server through which a person opens a running task's
//!   shells and displays in a browser.
//! - `taskcluster`: `enginehost worker`, claiming tasks from a Taskcluster queue and
//!   running them through `task`.

pub mod artifacts;
pub mod caches;
pub mod interactive;
pub mod task;
pub mod taskcluster;

/// Payload validation lives in [`crate::schema`] (the runtime uses it too).
pub use crate::schema;

pub use task::{
    ArtifactStatus, Extras, Features, Outcome, TaskFile, TaskLimits, TaskReport, execute, execute_with, run_task,
};

/// 24 random bytes from the OS in hex (192 bits): the unguessable part of a URL
/// that only a task's readers learn (the live log, interactive links).
pub(crate) fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the OS's random source failed: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
