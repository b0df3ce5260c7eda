//! Capabilities through real plugins (`tests/fixtures/caps`, and `caps-narrow`
//! which asks for almost nothing): for each capability the allowed path works,
//! and every way to miss the grant is refused with the key that would allow it,
//! while another engine keeps working. Process tests check that nothing a task
//! started survives it (normal end, abort, trap).
//!
//! - `process`, `files`, `net`, `unix_socket`, `users`, `endpoint`: one module per
//!   capability.
//! - `side_doors`: the hostile suite (deep trees, loader variables, socket
//!   symlinks, the worker's own addresses, task network, fork and memory floods).
//! - `cleanup`: a SIGKILLed worker's leftovers are gone after its next start.
//! - `compat`: plugins built for contract 0.1.0 still pass their suites.

mod cleanup;
mod compat;
mod endpoint;
mod files;
mod net;
mod process;
mod side_doors;
mod unix_socket;
mod users;

use std::sync::{Arc, LazyLock};

use enginehost::contract::{Engine, EngineError, Sandbox};
use enginehost::policy::OperatorConfig;
use enginehost::runtime::{EngineOptions, LoadedPlugin};
use serde_json::{Value, json};

use crate::common::*;

pub static CAPS: LazyLock<LoadedPlugin> = LazyLock::new(|| {
    let wasm = std::fs::read(fixture_path("fixture_caps")).expect("caps fixture");
    RUNTIME.load("fixture-caps", &wasm).expect("caps fixture compiles")
});
pub static NARROW: LazyLock<LoadedPlugin> = LazyLock::new(|| {
    let wasm = std::fs::read(fixture_path("fixture_caps_narrow")).expect("narrow caps fixture");
    RUNTIME
        .load("fixture-caps-narrow", &wasm)
        .expect("narrow caps fixture compiles")
});

/// Starts `plugin` with the grants of an operator config's `[plugins.<its name>.*]`
/// tables, written as TOML with `X` standing for the plugin's name.
pub async fn with_grants(plugin: &LoadedPlugin, config: &str) -> Arc<dyn Engine> {
    let config = config.replace("plugins.X", &format!("plugins.{}", plugin.name()));
    let config = OperatorConfig::parse(&config).expect("the test's operator config parses");
    RUNTIME
        .start_engine(
            plugin,
            EngineOptions {
                grants: config.grants(plugin.name()),
                ..Default::default()
            },
        )
        .await
        .expect("engine starts")
}

/// Runs the fixture's `steps` as one task; returns whether it succeeded and its log.
pub async fn steps(engine: &Arc<dyn Engine>, steps: Value) -> (bool, String) {
    let (result, log) = run_payload(engine, json!({ "steps": steps }), &[]).await;
    (result.map(|r| r.success()).unwrap_or(false), log)
}

/// Starts the fixture's `steps` as one task and returns its sandbox (the caller
/// waits, aborts or drops it) and its context.
pub async fn start_steps(
    engine: &Arc<dyn Engine>,
    steps: Value,
) -> (Arc<dyn Sandbox>, enginehost::contract::TaskContext) {
    let ctx = context();
    let sandbox = started_in(engine, ctx.clone(), json!({ "steps": steps })).await;
    (sandbox, ctx)
}

/// Waits until the task log contains `needle` (or 10 s pass).
pub async fn log_shows(ctx: &enginehost::contract::TaskContext, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(ctx.log().path()).unwrap_or_default();
        if text.contains(needle) || tokio::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The lines of `log` without the `[taskcluster] ` prefix the fixture's lines get.
pub fn lines(log: &str) -> Vec<String> {
    log.lines()
        .map(|l| l.strip_prefix("[taskcluster] ").unwrap_or(l).to_string())
        .collect()
}

/// Asserts that `log` has a line starting with `prefix`; returns it.
#[track_caller]
pub fn line(log: &str, prefix: &str) -> String {
    lines(log)
        .into_iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in the log:\n{log}"))
}

/// Processes whose command line contains `marker` (pgrep -f), other than pgrep.
pub fn pgrep(marker: &str) -> Vec<String> {
    let out = std::process::Command::new("pgrep")
        .args(["-a", "-f", marker])
        .output()
        .expect("pgrep runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .map(String::from)
        .collect()
}

/// A marker unique to one test: a sleep duration nobody else uses.
pub fn marker(n: u32) -> String {
    format!("{}.{:04}", 4000 + n, std::process::id() % 10_000)
}

/// A task's end, then the host's cleanup.
pub async fn drained() {
    RUNTIME.drain().await;
}

/// The engine `mock` still runs a task (another engine keeps working).
pub async fn mock_still_works() {
    let mock = start(&MOCK).await;
    let (result, log) = run_payload(&mock, mock_payload(0, "write-log", "still here"), &[]).await;
    assert!(result.unwrap().success(), "{log}");
    assert!(log.contains("still here"));
}

/// Whether the test runs as root (users, cgroups).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The sandbox-aborted error wait gives after an abort.
pub fn aborted(r: Result<Arc<dyn enginehost::contract::ResultSet>, EngineError>) -> bool {
    matches!(r, Err(EngineError::SandboxAborted))
}
