//! `endpoint`: the per-task HTTP server, through the capability fixture and raw
//! HTTP clients: each route kind, proxies answered host-side, upgrades, a unix
//! socket in the sandbox, every way to miss the grant, and the bounds.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use enginehost::contract::{HttpRequest, HttpResponse, ProxyHandler, TaskContext};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::*;

const LOOPBACK: &str = "[plugins.X.endpoint]\nlisten = [\"127.0.0.1:*\"]\n";

/// Writes `request`, half-closes, and reads the answer to its end.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, request: &[u8]) -> String {
    io.write_all(request).await.unwrap();
    io.shutdown().await.unwrap();
    let mut out = Vec::new();
    let _ = io.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn http(address: &str, request: &str) -> String {
    exchange(TcpStream::connect(address).await.unwrap(), request.as_bytes()).await
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: taskcluster\r\nConnection: close\r\n\r\n")
}

/// The endpoint's address, once the fixture logged it.
async fn address(ctx: &TaskContext) -> String {
    let log = log_shows(ctx, "ok endpoint ").await;
    line(&log, "ok endpoint ")
        .trim_start_matches("ok endpoint ")
        .to_string()
}

/// Starts the fixture with `steps` after an endpoint on loopback.
async fn serving(
    engine: &Arc<dyn enginehost::contract::Engine>,
    steps: Value,
) -> (Arc<dyn Sandbox>, TaskContext, String) {
    let mut all = vec![json!({"op": "endpoint", "tcp": "127.0.0.1:0"})];
    all.extend(steps.as_array().unwrap().iter().cloned());
    let (sandbox, ctx) = start_steps(engine, Value::Array(all)).await;
    let addr = address(&ctx).await;
    (sandbox, ctx, addr)
}

