//! `network`: outbound TCP through WASI 0.3 sockets and name lookups, only to what
//! `[plugins.NAME.network] connect` and the plugin's request both allow.

use std::io::{Read, Write};
use std::net::TcpListener;

use serde_json::json;

use super::*;

/// An echo server on loopback (each connection answers `echo:` + what it got).
fn echo_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut got = Vec::new();
            let _ = stream.read_to_end(&mut got);
            let _ = stream.write_all(b"echo:");
            let _ = stream.write_all(&got);
        }
    });
    (port, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_address_connects_and_others_are_refused_before_any_syscall() {
    let (port, accepted) = echo_server();
    let (other, other_accepted) = echo_server();
    let engine = with_grants(
        &CAPS,
        &format!("[plugins.X.network]\nconnect = [\"127.0.0.1:{port}\"]\n"),
    )
    .await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "tcp", "host": "127.0.0.1", "port": port, "send": "ping"},
               {"op": "tcp", "host": "127.0.0.1", "port": other, "send": "ping"}]),
    )
    .await;
    assert_eq!(line(&log, "ok tcp"), "ok tcp echo:ping", "{log}");
    assert_eq!(
        line(&log, "error: tcp"),
        "error: tcp: connect ErrorCode::AccessDenied",
        "{log}"
    );
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        other_accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the refused port saw no connection"
    );
    mock_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_checked_and_private_addresses_need_an_explicit_grant() {
    let (port, _) = echo_server();
    // `localhost` is granted by name, but resolves to a loopback address.
    let engine = with_grants(
        &CAPS,
        &format!("[plugins.X.network]\nconnect = [\"localhost:{port}\"]\n"),
    )
    .await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "tcp", "host": "localhost", "port": port, "send": "a"},
               {"op": "lookup", "name": "example.invalid"}]),
    )
    .await;
    assert_eq!(
        line(&log, "error: tcp"),
        "error: tcp: connect ErrorCode::AccessDenied",
        "{log}"
    );
    assert_eq!(
        line(&log, "error: lookup"),
        "error: lookup: ErrorCode::AccessDenied",
        "an ungranted name: {log}"
    );
    // With allow-private, the name's address is fine.
    let config = format!("[plugins.X.network]\nconnect = [\"localhost:{port}\"]\nallow-private = true\n");
    let engine = with_grants(&CAPS, &config).await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "tcp", "host": "localhost", "port": port, "send": "b"}]),
    )
    .await;
    assert_eq!(line(&log, "ok tcp"), "ok tcp echo:b", "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_grant_means_no_socket_and_unrequested_means_none_either() {
    let (port, accepted) = echo_server();
    let engine = with_grants(&CAPS, "").await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "tcp", "host": "127.0.0.1", "port": port, "send": "x"}]),
    )
    .await;
    assert!(line(&log, "error: tcp").contains("AccessDenied"), "{log}");
    let engine = with_grants(
        &NARROW,
        &format!("[plugins.X.network]\nconnect = [\"127.0.0.1:{port}\"]\n"),
    )
    .await;
    let (_, log) = steps(
        &engine,
        json!([{"op": "tcp", "host": "127.0.0.1", "port": port, "send": "x"}]),
    )
    .await;
    assert!(line(&log, "error: tcp").contains("AccessDenied"), "{log}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
}
