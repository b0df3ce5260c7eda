//! Shared per test binary: one wasmtime runtime, each plugin compiled once.
//! Engines (their actors) are started per test, on the test's own tokio runtime.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use enginehost::contract::{Engine, EngineError, ResultSet, Sandbox, TaskContext, TaskInfo, TaskLog, WorkerControl};
use enginehost::plugin::BUILTIN;
use enginehost::policy::HostSettings;
use enginehost::runtime::{EngineOptions, LoadedPlugin, Runtime};
use serde_json::{Value, json};

/// The work directory of this test process (under cargo's tmp dir, not /tmp);
/// the ones of earlier test processes that are gone are removed first.
pub fn test_work_dir() -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("work");
    if let Ok(listing) = std::fs::read_dir(&base) {
        for entry in listing.flatten() {
            let pid = entry.file_name().to_string_lossy().parse::<u32>().ok();
            if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    base.join(std::process::id().to_string())
}

pub static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let settings = HostSettings {
        work_dir: Some(test_work_dir()),
        // Kept between test runs, like an operator's: most runs load from it.
        cache_dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")),
        ..Default::default()
    };
    let runtime = Runtime::with_host(settings).expect("runtime");
    // SAFETY: registering a plain extern "C" function.
    unsafe { libc::atexit(remove_host_leftovers) };
    runtime
});

/// At exit: this test process's cgroup subtree and work directory (a test
/// process has no teardown hook; everything in them is already dead or gone).
extern "C" fn remove_host_leftovers() {
    if let Ok(host) = RUNTIME.host() {
        host.remove_leftovers();
    }
}

pub fn builtin_wasm(name: &str) -> &'static [u8] {
    BUILTIN
        .iter()
        .find(|(file, _, _)| *file == format!("{name}.wasm"))
        .map(|(_, w, _)| *w)
        .expect("built-in")
}

pub fn fixture_path(lib: &str) -> PathBuf {
    PathBuf::from(env!("ENGINEHOST_FIXTURE_DIR")).join(format!("{lib}.wasm"))
}

pub static MOCK: LazyLock<LoadedPlugin> = LazyLock::new(|| RUNTIME.load("mock", builtin_wasm("mock")).expect("mock"));
pub static TRAP: LazyLock<LoadedPlugin> = LazyLock::new(|| {
    let wasm = std::fs::read(fixture_path("fixture_trap")).expect("trap fixture");
    RUNTIME.load("fixture-trap", &wasm).expect("trap fixture compiles")
});

pub async fn start(plugin: &LoadedPlugin) -> Arc<dyn Engine> {
    start_with(plugin, WorkerControl::new()).await
}

pub async fn start_with(plugin: &LoadedPlugin, worker: Arc<WorkerControl>) -> Arc<dyn Engine> {
    RUNTIME
        .start_engine(
            plugin,
            EngineOptions {
                worker,
                ..Default::default()
            },
        )
        .await
        .expect("engine starts")
}

pub fn context() -> TaskContext {
    TaskContext::new(
        TaskInfo {
            task_id: "t".into(),
            ..Default::default()
        },
        TaskLog::temporary().unwrap(),
    )
}

pub fn mock_payload(delay: u64, function: &str, argument: &str) -> Value {
    json!({"delay": delay, "function": function, "argument": argument})
}

/// Builds, starts and waits for a task; returns the result and the (closed) log.
pub async fn run_payload(
    engine: &Arc<dyn Engine>,
    payload: Value,
    env: &[(&str, &str)],
) -> (Result<Arc<dyn ResultSet>, EngineError>, String) {
    let ctx = context();
    let builder = engine.new_sandbox_builder(ctx.clone(), payload).await.expect("builder");
    for (k, v) in env {
        builder.set_environment_variable(k, v).await.expect("env var");
    }
    let sandbox = builder.start().await.expect("start");
    let result = sandbox.wait_for_result().await;
    ctx.log().close();
    let log = String::from_utf8(ctx.log().read_to_end().await.unwrap()).unwrap();
    (result, log)
}

/// Builds and starts a sandbox for `payload`.
pub async fn started(engine: &Arc<dyn Engine>, payload: Value) -> Arc<dyn Sandbox> {
    started_in(engine, context(), payload).await
}

/// Builds and starts a sandbox for `payload` in the task context `ctx`.
pub async fn started_in(engine: &Arc<dyn Engine>, ctx: TaskContext, payload: Value) -> Arc<dyn Sandbox> {
    let builder = engine.new_sandbox_builder(ctx, payload).await.expect("builder");
    builder.start().await.expect("start")
}

/// Waits for `sandbox` in a task of its own; yields the result's success.
pub fn spawn_wait(sandbox: &Arc<dyn Sandbox>) -> tokio::task::JoinHandle<Result<bool, EngineError>> {
    let sandbox = sandbox.clone();
    tokio::spawn(async move { sandbox.wait_for_result().await.map(|rs| rs.success()) })
}

/// Polls `done` every 50 ms until it holds; fails with `what()` after 60 s.
pub async fn until(what: impl Fn() -> String, mut done: impl FnMut() -> bool) {
    let guard = std::time::Instant::now();
    while !done() {
        assert!(guard.elapsed().as_secs() < 60, "{}", what());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A storm: `engine`'s instance is torn down 4 times, `pause` apart, while the
/// task behind `waiting` runs; that task must fail saying it was not recovered.
pub async fn trap_storm(
    engine: &Arc<dyn Engine>,
    waiting: tokio::task::JoinHandle<Result<bool, EngineError>>,
    pause: std::time::Duration,
) {
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for _ in 0..4 {
        assert!(engine.inject_trap("a trap storm").await);
        tokio::time::sleep(pause).await;
    }
    let EngineError::PluginFailed { reason, .. } = waiting.await.unwrap().unwrap_err() else {
        panic!("expected plugin-failed")
    };
    assert!(reason.contains("the task was not recovered"), "{reason}");
}

/// Each of `lines` is a line of `log` exactly once (nothing lost or repeated
/// across an engine's recovery); `what` names the task in the message.
pub fn each_line_once(what: &str, log: &str, lines: impl IntoIterator<Item = String>) {
    for line in lines {
        assert_eq!(
            log.lines().filter(|l| *l == line).count(),
            1,
            "{what}: {line:?} must be in the log exactly once:\n{log}"
        );
    }
}
