//! The script engine: exit codes, environment, artifacts, kill and abort.

use enginehost::contract::{ByteStream, EngineError};
use serde_json::json;

use super::engine_from;
use crate::caps::{drained, marker, pgrep};
use crate::common::*;

fn config(command: &str) -> String {
    format!(
        r#"
[engines.script]
command = ["bash", "-c", {command:?}]
schema = {{ type = "object", properties = {{ code = {{ type = "integer" }} }}, required = ["code"] }}
[plugins.script.files]
sandbox = true
[plugins.script.process]
exec = ["/usr/bin/bash", "/bin/bash", "/usr/bin/env"]
run-as = ["worker"]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_map_to_the_contracts_outcomes() {
    let engine = engine_from("script", &config("exit $(cat | tr -dc 0-9)")).await;
    let run = |code: u32| {
        let engine = engine.clone();
        async move {
            run_payload(&engine, json!({ "code": code }), &[])
                .await
                .0
                .map(|r| r.success())
        }
    };
    assert_eq!(run(0).await, Ok(true));
    assert_eq!(run(1).await, Ok(false));
    assert_eq!(
        run(2).await,
        Err(EngineError::MalformedPayload(vec![
            "task.payload parameters are not permitted".into()
        ]))
    );
    assert!(matches!(run(3).await, Err(EngineError::NonFatalInternalError(_))));
    assert!(matches!(run(4).await, Err(EngineError::FatalInternalError(_))));
    match run(7).await {
        Err(EngineError::FatalInternalError(detail)) => assert!(detail.contains("code 7"), "{detail}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payload_is_on_stdin_and_only_task_id_and_run_id_are_set() {
    let engine = engine_from(
        "script",
        &config("cat; echo; env | grep -v '^PWD=\\|^SHLVL=\\|^_=' | sort"),
    )
    .await;
    let (result, log) = run_payload(&engine, json!({"code": 0}), &[]).await;
    assert!(result.unwrap().success(), "{log}");
    assert_eq!(log, "{\"code\":0}\nRUN_ID=0\nTASK_ID=t\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_keys_of_the_operators_schema_are_kept() {
    let engine = engine_from("script", &config("true")).await;
    let schema = engine.payload_schema();
    let errors = enginehost::worker::schema::validate(&schema, &json!({}), "task.payload").unwrap_err();
    assert!(errors[0].contains("\"code\" is a required property"), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_come_from_the_artifacts_folder_and_symlinks_stay_inside() {
    let engine = engine_from(
        "script",
        &config("mkdir -p artifacts/sub; echo a > artifacts/a.txt; echo b > artifacts/sub/b.txt; ln -s /etc/passwd artifacts/escape; mkfifo artifacts/fifo"),
    )
    .await;
    let (result, log) = run_payload(&engine, json!({"code": 0}), &[]).await;
    let result = result.unwrap();
    assert!(result.success(), "{log}");
    let read = |s: ByteStream| s.read_to_end();
    assert_eq!(read(result.extract_file("a.txt").await.unwrap()).await, b"a\n");
    assert_eq!(read(result.extract_file("/sub/b.txt").await.unwrap()).await, b"b\n");
    for bad in ["escape", "fifo", "missing.txt", "sub"] {
        assert_eq!(
            result.extract_file(bad).await.err(),
            Some(EngineError::ResourceNotFound),
            "{bad}"
        );
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let handler: enginehost::contract::FileHandler = {
        let seen = seen.clone();
        std::sync::Arc::new(move |path: String, data: ByteStream| {
            let seen = seen.clone();
            Box::pin(async move {
                let bytes = data.read_to_end().await;
                seen.lock().unwrap().push((path, bytes));
                Ok(())
            })
        })
    };
    result.extract_folder("", handler.clone()).await.unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        vec![("a.txt".into(), b"a\n".to_vec()), ("sub/b.txt".into(), b"b\n".to_vec())]
    );
    assert_eq!(
        result.extract_folder("nope", handler).await.err(),
        Some(EngineError::ResourceNotFound)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_ends_the_whole_tree_and_the_task_fails() {
    let mark = marker(40);
    let engine = engine_from(
        "script",
        &config(&format!(
            "(sleep {mark}1 &) ; setsid sleep {mark}2 & echo started; sleep {mark}3"
        )),
    )
    .await;
    let ctx = context();
    let sandbox = started_in(&engine, ctx.clone(), json!({"code": 0})).await;
    crate::caps::log_shows(&ctx, "started").await;
    sandbox.kill().await.unwrap();
    let result = sandbox.wait_for_result().await.unwrap();
    assert!(!result.success());
    assert!(pgrep(&mark).is_empty(), "{:?}", pgrep(&mark));
    drop((result, sandbox));
    drained().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_child_does_not_hold_the_task_and_abort_wins_before_the_end() {
    let mark = marker(41);
    let engine = engine_from("script", &config(&format!("sleep {mark}1 & echo done"))).await;
    let (result, log) = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        run_payload(&engine, json!({"code": 0}), &[]),
    )
    .await
    .expect("the task ends although its child holds stdout");
    assert!(result.unwrap().success(), "{log}");
    assert!(pgrep(&mark).is_empty());

    let engine = engine_from("script", &config(&format!("sleep {mark}2"))).await;
    let sandbox = started(&engine, json!({"code": 0})).await;
    sandbox.abort().await.unwrap();
    assert!(matches!(
        sandbox.wait_for_result().await,
        Err(EngineError::SandboxAborted)
    ));
    assert_eq!(sandbox.abort().await, Err(EngineError::SandboxTerminated));
    drop(sandbox);
    drained().await;
    assert!(pgrep(&mark).is_empty());
}
