//! `unix-sockets`: connections to granted socket paths, and to sockets a task's
//! process made in its sandbox directory.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;

use serde_json::json;

use super::*;

/// An echo server on a unix socket at `path`.
fn echo_at(path: &Path) {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut got = Vec::new();
            let _ = stream.read_to_end(&mut got);
            let _ = stream.write_all(b"unix-echo:");
            let _ = stream.write_all(&got);
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_socket_connects_and_another_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (granted, other) = (dir.path().join("granted.sock"), dir.path().join("other.sock"));
    echo_at(&granted);
    echo_at(&other);
    let config = format!("[plugins.X.unix-sockets]\nconnect = [\"{}\"]\n", granted.display());
    let engine = with_grants(&CAPS, &config).await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "unix", "path": granted.display().to_string(), "send": "hi"},
               {"op": "unix", "path": other.display().to_string(), "send": "hi"}]),
    )
    .await;
    assert_eq!(line(&log, "ok unix"), "ok unix unix-echo:hi", "{log}");
    assert_eq!(
        line(&log, "error: unix"),
        format!(
            "error: unix: unix-sockets.connect \"{}\": not granted; add the path to [plugins.fixture-caps.unix-sockets] connect",
            other.display()
        )
    );
    mock_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrequested_and_ungranted_sockets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    echo_at(&path);
    let engine = with_grants(&CAPS, "").await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "unix", "path": path.display().to_string(), "send": "x"}]),
    )
    .await;
    assert!(line(&log, "error: unix").contains("not granted"), "{log}");
    let config = format!("[plugins.X.unix-sockets]\nconnect = [\"{}\"]\n", path.display());
    let engine = with_grants(&NARROW, &config).await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "unix", "path": path.display().to_string(), "send": "x"}]),
    )
    .await;
    assert!(
        line(&log, "error: unix").contains("not requested by plugin fixture-caps-narrow"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_a_task_process_made_in_its_sandbox() {
    let Some(python) = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("skipped: no python3 to make a unix socket in the sandbox");
        return;
    };
    let config = format!(
        "[plugins.X.process]\nexec = [\"{python}\", \"/usr/bin/**\", \"/usr/local/bin/**\"]\nrun-as = [\"worker\"]\n\
         [plugins.X.unix-sockets]\nconnect = [\"sandbox:*\"]\n"
    );
    let engine = with_grants(&CAPS, &config).await;
    let server = "import socket,os\ns=socket.socket(socket.AF_UNIX)\ns.bind('task.sock')\ns.listen(1)\nprint('listening',flush=True)\n\
                  c,_=s.accept()\nd=b''\nwhile True:\n  b=c.recv(100)\n  if not b: break\n  d+=b\nc.sendall(b'task:'+d)\nc.close()\n";
    let (_, log) = steps(
        &engine,
        json!([{"op": "spawn", "argv": [python, "-c", server], "stdout": {"log": ""}},
               {"op": "sleep", "ms": 800},
               {"op": "unix", "path": "task.sock", "sandbox": true, "send": "hey"},
               {"op": "unix", "path": "../task.sock", "sandbox": true, "send": "hey"},
               {"op": "wait"}]),
    )
    .await;
    assert_eq!(line(&log, "ok unix"), "ok unix task:hey", "{log}");
    assert!(
        line(&log, "error: unix").contains("not a path inside the task's sandbox"),
        "{log}"
    );
}
