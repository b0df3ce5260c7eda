//! The benchmark behind `enginehost bench` and `cargo bench`: every figure
//! measured side by side in one run (this machine is shared and noisy: compare
//! ratios, not absolute numbers), printed as one `name: value` line each, with the
//! unit and the target, if any, in a trailing comment.
//!
//! - `engine`: loading a plugin (compiled vs cached), one task's lifecycle (wasm
//!   mock vs the native mock, limits on vs off), 10 000 sandboxes waiting at once.
//! - `throughput`: process output into the task log vs a shell redirect, and a
//!   directory artifact vs `cp -r` (the native engine).
//! - `backends`: a trivial task through the worker's stages against the bare
//!   backend (`native`: spawning `true`; `docker`: `docker run --rm`).

mod backends;
mod engine;
pub mod native_mock;
mod throughput;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

pub use backends::{DEFAULT_DOCKER_IMAGE, docker_socket};

use crate::contract::Engine;
use crate::plugin::BUILTIN;
use crate::policy::OperatorConfig;
use crate::runtime::{EngineOptions, Runtime};

/// How a figure compares with its target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The value must be at least this.
    AtLeast(f64),
    /// The value must be at most this.
    AtMost(f64),
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// `group.name`, e.g. `throughput.log_ratio`.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit ("" for a ratio).
    pub unit: &'static str,
    /// What it should be, if anything.
    pub target: Option<Target>,
}

impl Figure {
    fn new(name: &str, value: f64, unit: &'static str) -> Figure {
        Figure {
            name: name.to_string(),
            value,
            unit,
            target: None,
        }
    }

    fn target(mut self, target: Target) -> Figure {
        self.target = Some(target);
        self
    }

    /// Whether the value meets its target (true without one).
    pub fn met(&self) -> bool {
        match self.target {
            Some(Target::AtLeast(t)) => self.value >= t,
            Some(Target::AtMost(t)) => self.value <= t,
            None => true,
        }
    }
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = if self.value.abs() >= 100.0 || self.value.fract() == 0.0 {
            format!("{:.0}", self.value)
        } else {
            format!("{:.2}", self.value)
        };
        write!(f, "{}: {value}", self.name)?;
        let mut notes = Vec::new();
        if !self.unit.is_empty() {
            notes.push(self.unit.to_string());
        }
        match self.target {
            Some(Target::AtLeast(t)) => {
                notes.push(format!("target >= {t}: {}", if self.met() { "met" } else { "MISSED" }))
            }
            Some(Target::AtMost(t)) => {
                notes.push(format!("target <= {t}: {}", if self.met() { "met" } else { "MISSED" }))
            }
            None => {}
        }
        if !notes.is_empty() {
            write!(f, "  # {}", notes.join(", "))?;
        }
        Ok(())
    }
}

/// What a run measures and where.
pub struct Options {
    /// Smaller sizes and fewer rounds (under a minute).
    pub quick: bool,
    /// Scratch space (sandboxes, files to copy); removed afterwards.
    pub scratch: PathBuf,
    /// Only the figures whose name starts with this (e.g. `lifecycle`).
    pub only: Option<String>,
    /// The dockerd to measure the docker engine against (`None`: no docker figures).
    pub docker_socket: Option<PathBuf>,
    /// The image of the docker figures (default [`DEFAULT_DOCKER_IMAGE`]).
    pub docker_image: Option<String>,
    /// An engine built with componentize-py (`enginehost new --lang python`),
    /// for `load.python_*` (`None`: no such figures).
    pub python_engine: Option<PathBuf>,
}

impl Options {
    /// Whether the figures of `group` are wanted.
    pub(crate) fn wants(&self, group: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|o| o.starts_with(group) || group.starts_with(o))
    }
}

/// Runs every benchmark; `report` sees each figure as it comes. The scratch
/// directory is removed afterwards, also when a benchmark fails.
///
/// # Errors
/// When a benchmark cannot run at all (an engine does not start, a command fails).
pub async fn run(options: &Options, mut report: impl FnMut(&Figure) + Send) -> anyhow::Result<Vec<Figure>> {
    let result = run_groups(options, &mut report).await;
    let _ = std::fs::remove_dir_all(&options.scratch);
    result
}

async fn run_groups(options: &Options, report: &mut (dyn FnMut(&Figure) + Send)) -> anyhow::Result<Vec<Figure>> {
    let mut all = engine::run(options, &mut *report).await?;
    let mut add = |figures: Vec<Figure>| {
        figures.iter().for_each(&mut *report);
        all.extend(figures);
    };
    if options.wants("throughput") {
        add(throughput::run(options).await?);
    }
    if options.wants("native") {
        add(backends::native(options).await?);
    }
    if options.wants("docker") {
        add(backends::docker(options).await?);
    }
    Ok(all)
}

/// Starts the built-in engine `name` with the operator config `toml`.
pub(crate) async fn start_builtin(runtime: &Runtime, name: &str, toml: &str) -> anyhow::Result<Arc<dyn Engine>> {
    let file = format!("{name}.wasm");
    let (_, wasm, _) = BUILTIN
        .iter()
        .find(|(f, _, _)| *f == file)
        .with_context(|| format!("the {name} engine is built in"))?;
    let plugin = runtime.load(name, wasm)?;
    let config = OperatorConfig::parse(toml)?;
    let options = EngineOptions {
        config: config.engine_config(name),
        grants: config.grants(name),
        ..Default::default()
    };
    Ok(runtime.start_engine(&plugin, options).await?)
}

/// The median of `v` (NaN when empty).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
