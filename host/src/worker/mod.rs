//! The worker: runs one task on a [`contract::Engine`](crate::contract::Engine)
//! through the seed's stages (docs/engine-contract.md §1.2): validate → build → start →
//! wait (with maxRunTime and cancellation) → extract artifacts → dispose. Uses the
//! contract only.
//!
//! - `task`: the task file and the stages (what `enginehost run` and `enginehost
//!   worker` both run a task through).
//! - `artifacts`: extracting files and folders into an artifacts directory.
//! - `taskcluster`: `enginehost worker`, claiming tasks from a Taskcluster queue and
//!   running them through `task`.

pub mod artifacts;
pub mod task;
pub mod taskcluster;

/// Payload validation lives in [`crate::schema`] (the runtime uses it too).
pub use crate::schema;

pub use task::{ArtifactStatus, Outcome, TaskFile, TaskLimits, TaskReport, execute, run_task};
