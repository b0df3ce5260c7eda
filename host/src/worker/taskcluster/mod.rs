//! `enginehost worker`: a long-running Taskcluster worker (docs/worker.md). It claims
//! tasks from a queue up to its capacity, runs each on one of its engines through the
//! same stages as `enginehost run`, uploads the log and artifacts, and resolves the
//! run, speaking the worker protocol with the `taskcluster` crates.
//!
//! - `client`: the deployment and the protocol's calls, typed (claimWork, reclaim,
//!   artifacts, reports; a 409 told apart).
//! - `payload`: a task definition read into a task file.
//! - `cot`: the chain of trust: the signed `public/chain-of-trust.json`.
//! - `formats`: `[worker] payload-format`: generic-worker's and docker-worker's
//!   payloads mapped onto the native and docker engines.
//! - `upload`: artifact uploads (`object`, `s3`, `error`, `reference`, `link`; the
//!   gzip-encoded backing log).
//! - `livelog`: the HTTP server of the live log.
//! - `proxy`: `features.taskclusterProxy`, the task's API calls signed with the
//!   run's credentials.
//! - `metrics`: `/metrics` (Prometheus) and `/healthz` (`[worker] metrics-listen`).
//! - `runner`: worker-runner's stdin/stdout protocol (`--with-worker-runner`).
//! - `run`: one claimed run, from claim to resolution.
//! - `service`: the claim loop, capacity, shutdown and stop-now.

pub mod client;
pub mod cot;
pub mod formats;
pub mod livelog;
pub mod metrics;
pub mod payload;
pub mod proxy;
mod run;
pub mod runner;
mod service;
pub mod upload;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use client::{Deployment, WorkerIdentity};
pub use service::{Stopped, Worker, WorkerOptions};

use crate::contract::Engine;
use crate::worker::TaskLimits;

/// The engines a worker serves, each started once and shared by every task that
/// names it, with its limits.
#[derive(Clone, Default)]
pub struct Engines {
    by_name: BTreeMap<String, (Arc<dyn Engine>, TaskLimits)>,
    /// For payloads that name no engine.
    pub default: Option<String>,
}

impl Engines {
    /// No engines, `default` for payloads that name none.
    pub fn new(default: Option<String>) -> Engines {
        Engines {
            by_name: BTreeMap::new(),
            default,
        }
    }

    /// Serves `engine` as `name`, with `limits` for its tasks.
    pub fn add(&mut self, name: &str, engine: Arc<dyn Engine>, limits: TaskLimits) {
        self.by_name.insert(name.to_string(), (engine, limits));
    }

    /// The engine `name` and its limits.
    pub fn get(&self, name: &str) -> Option<&(Arc<dyn Engine>, TaskLimits)> {
        self.by_name.get(name)
    }

    /// The names served, sorted.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }
}
