//! The hostile suite: what a task (with or without a hostile plugin) tries through
//! the side doors, each refused or bounded with a clear error while the host keeps
//! serving: a tree deeper than any stack, the loader's and shells' variables for a
//! granted program, a symlink where a socket was granted, the worker's own
//! addresses, task processes on the worker's network (and past their proxy's
//! grants), fork and memory floods.

use serde_json::json;

use super::*;

const SH: &str = r#"
[plugins.X.files]
sandbox = true
[plugins.X.process]
exec = ["/bin/**", "/usr/bin/**"]
run-as = ["worker"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_deeper_than_any_stack_is_refused_by_name_and_removed() {
    let engine = with_grants(&CAPS, SH).await;
    let (ok, log) = steps(
        &engine,
        json!([
            {"op": "spawn", "argv": ["/usr/bin/perl", "-e",
                "for (1..100000) { mkdir 'd' or die; chdir 'd' or die } open(F, '>f') or die"],
             "stderr": {"log": "perl: "}},
            {"op": "wait"},
            {"op": "list-files", "path": ""}
        ]),
    )
    .await;
    assert!(ok, "{log}");
    assert_eq!(line(&log, "ok exit"), "ok exit p code 0", "{log}");
    assert!(
        line(&log, "error: list-files").contains("deeper than 256 levels"),
        "{log}"
    );
    // The janitor removes it (iteratively) and the host is still here.
    drained().await;
    mock_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loader_and_shell_variables_need_env_allow() {
    let engine = with_grants(&CAPS, SH).await;
    for var in ["LD_PRELOAD", "BASH_ENV", "PYTHONPATH"] {
        let (_, log) = steps(
            &engine,
            json!([{"op": "spawn", "argv": ["/bin/echo", "hi"], "env": {var: "/tmp/x"}}]),
        )
        .await;
        let error = line(&log, "error: spawn");
        assert!(
            error.contains(&format!("process.env-allow \"{var}\": not granted")) && error.contains("env-allow"),
            "{error}"
        );
    }
    // Granted by name, it passes.
    let allowed = format!("{SH}env-allow = [\"LD_LIBRARY_PATH\"]\n");
    let engine = with_grants(&CAPS, &allowed).await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "spawn", "argv": ["/usr/bin/env"], "env": {"LD_LIBRARY_PATH": "/opt"},
                "stdout": {"log": "env: "}}, {"op": "wait"}, {"op": "drained"}]),
    )
    .await;
    assert!(log.contains("env: LD_LIBRARY_PATH=/opt"), "{log}");
}

