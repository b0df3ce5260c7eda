//! `files`: the sandbox and state directories through WASI, operator directories,
//! host-side downloads, and the sandbox directory's removal at task end.

use std::io::{Read, Write};
use std::net::TcpListener;

use serde_json::json;

use super::*;

/// A one-shot HTTP server on loopback answering every request with `body`;
/// returns its port.
fn serve(body: &'static [u8], requests: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_dir_is_the_engines_and_goes_away_with_the_task() {
    let engine = with_grants(&CAPS, "[plugins.X.files]\nsandbox = true\n").await;
    let (sandbox, ctx) = start_steps(&engine, json!([{"op": "sandbox-dir"}, {"op": "hang"}])).await;
    let log = log_shows(&ctx, "sandbox-dir").await;
    let dir = line(&log, "ok sandbox-dir ")
        .trim_start_matches("ok sandbox-dir ")
        .to_string();
    assert!(dir.starts_with("/sandboxes/"), "{dir}");
    let host_dir = test_work_dir()
        .join("engines/fixture-caps")
        .join(dir.trim_start_matches('/'));
    assert!(host_dir.is_dir(), "{}", host_dir.display());
    // The engine writes and reads it through WASI.
    let (_, log) = steps(&engine, json!([{"op": "sandbox-dir"}])).await;
    let other = line(&log, "ok sandbox-dir ")
        .trim_start_matches("ok sandbox-dir ")
        .to_string();
    assert_ne!(other, dir, "every task gets its own directory");
    sandbox.abort().await.unwrap();
    drop(sandbox);
    drained().await;
    assert!(!host_dir.exists(), "the sandbox directory outlived its task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_written_through_wasi_stay_inside() {
    let engine = with_grants(&CAPS, "[plugins.X.files]\nsandbox = true\nengine = true\n").await;
    let (_, log) = steps(
        &engine,
        json!([
            {"op": "state-dir"},
            {"op": "write-file", "path": "/engine/note.txt", "text": "kept"},
            {"op": "read-file", "path": "/engine/note.txt"},
            {"op": "read-file", "path": "/engine/../../../etc/passwd"},
            {"op": "read-file", "path": "/etc/passwd"}
        ]),
    )
    .await;
    assert_eq!(line(&log, "ok state-dir"), "ok state-dir /engine");
    assert_eq!(line(&log, "ok read-file"), "ok read-file kept");
    let errors: Vec<String> = lines(&log)
        .into_iter()
        .filter(|l| l.starts_with("error: read-file"))
        .collect();
    assert_eq!(errors.len(), 2, "no way out of the preopens: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_need_their_grant() {
    let engine = with_grants(&CAPS, "").await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "sandbox-dir"}, {"op": "state-dir"},
                                        {"op": "read-file", "path": "/sandboxes"}]),
    )
    .await;
    assert_eq!(
        line(&log, "error: sandbox-dir"),
        "error: sandbox-dir: files.sandbox \"sandbox\": not granted; set sandbox = true in [plugins.fixture-caps.files]"
    );
    assert!(
        line(&log, "error: state-dir").contains("[plugins.fixture-caps.files]"),
        "{log}"
    );
    assert!(
        line(&log, "error: read-file").contains("No such file"),
        "no preopen without the grant: {log}"
    );
    let engine = with_grants(&NARROW, "[plugins.X.files]\nsandbox = true\n").await;
    let (_, log) = steps(&engine, json!([{"op": "sandbox-dir"}])).await;
    assert!(
        line(&log, "error: sandbox-dir").contains("not requested by plugin fixture-caps-narrow"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_directories_keep_their_mode() {
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("in.txt"), "from the operator").unwrap();
    let config = format!(
        "[plugins.X.files.dirs.shared]\npath = \"{}\"\nmode = \"ro\"\n",
        shared.path().display()
    );
    let engine = with_grants(&CAPS, &config).await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "read-file", "path": "/grants/shared/in.txt"},
               {"op": "write-file", "path": "/grants/shared/out.txt", "text": "x"}]),
    )
    .await;
    assert_eq!(line(&log, "ok read-file"), "ok read-file from the operator");
    assert!(line(&log, "error: write-file").len() > 20, "read-only: {log}");
    assert!(!shared.path().join("out.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_land_in_the_sandbox_under_the_network_grant() {
    let port = serve(b"downloaded bytes", 1);
    let config = format!("[plugins.X.files]\nsandbox = true\n[plugins.X.network]\nconnect = [\"127.0.0.1:{port}\"]\n");
    let engine = with_grants(&CAPS, &config).await;
    let url = format!("http://127.0.0.1:{port}/file.txt");
    let (_, log) = steps(
        &engine,
        json!([{"op": "download", "url": url, "dest": "sub/file.txt"},
               {"op": "read-file", "path": "sandbox:sub/file.txt"},
               {"op": "download", "url": url, "dest": "../escape"}]),
    )
    .await;
    assert_eq!(line(&log, "ok download"), "ok download 16", "{log}");
    assert_eq!(line(&log, "ok read-file"), "ok read-file downloaded bytes", "{log}");
    assert!(
        line(&log, "error: download").contains("relative to the task's sandbox"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_refuse_what_the_network_grant_does_not_cover() {
    let port = serve(b"never", 3);
    // A name pattern or `*` does not cover a loopback address.
    let engine = with_grants(
        &CAPS,
        "[plugins.X.files]\nsandbox = true\n[plugins.X.network]\nconnect = [\"*:*\"]\n",
    )
    .await;
    let url = format!("http://127.0.0.1:{port}/x");
    let (_, log) = steps(&engine, json!([{"op": "download", "url": url, "dest": "x"}])).await;
    let error = line(&log, "error: download");
    assert!(
        error.contains("private address") && error.contains("[plugins.fixture-caps.network]"),
        "{error}"
    );
    // Another port than the granted one.
    let engine = with_grants(&CAPS, "[plugins.X.network]\nconnect = [\"127.0.0.1:1\"]\n").await;
    let (_, log) = steps(&engine, json!([{"op": "download", "url": url, "dest": "x"}])).await;
    assert!(line(&log, "error: download").contains("not granted"), "{log}");
    // Not requested by the plugin.
    let engine = with_grants(
        &NARROW,
        &format!("[plugins.X.network]\nconnect = [\"127.0.0.1:{port}\"]\n"),
    )
    .await;
    let (_, log) = steps(&engine, json!([{"op": "download", "url": url, "dest": "x"}])).await;
    assert!(
        line(&log, "error: download").contains("not requested by plugin"),
        "{log}"
    );
    // Only http and https.
    let engine = with_grants(&CAPS, "[plugins.X.network]\nconnect = [\"*:*\"]\n").await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "download", "url": "file:///etc/passwd", "dest": "x"}]),
    )
    .await;
    assert!(
        line(&log, "error: download").contains("only http:// and https://"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lending_a_directory_needs_both_directories() {
    let engine = with_grants(&CAPS, "[plugins.X.files]\nsandbox = true\n").await;
    let (_, log) = steps(
        &engine,
        json!([
            {"op": "lend-dir", "state": "c", "sandbox": "c"},
            {"op": "reclaim-dir", "sandbox": "c", "state": "c"},
            {"op": "remove-state", "path": "c"}
        ]),
    )
    .await;
    for op in ["lend-dir", "reclaim-dir", "remove-state"] {
        assert_eq!(
            line(&log, &format!("error: {op}")),
            format!(
                "error: {op}: files.engine \"engine\": not granted; set engine = true in [plugins.fixture-caps.files]"
            ),
            "{log}"
        );
    }
}

/// The owner of `path` itself (a symlink's own).
fn owner(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .uid()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lent_directory_becomes_the_task_users_but_never_what_its_symlinks_point_to() {
    if !is_root() {
        eprintln!("skipped: changing owners needs root");
        return;
    }
    let engine = with_grants(
        &CAPS,
        "[plugins.X.files]\nsandbox = true\nengine = true\n[plugins.X.users]\ncreate = true\n\
         [plugins.X.process]\nexec = [\"/bin/**\", \"/usr/bin/**\"]\nrun-as = [\"worker\"]\n",
    )
    .await;
    // A cache as an earlier task user (uid 200007, in the default uid-range) left
    // it: its files, a symlink of its own to a file of root's, a file of root's and
    // one of a user outside the range.
    let name = format!("lend-{}", marker(30));
    let state = test_work_dir().join("engines/fixture-caps/state");
    let cache = state.join(&name);
    std::fs::create_dir_all(cache.join("sub/deep")).unwrap();
    std::fs::write(cache.join("sub/deep/file"), "kept").unwrap();
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("victim");
    std::fs::write(&victim, "root's").unwrap();
    std::os::unix::fs::symlink(&victim, cache.join("evil")).unwrap();
    std::fs::write(cache.join("roots"), "").unwrap();
    std::fs::write(cache.join("outsiders"), "").unwrap();
    let earlier = 200_007;
    for p in ["sub", "sub/deep", "sub/deep/file"] {
        std::os::unix::fs::chown(cache.join(p), Some(earlier), Some(earlier)).unwrap();
    }
    std::os::unix::fs::lchown(cache.join("evil"), Some(earlier), Some(earlier)).unwrap();
    std::os::unix::fs::chown(cache.join("outsiders"), Some(12345), Some(12345)).unwrap();

    let (sandbox, ctx) = start_steps(
        &engine,
        json!([
            {"op": "create-user", "groups": []},
            {"op": "lend-dir", "state": name, "sandbox": "home/cache", "user": true},
            {"op": "lend-dir", "state": name, "sandbox": "home/again"},
            {"op": "lend-dir", "state": "../x", "sandbox": "home/x"},
            {"op": "state-dir"},
            {"op": "hang"}
        ]),
    )
    .await;
    let log = log_shows(&ctx, "ok state-dir").await;
    assert_eq!(line(&log, "ok lend-dir"), "ok lend-dir ", "{log}");
    assert!(
        line(&log, "error: lend-dir").contains("is not a directory"),
        "the second lend finds nothing: {log}"
    );
    assert!(log.contains("'../x' must be a relative path"), "{log}");
    let uid: u32 = line(&log, "ok create-user ")
        .split(' ')
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert!(!cache.exists(), "the directory moved into the sandbox");
    let sandbox_dir = test_work_dir()
        .join("engines/fixture-caps/sandboxes")
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("home/cache").is_dir())
        .expect("the lent directory in a sandbox");
    let lent = sandbox_dir.join("home/cache");
    for p in ["", "sub", "sub/deep", "sub/deep/file", "evil"] {
        assert_eq!(owner(&lent.join(p)), uid, "{p} is the task user's");
    }
    assert_eq!(owner(&victim), 0, "a symlink's target is never changed");
    assert_eq!(owner(&lent.join("roots")), 0, "root's file stays root's");
    assert_eq!(owner(&lent.join("outsiders")), 12345);
    sandbox.abort().await.unwrap();
    drop(sandbox);

    // Back into the state directory; a symlink in its place is refused; removed.
    std::fs::create_dir(cache.parent().unwrap().join(format!("{name}-src"))).unwrap();
    let (sandbox, ctx) = start_steps(
        &engine,
        json!([
            {"op": "lend-dir", "state": format!("{name}-src"), "sandbox": "cache"},
            {"op": "reclaim-dir", "sandbox": "cache", "state": name},
            {"op": "spawn", "argv": ["/bin/ln", "-s", "/etc", "link"]},
            {"op": "wait"},
            {"op": "reclaim-dir", "sandbox": "link", "state": format!("{name}-link")},
            {"op": "remove-state", "path": name},
            {"op": "remove-state", "path": name},
            {"op": "state-dir"},
            {"op": "hang"}
        ]),
    )
    .await;
    let log = log_shows(&ctx, "ok state-dir").await;
    assert_eq!(line(&log, "ok reclaim-dir"), "ok reclaim-dir ", "{log}");
    assert_eq!(line(&log, "ok exit"), "ok exit p code 0", "{log}");
    assert!(
        line(&log, "error: reclaim-dir").contains("'link' in the sandbox is no longer a directory"),
        "{log}"
    );
    assert_eq!(
        lines(&log).iter().filter(|l| l.starts_with("ok remove-state")).count(),
        2,
        "removing what is gone is fine: {log}"
    );
    assert!(!cache.exists() && !state.join(format!("{name}-link")).exists());
    sandbox.abort().await.unwrap();
    drop(sandbox);
    drained().await;
}