fn body_of(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_engine_and_log_routes_are_served() {
    let engine = with_grants(&CAPS, LOOPBACK).await;
    let (sandbox, ctx, addr) = serving(
        &engine,
        json!([
            {"op": "route", "method": "GET", "path": "/fixed", "fixed": {"status": 200, "body": "fixed!"}},
            {"op": "route", "method": "POST", "path": "/log", "log": "[agent] "},
            {"op": "route", "path": "/engine/*"},
            {"op": "serve", "count": 3}
        ]),
    )
    .await;
    let answer = http(&addr, &get("/fixed")).await;
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n") && body_of(&answer) == "fixed!",
        "{answer}"
    );

    let chunked = "POST /log HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n\
                   9\r\nline one\n\r\nD\r\nline two\npart\r\n0\r\n\r\n";
    let answer = http(&addr, chunked).await;
    assert_eq!(body_of(&answer), "got POST /log", "{answer}");

    let echo = "POST /engine/echo?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10\r\n\r\nhello body";
    let answer = http(&addr, echo).await;
    assert!(answer.to_ascii_lowercase().contains("x-method: post"), "{answer}");
    assert!(
        answer.contains("hello body"),
        "the request body streamed back: {answer}"
    );

    let answer = http(&addr, &get("/engine/x")).await;
    assert_eq!(body_of(&answer), "got GET /engine/x", "{answer}");

    let answer = http(
        &addr,
        "PUT /fixed HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");

    let log = log_shows(&ctx, "ok respond end=complete").await;
    assert!(
        log.contains("[agent] line one\n[agent] line two\n[agent] part\n"),
        "{log}"
    );
    assert_eq!(line(&log, "ok request POST /log"), "ok request POST /log end=complete");
    assert_eq!(
        line(&log, "ok request POST /engine/echo"),
        "ok request POST /engine/echo?x=1 streaming"
    );
    drop(sandbox);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_breaks_off_is_truncated_and_a_dropped_request_is_500() {
    let engine = with_grants(&CAPS, LOOPBACK).await;
    let (sandbox, ctx, addr) = serving(
        &engine,
        json!([{"op": "route", "method": "POST", "path": "/log", "log": "> "},
               {"op": "route", "path": "/drop"},
               {"op": "serve", "count": 1},
               {"op": "drop-next"}]),
    )
    .await;
    let cut = "POST /log HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nwor";
    let _ = http(&addr, cut).await;
    let log = log_shows(&ctx, "ok request POST /log").await;
    assert_eq!(
        line(&log, "ok request POST /log"),
        "ok request POST /log end=truncated",
        "{log}"
    );
    assert!(log.contains("> hellowor\n"), "what arrived is in the log: {log}");
    let answer = http(&addr, &get("/drop")).await;
    assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
    drop(sandbox);
}

/// Answers every request with `secret=42` and remembers what it saw.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, String, usize)>>);

#[async_trait]
impl ProxyHandler for Recorder {
    async fn handle(&self, r: HttpRequest) -> HttpResponse {
        self.0.lock().unwrap().push((r.method, r.path, r.body.len()));
        HttpResponse {
            status: 200,
            headers: vec![("x-proxy".into(), "yes".into())],
            body: b"secret=42".to_vec(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_are_answered_host_side() {
    let engine = with_grants(&CAPS, LOOPBACK).await;
    let ctx = context();
    let builder = engine
        .new_sandbox_builder(
            ctx.clone(),
            json!({"steps": [{"op": "endpoint", "tcp": "127.0.0.1:0"}, {"op": "proxies"}]}),
        )
        .await
        .unwrap();
    let recorder = Arc::new(Recorder::default());
    builder.attach_proxy("my-proxy", recorder.clone()).await.unwrap();
    let _sandbox = builder.start().await.unwrap();
    let addr = address(&ctx).await;
    log_shows(&ctx, "ok proxy my-proxy").await;
    let answer = http(&addr, &get("/my-proxy/v1/ping?x=1")).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && body_of(&answer) == "secret=42",
        "{answer}"
    );
    assert!(answer.contains("x-proxy: yes"), "{answer}");
    let big = format!(
        "POST /my-proxy/up HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        17 * 1024 * 1024
    );
    let mut io = TcpStream::connect(&addr).await.unwrap();
    io.write_all(big.as_bytes()).await.unwrap();
    let chunk = vec![b'x'; 1024 * 1024];
    for _ in 0..17 {
        if io.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = io.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let answer = http(&addr, &get("/nobody/x")).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(body_of(&answer).contains("InvalidWorkerRequestError"), "{answer}");
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(seen, vec![("GET".to_string(), "/v1/ping?x=1".to_string(), 0)]);
    let log = std::fs::read_to_string(ctx.log().path()).unwrap();
    assert!(
        log.contains("[taskcluster:error] no service named \"nobody\" on http://taskcluster/ (attached: my-proxy)"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_relays_raw_bytes_both_ways() {
    let engine = with_grants(&CAPS, LOOPBACK).await;
    let (sandbox, ctx, addr) = serving(
        &engine,
        json!([{"op": "route", "path": "/shell"}, {"op": "serve", "count": 1}]),
    )
    .await;
    let mut io = TcpStream::connect(&addr).await.unwrap();
    // Bytes of the new protocol right behind the head, in the same write.
    io.write_all(b"POST /shell HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: enginehost-shell\r\n\r\nhello")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("HELLO") {
        let n = io.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&seen).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101 switching protocols"), "{head}");
    assert!(
        head.contains("upgrade: enginehost-shell") && head.contains("x-upgraded: yes"),
        "{head}"
    );
    io.write_all(b" world").await.unwrap();
    io.shutdown().await.unwrap();
    let mut rest = Vec::new();
    io.read_to_end(&mut rest).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&rest), " WORLD");
    assert!(
        std::fs::read_to_string(ctx.log().path())
            .unwrap()
            .contains("ok upgraded POST /shell")
    );
    drop(sandbox);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_in_the_sandbox() {
    let engine = with_grants(&CAPS, "[plugins.X.endpoint]\nlisten = [\"sandbox:meta.sock\"]\n").await;
    let (sandbox, ctx) = start_steps(
        &engine,
        json!([{"op": "endpoint", "socket": "meta.sock"},
               {"op": "route", "path": "/engine/v1/execute", "fixed": {"status": 200, "body": "{}"}}]),
    )
    .await;
    let log = log_shows(&ctx, "ok endpoint-path ").await;
    assert_eq!(line(&log, "ok endpoint "), "ok endpoint meta.sock");
    let path = line(&log, "ok endpoint-path ")
        .trim_start_matches("ok endpoint-path ")
        .to_string();
    log_shows(&ctx, "ok route").await;
    let answer = exchange(
        UnixStream::connect(&path).await.unwrap(),
        get("/engine/v1/execute").as_bytes(),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && body_of(&answer) == "{}",
        "{answer}"
    );
    drop(sandbox);
    drained().await;
    assert!(
        UnixStream::connect(&path).await.is_err(),
        "the socket outlived its task"
    );
}

/// `adopt` (contract 0.1.4) finds only an endpoint kept past its instance's
/// death: not a live one of the task, nor an address the task never opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_endpoint_kept_past_its_instance_can_be_adopted() {
    let engine = with_grants(&CAPS, "[plugins.X.endpoint]\nlisten = [\"sandbox:meta.sock\"]\n").await;
    let (sandbox, ctx) = start_steps(
        &engine,
        json!([{"op": "endpoint", "socket": "meta.sock"},
               {"op": "adopt-endpoint", "address": "meta.sock"},
               {"op": "adopt-endpoint", "address": "other.sock"},
               {"op": "route", "path": "/x", "fixed": {"status": 200, "body": "{}"}}]),
    )
    .await;
    let log = log_shows(&ctx, "ok route").await;
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("error: adopt-endpoint")).collect();
    assert_eq!(refused.len(), 2, "{log}");
    assert!(
        refused[0].contains("no endpoint of the task at 'meta.sock' outlived its instance"),
        "{log}"
    );
    assert!(refused[1].contains("'other.sock'"), "{log}");
    drop(sandbox);
    drained().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_is_denied_without_the_grant() {
    let try_open = async |plugin: &enginehost::runtime::LoadedPlugin, config: &str, step: Value| {
        let engine = with_grants(plugin, config).await;
        let (_, log) = steps(&engine, json!([step])).await;
        line(&log, "error: endpoint")
    };
    let tcp = json!({"op": "endpoint", "tcp": "127.0.0.1:0"});
    let socket = json!({"op": "endpoint", "socket": "meta.sock"});
    assert_eq!(
        try_open(&CAPS, "", tcp.clone()).await,
        "error: endpoint: endpoint.listen \"127.0.0.1:0\": not granted; add a matching pattern to \
         [plugins.fixture-caps.endpoint] listen"
    );
    assert_eq!(
        try_open(
            &CAPS,
            "[plugins.X.endpoint]\nlisten = [\"127.0.0.1:80\"]\n",
            tcp.clone()
        )
        .await,
        "error: endpoint: endpoint.listen \"127.0.0.1:0\": not granted; add a matching pattern to \
         [plugins.fixture-caps.endpoint] listen",
        "a grant of one port is no grant of any free port"
    );
    assert_eq!(
        try_open(&CAPS, LOOPBACK, socket.clone()).await,
        "error: endpoint: endpoint.listen \"sandbox:meta.sock\": not granted; add \"sandbox:meta.sock\" (or \
         \"sandbox:*\") to [plugins.fixture-caps.endpoint] listen"
    );
    assert!(
        try_open(
            &CAPS,
            "[plugins.X.endpoint]\nlisten = [\"sandbox:*\"]\n",
            json!({"op": "endpoint", "socket": "../x.sock"})
        )
        .await
        .contains("not a path inside the task's sandbox"),
    );
    assert_eq!(
        try_open(&NARROW, LOOPBACK, tcp).await,
        "error: endpoint: endpoint.listen \"127.0.0.1:0\": not requested by plugin fixture-caps-narrow 0.1.0 \
         (capabilities.toml)"
    );
    mock_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_heads_and_peers_are_bounded() {
    let config = "[plugins.X.endpoint]\nlisten = [\"127.0.0.1:*\"]\nmax-connections = 1\n";
    let engine = with_grants(&CAPS, config).await;
    let (sandbox, _ctx, addr) = serving(
        &engine,
        json!([{"op": "route", "path": "/f", "fixed": {"status": 200, "body": "ok"}},
               {"op": "route", "path": "/held"},
               {"op": "sleep", "ms": 3000},
               {"op": "serve", "count": 1}]),
    )
    .await;
    // A request head over 64 KiB is refused.
    let huge = format!(
        "GET /f HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(70_000)
    );
    let answer = http(&addr, &huge).await;
    assert!(answer.starts_with("HTTP/1.1 431") || answer.is_empty(), "{answer}");
    // One connection at a time: while the first has a request in progress (the
    // engine answers /held only after 3 s), a newcomer does not evict it but
    // waits, and takes the slot when the first closes.
    let mut first = TcpStream::connect(&addr).await.unwrap();
    first.write_all(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let second = tokio::spawn(http_owned(addr.clone(), get("/f")));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !second.is_finished(),
        "the second connection was served while the first held the only slot"
    );
    let mut buf = [0u8; 256];
    let n = first.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(first);
    let answer = second.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A client that never finishes its request head, or idles between requests,
    // cannot lock the endpoint: a newcomer takes its slot at once, long before the
    // 30 s head deadline would have freed it.
    let before_deadline = |what: &'static str| {
        let addr = addr.clone();
        async move {
            tokio::time::timeout(std::time::Duration::from_secs(15), http_owned(addr, get("/f")))
                .await
                .unwrap_or_else(|_| panic!("the newcomer waited for the head deadline of {what}"))
        }
    };
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /f HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let answer = before_deadline("a slow head").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "served past a slow head: {answer}");
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 256];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let answer = before_deadline("an idle keep-alive").await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "served past an idle keep-alive: {answer}"
    );
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest).await;
    drop((slow, idle));
    drop(sandbox);

    // Peers outside the engine's filter are closed without an answer.
    let engine = with_grants(&CAPS, LOOPBACK).await;
    let (sandbox, ctx) = start_steps(
        &engine,
        json!([{"op": "endpoint", "tcp": "127.0.0.1:0", "peers": ["10.9.9.0/24"]},
               {"op": "route", "path": "/f", "fixed": {"status": 200, "body": "ok"}}]),
    )
    .await;
    let addr = address(&ctx).await;
    assert_eq!(http(&addr, &get("/f")).await, "");
    drop(sandbox);
}

async fn http_owned(address: String, request: String) -> String {
    http(&address, &request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_stops_when_closed_or_its_task_ends() {
    let engine = with_grants(&CAPS, LOOPBACK).await;
    let (sandbox, ctx, addr) = serving(
        &engine,
        json!([{"op": "route", "path": "/f", "fixed": {"status": 200, "body": "ok"}},
               {"op": "route", "path": "/wait"},
               {"op": "serve", "count": 1}]),
    )
    .await;
    assert!(http(&addr, &get("/f")).await.starts_with("HTTP/1.1 200"));
    log_shows(&ctx, "ok route /wait").await;
    // A request the engine never answers, cut off by the end of the task.
    let pending = tokio::spawn(http_owned(addr.clone(), get("/never")));
    drop(sandbox);
    drained().await;
    let _ = pending.await;
    assert!(
        TcpStream::connect(&addr).await.is_err(),
        "the endpoint outlived its task"
    );

    let (sandbox, _ctx, addr) = serving(&engine, json!([{"op": "endpoint-close"}])).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while TcpStream::connect(&addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "close did not stop the listener"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(sandbox);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_body_is_whole_or_an_error_never_a_short_file() {
    let config = format!("{LOOPBACK}[plugins.X.files]\nsandbox = true\n");
    let engine = with_grants(&CAPS, &config).await;
    let (sandbox, ctx, addr) = serving(
        &engine,
        json!([
            {"op": "route", "method": "POST", "path": "/reply"},
            {"op": "save", "to": "up/whole.bin"},
            {"op": "read-file", "path": "sandbox:up/whole.bin"},
            {"op": "save", "to": "up/cut.bin"},
            {"op": "save", "to": "up/big.bin", "max": 4},
            {"op": "save", "to": "../outside.bin"}
        ]),
    )
    .await;
    let chunked = "POST /reply HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n\
                   6\r\nhello \r\n6\r\nworld!\r\n0\r\n\r\n";
    let answer = http(&addr, chunked).await;
    assert_eq!(body_of(&answer), "saved", "{answer}");
    let log = log_shows(&ctx, "ok read-file").await;
    assert_eq!(line(&log, "ok save-body"), "ok save-body saved 12", "{log}");
    assert_eq!(line(&log, "ok read-file"), "ok read-file hello world!", "{log}");

    // No zero chunk: the client went away mid-body.
    let cut = "POST /reply HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nwor";
    let _ = http(&addr, cut).await;
    let log = log_shows(&ctx, "error: save-body: the host refused: receiving").await;
    assert!(
        line(&log, "error: save-body").contains("it broke off after 8 bytes"),
        "{log}"
    );

    let big = "POST /reply HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10\r\n\r\n0123456789";
    let answer = http(&addr, big).await;
    assert_eq!(body_of(&answer), "saved", "the engine still answers: {answer}");
    let log = log_shows(&ctx, "larger than 4 bytes").await;
    assert!(
        log.contains("error: save-body: invalid argument: the request body is larger than 4 bytes"),
        "{log}"
    );

    let small = "POST /reply HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi";
    let _ = http(&addr, small).await;
    let log = log_shows(&ctx, "error: save-body: invalid argument: '../outside.bin'").await;
    assert!(
        log.contains("error: save-body: invalid argument: '../outside.bin'"),
        "{log}"
    );
    drop(sandbox);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_a_body_needs_the_sandbox_grant() {
    let engine = with_grants(&CAPS, LOOPBACK).await;
    let (sandbox, ctx, addr) = serving(
        &engine,
        json!([{"op": "route", "path": "/reply"}, {"op": "save", "to": "x.bin"}]),
    )
    .await;
    let _ = http(
        &addr,
        "POST /reply HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    let log = log_shows(&ctx, "error: save-body").await;
    assert!(
        line(&log, "error: save-body").contains("not granted; set sandbox = true in [plugins.fixture-caps.files]"),
        "{log}"
    );
    drop(sandbox);
}
