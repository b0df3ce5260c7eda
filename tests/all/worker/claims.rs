//! Keeping a claim: reclaims ahead of `takenUntil` with the credentials swapped each
//! time; a claim lost mid-run (409 on reclaim) aborts the task, uploads its log and
//! reports nothing.

use std::time::Duration;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclaims_keep_the_claim_and_swap_the_credentials() {
    // Claims of 5 s, no certificate skew: a call with the claim's first credentials
    // after 5 s would be refused, so the task completes only if each reclaim's
    // credentials replace the previous ones.
    let fake = fake(Duration::from_secs(5)).await;
    let mut worker = WorkerProcess::start(&fake, Config::new("keeper"));
    let task = create(&fake, TASK_QUEUE, mock(12_000, "write-log", "still here"), |_| {});
    wait_for("the resolution", Duration::from_secs(90), &[&worker], || {
        !fake.resolutions(&task).is_empty()
    })
    .await;
    let resolution = only_resolution(&fake, &task);
    assert_eq!(resolution.state, "completed", "{}", worker.log());
    let requests = fake.request_log();
    let reclaims: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with(&format!("/task/{task}/runs/0/reclaim")))
        .collect();
    assert!(reclaims.len() >= 2, "{reclaims:?}");
    assert!(reclaims.iter().all(|r| r.status == 200), "{reclaims:?}");
    // Each reclaim was made with the credentials of the one before.
    let first_claim = reclaims[0].client_id.clone().unwrap();
    assert!(reclaims[1].client_id.as_ref().unwrap() != &first_claim, "{reclaims:?}");
    assert!(resolution.client_id != first_claim);
    assert!(
        requests.iter().all(|r| r.status != 401),
        "nothing was refused: {:?}",
        requests.iter().filter(|r| r.status == 401).collect::<Vec<_>>()
    );
    assert_eq!(fake.runs(&task).len(), 1, "the claim never expired");
    assert!(worker.log().contains("reclaimed; the run's credentials are swapped"));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_claim_aborts_the_task_and_nothing_is_reported() {
    let fake = fake(Duration::from_secs(10)).await;
    let mut worker = WorkerProcess::start(&fake, Config::new("loser"));
    // A task that would sleep a minute; no retries, so its run is the only one.
    let task = create(&fake, TASK_QUEUE, mock(60_000, "true", ""), |d| d["retries"] = json!(0));
    wait_for("the task to run", Duration::from_secs(60), &[&worker], || {
        executing(&fake, &task, 0)
    })
    .await;
    // The run is resolved behind the worker's back (as a claim-resolver or a
    // cancellation would): the worker's next reclaim gets a 409.
    assert!(fake.expire_claim(&task, 0));
    let seen = fake.request_log().len();
    wait_for(
        "the worker to see the claim lost",
        Duration::from_secs(30),
        &[&worker],
        || worker.log().contains("the claim is lost"),
    )
    .await;
    // The slot is free again, so the sandbox was aborted: the next task runs (capacity 1).
    let next = create(&fake, TASK_QUEUE, mock(0, "write-log", "next"), |_| {});
    wait_for("the next task", Duration::from_secs(30), &[&worker], || {
        !fake.resolutions(&next).is_empty()
    })
    .await;
    assert_eq!(only_resolution(&fake, &next).state, "completed");

    assert!(
        fake.resolutions(&task).is_empty(),
        "nothing was reported for the lost run"
    );
    let runs = fake.runs(&task);
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].state.as_str(), runs[0].reason_resolved.as_deref()),
        ("exception", Some("claim-expired"))
    );
    // After the loss, the worker reported nothing: it only uploaded the log (the
    // queue takes artifacts on a resolved run for a while) and linked live.log to it.
    let after: Vec<_> = fake.request_log()[seen..]
        .iter()
        .filter(|r| r.path.contains(&format!("/task/{task}/")))
        .cloned()
        .collect();
    assert!(
        after.iter().any(|r| r.path.ends_with("/reclaim") && r.status == 409),
        "{after:#?}"
    );
    assert!(
        after
            .iter()
            .all(|r| r.path.ends_with("/reclaim") || r.path.contains("/artifacts/")),
        "{after:#?}"
    );
    let log = backing_log(&fake, &task, 0);
    assert!(log.contains("no longer this worker's"), "{log}");
    worker.stop().await;
    assert!(worker.run_dirs().is_empty(), "the lost run's directory was removed");
}
