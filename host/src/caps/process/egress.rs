//! The task network's one way out: `[process] network = { connect = [...] }`.
//!
//! A task granted that runs in its own network namespace (loopback only, as with
//! `"none"`), and the host listens on that namespace's `127.0.0.1:3128` with an HTTP
//! proxy. The task's processes get `http_proxy`, `https_proxy` and `all_proxy`
//! pointing at it (unless the engine set them), so curl, git, pip, npm, apt and
//! most HTTP clients use it without being told. The proxy, running in the worker's
//! namespace, connects only where the task rules allow ([`Policy::task_net`]:
//! both sides' `host:port` patterns; a name is checked, resolved and each address
//! checked again, private and the worker's own addresses only by IP or CIDR) and
//! answers `403` with the denial's text otherwise, which also goes to the task log.
//!
//! Why a proxy and not nftables: it needs no packages, no veth, no forwarding or
//! NAT on the worker, and it judges names (the grants are names) instead of
//! addresses learned from DNS answers a task could race. The price: a program that
//! ignores the proxy variables and opens raw sockets reaches nothing, UDP (DNS
//! included) goes nowhere, and only `CONNECT host:port` (any TCP protocol, TLS
//! included) and plain `http://` requests are served.
//!
//! Bounds: request heads of 16 KiB read within 30 s, at most 256 connections per
//! task, connects within 30 s. The listener and every tunnel end with the task.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::caps::net::{Unreachable, allowed_addrs};
use crate::caps::os::netns;
use crate::caps::scope::TaskScope;
use crate::caps::{CapResult, os_error};
use crate::contract::TaskLog;
use crate::policy::Policy;

/// Where the proxy listens inside each task's namespace (squid's port).
pub(crate) const PROXY_PORT: u16 = 3128;
/// The largest request head (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to the destination may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections open at once per task.
const MAX_CONNECTIONS: usize = 256;

/// The variables that point a task's processes at the proxy.
pub(crate) fn proxy_env() -> Vec<(String, String)> {
    let url = format!("http://127.0.0.1:{PROXY_PORT}");
    let mut env: Vec<(String, String)> = ["http_proxy", "https_proxy", "all_proxy", "HTTPS_PROXY", "ALL_PROXY"]
        .into_iter()
        .map(|k| (k.to_string(), url.clone()))
        .collect();
    for k in ["no_proxy", "NO_PROXY"] {
        env.push((k.to_string(), "localhost,127.0.0.1,::1".to_string()));
    }
    env
}

/// Adds [`proxy_env`] to `env`, leaving any variable the engine set alone.
pub(crate) fn add_proxy_env(env: &mut Vec<(String, String)>) {
    for (k, v) in proxy_env() {
        if !env.iter().any(|(name, _)| *name == k) {
            env.push((k, v));
        }
    }
}

/// Starts the proxy in the task's namespace `ns`; it stops when the task ends.
pub(crate) fn start(scope: &Arc<TaskScope>, ns: &OwnedFd, log: TaskLog) -> CapResult<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, PROXY_PORT));
    let listener = netns::listen_tcp(ns, addr)
        .and_then(TcpListener::from_std)
        .map_err(|e| os_error("starting the task network's proxy", e))?;
    let policy = scope.engine.policy.clone();
    let task = tokio::spawn(serve(listener, policy, log));
    scope.add_host_task(task.abort_handle());
    Ok(())
}

async fn serve(listener: TcpListener, policy: Arc<Policy>, log: TaskLog) {
    // Dropped (aborting every tunnel) when this task is aborted at the task's end.
    let mut tunnels = JoinSet::new();
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: wait rather than spin.
                tracing::warn!(plugin = policy.plugin(), "task network proxy: accepting: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        while tunnels.try_join_next().is_some() {}
        if tunnels.len() >= MAX_CONNECTIONS {
            let _ = stream
                .write_all(&reply(503, &format!("more than {MAX_CONNECTIONS} connections at once")))
                .await;
            continue;
        }
        let (policy, log) = (policy.clone(), log.clone());
        tunnels.spawn(async move {
            if let Err(message) = handle(&mut stream, &policy, &log).await {
                let _ = stream.write_all(&message).await;
            }
        });
    }
}

/// A complete error answer.
fn reply(status: u16, text: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        _ => "Service Unavailable",
    };
    let body = format!("enginehost task network: {text}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    /// `None` for `CONNECT`; for a plain `http://` request, the head to send on,
    /// in origin form with `connection: close`.
    forward: Option<Vec<u8>>,
}

