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

/// The engines served, by name, with their tasks' limits.
type Served = BTreeMap<String, (Arc<dyn Engine>, TaskLimits)>;

/// The engines a worker serves, each started once and shared by every task that
/// names it, with its limits.
#[derive(Default)]
pub struct Engines {
    /// By name; an entry is replaced when its plugin file is (hot reload), and a
    /// task keeps the engine it started on.
    by_name: std::sync::RwLock<Served>,
    /// For payloads that name no engine.
    pub default: Option<String>,
}

impl Engines {
    /// No engines, `default` for payloads that name none.
    pub fn new(default: Option<String>) -> Engines {
        Engines {
            by_name: Default::default(),
            default,
        }
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, Served> {
        self.by_name.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `engine` as `name`, with `limits` for its tasks.
    pub fn add(&mut self, name: &str, engine: Arc<dyn Engine>, limits: TaskLimits) {
        self.by_name
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), (engine, limits));
    }

    /// Serves `engine` as `name` from now on (its tasks' limits stay); the engine it
    /// replaces, which the tasks that started on it keep using.
    pub fn replace(&self, name: &str, engine: Arc<dyn Engine>) -> Option<Arc<dyn Engine>> {
        let mut map = self.by_name.write().unwrap_or_else(|e| e.into_inner());
        let entry = map.get_mut(name)?;
        Some(std::mem::replace(&mut entry.0, engine))
    }

    /// The engine `name` and its limits.
    pub fn get(&self, name: &str) -> Option<(Arc<dyn Engine>, TaskLimits)> {
        self.map().get(name).cloned()
    }

    /// The names served, sorted.
    pub fn names(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }
}
