//! `users`: a system user per task (root only), its processes, and its removal.

use serde_json::json;

use super::*;

const USERS: &str = r#"
[plugins.X.files]
sandbox = true
[plugins.X.process]
exec = ["/bin/**", "/usr/bin/**"]
run-as = ["task-user"]
[plugins.X.users]
create = true
groups = ["video"]
"#;

fn passwd_has(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .any(|l| l.starts_with(&format!("{name}:")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_user_runs_the_tasks_processes_and_is_gone_after() {
    if !is_root() {
        eprintln!("skipped: creating users needs root");
        return;
    }
    let engine = with_grants(&CAPS, USERS).await;
    let mark = marker(20);
    let (sandbox, ctx) = start_steps(
        &engine,
        json!([
            {"op": "create-user", "groups": ["video"]},
            {"op": "spawn", "user": true, "cwd": "home", "argv": ["/bin/sh", "-c", "id -un; id -Gn; pwd; cat /etc/shadow"],
             "stdout": {"log": "as-user: "}, "stderr": "stdout"},
            {"op": "wait"}, {"op": "drained"},
            {"op": "spawn", "id": "bg", "user": true, "argv": ["/bin/sleep", mark.clone()]},
            {"op": "forget", "id": "bg"},
            {"op": "spawn", "id": "root", "argv": ["/bin/true"]},
            {"op": "hang"}
        ]),
    )
    .await;
    let log = log_shows(&ctx, "error: spawn").await;
    let user = line(&log, "ok create-user ");
    let parts: Vec<&str> = user.split(' ').collect();
    let (name, home) = (parts[2].to_string(), parts[4]);
    assert!(name.starts_with("eh-") && home == "home", "{user}");
    assert!(passwd_has(&name));
    assert!(log.contains(&format!("as-user: {name}\n")), "{log}");
    assert!(
        log.contains("as-user: ") && log.contains("video"),
        "the granted group: {log}"
    );
    assert!(log.contains("/home\n"), "runs in its home: {log}");
    assert!(log.contains("Permission denied"), "cannot read /etc/shadow: {log}");
    assert_ne!(line(&log, "ok exit"), "ok exit p code 0", "{log}");
    assert!(
        line(&log, "error: spawn").contains("process.run-as \"worker\": not granted"),
        "only the task user may run: {log}"
    );
    assert_eq!(pgrep(&mark).len(), 1);
    sandbox.abort().await.unwrap();
    drop(sandbox);
    drained().await;
    assert!(!passwd_has(&name), "the user outlived its task");
    assert!(pgrep(&mark).is_empty(), "its process outlived it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_creation_need_their_grant() {
    let engine = with_grants(&CAPS, USERS).await;
    let (_, log) = steps(&engine, json!([{"op": "create-user", "groups": ["audio"]}])).await;
    assert_eq!(
        line(&log, "error: create-user"),
        "error: create-user: users.groups \"audio\": not granted; add \"audio\" to [plugins.fixture-caps.users] groups"
    );
    let engine = with_grants(&CAPS, "").await;
    let (_, log) = steps(&engine, json!([{"op": "create-user", "groups": []}])).await;
    assert!(
        line(&log, "error: create-user").contains("[plugins.fixture-caps.users]"),
        "{log}"
    );
    let engine = with_grants(&NARROW, USERS).await;
    let (_, log) = steps(&engine, json!([{"op": "create-user", "groups": []}])).await;
    assert!(
        line(&log, "error: create-user").contains("not requested by plugin"),
        "{log}"
    );
}