/// Reads one request head (bounded in size and time); returns it and what
/// followed it.
async fn read_head(stream: &mut TcpStream) -> Result<(Vec<u8>, usize), Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok(end + 4);
            }
            if buf.len() >= MAX_HEAD {
                return Err(reply(431, &format!("the request head is over {MAX_HEAD} bytes")));
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err(Vec::new()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    match tokio::time::timeout(HEAD_TIMEOUT, read).await {
        Ok(Ok(end)) => Ok((buf, end)),
        Ok(Err(answer)) => Err(answer),
        Err(_) => Err(reply(408, &format!("no request head within {HEAD_TIMEOUT:?}"))),
    }
}

/// Parses a request head: `CONNECT host:port` or an absolute `http://` URL.
fn parse_head(head: &[u8]) -> Result<Target, String> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("an incomplete request head".into()),
        Err(e) => return Err(format!("a malformed request head ({e})")),
    }
    let (method, path) = (req.method.unwrap_or_default(), req.path.unwrap_or_default());
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = path
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("CONNECT {path:?}: expected host:port"))?;
        return Ok(Target {
            host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port,
            forward: None,
        });
    }
    let url = reqwest::Url::parse(path)
        .ok()
        .filter(|u| u.scheme() == "http")
        .ok_or_else(|| {
            format!("{method} {path:?}: expected an absolute http:// URL, or CONNECT host:port (for https and anything else)")
        })?;
    let host = url.host_str().ok_or_else(|| format!("{path:?} has no host"))?;
    let mut origin = url.path().to_string();
    if let Some(q) = url.query() {
        origin.push('?');
        origin.push_str(q);
    }
    let mut out = format!("{method} {origin} HTTP/1.{}\r\n", req.version.unwrap_or(1)).into_bytes();
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if name.starts_with("proxy-") || name == "connection" || name == "keep-alive" {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    Ok(Target {
        host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
        port: url.port_or_known_default().unwrap_or(80),
        forward: Some(out),
    })
}

/// Serves one client connection; an `Err` is the answer to write before closing.
async fn handle(client: &mut TcpStream, policy: &Policy, log: &TaskLog) -> Result<(), Vec<u8>> {
    let (buf, end) = read_head(client).await?;
    let target = parse_head(&buf[..end]).map_err(|e| reply(400, &e))?;
    let addrs = match allowed_addrs(&policy.task_net(), &target.host, target.port).await {
        Ok(addrs) => addrs,
        Err(Unreachable::Denied(d)) => {
            log.log(&format!("task network: {}", d.message));
            tracing::warn!(plugin = policy.plugin(), grant_key = %d.grant_key, "{}", d.message);
            return Err(reply(403, &d.message));
        }
        Err(Unreachable::Lookup(e)) => return Err(reply(502, &e)),
    };
    let mut upstream = None;
    let mut last = String::new();
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                upstream = Some(s);
                break;
            }
            Ok(Err(e)) => last = format!("connecting to {addr}: {e}"),
            Err(_) => last = format!("connecting to {addr}: no answer in {CONNECT_TIMEOUT:?}"),
        }
    }
    let Some(mut upstream) = upstream else {
        return Err(reply(502, &last));
    };
    match &target.forward {
        None => client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .map_err(|_| Vec::new())?,
        Some(head) => upstream.write_all(head).await.map_err(|_| Vec::new())?,
    }
    upstream.write_all(&buf[end..]).await.map_err(|_| Vec::new())?;
    let _ = tokio::io::copy_bidirectional(client, &mut upstream).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_become_targets() {
        let t = parse_head(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.forward), ("example.com", 443, None));
        let t = parse_head(b"CONNECT [2001:db8::1]:22 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("2001:db8::1", 22));
        let t = parse_head(
            b"GET http://example.com:8080/a?b=c HTTP/1.1\r\nHost: example.com:8080\r\nProxy-Authorization: x\r\n\
              Connection: keep-alive\r\nAccept: */*\r\n\r\n",
        )
        .unwrap();
        assert_eq!((t.host.as_str(), t.port), ("example.com", 8080));
        assert_eq!(
            String::from_utf8(t.forward.unwrap()).unwrap(),
            "GET /a?b=c HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn other_heads_say_what_would_be_right() {
        for (head, want) in [
            (
                &b"GET /x HTTP/1.1\r\n\r\n"[..],
                "expected an absolute http:// URL, or CONNECT host:port",
            ),
            (
                b"GET https://example.com/ HTTP/1.1\r\n\r\n",
                "expected an absolute http:// URL",
            ),
            (b"CONNECT example.com HTTP/1.1\r\n\r\n", "expected host:port"),
            (b"\x00\x01 nonsense\r\n\r\n", "malformed request head"),
        ] {
            let err = parse_head(head).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }
}
