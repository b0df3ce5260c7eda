//! The conformance suite on every shipped engine, and on a deliberately broken one.

use std::sync::Arc;

use enginehost::conformance::{Cases, SUBTESTS, Verdict, run_suite};
use enginehost::contract::Engine;
use enginehost::plugin::BUILTIN;
use enginehost::runtime::EngineOptions;

use crate::common::*;

fn mock_cases() -> Cases {
    serde_json::from_str(BUILTIN[0].2).expect("the mock's cases file parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_engine_passes_with_its_cases() {
    for (file, wasm, cases) in BUILTIN {
        let name = file.trim_end_matches(".wasm");
        let plugin = RUNTIME.load(name, wasm).unwrap();
        let cases: Cases = serde_json::from_str(cases).unwrap();
        let engine: Arc<dyn Engine> = RUNTIME
            .start_engine(
                &plugin,
                EngineOptions {
                    config: cases.config.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let report = run_suite(&engine, &cases, |_| {}).await;
        let failures: Vec<String> = report
            .results
            .iter()
            .filter(|r| r.verdict != Verdict::Pass)
            .map(|r| r.to_string())
            .collect();
        assert!(failures.is_empty(), "{name}: {failures:#?}");
        assert_eq!(report.passed(), SUBTESTS.len());
        assert!(report.passed() >= 31);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broken_engine_fails_exactly_the_naming_conflict_subtest() {
    let wasm = std::fs::read(fixture_path("fixture_broken_env")).unwrap();
    let plugin = RUNTIME.load("broken-env", &wasm).unwrap();
    let engine: Arc<dyn Engine> = RUNTIME.start_engine(&plugin, EngineOptions::default()).await.unwrap();
    let report = run_suite(&engine, &mock_cases(), |_| {}).await;
    let failed: Vec<(&str, &str)> = report
        .results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Fail(_)))
        .map(|r| (r.case, r.name))
        .collect();
    assert_eq!(failed, vec![("EnvVar", "VariableNameConflict")]);
    assert_eq!(report.summary(), "30 passed, 1 failed, 0 skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omitted_case_types_are_skipped_not_passed() {
    let engine = start(&MOCK).await;
    let mut cases = mock_cases();
    cases.display = None;
    cases.shell = None;
    let report = run_suite(&engine, &cases, |_| {}).await;
    assert_eq!(report.skipped(), 12);
    assert!(matches!(report.get("Display", "KillDisplay"), Some(Verdict::Skip(_))));
    assert_eq!(report.failed(), 0);
}
