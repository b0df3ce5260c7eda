//! A trap of an engine's instance under the real worker: a task that left a
//! recovery record goes on in a fresh instance and completes with its whole log;
//! the task whose call trapped fails as before (contract 0.1.4).

use std::time::Duration;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_survives_a_trap_of_its_engine() {
    let fake = fake(Duration::from_secs(60)).await;
    let mut worker = WorkerProcess::start(&fake, Config::new("recovering").worker("capacity = 2"));
    let long = create(
        &fake,
        TASK_QUEUE,
        mock(8000, "write-log", "done after the trap"),
        |_| {},
    );
    wait_for("the long task to run", Duration::from_secs(60), &[&worker], || {
        executing(&fake, &long, 0)
    })
    .await;
    // A real trap: the mock panics in another task's function.
    let trap = create(&fake, TASK_QUEUE, mock(0, "trap-engine", ""), |_| {});
    wait_for("both tasks to resolve", Duration::from_secs(90), &[&worker], || {
        !fake.resolutions(&long).is_empty() && !fake.resolutions(&trap).is_empty()
    })
    .await;

    let resolution = only_resolution(&fake, &long);
    assert_eq!(resolution.state, "completed", "{}", backing_log(&fake, &long, 0));
    let log = backing_log(&fake, &long, 0);
    assert!(log.contains("The engine mock failed ("), "{log}");
    assert!(
        log.contains("the mock was asked to trap"),
        "the log names the trap: {log}"
    );
    assert!(
        log.contains("and was restarted; the task goes on in the new instance"),
        "{log}"
    );
    assert!(log.contains("[taskcluster] done after the trap\n"), "{log}");

    let resolution = only_resolution(&fake, &trap);
    assert_eq!(
        (resolution.state.as_str(), resolution.reason.as_str()),
        ("exception", "internal-error")
    );
    assert!(
        backing_log(&fake, &trap, 0).contains("the mock was asked to trap"),
        "{}",
        backing_log(&fake, &trap, 0)
    );
    worker.signal(libc::SIGTERM);
    let status = worker.wait(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(0), "{}", worker.log());
    assert!(worker.run_dirs().is_empty());
}
