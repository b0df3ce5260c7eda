//! Every mock function (seed §4.1), through the worker traits.

use std::sync::Arc;

use async_trait::async_trait;
use enginehost::contract::{EngineError, HttpRequest, HttpResponse, ProxyHandler, WorkerControl};
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn true_and_false_decide_success() {
    let engine = start(&MOCK).await;
    let (r, _) = run_payload(&engine, mock_payload(0, "true", ""), &[]).await;
    assert!(r.unwrap().success());
    let (r, _) = run_payload(&engine, mock_payload(0, "false", ""), &[]).await;
    assert!(!r.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_log_functions_write_the_argument() {
    let engine = start(&MOCK).await;
    for (function, success) in [
        ("write-log", true),
        ("write-error-log", false),
        ("write-log-sleep", true),
    ] {
        let (r, log) = run_payload(&engine, mock_payload(0, function, "Hello World"), &[]).await;
        assert_eq!(r.unwrap().success(), success, "{function}");
        assert_eq!(log, "[taskcluster] Hello World\n", "{function}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_env_var_succeeds_iff_set() {
    let engine = start(&MOCK).await;
    let (r, log) = run_payload(&engine, mock_payload(0, "print-env-var", "A"), &[("A", "value of a")]).await;
    assert!(r.unwrap().success());
    assert!(log.contains("value of a"), "{log}");
    let (r, _) = run_payload(&engine, mock_payload(0, "print-env-var", "MISSING"), &[("A", "x")]).await;
    assert!(!r.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_files_are_extractable() {
    let engine = start(&MOCK).await;
    let (r, _) = run_payload(&engine, mock_payload(0, "write-files", "/a.txt /d/b.txt"), &[]).await;
    let rs = r.unwrap();
    assert_eq!(
        rs.extract_file("/a.txt").await.unwrap().read_to_end().await,
        b"Hello World"
    );
    assert!(matches!(
        rs.extract_file("/nope").await,
        Err(EngineError::ResourceNotFound)
    ));
    rs.dispose().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_and_malformed_errors_come_back_typed() {
    let engine = start(&MOCK).await;
    let (r, _) = run_payload(&engine, mock_payload(0, "fatal-internal-error", ""), &[]).await;
    assert!(matches!(r, Err(EngineError::FatalInternalError(_))));
    let (r, _) = run_payload(&engine, mock_payload(0, "nonfatal-internal-error", ""), &[]).await;
    assert!(matches!(r, Err(EngineError::NonFatalInternalError(_))));
    let (r, _) = run_payload(
        &engine,
        mock_payload(0, "malformed-payload-after-start", "bad thing"),
        &[],
    )
    .await;
    assert_eq!(r.err(), Some(EngineError::MalformedPayload(vec!["bad thing".into()])));
    let (r, _) = run_payload(&engine, mock_payload(0, "get-url", "http://example.invalid/"), &[]).await;
    assert_eq!(r.err(), Some(EngineError::FeatureNotSupported));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payload_initial_fails_the_builder() {
    let engine = start(&MOCK).await;
    let r = engine
        .new_sandbox_builder(context(), mock_payload(10, "malformed-payload-initial", "nope"))
        .await;
    assert_eq!(r.err(), Some(EngineError::MalformedPayload(vec!["nope".into()])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_now_reaches_the_worker() {
    let worker = WorkerControl::new();
    let engine = start_with(&MOCK, worker.clone()).await;
    assert!(!worker.stop_requested());
    let (r, _) = run_payload(&engine, mock_payload(0, "stopNow-sleep", ""), &[]).await;
    assert!(r.unwrap().success());
    assert!(worker.stop_requested());
}

struct Pong(u16);

#[async_trait]
impl ProxyHandler for Pong {
    async fn handle(&self, request: HttpRequest) -> HttpResponse {
        HttpResponse {
            status: self.0,
            headers: vec![],
            body: format!("pong {}", request.path).into_bytes(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_proxy_calls_the_host_handler() {
    let engine = start(&MOCK).await;
    for (status, success) in [(200, true), (404, false)] {
        let ctx = context();
        let builder = engine
            .new_sandbox_builder(ctx.clone(), mock_payload(0, "ping-proxy", "http://svc/x/y"))
            .await
            .unwrap();
        builder.attach_proxy("svc", Arc::new(Pong(status))).await.unwrap();
        assert_eq!(
            builder.attach_proxy("svc", Arc::new(Pong(200))).await.err(),
            Some(EngineError::NamingConflict)
        );
        let rs = builder.start().await.unwrap().wait_for_result().await.unwrap();
        assert_eq!(rs.success(), success);
        ctx.log().close();
        let log = String::from_utf8(ctx.log().read_to_end().await.unwrap()).unwrap();
        assert_eq!(log, "[taskcluster] Pinging\n[taskcluster] pong /x/y\n");
    }
    // No handler for the host: logged, fails.
    let (r, log) = run_payload(&engine, mock_payload(0, "ping-proxy", "http://other/"), &[]).await;
    assert!(!r.unwrap().success());
    assert!(log.contains("No proxy for hostname: other"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_keep_data_across_tasks_and_respect_read_only() {
    let engine = start(&MOCK).await;
    let volume = engine.new_volume(json!({})).await.unwrap();
    let run = |payload, ro| {
        let (engine, volume) = (engine.clone(), volume.clone());
        async move {
            let builder = engine.new_sandbox_builder(context(), payload).await.unwrap();
            builder.attach_volume("v", volume.as_ref(), ro).await.unwrap();
            builder
                .start()
                .await
                .unwrap()
                .wait_for_result()
                .await
                .unwrap()
                .success()
        }
    };
    assert!(
        !run(mock_payload(0, "write-volume", "v/f:data"), true).await,
        "read-only write must fail"
    );
    assert!(!run(mock_payload(0, "read-volume", "v/f"), false).await);
    assert!(run(mock_payload(0, "write-volume", "v/f:data"), false).await);
    assert!(run(mock_payload(0, "read-volume", "v/f"), true).await);
    let builder = engine
        .new_sandbox_builder(context(), mock_payload(0, "true", ""))
        .await
        .unwrap();
    let bad = builder.attach_volume("has space", volume.as_ref(), false).await;
    assert!(matches!(bad, Err(EngineError::MalformedPayload(_))), "{bad:?}");
    volume.dispose().await.unwrap();

    // A volume builder fills a volume from a stream.
    let vb = engine.new_volume_builder(json!({})).await.unwrap();
    vb.write_folder("d").await.unwrap();
    vb.write_file(
        "d/f",
        enginehost::contract::ByteStream::from_bytes(b"preloaded".to_vec()),
    )
    .await
    .unwrap();
    let built = vb.build().await.unwrap();
    let builder = engine
        .new_sandbox_builder(context(), mock_payload(0, "read-volume", "m/d/f"))
        .await
        .unwrap();
    builder.attach_volume("m", built.as_ref(), true).await.unwrap();
    let ctx_rs = builder.start().await.unwrap().wait_for_result().await.unwrap();
    assert!(ctx_rs.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shells_and_displays_answer_like_the_seed() {
    let engine = start(&MOCK).await;
    let builder = engine
        .new_sandbox_builder(context(), mock_payload(200, "true", ""))
        .await
        .unwrap();
    let sandbox = builder.start().await.unwrap();
    assert_eq!(
        sandbox.new_shell(&["ls".into()], false).await.err(),
        Some(EngineError::FeatureNotSupported)
    );
    let shell = sandbox.new_shell(&[], false).await.unwrap();
    assert_eq!(
        shell.set_size(80, 24).await.err(),
        Some(EngineError::FeatureNotSupported)
    );
    let stdin = shell.stdin().unwrap();
    assert!(stdin.send(b"something else".to_vec()).await);
    drop(stdin);
    let out = shell.stdout().unwrap().read_to_end().await;
    assert_eq!(out, b"unknown command");
    assert_eq!(shell.wait().await, Ok(true));
    assert!(shell.stdout().is_none(), "stdout is taken once");
    let displays = sandbox.list_displays().await.unwrap();
    assert_eq!(
        (displays[0].name.as_str(), displays[0].width, displays[0].height),
        ("MockDisplay", 480, 640)
    );
    assert_eq!(
        sandbox.open_display("nope").await.err().map(|e| e.to_string()),
        Some("No such display exists".into())
    );
    let rs = sandbox.wait_for_result().await.unwrap();
    assert!(rs.success());
    assert_eq!(
        sandbox.new_shell(&[], false).await.err(),
        Some(EngineError::SandboxTerminated)
    );
}
