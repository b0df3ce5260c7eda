//! Running as a service: SIGTERM aborts the running tasks and resolves them as
//! `worker-shutdown` (or, with `shutdown = "finish"`, lets them end); an engine's
//! stop-now stops claiming after the running tasks; a fatal engine error too, with a
//! non-zero exit.

use std::time::Duration;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_resolves_the_held_runs_as_worker_shutdown() {
    let fake = fake(Duration::from_secs(60)).await;
    let mut worker = WorkerProcess::start(&fake, Config::new("stopping").worker("capacity = 2"));
    let tasks: Vec<_> = (0..2)
        .map(|_| create(&fake, TASK_QUEUE, mock(120_000, "true", ""), |_| {}))
        .collect();
    wait_for("both tasks to run", Duration::from_secs(60), &[&worker], || {
        tasks.iter().all(|t| executing(&fake, t, 0))
    })
    .await;
    worker.signal(libc::SIGTERM);
    let status = worker.wait(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(0), "{}", worker.log());
    // Created after the signal: never claimed.
    let late = create(&fake, TASK_QUEUE, mock(0, "true", ""), |_| {});
    for task in &tasks {
        let resolution = only_resolution(&fake, task);
        assert_eq!(
            (resolution.state.as_str(), resolution.reason.as_str(), resolution.run_id),
            ("exception", "worker-shutdown", 0)
        );
        let log = backing_log(&fake, task, 0);
        assert!(
            log.contains("The worker is shutting down: the task was aborted"),
            "{log}"
        );
        // The queue retries at once; this worker no longer claims.
        let runs = fake.runs(task);
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert_eq!(
            (runs[1].state.as_str(), runs[1].reason_created.as_str()),
            ("pending", "retry")
        );
    }
    assert_eq!(fake.runs(&late)[0].state, "pending");
    let log = worker.log();
    assert!(
        log.contains("SIGTERM: no more claims; aborting the running tasks"),
        "{log}"
    );
    assert!(worker.run_dirs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_shutdown_finish_sigterm_lets_the_running_task_end() {
    let fake = fake(Duration::from_secs(60)).await;
    let mut worker = WorkerProcess::start(&fake, Config::new("patient").worker("shutdown = \"finish\""));
    let task = create(&fake, TASK_QUEUE, mock(2000, "write-log", "finished anyway"), |_| {});
    wait_for("the task to run", Duration::from_secs(60), &[&worker], || {
        executing(&fake, &task, 0)
    })
    .await;
    worker.signal(libc::SIGTERM);
    let status = worker.wait(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(0), "{}", worker.log());
    assert_eq!(only_resolution(&fake, &task).state, "completed");
    assert!(backing_log(&fake, &task, 0).contains("finished anyway"));

    // A second signal aborts what the first let run.
    let mut worker = WorkerProcess::start(&fake, Config::new("hurried").worker("shutdown = \"finish\""));
    let task = create(&fake, TASK_QUEUE, mock(120_000, "true", ""), |_| {});
    wait_for("the task to run", Duration::from_secs(60), &[&worker], || {
        executing(&fake, &task, 0)
    })
    .await;
    worker.signal(libc::SIGTERM);
    wait_for(
        "the first signal to be seen",
        Duration::from_secs(30),
        &[&worker],
        || worker.log().contains("the running tasks finish"),
    )
    .await;
    assert!(fake.resolutions(&task).is_empty(), "the task still runs");
    worker.signal(libc::SIGINT);
    let status = worker.wait(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(0), "{}", worker.log());
    let resolution = only_resolution(&fake, &task);
    assert_eq!(
        (resolution.state.as_str(), resolution.reason.as_str()),
        ("exception", "worker-shutdown")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_credentials_stop_the_worker_with_a_clear_message() {
    let fake = fake(Duration::from_secs(60)).await;
    let mut worker = WorkerProcess::start(&fake, Config::new("revoked"));
    let task = create(&fake, TASK_QUEUE, mock(0, "write-log", "before"), |_| {});
    wait_for("the task", Duration::from_secs(60), &[&worker], || {
        !fake.resolutions(&task).is_empty()
    })
    .await;
    // The client's access token is reset in the deployment.
    fake.add_client("worker/revoked", "a-new-token", worker_scopes(TASK_QUEUE, "revoked"));
    let status = worker.wait(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(3), "{}", worker.log());
    let log = worker.log();
    assert!(
        log.contains("the queue refused the worker's credentials; check [worker] credentials"),
        "{log}"
    );
    assert_eq!(only_resolution(&fake, &task).state, "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_now_and_fatal_errors_stop_claiming_after_the_running_tasks() {
    let fake = fake(Duration::from_secs(60)).await;
    // stop-now: the task completes, the worker exits 0 and claims nothing more.
    let mut worker = WorkerProcess::start(&fake, Config::new("asked"));
    let task = create(&fake, TASK_QUEUE, mock(0, "stopNow-sleep", ""), |_| {});
    let status = worker.wait(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(0), "{}", worker.log());
    assert_eq!(only_resolution(&fake, &task).state, "completed");
    let after = create(&fake, TASK_QUEUE, mock(0, "true", ""), |_| {});
    assert!(
        worker.log().contains("an engine asked the worker to stop"),
        "{}",
        worker.log()
    );

    // A fatal internal error: internal-error, then the worker stops with status 3.
    let mut worker = WorkerProcess::start(&fake, Config::new("broken"));
    let fatal = create(&fake, TASK_QUEUE, mock(0, "fatal-internal-error", ""), |d| {
        d["priority"] = json!("high")
    });
    let status = worker.wait(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(3), "{}", worker.log());
    let resolution = only_resolution(&fake, &fatal);
    assert_eq!(
        (resolution.state.as_str(), resolution.reason.as_str()),
        ("exception", "internal-error")
    );
    assert!(backing_log(&fake, &fatal, 0).contains("Encountered a fatal internal error"));
    // Neither claimed `after`: the first had stopped; the second (capacity 1) took the
    // fatal task first (higher priority) and claimed nothing after it.
    assert_eq!(fake.runs(&after)[0].state, "pending");
}
