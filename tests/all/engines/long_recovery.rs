//! Issue 24's done-when, as it is worded: a 60 s task of native, docker and
//! qemu each survives a trap of its engine 20 s in, and finishes with the right
//! result, its whole log (each of its 60 lines exactly once, on both sides of
//! the restart) and its artifact. The three run at once (about 65 s in all);
//! the engines' own tests check the same more densely and faster.

use std::sync::Arc;
use std::time::Duration;

use enginehost::contract::{Engine, TaskContext};
use serde_json::{Value, json};

use super::engine_from;
use crate::common::*;

/// Prints `tick N` once a second for 60 s, then writes `done` into `artifact`.
fn script(artifact: &str) -> String {
    format!("i=0; while [ $i -lt 60 ]; do echo \"tick $i\"; i=$((i+1)); sleep 1; done; echo done > {artifact}")
}

/// Starts `payload`, traps `engine` 20 s in, and checks the task's end; `what`
/// names the engine in the messages.
async fn trapped_20_s_in(what: &str, engine: &Arc<dyn Engine>, payload: Value, artifact: &str) {
    let ctx: TaskContext = context();
    let sandbox = started_in(engine, ctx.clone(), payload).await;
    let waiting = spawn_wait(&sandbox);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(!waiting.is_finished(), "{what}: the task ended before the trap");
    assert!(engine.inject_trap("the done-when's trap, 20 s in").await, "{what}");
    assert_eq!(
        waiting.await.unwrap(),
        Ok(true),
        "{what}: the task ends with its real result:\n{}",
        std::fs::read_to_string(ctx.log().path()).unwrap_or_default()
    );
    let result = sandbox.wait_for_result().await.unwrap();
    let done = result.extract_file(artifact).await.unwrap().read_to_end().await;
    assert_eq!(done, b"done\n", "{what}: the artifact");
    ctx.log().close();
    let log = String::from_utf8(ctx.log().read_to_end().await.unwrap()).unwrap();
    assert_eq!(log.matches(super::qemu::RESTARTED).count(), 1, "{what}:\n{log}");
    each_line_once(what, &log, (0..60).map(|i| format!("tick {i}")));
    let restarted = log.find(super::qemu::RESTARTED).unwrap();
    assert!(
        log.find("tick 10\n").unwrap() < restarted && restarted < log.find("tick 30\n").unwrap(),
        "{what}: the trap came about 20 s in:\n{log}"
    );
    result.dispose().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_60_s_task_of_each_engine_survives_a_trap_20_s_in() {
    let native = async {
        let engine = engine_from("native", super::native::AS_WORKER).await;
        let payload = json!({"commands": [["sh", "-c", script("done.txt")]]});
        trapped_20_s_in("native", &engine, payload, "done.txt").await;
    };
    let docker = async {
        if !super::docker::dockerd() {
            return;
        }
        let label = super::docker::unique();
        let engine = super::docker::engine("", &label).await;
        let payload = json!({"image": super::docker::IMAGE, "command": ["sh", "-c", script("/done.txt")]});
        trapped_20_s_in("docker", &engine, payload, "/done.txt").await;
        engine.dispose().await.unwrap();
        drop(engine);
        assert_eq!(super::docker::leftovers(&label), Vec::<String>::new());
    };
    let qemu = async {
        let Some((_vms, images)) = super::qemu::vms().await else {
            return;
        };
        let engine = super::qemu::engine_with(&super::qemu::cases_for(&images)).await;
        let payload = json!({"image": super::qemu::IMAGE, "command": ["sh", "-c", script("/home/tc/done.txt")]});
        trapped_20_s_in("qemu", &engine, payload, "done.txt").await;
    };
    tokio::join!(native, docker, qemu);
}
