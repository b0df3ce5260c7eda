//! The native engine: task users, the environment rule, the home's boundary,
//! shells with a tty, and what happens without the operator's grant.

use enginehost::contract::{ByteStream, EngineError};
use serde_json::json;

use super::engine_from;
use crate::caps::{drained, is_root, marker, pgrep};
use crate::common::*;

const WITH_USERS: &str = r#"
[engines.native]
createUser = true
[plugins.native.files]
sandbox = true
[plugins.native.process]
exec = ["/bin/**", "/usr/bin/**", "sandbox:**"]
run-as = ["task-user"]
pty = true
[plugins.native.users]
create = true
"#;

/// The native engine as the worker's own user (no task users: runs without root).
pub(crate) const AS_WORKER: &str = r#"
[engines.native]
createUser = false
[plugins.native.files]
sandbox = true
[plugins.native.process]
exec = ["/bin/**", "/usr/bin/**", "sandbox:**"]
run-as = ["worker"]
pty = true
"#;

fn passwd_has(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .any(|l| l.starts_with(&format!("{name}:")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_user_cannot_read_etc_shadow_and_leaves_nothing_behind() {
    if !is_root() {
        eprintln!("skipped: createUser needs root");
        return;
    }
    let engine = engine_from("native", WITH_USERS).await;
    let mark = marker(50);
    let command = format!("id -un; echo home=$HOME; cat /etc/shadow; setsid sleep {mark} & echo daemon started");
    let (result, log) = run_payload(&engine, json!({"command": ["sh", "-c", command]}), &[]).await;
    assert!(result.unwrap().success(), "{log}");
    assert!(log.contains("Permission denied"), "{log}");
    let user = log.lines().next().unwrap().to_string();
    assert!(user.starts_with("eh-"), "{log}");
    let home = log.lines().find_map(|l| l.strip_prefix("home=")).unwrap().to_string();
    assert!(home.ends_with("/home"), "{home}");
    drained().await;
    assert!(!passwd_has(&user), "the user outlived its task");
    assert!(pgrep(&mark).is_empty(), "{:?}", pgrep(&mark));
    assert!(!std::path::Path::new(&home).exists(), "the home outlived its task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_variable_names_follow_the_seeds_rule() {
    let engine = engine_from("native", AS_WORKER).await;
    let builder = engine
        .new_sandbox_builder(context(), json!({"command": ["true"]}))
        .await
        .unwrap();
    assert_eq!(
        builder.set_environment_variable("bad name", "x").await,
        Err(EngineError::MalformedPayload(vec![
            "Environment variables name: 'bad name' doesn't match: ^[a-zA-Z0-9_-]+$".into()
        ]))
    );
    builder.set_environment_variable("GOOD_name-1", "x").await.unwrap();
    assert_eq!(
        builder.set_environment_variable("GOOD_name-1", "y").await,
        Err(EngineError::NamingConflict)
    );
    builder.discard().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_set_stays_inside_the_home() {
    let engine = engine_from("native", AS_WORKER).await;
    let command = "echo in > in.txt; ln -s /etc/passwd out; ln -s .. up; mkdir d; ln -s ../in.txt d/back";
    let (result, log) = run_payload(&engine, json!({"command": ["sh", "-c", command]}), &[]).await;
    let result = result.unwrap();
    assert!(result.success(), "{log}");
    assert_eq!(
        result.extract_file("in.txt").await.unwrap().read_to_end().await,
        b"in\n"
    );
    assert_eq!(
        result.extract_file("d/back").await.unwrap().read_to_end().await,
        b"in\n",
        "a symlink inside"
    );
    for outside in ["out", "up/home/in.txt", "../in.txt", "/etc/passwd"] {
        assert_eq!(
            result.extract_file(outside).await.err(),
            Some(EngineError::ResourceNotFound),
            "{outside}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_cannot_start_is_a_malformed_payload() {
    let engine = engine_from("native", AS_WORKER).await;
    let builder = engine
        .new_sandbox_builder(context(), json!({"command": ["/no/such/program"]}))
        .await
        .unwrap();
    match builder.start().await.map(|_| ()) {
        Err(EngineError::MalformedPayload(m)) => {
            assert!(m[0].starts_with("Unable to start specified command: "), "{m:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_operators_grant_the_task_fails_naming_the_key() {
    let engine = engine_from("native", "[engines.native]\ncreateUser = false\n").await;
    let builder = engine
        .new_sandbox_builder(context(), json!({"command": ["true"]}))
        .await
        .unwrap();
    match builder.start().await.map(|_| ()) {
        Err(EngineError::NonFatalInternalError(detail)) => {
            assert!(
                detail.contains("not granted") && detail.contains("[plugins.native."),
                "{detail}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tty_shell_sees_its_size_change() {
    let engine = engine_from("native", AS_WORKER).await;
    let sandbox = started(&engine, json!({"command": ["sleep", "30"]})).await;
    let shell = sandbox.new_shell(&["/bin/sh".to_string()], true).await.unwrap();
    let text = super::resize_transcript(&*shell).await;
    assert!(text.contains("24 80"), "a pty starts at 80×24: {text}");
    let plain = sandbox.new_shell(&[], false).await.unwrap();
    assert_eq!(plain.set_size(10, 10).await, Err(EngineError::FeatureNotSupported));
    drop(plain.stdin());
    let _ = ByteStream::from_bytes(Vec::new());
    sandbox.abort().await.unwrap();
}

/// The host's log line when a fresh instance takes a task over.
const RESTARTED: &str = "and was restarted; the task goes on in the new instance";

/// The words after `prefix` on the log's line that starts with it.
fn after<'a>(log: &'a str, prefix: &str) -> Vec<&'a str> {
    log.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{log}"))
        .split_whitespace()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_command_survives_a_trap_as_the_same_process_and_user() {
    if !is_root() {
        eprintln!("skipped: createUser needs root");
        return;
    }
    let engine = engine_from("native", WITH_USERS).await;
    let mark = marker(60);
    let shell_mark = marker(62);
    let first = format!("setsid sleep {mark} & echo \"start $$ $(id -un)\"; sleep 6; echo \"end $$ $(id -un)\"");
    let payload =
        json!({"commands": [["sh", "-c", first], ["sh", "-c", "echo \"next $(id -un)\"; echo made > made.txt"]]});
    let ctx = context();
    let sandbox = started_in(&engine, ctx.clone(), payload).await;
    let waiting = spawn_wait(&sandbox);
    // A shell of the old instance: nobody adopts it, so it ends at the recovery.
    let shell = sandbox
        .new_shell(&["sh".into(), "-c".into(), format!("sleep {shell_mark}")], false)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert!(!pgrep(&shell_mark).is_empty(), "the shell runs");
    assert!(engine.inject_trap("an injected trap").await);
    until(
        || "the old instance's shell outlived the recovery".into(),
        || pgrep(&shell_mark).is_empty(),
    )
    .await;
    assert!(
        !waiting.is_finished(),
        "the shell went at the recovery, before the task's end"
    );
    assert!(
        shell.wait().await.is_err(),
        "the old instance's shell ends with an error"
    );
    // A shell opened after the trap runs in the new instance (it waits for
    // the recovery).
    let fresh = sandbox
        .new_shell(&["sh".into(), "-c".into(), "echo \"fresh $(id -un)\"".into()], false)
        .await
        .expect("a shell after the recovery");
    let out = fresh.stdout().unwrap().read_to_end().await;
    assert!(fresh.wait().await.unwrap(), "the new shell succeeds");
    assert_eq!(waiting.await.unwrap(), Ok(true), "the task ends with its real result");

    let result = sandbox.wait_for_result().await.unwrap();
    let made = result.extract_file("made.txt").await.unwrap().read_to_end().await;
    assert_eq!(made, b"made\n", "the command after the trap ran in the same home");
    ctx.log().close();
    let log = String::from_utf8(ctx.log().read_to_end().await.unwrap()).unwrap();
    assert_eq!(log.matches(RESTARTED).count(), 1, "{log}");
    let (start, end, next) = (after(&log, "start "), after(&log, "end "), after(&log, "next "));
    assert_eq!(
        start, end,
        "the same process (pid, user) before and after the trap:\n{log}"
    );
    assert!(start[1].starts_with("eh-"), "{log}");
    assert_eq!(
        next,
        vec![start[1]],
        "the next command runs as the same task user:\n{log}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        format!("fresh {}\n", start[1]),
        "a new shell runs as the task user"
    );
    let restarted = log.find(RESTARTED).unwrap();
    assert!(
        log.find("\nstart ").unwrap() < restarted && restarted < log.find("\nend ").unwrap(),
        "the process printed on both sides of the restart:\n{log}"
    );

    drop((result, sandbox, shell, fresh));
    drained().await;
    assert!(
        pgrep(&mark).is_empty(),
        "a daemon outlived its task: {:?}",
        pgrep(&mark)
    );
    assert!(!passwd_has(start[1]), "the user outlived its task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_traps_fails_the_task_cleanly_and_leaves_nothing_behind() {
    if !is_root() {
        eprintln!("skipped: createUser needs root");
        return;
    }
    let engine = engine_from("native", WITH_USERS).await;
    let mark = marker(61);
    let command = format!("setsid sleep {mark} & echo \"user $(id -un)\"; sleep 20");
    let ctx = context();
    let sandbox = started_in(&engine, ctx.clone(), json!({"command": ["sh", "-c", command]})).await;
    trap_storm(&engine, spawn_wait(&sandbox), std::time::Duration::from_millis(300)).await;
    ctx.log().close();
    let log = String::from_utf8(ctx.log().read_to_end().await.unwrap()).unwrap();
    let user = after(&log, "user ")[0].to_string();
    drop(sandbox);
    drained().await;
    assert!(
        pgrep(&mark).is_empty(),
        "a process outlived its task: {:?}",
        pgrep(&mark)
    );
    assert!(!passwd_has(&user), "the user outlived its task");
}
