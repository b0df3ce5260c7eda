//! The worker: runs one task on a [`contract::Engine`](crate::contract::Engine)
//! through the seed's stages (engine-contract.md §1.2): validate → build → start →
//! wait (with maxRunTime and cancellation) → extract artifacts → dispose. Uses the
//! contract only.
//!
//! - `schema`: payload/config validation (JSON Schema with the seed's rules).
//! - `task`: the task file and the stages.
//! - `artifacts`: extracting files and folders into an artifacts directory.

pub mod artifacts;
pub mod schema;
pub mod task;

pub use task::{Outcome, TaskFile, run_task};
