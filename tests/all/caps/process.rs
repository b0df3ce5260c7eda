//! `process`: spawning under the grant, the task log outputs, wait vs drained, the
//! pty, and that nothing a task started survives it.

use serde_json::json;

use super::*;

const WORKER_SH: &str = r#"
[plugins.X.process]
exec = ["/bin/**", "/usr/bin/**"]
run-as = ["worker"]
pty = true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_goes_to_the_task_log_in_prefixed_lines() {
    let engine = with_grants(&CAPS, WORKER_SH).await;
    let (ok, log) = steps(
        &engine,
        json!([
            {"op": "spawn", "argv": ["/bin/sh", "-c", "echo out1; echo err1 >&2; echo out2; printf errtail >&2"],
             "stdout": {"log": ""}, "stderr": {"log": "[worker:error] "}},
            {"op": "wait"}, {"op": "drained"}
        ]),
    )
    .await;
    assert!(ok, "{log}");
    let plain: Vec<&str> = log.lines().filter(|l| !l.starts_with('[')).collect();
    assert_eq!(plain, vec!["out1", "out2"], "stdout as it came: {log}");
    assert!(log.contains("[worker:error] err1\n"), "{log}");
    assert!(
        log.contains("[worker:error] errtail\n"),
        "a last partial line is ended: {log}"
    );
    assert_eq!(line(&log, "ok exit"), "ok exit p code 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_is_exactly_what_the_engine_gives_and_argv0_is_kept() {
    let engine = with_grants(&CAPS, WORKER_SH).await;
    let (_, log) = steps(
        &engine,
        json!([
            {"op": "spawn", "argv": ["/usr/bin/env"], "env": {"ONLY": "this"}, "stdout": {"log": "env: "}},
            {"op": "wait"}, {"op": "drained"},
            {"op": "spawn", "id": "q", "argv": ["sh", "-c", "echo $0"], "stdout": {"log": "argv0: "}},
            {"op": "wait", "id": "q"}, {"op": "drained", "id": "q"}
        ]),
    )
    .await;
    let env: Vec<&str> = log.lines().filter(|l| l.starts_with("env: ")).collect();
    assert_eq!(env, vec!["env: ONLY=this"], "{log}");
    assert!(
        log.contains("argv0: sh\n"),
        "a bare name is found in the search path: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipes_reach_the_engine_and_stdin_comes_from_it() {
    let engine = with_grants(&CAPS, WORKER_SH).await;
    let (_, log) = steps(
        &engine,
        json!([
            {"op": "spawn", "argv": ["/bin/cat"], "stdin": {"text": "from the engine\n"}, "stdout": "pipe"},
            {"op": "read-stdout"}, {"op": "wait"}
        ]),
    )
    .await;
    assert_eq!(line(&log, "ok stdout"), "ok stdout p: from the engine", "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_outside_the_grant_is_denied_naming_the_key() {
    let engine = with_grants(
        &CAPS,
        "[plugins.X.process]\nexec = [\"/bin/true\", \"/usr/bin/true\"]\nrun-as = [\"worker\"]\n",
    )
    .await;
    let (_, log) = steps(&engine, json!([{"op": "spawn", "argv": ["/bin/sh", "-c", "true"]}])).await;
    assert_eq!(
        line(&log, "error: spawn"),
        "error: spawn: process.exec \"/bin/sh\": not granted; add a matching pattern to [plugins.fixture-caps.process] exec",
    );
    mock_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_any_grant_nothing_runs() {
    let engine = with_grants(&CAPS, "").await;
    let (_, log) = steps(&engine, json!([{"op": "spawn", "argv": ["/bin/true"]}])).await;
    let error = line(&log, "error: spawn");
    assert!(error.contains("not granted"), "{error}");
    assert!(error.contains("[plugins.fixture-caps.process]"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_and_pty_need_their_own_grant() {
    let engine = with_grants(
        &CAPS,
        "[plugins.X.process]\nexec = [\"/bin/**\"]\nrun-as = [\"task-user\"]\n",
    )
    .await;
    let (_, log) = steps(&engine, json!([{"op": "spawn", "argv": ["/bin/true"]}])).await;
    assert!(
        line(&log, "error: spawn").contains("process.run-as \"worker\": not granted"),
        "{log}"
    );
    let engine = with_grants(
        &CAPS,
        "[plugins.X.process]\nexec = [\"/bin/**\"]\nrun-as = [\"worker\"]\n",
    )
    .await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "spawn", "argv": ["/bin/true"], "pty": [80, 24]}]),
    )
    .await;
    assert!(line(&log, "error: spawn").contains("process.pty"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_plugin_did_not_request_is_refused_even_when_granted() {
    let engine = with_grants(&NARROW, WORKER_SH).await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "spawn", "argv": ["/bin/true"]}, {"op": "wait"},
               {"op": "spawn", "id": "q", "argv": ["/bin/sh", "-c", "true"]}]),
    )
    .await;
    assert_eq!(line(&log, "ok exit"), "ok exit p code 0", "{log}");
    assert_eq!(
        line(&log, "error: spawn"),
        "error: spawn: process.exec \"/bin/sh\": not requested by plugin fixture-caps-narrow 0.1.0 (capabilities.toml)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_per_task_bounds_spawns() {
    let engine = with_grants(&CAPS, &format!("{WORKER_SH}max-per-task = 1\n")).await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "spawn", "argv": ["/bin/true"]}, {"op": "spawn", "id": "q", "argv": ["/bin/true"]}]),
    )
    .await;
    assert!(line(&log, "error: spawn").contains("max-per-task"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_working_directory_cannot_leave_the_sandbox() {
    let engine = with_grants(&CAPS, WORKER_SH).await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "spawn", "argv": ["/bin/pwd"], "cwd": "../.."},
               {"op": "spawn", "id": "q", "argv": ["/bin/pwd"], "cwd": "/etc"}]),
    )
    .await;
    let errors: Vec<String> = lines(&log)
        .into_iter()
        .filter(|l| l.starts_with("error: spawn"))
        .collect();
    assert_eq!(errors.len(), 2, "{log}");
    assert!(
        errors.iter().all(|e| e.contains("relative to the task's sandbox")),
        "{errors:?}"
    );
}

