//! Interactive tasks in `enginehost worker`: the pages' links are published as
//! reference artifacts while the task runs, reach its sandbox, and die with it; a
//! worker without `[interactive]` refuses a task that asks.

use std::time::Duration;

use enginehost_fake_queue::ArtifactContent;

use super::*;

fn reference(fake: &FakeQueue, task: &str, name: &str) -> Option<(String, String)> {
    fake.artifacts(task, 0).into_iter().find(|a| a.name == name).map(|a| {
        let ArtifactContent::Reference(url) = a.content else {
            panic!("{name} is not a reference: {a:?}")
        };
        (url, a.content_type)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_tasks_links_reach_its_sandbox_while_it_runs_and_never_after() {
    let fake = fake(Duration::from_secs(60)).await;
    let worker = WorkerProcess::start(
        &fake,
        Config::new("ia").tables("[interactive]\nlisten = \"127.0.0.1:0\"\nexpires = \"1h\""),
    );
    let mut payload = mock(4000, "true", "");
    payload["features"] = json!({"interactive": true});
    let task = create(&fake, TASK_QUEUE, payload, |_| {});
    let plain = create(&fake, TASK_QUEUE, mock(0, "write-log", "no links for me"), |_| {});
    wait_for("the interactive links", Duration::from_secs(60), &[&worker], || {
        reference(&fake, &task, "private/enginehost/display.html").is_some()
    })
    .await;
    let (shell, content_type) = reference(&fake, &task, "private/enginehost/shell.html").unwrap();
    assert_eq!(content_type, "text/html; charset=utf-8");
    let (display, _) = reference(&fake, &task, "private/enginehost/display.html").unwrap();
    let (base, token) = display.split_once("/display.html#").unwrap();
    assert_eq!(shell, format!("{base}/shell.html#{token}"));
    // While it runs: the mock's display is listed through the link's token.
    let mut listed = String::new();
    for _ in 0..100 {
        let r = reqwest::get(format!("{base}/displays/{token}")).await.unwrap();
        if r.status() == 200 {
            listed = r.text().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(listed.contains("MockDisplay"), "{listed}");
    wait_for("the task's end", Duration::from_secs(60), &[&worker], || {
        !fake.resolutions(&task).is_empty()
    })
    .await;
    let (state, _) = {
        let r = only_resolution(&fake, &task);
        (r.state, r.reason)
    };
    assert_eq!(state, "completed");
    // After: the token is dead (410), the task log never had it.
    let r = reqwest::get(format!("{base}/displays/{token}")).await.unwrap();
    assert_eq!(r.status(), 410);
    let log = backing_log(&fake, &task, 0);
    assert!(log.contains("private/enginehost/shell.html"), "{log}");
    assert!(!log.contains(token), "{log}");
    // A task that did not ask has no links.
    wait_for("the plain task", Duration::from_secs(60), &[&worker], || {
        !fake.resolutions(&plain).is_empty()
    })
    .await;
    assert!(reference(&fake, &plain, "private/enginehost/shell.html").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_interactive_refuses_a_task_that_asks() {
    let fake = fake(Duration::from_secs(60)).await;
    let worker = WorkerProcess::start(&fake, Config::new("noia"));
    let mut payload = mock(0, "true", "");
    payload["features"] = json!({"interactive": true});
    let task = create(&fake, TASK_QUEUE, payload, |_| {});
    wait_for("the refusal", Duration::from_secs(60), &[&worker], || {
        !fake.resolutions(&task).is_empty()
    })
    .await;
    let r = only_resolution(&fake, &task);
    assert_eq!(
        (r.state.as_str(), r.reason.as_str()),
        ("exception", "malformed-payload")
    );
    let log = backing_log(&fake, &task, 0);
    assert!(
        log.contains("task.payload.features.interactive: this worker serves no interactive sessions"),
        "{log}"
    );
}
