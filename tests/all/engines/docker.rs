//! The docker engine against a real dockerd: its conformance cases (and nothing
//! left behind afterwards), the grant it cannot run without, images that are not
//! there, the privileged rule, mountpoints, a tty shell, abort.
//!
//! dockerd is found at `$ENGINEHOST_DOCKER_SOCKET` (default `/var/run/docker.sock`)
//! and must have the image `enginehost/busybox:test` (`.ci/docker-test-image.sh`).
//! Without them the tests skip with the reason, unless `ENGINEHOST_REQUIRE_DOCKER=1`
//! (CI sets it): then they fail.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use enginehost::conformance::{Cases, Verdict, run_suite};
use enginehost::contract::{Engine, EngineError};
use serde_json::{Value, json};

use super::engine_from;
use crate::common::*;

pub(crate) const IMAGE: &str = "enginehost/busybox:test";

pub(crate) fn socket() -> String {
    std::env::var("ENGINEHOST_DOCKER_SOCKET").unwrap_or_else(|_| "/var/run/docker.sock".into())
}

/// One request to dockerd (HTTP/1.0: the answer ends with the connection);
/// the status and the body.
fn docker(method: &str, target: &str) -> std::io::Result<(u16, String)> {
    let mut io = UnixStream::connect(socket())?;
    io.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(io, "{method} {target} HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    let mut answer = String::new();
    io.read_to_string(&mut answer)?;
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Whether the docker tests can run here; when not, why (and a failure if CI
/// requires them).
pub(crate) fn dockerd() -> bool {
    let why = match docker("GET", "/_ping") {
        Err(e) => format!("no dockerd at {}: {e}", socket()),
        Ok((200, _)) => match docker("GET", &format!("/images/{IMAGE}/json")) {
            Ok((200, _)) => return true,
            _ => format!("dockerd has no {IMAGE} image (build it with .ci/docker-test-image.sh)"),
        },
        Ok((status, body)) => format!("dockerd at {} answered {status}: {body}", socket()),
    };
    if std::env::var("ENGINEHOST_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!("ENGINEHOST_REQUIRE_DOCKER=1, but {why}");
    }
    eprintln!("skipped: {why}");
    false
}

/// A label value no other test uses.
pub(super) fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// The operator config of the cases file, for this dockerd, with `label` on
/// everything the engine makes.
fn config(extra: &str, label: &str) -> String {
    let socket = socket();
    format!(
        r#"
[engines.docker]
dockerSocket = "unix://{socket}"
privileged = "allow"
{extra}
[engines.docker.labels]
"enginehost.test" = "{label}"
[plugins.docker.unix-sockets]
connect = ["{socket}"]
[plugins.docker.endpoint]
listen = ["172.16.0.0/12:80", "192.168.0.0/16:80", "10.0.0.0/8:80"]
"#
    )
}

/// Objects dockerd still has with the test's label.
pub(super) fn leftovers(label: &str) -> Vec<String> {
    let filter = format!("%7B%22label%22%3A%5B%22enginehost.test%3D{label}%22%5D%7D");
    let mut found = Vec::new();
    for (kind, target) in [
        ("container", format!("/containers/json?all=1&filters={filter}")),
        ("network", format!("/networks?filters={filter}")),
        ("volume", format!("/volumes?filters={filter}")),
    ] {
        let (_, body) = docker("GET", &target).unwrap();
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let list = if kind == "volume" { v["Volumes"].clone() } else { v };
        for o in list.as_array().into_iter().flatten() {
            found.push(format!(
                "{kind} {}",
                o["Name"].as_str().or(o["Id"].as_str()).unwrap_or("?")
            ));
        }
    }
    found
}

pub(super) async fn engine(extra: &str, label: &str) -> Arc<dyn Engine> {
    engine_from("docker", &config(extra, label)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_cases_pass_and_leave_nothing_behind() {
    if !dockerd() {
        return;
    }
    let label = unique();
    let engine = engine("", &label).await;
    let cases: Cases = serde_json::from_str(include_str!("../../../plugins/docker/cases.json")).unwrap();
    let report = run_suite(&engine, &cases, |r| eprintln!("{r}")).await;
    let failures: Vec<String> = report
        .results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Fail(_)))
        .map(|r| r.to_string())
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    // Every case type but Display (Recover too: a trap 1.5 s into a task, and
    // a storm, whose container the clean-up removes).
    let skipped: Vec<&str> = report
        .results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Skip(_)))
        .map(|r| r.case)
        .collect();
    assert!(skipped.iter().all(|c| *c == "Display"), "{skipped:?}");
    engine.dispose().await.unwrap();
    drop(engine);
    assert_eq!(leftovers(&label), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_socket_grant_the_engine_fails_naming_the_key() {
    let plugin = RUNTIME.load("docker", builtin_wasm("docker")).unwrap();
    let config = enginehost::policy::OperatorConfig::parse(
        "[engines.docker]\ndockerSocket = \"unix:///run/somewhere/docker.sock\"\nprivileged = \"never\"\n",
    )
    .unwrap();
    let started = RUNTIME
        .start_engine(
            &plugin,
            enginehost::runtime::EngineOptions {
                config: config.engine_config("docker"),
                grants: config.grants("docker"),
                ..Default::default()
            },
        )
        .await;
    let err = format!("{:#}", started.err().expect("the engine must not start"));
    assert!(
        err.contains(
            "unix-sockets.connect \"/run/somewhere/docker.sock\": not granted; add the path to \
             [plugins.docker.unix-sockets] connect"
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_a_malformed_payload_naming_it() {
    if !dockerd() {
        return;
    }
    let label = unique();
    let engine = engine("", &label).await;
    let builder = engine
        .new_sandbox_builder(
            context(),
            json!({"image": "enginehost/no-such-image:1", "command": ["true"]}),
        )
        .await
        .unwrap();
    match builder.start().await.map(|_| ()) {
        Err(EngineError::MalformedPayload(m)) => assert!(
            m[0].starts_with(
                "task.payload.image \"enginehost/no-such-image:1\" is not on this worker and could not be pulled: "
            ),
            "{m:?}"
        ),
        other => panic!("{other:?}"),
    }
    // docker-init starts, then cannot run the command: the task fails, saying why.
    let (result, log) = run_payload(&engine, json!({"image": IMAGE, "command": ["/no/such/program"]}), &[]).await;
    assert!(!result.unwrap().success());
    assert!(log.contains("/no/such/program"), "{log}");
    engine.dispose().await.unwrap();
    assert_eq!(leftovers(&label), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_needs_the_scope_and_a_worker_that_allows_it() {
    if !dockerd() {
        return;
    }
    let payload = json!({"image": IMAGE, "command": ["true"], "privileged": true});
    let engine = engine("provisionerId = \"p\"\nworkerType = \"w\"", &unique()).await;
    let refused = engine.new_sandbox_builder(context(), payload.clone()).await.err();
    assert_eq!(
        refused,
        Some(EngineError::MalformedPayload(vec![
            "task.payload.privileged: a privileged container needs the scope \"worker:privileged:p/w\", which the \
             task does not have; add it to task.scopes"
                .into()
        ]))
    );
    let mut ctx = context();
    ctx = enginehost::contract::TaskContext::new(
        enginehost::contract::TaskInfo {
            scopes: vec!["worker:privileged:p/w".into()],
            ..ctx.info().clone()
        },
        ctx.log().clone(),
    );
    assert!(engine.new_sandbox_builder(ctx, payload.clone()).await.is_ok());
    let never = engine_from("docker", &config("", &unique()).replace("\"allow\"", "\"never\"")).await;
    match never.new_sandbox_builder(context(), payload).await.err() {
        Some(EngineError::MalformedPayload(m)) => assert!(m[0].contains("privileged = \"never\""), "{m:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mountpoints_follow_the_seeds_rules() {
    if !dockerd() {
        return;
    }
    let label = unique();
    let engine = engine("", &label).await;
    let volume = engine.new_volume(json!({})).await.unwrap();
    let builder = engine
        .new_sandbox_builder(context(), json!({"image": IMAGE, "command": ["true"]}))
        .await
        .unwrap();
    for bad in ["relative/", "/no-slash", "/a/./b/", "/a/../b/", "/a:b/", "/", "/a//b/"] {
        assert!(
            matches!(
                builder.attach_volume(bad, volume.as_ref(), false).await,
                Err(EngineError::MalformedPayload(_))
            ),
            "{bad}"
        );
    }
    builder
        .attach_volume("/mnt/cache/", volume.as_ref(), false)
        .await
        .unwrap();
    for conflict in ["/mnt/cache/", "/mnt/cache/inner/", "/mnt/"] {
        assert_eq!(
            builder.attach_volume(conflict, volume.as_ref(), true).await,
            Err(EngineError::NamingConflict),
            "{conflict}"
        );
    }
    builder
        .attach_volume("/mnt/cache2/", volume.as_ref(), true)
        .await
        .unwrap();
    builder.discard().await.unwrap();
    drop(builder);
    volume.dispose().await.unwrap();
    engine.dispose().await.unwrap();
    assert_eq!(leftovers(&label), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tty_shell_and_an_abort_that_removes_the_container() {
    if !dockerd() {
        return;
    }
    let label = unique();
    let engine = engine("", &label).await;
    let sandbox = started(&engine, json!({"image": IMAGE, "command": ["sleep", "30"]})).await;
    let shell = sandbox.new_shell(&["sh".to_string()], true).await.unwrap();
    super::resize_transcript(&*shell).await;
    let filter = format!("%7B%22label%22%3A%5B%22enginehost.test%3D{label}%22%5D%7D");
    let (_, body) = docker("GET", &format!("/containers/json?all=1&filters={filter}")).unwrap();
    let containers: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(containers.as_array().map(Vec::len), Some(1), "{containers}");
    let networks = containers[0]["NetworkSettings"]["Networks"].as_object().unwrap();
    let network = networks.values().next().unwrap()["NetworkID"]
        .as_str()
        .unwrap()
        .to_string();
    sandbox.abort().await.unwrap();
    // Gone when abort returns: the container and the task's own network (the
    // engine's spare network, made ahead for the next task, stays until dispose).
    let left = leftovers(&label);
    assert!(
        !left.iter().any(|o| o.starts_with("container")),
        "abort removes the container: {left:?}"
    );
    let (status, _) = docker("GET", &format!("/networks/{network}")).unwrap();
    assert_eq!(status, 404, "abort removes the task's network {network}: {left:?}");
    assert!(matches!(
        sandbox.wait_for_result().await.err(),
        Some(EngineError::SandboxAborted)
    ));
    engine.dispose().await.unwrap();
    assert_eq!(leftovers(&label), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_without_the_endpoint_grant_fail_naming_the_key() {
    if !dockerd() {
        return;
    }
    let label = unique();
    let socket = socket();
    let config = format!(
        "[engines.docker]\ndockerSocket = \"unix://{socket}\"\nprivileged = \"never\"\n[engines.docker.labels]\n\
         \"enginehost.test\" = \"{label}\"\n[plugins.docker.unix-sockets]\nconnect = [\"{socket}\"]\n"
    );
    let engine = engine_from("docker", &config).await;
    let builder = engine
        .new_sandbox_builder(context(), json!({"image": IMAGE, "command": ["true"]}))
        .await
        .unwrap();
    struct Nobody;
    #[async_trait::async_trait]
    impl enginehost::contract::ProxyHandler for Nobody {
        async fn handle(&self, _: enginehost::contract::HttpRequest) -> enginehost::contract::HttpResponse {
            unreachable!()
        }
    }
    builder.attach_proxy("my-proxy", Arc::new(Nobody)).await.unwrap();
    match builder.start().await.map(|_| ()) {
        Err(EngineError::NonFatalInternalError(d)) => {
            assert!(
                d.contains("not granted") && d.contains("[plugins.docker.endpoint] listen"),
                "{d}"
            )
        }
        other => panic!("{other:?}"),
    }
    engine.dispose().await.unwrap();
    assert_eq!(leftovers(&label), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_task_runs_with_the_example_config() {
    if !dockerd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let text = std::fs::read_to_string(root.join("docker-worker.toml")).unwrap();
    let text = format!("[host]\nwork-dir = \"{}\"\n{}", dir.path().join("work").display(), text)
        .replace("/var/run/docker.sock", &socket());
    std::fs::write(dir.path().join("worker.toml"), text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enginehost"))
        .args([
            "run",
            root.join("docker-hello.json").to_str().unwrap(),
            "--config",
            "worker.toml",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Hello from a container, as root\nGREETING=hi\n"),
        "{stdout}"
    );
    let artifact = std::fs::read_to_string(dir.path().join("artifacts/docker/status.txt")).unwrap();
    assert_eq!(artifact, "done\n");
}

/// The line the host writes into the task log when a fresh instance takes over.
const RESTARTED: &str = "and was restarted; the task goes on in the new instance";

/// The processes running in container `id` (dockerd's `top`), as command lines.
fn top(id: &str) -> Vec<String> {
    let (_, body) = docker("GET", &format!("/containers/{id}/top")).unwrap();
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    v["Processes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_array()?.last()?.as_str().map(String::from))
        .collect()
}

/// Contract 0.1.4: a running container is taken over by a fresh instance after
/// a trap: the same container goes on, every line it wrote (stdout and stderr,
/// and a partial line across the trap) is in the log exactly once, the old
/// instance's shell is killed, the artifact and the result are right, and
/// nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_container_survives_a_trap_with_its_whole_output_once() {
    if !dockerd() {
        return;
    }
    let label = unique();
    let engine = engine("", &label).await;
    let script = "i=0; while [ $i -lt 80 ]; do echo \"out $i\"; echo \"err $i\" >&2; i=$((i+1)); sleep 0.1; done; \
                  printf 'tail-'; sleep 1; echo end; echo kept > /kept.txt";
    let ctx = context();
    let sandbox = started_in(
        &engine,
        ctx.clone(),
        json!({"image": IMAGE, "command": ["sh", "-c", script]}),
    )
    .await;
    let waiting = spawn_wait(&sandbox);
    let containers = || -> Vec<String> {
        leftovers(&label)
            .into_iter()
            .filter_map(|o| o.strip_prefix("container ").map(String::from))
            .collect()
    };
    let before = containers();
    assert_eq!(before.len(), 1, "{before:?}");
    let shell = sandbox
        .new_shell(&["sh".into(), "-c".into(), "sleep 3131".into()], false)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(
        top(&before[0]).iter().any(|p| p.contains("sleep 3131")),
        "the shell runs"
    );
    assert!(engine.inject_trap("an injected trap").await);
    until(
        || "the old instance's shell outlived the recovery".into(),
        || !top(&before[0]).iter().any(|p| p.contains("sleep 3131")),
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
    assert_eq!(waiting.await.unwrap(), Ok(true), "the task ends with its real result");
    assert_eq!(containers(), before, "the same container before and after the trap");

    let result = sandbox.wait_for_result().await.unwrap();
    let kept = result.extract_file("/kept.txt").await.unwrap().read_to_end().await;
    assert_eq!(kept, b"kept\n");
    ctx.log().close();
    let log = String::from_utf8(ctx.log().read_to_end().await.unwrap()).unwrap();
    assert_eq!(log.matches(RESTARTED).count(), 1, "{log}");
    each_line_once(
        "docker",
        &log,
        (0..80).flat_map(|i| ["out", "err"].map(|stream| format!("{stream} {i}"))),
    );
    assert_eq!(log.lines().filter(|l| *l == "tail-end").count(), 1, "{log}");
    let restarted = log.find(RESTARTED).unwrap();
    assert!(
        log.find("out 0\n").unwrap() < restarted && restarted < log.find("out 79\n").unwrap(),
        "the container wrote on both sides of the restart:\n{log}"
    );
    result.dispose().await.unwrap();
    drop((result, sandbox, shell));
    engine.dispose().await.unwrap();
    drop(engine);
    assert_eq!(leftovers(&label), Vec::<String>::new());
}

/// A storm of traps ends the task cleanly, and its container and network are
/// removed all the same (the host hands the record to a fresh instance once
/// more, which aborts it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_traps_fails_the_task_and_removes_its_container() {
    if !dockerd() {
        return;
    }
    let label = unique();
    let engine = engine("", &label).await;
    let ctx = context();
    let sandbox = started_in(
        &engine,
        ctx.clone(),
        json!({"image": IMAGE, "command": ["sleep", "60"]}),
    )
    .await;
    // Each recovery has found the container before the next trap.
    trap_storm(&engine, spawn_wait(&sandbox), std::time::Duration::from_millis(1500)).await;
    drop(sandbox);
    assert_eq!(
        leftovers(&label),
        Vec::<String>::new(),
        "the task's container and network are removed"
    );
    engine.dispose().await.unwrap();
}

/// A task killed after a trap, before anything waited for it (so before any
/// recovery started), is not taken over, and its container and network are
/// removed all the same: the host hands the record to a fresh instance only to
/// abort it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_killed_while_its_engine_is_dead_leaves_no_container() {
    if !dockerd() {
        return;
    }
    let label = unique();
    let engine = engine("", &label).await;
    let sandbox = started_in(&engine, context(), json!({"image": IMAGE, "command": ["sleep", "60"]})).await;
    assert_eq!(
        leftovers(&label).iter().filter(|o| o.starts_with("container ")).count(),
        1
    );
    assert!(engine.inject_trap("an injected trap").await);
    let EngineError::PluginFailed { reason, .. } = sandbox.kill().await.unwrap_err() else {
        panic!("expected plugin-failed")
    };
    assert!(
        reason.contains("killed while its engine was being restarted"),
        "{reason}"
    );
    let EngineError::PluginFailed { reason, .. } = sandbox.wait_for_result().await.map(|_| ()).unwrap_err() else {
        panic!("expected plugin-failed")
    };
    assert!(
        reason.contains("killed while its engine was being restarted"),
        "{reason}"
    );
    until(
        || format!("left behind: {:?}", leftovers(&label)),
        || leftovers(&label).is_empty(),
    )
    .await;
    drop(sandbox);
    engine.dispose().await.unwrap();
}

/// Tasks the docker engine does not take over after a trap (one with a cache,
/// whose lent volume dies with the instance; one whose output docker's log
/// would not give back byte for byte) fail saying so, and their containers
/// are removed by the fresh instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_that_are_not_taken_over_fail_and_their_containers_go() {
    if !dockerd() {
        return;
    }
    let label = unique();
    let engine = engine("", &label).await;
    let cache = engine.new_volume(json!({})).await.unwrap();
    let builder = engine
        .new_sandbox_builder(context(), json!({"image": IMAGE, "command": ["sleep", "60"]}))
        .await
        .unwrap();
    builder.attach_volume("/cache/", cache.as_ref(), false).await.unwrap();
    let cached = builder.start().await.unwrap();
    let binary = started_in(
        &engine,
        context(),
        json!({"image": IMAGE, "command": ["sh", "-c", "printf 'bytes \\377\\376\\n'; sleep 60"]}),
    )
    .await;
    let waits = [spawn_wait(&cached), spawn_wait(&binary)];
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(engine.inject_trap("an injected trap").await);
    for wait in waits {
        let EngineError::PluginFailed { reason, .. } = wait.await.unwrap().unwrap_err() else {
            panic!("expected plugin-failed")
        };
        assert!(reason.contains("the task is not taken over"), "{reason}");
        assert!(reason.contains("was removed"), "{reason}");
    }
    drop((cached, binary));
    // The cache's volume went with them: its handle died with the instance.
    until(
        || format!("left behind: {:?}", leftovers(&label)),
        || leftovers(&label).is_empty(),
    )
    .await;
    assert!(cache.dispose().await.is_err(), "the lent volume died with its instance");
    drop(cache);
    engine.dispose().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_marker_is_not_a_task_variable() {
    if !dockerd() {
        return;
    }
    let label = unique();
    let engine = engine("", &label).await;
    let builder = engine
        .new_sandbox_builder(context(), json!({"image": IMAGE, "command": ["true"]}))
        .await
        .unwrap();
    match builder
        .set_environment_variable("ENGINEHOST_SHELL", "enginehost-1")
        .await
    {
        Err(EngineError::MalformedPayload(m)) => {
            assert!(m[0].contains("ENGINEHOST_SHELL is the docker engine's own"), "{m:?}")
        }
        other => panic!("{other:?}"),
    }
    builder.discard().await.unwrap();
}

/// A task the worker tears down (`terminate`: kill and abort were ignored) is
/// not taken over, and its container goes with it: a fresh instance gets the
/// record only to remove it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_task_leaves_no_container() {
    if !dockerd() {
        return;
    }
    let label = unique();
    let engine = engine("", &label).await;
    let sandbox = started_in(&engine, context(), json!({"image": IMAGE, "command": ["sleep", "60"]})).await;
    let waiting = spawn_wait(&sandbox);
    sandbox.terminate("the worker gave up on the task").await;
    let EngineError::PluginFailed { reason, .. } = waiting.await.unwrap().unwrap_err() else {
        panic!("expected plugin-failed")
    };
    assert!(reason.contains("the worker gave up on the task"), "{reason}");
    drop(sandbox);
    until(
        || format!("left behind: {:?}", leftovers(&label)),
        || leftovers(&label).is_empty(),
    )
    .await;
    engine.dispose().await.unwrap();
}
