//! Containment: a hostile plugin (`tests/fixtures/hostile`) tries each abuse of
//! docs/limits.md; the host stops it within a bounded time, with an error naming
//! the plugin and the limit, keeps its memory bounded, and then runs a normal task
//! on the same engine (re-instantiated) and on another.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use enginehost::contract::{Engine, EngineError};
use enginehost::policy::ResolvedLimits;
use enginehost::runtime::{EngineOptions, LoadedPlugin};
use enginehost::worker::{Outcome, TaskFile, TaskLimits, run_task};
use serde_json::json;

use crate::common::*;

static HOSTILE: LazyLock<LoadedPlugin> = LazyLock::new(|| {
    let wasm = std::fs::read(fixture_path("fixture_hostile")).expect("hostile fixture");
    RUNTIME
        .load("fixture-hostile", &wasm)
        .expect("hostile fixture compiles")
});

/// Limits small enough for tests.
fn small() -> ResolvedLimits {
    ResolvedLimits {
        cpu_slice: Duration::from_millis(200),
        call_timeout: Duration::from_secs(1),
        init_timeout: Duration::from_secs(2),
        memory: 64 << 20,
        handles: 20_000,
        ..Default::default()
    }
}

pub(crate) async fn hostile(mode: &str, limits: ResolvedLimits) -> anyhow::Result<Arc<dyn Engine>> {
    let grants = enginehost::policy::OperatorConfig::parse("[plugins.fixture-hostile.files]\nsandbox = true\n")
        .unwrap()
        .grants("fixture-hostile");
    let engine = RUNTIME
        .start_engine(
            &HOSTILE,
            EngineOptions {
                config: json!({ "mode": mode }),
                grants,
                limits,
                ..Default::default()
            },
        )
        .await?;
    Ok(engine)
}

/// A normal task still runs on `engine` (re-instantiated if it died) and on the mock.
async fn still_works(engine: &Arc<dyn Engine>) {
    let (result, log) = run_payload(engine, json!({"mode": "ok"}), &[]).await;
    assert!(result.expect("a normal task after the abuse").success(), "{log}");
    assert!(log.contains("hostile ok"), "{log}");
    crate::caps::mock_still_works().await;
}

