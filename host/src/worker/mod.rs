//! The worker: runs one task on a [`contract::Engine`](crate::contract::Engine)
//! through the seed's stages (engine-contract.md §1.2): validate → build → start →
//! wait (with maxRunTime and cancellation) → extract artifacts → dispose. Uses the
//! contract only.
//!
//! - `task`: the task file and the stages.
//! - `artifacts`: extracting files and folders into an artifacts directory.

pub mod artifacts;
pub mod task;

/// Payload validation lives in [`crate::schema`] (the runtime uses it too).
pub use crate::schema;

pub use task::{Outcome, TaskFile, TaskLimits, run_task};
