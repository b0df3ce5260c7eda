//! `enginehost worker --config examples/worker-taskcluster.toml` fails at start with a
//! clear message when the root URL or the credentials are wrong, and starts (and stops
//! cleanly) when they are right.

use std::path::Path;
use std::time::Duration;

use super::*;

const EXAMPLE_QUEUE: &str = "proj-example/enginehost";

/// The example config with its root URL replaced, its work and cache directories
/// under `dir`; returns its path.
fn example(dir: &Path, root_url: &str) -> String {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/worker-taskcluster.toml");
    let text = std::fs::read_to_string(example).unwrap();
    assert!(text.contains("root-url = \"https://tc.example.com\""));
    let text = text.replace("https://tc.example.com", root_url).replace(
        "[host]\n",
        &format!(
            "[host]\nwork-dir = \"{}\"\ncache-dir = \"{}\"\n",
            dir.join("work").display(),
            compile_cache().display()
        ),
    );
    let path = dir.join("worker.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// An HTTP server that answers 404 to everything; its URL.
async fn not_taskcluster() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    url
}

/// Runs the worker on `config` with `env`; its exit status and stderr (it must exit
/// by itself).
async fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let stderr = dir.join("stderr.log");
    let mut child = enginehost(&["worker", "--config", config], env, &stderr);
    for _ in 0..1200 {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), std::fs::read_to_string(&stderr).unwrap());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    panic!("still running: {}", std::fs::read_to_string(&stderr).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_root_url_or_wrong_credentials_fail_with_a_clear_message() {
    let fake = fake(Duration::from_secs(60)).await;
    fake.add_client(
        "worker/example-1",
        "right-token",
        [
            format!("queue:claim-work:{EXAMPLE_QUEUE}"),
            "queue:worker-id:local/example-1".into(),
        ],
    );
    fake.add_client("worker/idle", "idle-token", ["queue:claim-work:other/queue"]);
    let dir = tempfile::tempdir().unwrap();
    let creds = |id, token| [("TASKCLUSTER_CLIENT_ID", id), ("TASKCLUSTER_ACCESS_TOKEN", token)];
    let right = creds("worker/example-1", "right-token");

    // Nothing listens there.
    let config = example(dir.path(), "http://127.0.0.1:9");
    let (code, err) = start(dir.path(), &config, &right).await;
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("error: cannot reach the Taskcluster deployment at http://127.0.0.1:9")
            && err.contains("root-url"),
        "{err}"
    );
    // Something answers, but not a Taskcluster deployment.
    let config = example(dir.path(), &not_taskcluster().await);
    let (code, err) = start(dir.path(), &config, &right).await;
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("does not look like a Taskcluster deployment"), "{err}");
    assert!(err.contains("answered 404"), "{err}");

    let config = example(dir.path(), fake.root_url());
    // A wrong access token.
    let (code, err) = start(dir.path(), &config, &creds("worker/example-1", "wrong-token")).await;
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("refused the worker's credentials (client \"worker/example-1\")")
            && err.contains("[worker] credentials"),
        "{err}"
    );
    // An unknown client.
    let (code, err) = start(dir.path(), &config, &creds("nobody", "x")).await;
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("refused the worker's credentials (client \"nobody\")"),
        "{err}"
    );
    // Accepted credentials without a worker's scopes.
    let (code, err) = start(dir.path(), &config, &creds("worker/idle", "idle-token")).await;
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("lacks the scope(s) queue:claim-work:proj-example/enginehost, queue:worker-id:local/example-1"),
        "{err}"
    );
    // No credentials in the environment.
    let (code, err) = start(dir.path(), &config, &[]).await;
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("credentials = \"env\", but TASKCLUSTER_CLIENT_ID is not set"),
        "{err}"
    );
    // An engine that does not exist.
    let text = std::fs::read_to_string(&config).unwrap();
    let unknown = dir.path().join("unknown-engine.toml");
    std::fs::write(&unknown, text.replace("[\"mock\", \"script\"]", "[\"mock\", \"nope\"]")).unwrap();
    let (code, err) = start(dir.path(), unknown.to_str().unwrap(), &right).await;
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("[worker] engines: engine 'nope': no engine named 'nope'"),
        "{err}"
    );
    // Nothing was claimed along the way.
    assert!(fake.request_log().iter().all(|r| !r.path.contains("claim-work")));

    // The right ones: it starts its engines, claims, and stops cleanly on SIGTERM.
    let stderr = dir.path().join("ok.log");
    let mut child = enginehost(&["worker", "--config", &config], &right, &stderr);
    let log = || std::fs::read_to_string(&stderr).unwrap_or_default();
    for _ in 0..1200 {
        if fake
            .request_log()
            .iter()
            .any(|r| r.path.contains("claim-work") && r.status == 200)
        {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "exited: {}", log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(log().contains("engine started engine=script"), "{}", log());
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", log());
}

#[test]
fn a_config_without_a_worker_table_or_with_a_mistake_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str| {
        let path = dir.path().join("w.toml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_enginehost"))
            .args(["worker", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run("[host]\n");
    assert_eq!(code, Some(3));
    assert!(err.contains("there is no [worker] table"), "{err}");
    let (code, err) = run(
        "[worker]\nroot-url = \"https://tc.example.com\"\ntask-queue-id = \"a/b\"\nworker-group = \"g\"\nworker-id = \"i\"\ncredentials = \"env\"\nengines = [\"mock\"]\ncapacity = 0\n",
    );
    assert_eq!(code, Some(3));
    assert!(err.contains("worker.capacity: 0 is not a capacity"), "{err}");
}