#[track_caller]
fn names_plugin_and_limit(error: &str, limit: &str) {
    assert!(error.contains("fixture-hostile"), "the plugin is named: {error}");
    assert!(error.contains(limit), "the limit is named: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_loop_in_init_stops_the_start() {
    let t = Instant::now();
    let error = hostile("spin-init", small()).await.err().expect("the start fails");
    names_plugin_and_limit(&format!("{error:#}"), "limits.cpu-slice");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    still_works(&hostile("ok", small()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_that_never_answers_times_out() {
    let t = Instant::now();
    let error = hostile("hang-init", small()).await.err().expect("the start fails");
    names_plugin_and_limit(&format!("{error:#}"), "limits.init-timeout");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocating_without_end_fails_in_the_guest_and_the_host_lives() {
    let error = hostile("alloc-init", small()).await.err().expect("the start fails");
    let error = format!("{error:#}");
    assert!(
        error.contains("fixture-hostile") && error.contains("memory allocation"),
        "{error}"
    );
    let engine = hostile("ok", small()).await.unwrap();
    let sandbox = started(&engine, json!({"mode": "alloc"})).await;
    let failed = sandbox.wait_for_result().await.map(|_| ()).unwrap_err();
    assert!(matches!(failed, EngineError::PluginFailed { .. }), "{failed:?}");
    still_works(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_loop_in_a_call_fails_it_and_the_engine_recovers() {
    let engine = hostile("ok", small()).await.unwrap();
    for mode in ["spin-builder", "spin-wait"] {
        let t = Instant::now();
        let error = match engine.new_sandbox_builder(context(), json!({ "mode": mode })).await {
            Err(e) => e,
            Ok(builder) => builder
                .start()
                .await
                .unwrap()
                .wait_for_result()
                .await
                .map(|_| ())
                .unwrap_err(),
        };
        names_plugin_and_limit(&error.to_string(), "limits.cpu-slice");
        assert!(t.elapsed() < Duration::from_secs(10), "{mode}: {:?}", t.elapsed());
        still_works(&engine).await;
    }
}

/// On one thread (the hardest case: every task shares it), a guest computing inside
/// its slice yields at every epoch tick, so a task on another engine runs to its
/// end meanwhile.
#[tokio::test(flavor = "current_thread")]
async fn a_busy_guest_does_not_starve_other_engines() {
    let limits = ResolvedLimits {
        cpu_slice: Duration::from_secs(5),
        ..small()
    };
    let engine = hostile("ok", limits).await.unwrap();
    let sandbox = started(&engine, json!({"mode": "spin-wait"})).await;
    let spinning = spawn_wait(&sandbox);
    tokio::time::sleep(Duration::from_millis(100)).await;
    crate::caps::mock_still_works().await;
    assert!(
        !spinning.is_finished(),
        "the mock task ran while the hostile guest was still spinning"
    );
    let error = spinning.await.unwrap().unwrap_err();
    names_plugin_and_limit(&error.to_string(), "limits.cpu-slice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_never_answers_times_out() {
    let engine = hostile("ok", small()).await.unwrap();
    let t = Instant::now();
    let error = engine
        .new_sandbox_builder(context(), json!({"mode": "hang-builder"}))
        .await
        .err()
        .unwrap();
    let text = error.to_string();
    names_plugin_and_limit(&text, "limits.call-timeout");
    assert!(text.contains("new-sandbox-builder"), "the call is named: {text}");
    assert!(t.elapsed() < Duration::from_secs(10));
    still_works(&engine).await;
}

fn task(mode: &str, max_run_time: Option<u64>, artifact: Option<(&str, &str)>) -> TaskFile {
    let artifacts = match artifact {
        Some((kind, path)) => json!([{ "type": kind, "path": path, "name": "out" }]),
        None => json!([]),
    };
    serde_json::from_value(json!({
        "engine": "fixture-hostile",
        "payload": { "mode": mode },
        "maxRunTime": max_run_time,
        "artifacts": artifacts,
    }))
    .unwrap()
}

/// Runs `task` through the worker's stages with small limits; the outcome and log.
async fn worker_run(engine: &Arc<dyn Engine>, task: &TaskFile, limits: TaskLimits) -> (Outcome, String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let log = enginehost::contract::TaskLog::temporary().unwrap();
    let t = Instant::now();
    let cancel = tokio_util::sync::CancellationToken::new();
    let outcome = run_task(engine.as_ref(), task, &log, dir.path(), &cancel, &limits).await;
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&log.read_to_end().await.unwrap()).into_owned();
    (outcome, text, took)
}

fn task_limits() -> TaskLimits {
    let mut limits = TaskLimits {
        kill_grace: Duration::from_secs(1),
        ..Default::default()
    };
    limits.artifacts.stall = Duration::from_secs(1);
    limits.artifacts.file_size = 8 << 20;
    limits.artifacts.files = 1000;
    limits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_ignores_kill_and_abort_is_stopped() {
    let engine = hostile("ok", small()).await.unwrap();
    for mode in ["ignore-kill", "hang-kill"] {
        let (outcome, log, took) = worker_run(&engine, &task(mode, Some(1), None), task_limits()).await;
        let Outcome::InternalError(message) = &outcome else {
            panic!("{mode}: {outcome:?}\n{log}")
        };
        assert!(message.contains("fixture-hostile"), "{mode}: {message}");
        assert!(
            message.contains("limits.kill-grace") || message.contains("limits.call-timeout"),
            "{mode}: {message}"
        );
        assert!(took < Duration::from_secs(15), "{mode}: {took:?}");
        assert!(log.contains("Task killed because maxRunTime was exceeded"), "{log}");
        still_works(&engine).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_stop_at_their_limits_and_stalls() {
    let engine = hostile("ok", small()).await.unwrap();
    let cases = [
        ("endless-file", "file", "limits.artifact-size"),
        ("stall-file", "file", "limits.stall-timeout"),
        ("million-files", "directory", "limits.artifact-files"),
    ];
    for (mode, kind, limit) in cases {
        let (outcome, log, took) = worker_run(&engine, &task(mode, None, Some((kind, "x"))), task_limits()).await;
        assert_eq!(outcome, Outcome::Failure, "{mode}: {log}");
        assert!(log.contains(limit), "{mode}: {log}");
        assert!(took < Duration::from_secs(20), "{mode}: {took:?}");
    }
    let (outcome, _, _) = worker_run(&engine, &task("hang-extract", None, Some(("file", "x"))), task_limits()).await;
    let Outcome::InternalError(message) = outcome else {
        panic!("{outcome:?}")
    };
    names_plugin_and_limit(&message, "limits.call-timeout");
    still_works(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schemas_reject_the_engine_naming_it() {
    for (mode, says) in [
        ("huge-schema", "at most 1048576"),
        ("invalid-schema", "not a valid JSON Schema"),
        ("bad-json-schema", "a schema is a JSON object, not a string"),
    ] {
        // Memory and time enough for the guest to build a 50 MiB schema (serde_json
        // takes seconds on a loaded machine): the host refuses it for its size.
        let limits = ResolvedLimits {
            memory: 512 << 20,
            cpu_slice: Duration::from_secs(30),
            call_timeout: Duration::from_secs(30),
            init_timeout: Duration::from_secs(30),
            ..small()
        };
        let error = format!("{:#}", hostile(mode, limits).await.err().expect(mode));
        assert!(
            error.contains("payload schema") && error.contains(says),
            "{mode}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_task_context_stops_working_when_its_task_ends() {
    let engine = hostile("ok", small()).await.unwrap();
    let first = context();
    let builder = engine
        .new_sandbox_builder(first.clone(), json!({"mode": "keep-context"}))
        .await
        .unwrap();
    let sandbox = builder.start().await.unwrap();
    drop(sandbox.wait_for_result().await.unwrap());
    drop((builder, sandbox));
    let (result, log) = run_payload(&engine, json!({"mode": "use-kept"}), &[]).await;
    assert!(result.unwrap().success());
    assert!(
        log.contains("kept context: sandbox-dir gave Err(\"the task has ended"),
        "{log}"
    );
    assert!(
        log.contains("kept context: task id \"\", run 0, scopes [], has-scopes false"),
        "a kept context tells nothing of its ended task: {log}"
    );
    first.log().close();
    let first_log = String::from_utf8(first.log().read_to_end().await.unwrap()).unwrap();
    assert_eq!(
        first_log, "[taskcluster] kept\n",
        "nothing reached the ended task's log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_and_log_floods_are_bounded() {
    let engine = hostile("ok", small()).await.unwrap();
    let sandbox = started(&engine, json!({"mode": "handle-flood"})).await;
    let error = sandbox.wait_for_result().await.map(|_| ()).unwrap_err();
    assert!(matches!(error, EngineError::PluginFailed { .. }), "{error:?}");
    still_works(&engine).await;

    let mut limits = task_limits();
    limits.log_size = 1 << 20;
    let (_, log, took) = worker_run(&engine, &task("log-flood", Some(2), None), limits).await;
    assert!(log.len() < (1 << 20) + 1024, "{}", log.len());
    assert!(log.contains("limits.log-size"), "the log says why it stops");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// Runs `enginehost run` on a hostile task in a process of its own; its exit
/// status, stderr, peak RSS (KiB) and time.
fn run_process(mode: &str, config: &str, extra_task: serde_json::Value) -> (Option<i32>, String, i64, Duration) {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(fixture_path("fixture_hostile"), plugins.join("hostile.wasm")).unwrap();
    let mut task = json!({"engine": "fixture-hostile", "payload": {"mode": mode}});
    task.as_object_mut()
        .unwrap()
        .extend(extra_task.as_object().unwrap().clone());
    std::fs::write(dir.path().join("task.json"), task.to_string()).unwrap();
    let config = format!("[host]\nwork-dir = \"{}\"\n{config}", dir.path().join("work").display());
    std::fs::write(dir.path().join("worker.toml"), config).unwrap();
    let t = Instant::now();
    // Reaped below with wait4, which also gives its peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_enginehost"))
        .args(["run", "task.json", "--plugins", "plugins", "--config", "worker.toml"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: waiting for our own child, with valid out-pointers.
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, reader.join().unwrap(), usage.ru_maxrss, t.elapsed())
}

const GIB_KIB: i64 = 1 << 20;

#[test]
fn each_abuse_ends_with_status_3_and_bounded_memory_in_a_real_worker() {
    let limits = "[limits]\ncpu-slice = \"300ms\"\ncall-timeout = \"2s\"\nkill-grace = \"1s\"\nlog-size = \"16MiB\"\nhandles = 50000\n";
    let cases = [
        ("alloc", json!({}), "fixture-hostile"),
        ("spin-wait", json!({}), "limits.cpu-slice"),
        ("handle-flood", json!({}), "fixture-hostile"),
        ("ignore-kill", json!({"maxRunTime": 1}), "limits.kill-grace"),
    ];
    for (mode, extra, says) in cases {
        let (code, stderr, rss_kib, took) = run_process(mode, limits, extra);
        eprintln!("{mode}: exit {code:?}, peak RSS {} MiB, {took:?}", rss_kib / 1024);
        assert_eq!(code, Some(3), "{mode}: {stderr}");
        assert!(stderr.contains(says), "{mode}: {stderr}");
        assert!(rss_kib < GIB_KIB, "{mode}: peak RSS {rss_kib} KiB");
        assert!(took < Duration::from_secs(30), "{mode}: {took:?}");
    }
}

#[test]
fn huge_writes_and_floods_keep_the_worker_small() {
    let limits = "[limits]\nlog-size = \"16MiB\"\n";
    // 4 × 256 MiB writes of one artifact: sliced, never buffered whole.
    let (code, stderr, rss_kib, _) = run_process(
        "huge-writes",
        limits,
        json!({"artifacts": [{"type": "file", "path": "x", "name": "big"}]}),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(rss_kib < GIB_KIB, "huge-writes: peak RSS {rss_kib} KiB");
    // An endless log stops at its size; the task then ends at maxRunTime.
    let (code, stderr, rss_kib, _) = run_process(
        "log-flood",
        &format!("{limits}kill-grace = \"1s\"\n"),
        json!({"maxRunTime": 2}),
    );
    assert!(matches!(code, Some(1) | Some(3)), "{stderr}");
    assert!(rss_kib < GIB_KIB, "log-flood: peak RSS {rss_kib} KiB");
}
