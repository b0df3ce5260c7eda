//! A per-task endpoint as a task's client meets it: the engine's routes (any path
//! the engine asks for, added or refused) and any bytes a client sends, through
//! hyper with the endpoint's own HTTP/1.1 bounds (`configure_http1`). Nothing
//! panics; every answer is an HTTP/1.x response; a route added for a path is what
//! a request for exactly that path reaches. Input: route paths, one per line, up to
//! a blank line, then the raw request bytes.
#![no_main]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use enginehost_core::endpoint::{Action, Routes, Target, configure_http1};
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A stand-in for the host's proxy handler: routing only clones it.
#[derive(Clone)]
struct Proxy;

fn routes(lines: &str) -> Routes<Proxy> {
    let mut routes = Routes::default();
    routes.add_proxy("tcproxy", Proxy).unwrap();
    for (i, line) in lines.lines().enumerate() {
        let (method, path) = match line.split_once(' ') {
            Some((m, p)) => (Some(m), p),
            None => (None, line),
        };
        let added = routes
            .add_route(method, path, Action::BodyToLog(format!("{i}")))
            .is_ok();
        if added && method.is_none() && !path.ends_with('*') {
            match routes.target(&Method::GET, path, "") {
                Target::Route(_) => {}
                _ => panic!("route {path:?} was added but a GET for it does not reach a route"),
            }
        }
    }
    routes
}

async fn answer(routes: &Routes<Proxy>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let (status, body) = match routes.target(req.method(), req.uri().path(), &query) {
        Target::Route(_) => (StatusCode::OK, "route".to_string()),
        Target::WrongMethod => (StatusCode::METHOD_NOT_ALLOWED, String::new()),
        Target::Proxy(_, rest) => {
            assert!(rest.starts_with('/'), "a proxy was handed {rest:?}");
            (StatusCode::OK, rest)
        }
        Target::UnknownProxy(name, _) => (StatusCode::NOT_FOUND, name),
        Target::NotFound => (StatusCode::NOT_FOUND, String::new()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let (head, request) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (&b""[..], data),
    };
    let Ok(lines) = std::str::from_utf8(head) else { return };
    let routes = std::sync::Arc::new(routes(lines));
    let request = request.to_vec();
    runtime().block_on(async move {
        let (mut client, server) = tokio::io::duplex(256 * 1024);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new());
        configure_http1(&mut builder);
        let service = hyper::service::service_fn(move |req| {
            let routes = routes.clone();
            async move { Ok::<_, Infallible>(answer(&routes, req).await) }
        });
        let serve = tokio::spawn(async move {
            let _ = builder.serve_connection(TokioIo::new(server), service).await;
        });
        let exchange = async {
            client.write_all(&request).await.ok()?;
            client.shutdown().await.ok()?;
            let mut out = Vec::new();
            client.read_to_end(&mut out).await.ok()?;
            Some(out)
        };
        if let Ok(Some(out)) = tokio::time::timeout(Duration::from_secs(2), exchange).await {
            assert!(
                out.is_empty() || out.starts_with(b"HTTP/1.1 ") || out.starts_with(b"HTTP/1.0 "),
                "the endpoint answered with something that is not HTTP/1.x: {:?}",
                String::from_utf8_lossy(&out[..out.len().min(200)])
            );
        }
        serve.abort();
    });
});
