//! Hot reload of the plugin directory: a replaced plugin file serves the next
//! task, the task that runs meanwhile finishes on the engine it started on (which
//! is then disposed), and a file that would not load changes nothing.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::distribution::mock_as;

/// Puts `file` (in `from`) into the plugin directory `plugins` as `mock.wasm`, the
/// way an install does: a temporary file, then a rename.
fn put(from: &Path, file: &str, plugins: &Path) {
    let temporary = plugins.join(".mock.wasm.installing");
    std::fs::copy(from.join(file), &temporary).unwrap();
    std::fs::rename(&temporary, plugins.join("mock.wasm")).unwrap();
}

fn reloads(worker: &WorkerProcess) -> usize {
    worker.log().matches("reloaded from the plugin directory").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_plugin_serves_the_next_task_while_the_running_one_finishes_on_the_old() {
    let versions = tempfile::tempdir().unwrap();
    let v1 = mock_as(versions.path(), "1.0.0", "");
    let v2 = mock_as(versions.path(), "2.0.0", "");
    let fake = fake(Duration::from_secs(60)).await;
    let mut worker = WorkerProcess::start(&fake, Config::new("reload").worker("capacity = 2"));
    let plugins = worker.dir.path().join("plugins");
    // The built-in mock serves until a file of its name arrives.
    wait_for(
        "the worker to watch its plugins",
        Duration::from_secs(60),
        &[&worker],
        || worker.log().contains("watching the plugin directory"),
    )
    .await;
    put(versions.path(), &v1, &plugins);
    wait_for("the first reload", Duration::from_secs(60), &[&worker], || {
        reloads(&worker) == 1
    })
    .await;

    let slow = create(&fake, TASK_QUEUE, mock(4000, "write-log", "slow"), |_| {});
    wait_for("the slow task to run", Duration::from_secs(60), &[&worker], || {
        fake.runs(&slow).iter().any(|r| r.state == "running")
    })
    .await;
    put(versions.path(), &v2, &plugins);
    wait_for("the second reload", Duration::from_secs(60), &[&worker], || {
        reloads(&worker) == 2
    })
    .await;
    let quick = create(&fake, TASK_QUEUE, mock(0, "write-log", "quick"), |_| {});
    wait_for("both tasks to be resolved", Duration::from_secs(60), &[&worker], || {
        [&slow, &quick].iter().all(|t| !fake.resolutions(t).is_empty())
    })
    .await;
    let log = backing_log(&fake, &slow, 0);
    assert!(log.contains("Engine: mock 1.0.0") && log.contains("slow"), "{log}");
    let log = backing_log(&fake, &quick, 0);
    assert!(log.contains("Engine: mock 2.0.0") && log.contains("quick"), "{log}");
    for task in [&slow, &quick] {
        let r = only_resolution(&fake, task);
        assert_eq!((r.state.as_str(), r.reason.as_str()), ("completed", "completed"));
    }
    wait_for(
        "the old engine to be disposed",
        Duration::from_secs(30),
        &[&worker],
        || {
            worker
                .log()
                .contains("the replaced engine's last task ended; it is disposed")
        },
    )
    .await;

    // A file that would not load is refused by name; the engine stays.
    std::fs::write(plugins.join(".bad"), b"not a component").unwrap();
    std::fs::rename(plugins.join(".bad"), plugins.join("mock.wasm")).unwrap();
    wait_for("the refusal", Duration::from_secs(60), &[&worker], || {
        worker.log().contains("plugin file refused")
    })
    .await;
    let after = create(&fake, TASK_QUEUE, mock(0, "write-log", "after"), |_| {});
    wait_for("the last task", Duration::from_secs(60), &[&worker], || {
        !fake.resolutions(&after).is_empty()
    })
    .await;
    let log = backing_log(&fake, &after, 0);
    assert!(log.contains("Engine: mock 2.0.0"), "{log}");
    assert_eq!(reloads(&worker), 2, "{}", worker.log());
    worker.stop().await;
}