/// A command that leaves a background child, a double-forked daemon and a
/// `setsid` one behind, all holding its stdout.
fn orphaning(mark: &str) -> String {
    format!("(sleep {mark}1 &) ; setsid sleep {mark}2 & sh -c 'sleep {mark}3 &' ; echo started; exit 0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_and_drained_are_separate_and_kill_tree_ends_the_orphans() {
    let engine = with_grants(&CAPS, WORKER_SH).await;
    let mark = marker(1);
    let (_, log) = steps(
        &engine,
        json!([
            {"op": "spawn", "argv": ["/bin/sh", "-c", orphaning(&mark)], "stdout": {"log": ""}},
            {"op": "wait"},
            {"op": "drained", "within": 300},
            {"op": "kill-tree", "grace": 100},
            {"op": "drained", "within": 5000}
        ]),
    )
    .await;
    let l = lines(&log);
    let at = |s: &str| {
        l.iter()
            .position(|x| x == s)
            .unwrap_or_else(|| panic!("{s:?} missing in {log}"))
    };
    assert!(
        at("ok exit p code 0") < at("ok not-drained p"),
        "the orphans keep stdout open: {log}"
    );
    assert!(at("ok kill-tree p") < at("ok drained p"), "{log}");
    assert!(
        pgrep(&mark).is_empty(),
        "orphans survived kill-tree: {:?}",
        pgrep(&mark)
    );
}

async fn orphans_gone_after(end: &str, mark: &str) {
    let engine = with_grants(&CAPS, WORKER_SH).await;
    let last = match end {
        // After a pause: the trap must come once `start` has returned.
        "trap" => json!({"op": "trap"}),
        "abort" => json!({"op": "hang"}),
        _ => json!({"op": "sleep", "ms": 0}),
    };
    let (sandbox, ctx) = start_steps(
        &engine,
        json!([{"op": "spawn", "argv": ["/bin/sh", "-c", orphaning(mark)], "stdout": {"log": ""}},
               {"op": "forget"}, {"op": "sleep", "ms": 200}, last]),
    )
    .await;
    let log = log_shows(&ctx, "started").await;
    assert!(log.contains("started"), "{log}");
    for _ in 0..50 {
        if pgrep(mark).len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        pgrep(mark).len(),
        3,
        "the orphans run while the task does: {:?}",
        pgrep(mark)
    );
    match end {
        "abort" => {
            sandbox.abort().await.expect("abort");
            assert!(aborted(sandbox.wait_for_result().await));
        }
        "trap" => assert!(sandbox.wait_for_result().await.is_err()),
        _ => assert!(sandbox.wait_for_result().await.unwrap().success()),
    }
    drop(sandbox);
    drained().await;
    assert!(pgrep(mark).is_empty(), "after {end}: {:?}", pgrep(mark));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_survives_a_task_that_ends_normally() {
    orphans_gone_after("end", &marker(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_survives_an_aborted_task() {
    orphans_gone_after("abort", &marker(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_survives_a_trap() {
    orphans_gone_after("trap", &marker(4)).await;
    mock_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pty_resize_is_seen_by_stty_size() {
    let engine = with_grants(&CAPS, WORKER_SH).await;
    let (_, log) = steps(
        &engine,
        json!([
            {"op": "spawn", "argv": ["/bin/sh"], "pty": [80, 24], "stdin": "open", "stdout": {"log": "tty: "}},
            {"op": "write", "text": "stty size\n"}, {"op": "sleep", "ms": 300},
            {"op": "resize", "cols": 100, "rows": 30}, {"op": "sleep", "ms": 100},
            {"op": "write", "text": "stty size\n"}, {"op": "sleep", "ms": 300},
            {"op": "write", "text": "exit 3\n"}, {"op": "wait"}, {"op": "drained"}
        ]),
    )
    .await;
    assert!(log.contains("24 80"), "the first size: {log}");
    assert!(log.contains("30 100"), "the size after resize: {log}");
    assert_eq!(line(&log, "ok exit"), "ok exit p code 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_without_a_pty_is_invalid_and_signals_reach_the_process() {
    let engine = with_grants(&CAPS, WORKER_SH).await;
    let (_, log) = steps(
        &engine,
        json!([
            {"op": "spawn", "argv": ["/bin/sleep", "30"]},
            {"op": "resize", "cols": 10, "rows": 10},
            {"op": "signal", "sig": "term"}, {"op": "wait"}
        ]),
    )
    .await;
    assert!(line(&log, "error: resize").contains("no pty"), "{log}");
    assert_eq!(line(&log, "ok exit"), format!("ok exit p signal {}", libc::SIGTERM));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_process_kept_past_its_instance_can_be_adopted() {
    let engine = with_grants(&CAPS, WORKER_SH).await;
    let (_, log) = steps(
        &engine,
        json!([
            {"op": "spawn", "argv": ["/bin/sh", "-c", "sleep 5"]},
            // Alive, but not kept past an instance's death: not adoptable.
            {"op": "adopt", "of": "p"},
            // A process the task never started (init) never is.
            {"op": "adopt", "pid": 1},
            {"op": "adopt-user", "uid": 0},
            {"op": "kill-tree", "grace": 0}
        ]),
    )
    .await;
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("error: adopt")).collect();
    assert_eq!(refused.len(), 3, "{log}");
    assert!(
        refused[0].contains("outlived its instance") && refused[1].contains("no process of the task with pid 1 "),
        "{log}"
    );
    assert!(refused[2].contains("the task has no user with uid 0"), "{log}");
}
