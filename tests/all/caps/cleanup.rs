//! Crash safety: a worker killed with SIGKILL mid-task leaves a user, processes, a
//! cgroup and a sandbox directory; its next start removes them all (the journal
//! replay and the sweep of dead workers' cgroups), and `enginehost run` returns
//! only after its own cleanup is done.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use super::*;

fn enginehost(args: &[&str], cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_enginehost"));
    cmd.args(args)
        .current_dir(cwd)
        .env("ENGINEHOST_PLUGINS", "/nonexistent-default-plugin-dir");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_worker_leaves_nothing_after_its_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(fixture_path("fixture_caps"), plugins.join("fixture_caps.wasm")).unwrap();
    let work = dir.path().join("work");
    let root = is_root();
    let config = format!(
        "[host]\nwork-dir = \"{}\"\n[plugins.fixture-caps.files]\nsandbox = true\n\
         [plugins.fixture-caps.process]\nexec = [\"/bin/**\", \"/usr/bin/**\"]\nrun-as = [\"worker\", \"task-user\"]\n\
         [plugins.fixture-caps.users]\ncreate = true\n",
        work.display()
    );
    std::fs::write(dir.path().join("worker.toml"), config).unwrap();
    let mark = marker(30);
    let mut steps = vec![json!({"op": "sandbox-dir"})];
    if root {
        steps.push(json!({"op": "create-user", "groups": []}));
    }
    steps.push(json!({"op": "spawn", "user": root, "argv": ["/bin/sh", "-c", format!("setsid sleep {mark} & echo spawned")], "stdout": {"log": ""}}));
    steps.push(json!({"op": "hang"}));
    let task = json!({"engine": "fixture-caps", "payload": {"steps": steps}});
    std::fs::write(dir.path().join("task.json"), task.to_string()).unwrap();

    let mut worker = enginehost(
        &["run", "task.json", "--plugins", "plugins", "--config", "worker.toml"],
        dir.path(),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut out = BufReader::new(worker.stdout.take().unwrap());
    let (mut text, mut line) = (String::new(), String::new());
    while !text.contains("spawned") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the worker ended early: {text}");
        text.push_str(&line);
    }
    // SAFETY: signalling a child we started.
    unsafe { libc::kill(worker.id() as i32, libc::SIGKILL) };
    worker.wait().unwrap();
    let user = text
        .lines()
        .find_map(|l| l.split("ok create-user ").nth(1))
        .map(|u| u.split(' ').next().unwrap().to_string());
    let sandboxes = work.join("engines/fixture-caps/sandboxes");
    for _ in 0..100 {
        if !pgrep(&mark).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        pgrep(&mark).len(),
        1,
        "the task's daemon outlives its killed worker: {text}"
    );
    assert_eq!(std::fs::read_dir(&sandboxes).unwrap().count(), 1);
    assert_eq!(
        std::fs::read_dir(work.join("journal")).unwrap().count(),
        1,
        "the journal has the task"
    );

    // The next start (any task) cleans up before it runs, and waits for it.
    std::fs::write(
        dir.path().join("hello.json"),
        r#"{"engine":"mock","payload":{"delay":0,"function":"true","argument":""}}"#,
    )
    .unwrap();
    let next = enginehost(
        &["run", "hello.json", "--plugins", "plugins", "--config", "worker.toml"],
        dir.path(),
    )
    .output()
    .unwrap();
    assert_eq!(next.status.code(), Some(0), "{}", String::from_utf8_lossy(&next.stderr));
    assert!(pgrep(&mark).is_empty(), "{:?}", pgrep(&mark));
    assert_eq!(std::fs::read_dir(&sandboxes).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(work.join("journal")).unwrap().count(), 0);
    if let Some(user) = user {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        assert!(
            !passwd.lines().any(|l| l.starts_with(&format!("{user}:"))),
            "{user} is still there"
        );
    }
}