/// A TCP listener on every address, and an address of this machine other than loopback.
fn own_listener() -> Option<(std::net::TcpListener, std::net::IpAddr)> {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    probe.connect("203.0.113.77:9").ok()?;
    let ip = probe.local_addr().ok()?.ip();
    if ip.is_loopback() {
        return None;
    }
    Some((std::net::TcpListener::bind("0.0.0.0:0").ok()?, ip))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_grant_does_not_reach_the_workers_own_address() {
    let Some((listener, ip)) = own_listener() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    let engine = with_grants(&CAPS, "[plugins.X.network]\nconnect = [\"*:*\"]\n").await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "tcp", "host": ip.to_string(), "port": port, "send": "x"}]),
    )
    .await;
    assert!(line(&log, "error: tcp").contains("connect"), "{log}");
    // Granted as such, by address, it is reached.
    let by_ip = format!("[plugins.X.network]\nconnect = [\"{ip}:{port}\"]\n");
    let engine = with_grants(&CAPS, &by_ip).await;
    let task = tokio::spawn(async move {
        steps(
            &engine,
            json!([{"op": "tcp", "host": ip.to_string(), "port": port, "send": "x"}]),
        )
        .await
    });
    let (mut conn, _) = tokio::task::spawn_blocking(move || listener.accept())
        .await
        .unwrap()
        .unwrap();
    use std::io::Write;
    let _ = conn.write_all(b"y\n");
    drop(conn);
    let (_, log) = task.await.unwrap();
    assert!(!log.contains("error: tcp"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_processes_have_no_network_unless_granted() {
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = format!("echo hi >/dev/tcp/127.0.0.1/{port} && echo reached || echo unreachable");
    let run = |config: String| {
        let probe = probe.clone();
        async move {
            let engine = with_grants(&CAPS, &config).await;
            steps(
                &engine,
                json!([{"op": "spawn", "argv": ["/bin/bash", "-c", probe], "stdout": {"log": "net: "}},
                       {"op": "wait"}, {"op": "drained"}]),
            )
            .await
            .1
        }
    };
    let log = run(SH.to_string()).await;
    assert!(
        log.contains("net: unreachable"),
        "the worker's loopback is not the task's: {log}"
    );
    let log = run(format!("{SH}network = \"host\"\n")).await;
    assert!(log.contains("net: reached"), "{log}");
}

/// A plain HTTP server on the worker's loopback answering every request with `body`.
fn http_server(body: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(answer.as_bytes());
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_network_reaches_only_its_connect_grants_through_the_proxy() {
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let (granted, other) = (http_server("granted"), http_server("other"));
    // The worker's loopback is private: granted by address it is reached; by name
    // (localhost resolves to it) it is not.
    let config = format!("{SH}network = {{ connect = [\"127.0.0.1:{granted}\", \"localhost:{other}\"] }}\n");
    let engine = with_grants(&CAPS, &config).await;
    // curl leaves 127.0.0.1 alone by default (no_proxy: it is the task's own
    // loopback); --noproxy '' sends everything through the proxy.
    let curl =
        |url: String, extra: &'static str| format!("curl -sS --noproxy '' {extra} -w ' %{{http_code}}' {url}; echo");
    let (_, log) = steps(
        &engine,
        json!([
            {"op": "spawn", "argv": ["/bin/bash", "-c", curl(format!("http://127.0.0.1:{granted}/x"), "")],
             "stdout": {"log": "plain: "}},
            {"op": "wait"},
            {"op": "spawn", "argv": ["/bin/bash", "-c", curl(format!("http://127.0.0.1:{granted}/x"), "-p")],
             "stdout": {"log": "tunnel: "}},
            {"op": "wait"},
            {"op": "spawn", "argv": ["/bin/bash", "-c", curl(format!("http://127.0.0.1:{other}/x"), "")],
             "stdout": {"log": "other: "}},
            {"op": "wait"},
            {"op": "spawn", "argv": ["/bin/bash", "-c", curl(format!("http://localhost:{other}/x"), "-p")],
             "stdout": {"log": "by-name: "}, "stderr": {"log": "by-name-err: "}},
            {"op": "wait"},
            {"op": "spawn", "argv": ["/bin/bash", "-c",
                format!("echo x >/dev/tcp/127.0.0.1/{granted} && echo reached || echo unreachable")],
             "stdout": {"log": "direct: "}},
            {"op": "wait"},
            {"op": "spawn", "argv": ["/usr/bin/env"], "stdout": {"log": "env: "}},
            {"op": "wait"},
            {"op": "drained"}
        ]),
    )
    .await;
    assert_eq!(line(&log, "plain: "), "plain: granted 200", "{log}");
    assert_eq!(line(&log, "tunnel: "), "tunnel: granted 200", "{log}");
    // The proxy's answer: 403 and a body naming the grant (it ends in a newline).
    assert!(
        line(&log, "other: ").contains(&format!("process.network.connect \"127.0.0.1:{other}\": not granted")),
        "{log}"
    );
    assert!(lines(&log).contains(&"other:  403".to_string()), "{log}");
    assert!(
        log.contains(&format!(
            "task network: process.network.connect \"127.0.0.1:{other}\": not granted; add a \
             matching pattern to [plugins.{}.process] network.connect",
            CAPS.name()
        )),
        "the task log names the grant: {log}"
    );
    assert!(line(&log, "by-name-err: ").contains("403"), "{log}");
    assert!(
        log.contains("localhost resolved to 127.0.0.1, a private address"),
        "{log}"
    );
    assert_eq!(line(&log, "direct: "), "direct: unreachable", "{log}");
    assert_eq!(
        line(&log, "env: https_proxy="),
        "env: https_proxy=http://127.0.0.1:3128",
        "{log}"
    );
    drained().await;
    mock_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_and_a_memory_flood_are_bounded_and_named_in_the_log() {
    if !is_root() {
        eprintln!("skipped: cgroup limits need root");
        return;
    }
    let config = format!("[limits]\ntask-pids = 40\ntask-memory = \"64MiB\"\n{SH}");
    let config = OperatorConfig::parse(&config.replace("plugins.X", &format!("plugins.{}", CAPS.name()))).unwrap();
    let limits = config.limits_for(CAPS.name());
    let engine: Arc<dyn Engine> = RUNTIME
        .start_engine(
            &CAPS,
            EngineOptions {
                grants: config.grants(CAPS.name()),
                limits,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let bomb = "for i in $(seq 200); do sleep 30 & done 2>/dev/null; wait";
    let (_, log) = steps(
        &engine,
        json!([
            {"op": "spawn", "argv": ["/bin/bash", "-c", bomb], "id": "bomb"},
            {"op": "sleep", "ms": 1500},
            {"op": "kill-tree", "id": "bomb", "grace": 0},
            {"op": "spawn", "argv": ["/usr/bin/tail", "/dev/zero"], "id": "mem"},
            {"op": "wait", "id": "mem"},
            {"op": "sleep", "ms": 300}
        ]),
    )
    .await;
    assert!(log.contains("reached its limit of 40 processes"), "{log}");
    assert!(log.contains("[limits] task-pids"), "{log}");
    assert_eq!(line(&log, "ok exit mem"), "ok exit mem signal 9", "{log}");
    assert!(log.contains("reached its memory limit of 64 MiB"), "{log}");
    drained().await;
    mock_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_in_the_sandbox_never_leads_a_socket_grant_out() {
    let dir = tempfile::tempdir().unwrap();
    let host_socket = dir.path().join("host.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&host_socket).unwrap();
    let config = format!("{SH}[plugins.X.unix-sockets]\nconnect = [\"sandbox:*\"]\n");
    let engine = with_grants(&CAPS, &config).await;
    let (_, log) = steps(
        &engine,
        json!([
            {"op": "spawn", "argv": ["/bin/ln", "-s", host_socket.to_str().unwrap(), "link.sock"]},
            {"op": "wait"},
            {"op": "unix", "path": "link.sock", "send": "x", "sandbox": true}
        ]),
    )
    .await;
    let error = line(&log, "error: unix");
    assert!(error.contains("'link.sock' is a symlink (not followed"), "{error}");
}
