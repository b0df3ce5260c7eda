//! When the queue stumbles: an outage in the middle of running tasks loses none and
//! changes no resolution; a stop drops the `claimWork` in flight (an idle worker
//! exits at once, a busy one claims nothing more); a cancelled task's log is still
//! uploaded; the metrics endpoint counts what happened and `promtool` accepts it.

use std::time::{Duration, Instant};

use super::*;

/// A free local port for a listener the worker opens.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `promtool check metrics` on `text`; `None` when promtool is not installed (CI
/// installs it and sets ENGINEHOST_REQUIRE_PROMTOOL=1).
fn promtool(text: &str) -> Option<std::process::Output> {
    use std::io::Write;
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("ENGINEHOST_REQUIRE_PROMTOOL").is_err(),
                "promtool is required here: {e}"
            );
            eprintln!("skipped promtool: {e}");
            return None;
        }
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    Some(child.wait_with_output().unwrap())
}

/// The value of the sample `name{labels}` in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_15_s_outage_among_20_running_tasks_loses_none_and_changes_no_resolution() {
    let fake = fake(Duration::from_secs(90)).await;
    let port = free_port();
    let mut worker = WorkerProcess::start(
        &fake,
        Config::new("steady").worker(&format!("capacity = 20\nmetrics-listen = \"127.0.0.1:{port}\"")),
    );
    let mut expected = Vec::new();
    for i in 0..20 {
        let (function, state) = if i % 4 == 3 {
            ("write-error-log", "failed")
        } else {
            ("write-log", "completed")
        };
        let says = format!("task number {i}");
        let task = create(&fake, TASK_QUEUE, mock(3000, function, &says), |_| {});
        expected.push((task, state, says));
    }
    wait_for("all 20 to run", Duration::from_secs(60), &[&worker], || {
        expected.iter().all(|(t, ..)| executing(&fake, t, 0))
    })
    .await;
    // They end, upload and report while the queue is away.
    fake.set_outage(true);
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(
        expected.iter().all(|(t, ..)| fake.resolutions(t).is_empty()),
        "nothing got through the outage"
    );
    fake.set_outage(false);
    wait_for(
        "every task to be resolved",
        Duration::from_secs(120),
        &[&worker],
        || expected.iter().all(|(t, ..)| !fake.resolutions(t).is_empty()),
    )
    .await;
    for (task, state, says) in &expected {
        let resolution = only_resolution(&fake, task);
        assert_eq!(resolution.state, *state, "task {task}");
        assert_eq!(fake.runs(task).len(), 1, "task {task} ran once");
        let log = backing_log(&fake, task, 0);
        assert!(log.contains(says.as_str()), "task {task}: {log}");
        assert!(
            live_log_is_linked(&fake, task, 0),
            "task {task}: {:?}",
            fake.artifacts(task, 0)
        );
    }
    let log = worker.log();
    assert!(log.contains("trying again"), "{log}");

    // The metrics count it, and promtool accepts them.
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |series: &str| sample(&metrics, series).unwrap_or_else(|| panic!("no {series} in:\n{metrics}"));
    assert_eq!(count("enginehost_tasks_claimed_total"), 20.0);
    assert_eq!(
        count("enginehost_tasks_resolved_total{engine=\"mock\",resolution=\"completed\"}"),
        15.0
    );
    assert_eq!(
        count("enginehost_tasks_resolved_total{engine=\"mock\",resolution=\"failed\"}"),
        5.0
    );
    assert_eq!(count("enginehost_task_duration_seconds_count{engine=\"mock\"}"), 20.0);
    let retries: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("enginehost_queue_retries_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(retries >= 20.0, "every run retried at least once:\n{metrics}");
    assert!(count("enginehost_engine_call_duration_seconds_count{engine=\"mock\",call=\"wait-for-result\"}") >= 20.0);
    assert!(count("enginehost_engine_instance_starts_total{engine=\"mock\"}") >= 1.0);
    if let Some(out) = promtool(&metrics) {
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}\n{metrics}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Prometheus itself asks for OpenMetrics and gets it.
    let openmetrics = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
        .send()
        .await
        .unwrap();
    assert!(
        openmetrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(openmetrics.text().await.unwrap().ends_with("# EOF\n"));
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    worker.stop().await;
}

/// A fake whose `claimWork` long-polls 20 s, as a real queue does.
async fn long_polling_fake() -> FakeQueue {
    FakeQueue::start(FakeQueueOptions {
        claim_work_timeout: Duration::from_secs(20),
        claim_timeout: Duration::from_secs(60),
        certificate_skew: Duration::ZERO,
        ..FakeQueueOptions::default()
    })
    .await
}

/// Whether `worker` has a `claimWork` in flight: it has started polling and no
/// long-poll has answered yet.
fn polling(fake: &FakeQueue, worker: &WorkerProcess) -> bool {
    worker.log().contains("claiming tasks")
        && !fake.request_log().iter().any(|r| {
            r.path.contains("/claim-work/") && r.client_id.as_deref() == Some(&format!("worker/{}", worker.id))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_stops_without_waiting_for_its_long_poll_and_claims_nothing() {
    let fake = long_polling_fake().await;
    let mut worker = WorkerProcess::start(&fake, Config::new("idle"));
    wait_for("the worker to poll", Duration::from_secs(60), &[&worker], || {
        polling(&fake, &worker)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = Instant::now();
    worker.signal(libc::SIGTERM);
    let status = worker.wait(Duration::from_secs(60)).await;
    let took = signalled.elapsed();
    eprintln!("the idle worker stopped {took:?} after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", worker.log());
    // The long-poll it had in flight would have answered 20 s later.
    assert!(took < Duration::from_secs(15), "it waited for its long-poll ({took:?})");
    // Work that appears right after: the dropped long-poll claims none of it.
    let task = create(&fake, TASK_QUEUE, mock(0, "true", ""), |_| {});
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.runs(&task)[0].state, "pending", "{}", worker.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_stopping_claims_no_retry_of_what_it_aborts() {
    let fake = long_polling_fake().await;
    // Capacity 2, one task: a claimWork is in flight while it runs.
    let mut worker = WorkerProcess::start(&fake, Config::new("busy").worker("capacity = 2"));
    let task = create(&fake, TASK_QUEUE, mock(120_000, "true", ""), |d| {
        d["retries"] = json!(1)
    });
    wait_for("the task to run", Duration::from_secs(60), &[&worker], || {
        executing(&fake, &task, 0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.signal(libc::SIGTERM);
    let status = worker.wait(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(0), "{}", worker.log());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let runs = fake.runs(&task);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(
        (runs[0].state.as_str(), runs[0].reason_resolved.as_deref()),
        ("exception", Some("worker-shutdown"))
    );
    assert_eq!(
        runs[1].state, "pending",
        "the retry is left for another worker: {runs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_tasks_log_is_still_uploaded_and_live_log_points_at_it() {
    let fake = fake(Duration::from_secs(6)).await;
    let mut worker = WorkerProcess::start(&fake, Config::new("cancelled"));
    let task = create(
        &fake,
        TASK_QUEUE,
        mock(60_000, "write-log", "before the cancel"),
        |_| {},
    );
    wait_for("the task to run", Duration::from_secs(60), &[&worker], || {
        executing(&fake, &task, 0)
    })
    .await;
    assert!(fake.cancel_task(&task));
    wait_for("the log to be uploaded", Duration::from_secs(60), &[&worker], || {
        fake.artifact_bytes(&task, 0, "public/logs/live_backing.log").is_some()
    })
    .await;
    let log = backing_log(&fake, &task, 0);
    assert!(log.contains("no longer this worker's"), "{log}");
    assert!(
        live_log_is_linked(&fake, &task, 0),
        "task {task}: {:?}",
        fake.artifacts(&task, 0)
    );
    let resolutions = fake.resolutions(&task);
    assert!(
        resolutions.is_empty(),
        "nothing reported after the 409: {resolutions:?}"
    );
    worker.stop().await;
}
