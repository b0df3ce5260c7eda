//! The conformance suite on every shipped engine, and on a deliberately broken one.

use std::sync::Arc;

use enginehost::conformance::{Cases, SUBTESTS, Verdict, run_suite};
use enginehost::contract::Engine;
use enginehost::plugin::BUILTIN;
use enginehost::policy::Capabilities;
use enginehost::runtime::EngineOptions;

use crate::common::*;

fn mock_cases() -> Cases {
    serde_json::from_str(BUILTIN[0].2).expect("the mock's cases file parses")
}

/// Every failed subtest of `report`, printed.
fn failures(report: &enginehost::conformance::Report) -> Vec<String> {
    report
        .results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Fail(_)))
        .map(|r| r.to_string())
        .collect()
}

/// Runs the suite on a shipped engine with a cases file (and its grants).
pub async fn suite_of(name: &str, cases_text: &str) -> enginehost::conformance::Report {
    let (_, wasm, _) = BUILTIN.iter().find(|(f, _, _)| *f == format!("{name}.wasm")).unwrap();
    let plugin = RUNTIME.load(name, wasm).unwrap();
    let cases: Cases = serde_json::from_str(cases_text).unwrap();
    let grants = match &cases.grants {
        Some(g) => serde_json::from_value::<Capabilities>(g.clone()).unwrap(),
        None => Capabilities::default(),
    };
    let engine: Arc<dyn Engine> = RUNTIME
        .start_engine(
            &plugin,
            EngineOptions {
                config: cases.config.clone(),
                grants,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    run_suite(&engine, &cases, |_| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_engine_passes_every_case_it_claims() {
    for (file, _, cases) in BUILTIN {
        let name = file.trim_end_matches(".wasm");
        if name == "native" && !crate::caps::is_root() {
            eprintln!("skipped native: its cases create task users, which needs root");
            continue;
        }
        if name == "docker" {
            continue; // against a real dockerd, in engines::docker
        }
        if name == "qemu" {
            // Real VMs, one at a time, on the test image: engines/qemu.rs.
            continue;
        }
        let report = suite_of(name, cases).await;
        let failures = failures(&report);
        assert!(failures.is_empty(), "{name}: {failures:#?}");
        assert!(report.passed() > 0, "{name}: {}", report.summary());
        if name == "mock" {
            // Every subtest, Recover's twice (two variants).
            assert_eq!(report.passed(), SUBTESTS.len() + 2, "the mock claims every case type");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_without_user_creation_runs_as_the_worker() {
    if !crate::caps::is_root() {
        eprintln!("skipped: the cases' target is the worker user's name, root in CI");
        return;
    }
    let cases = include_str!("../../plugins/native/cases-nouser.json");
    let report = suite_of("native", cases).await;
    assert_eq!(report.failed(), 0, "{:#?}", report.results);
    assert_eq!(report.passed(), 3);
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
    assert_eq!(report.summary(), "34 passed, 1 failed, 0 skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omitted_case_types_are_skipped_not_passed() {
    let engine = start(&MOCK).await;
    let mut cases = mock_cases();
    cases.display = Vec::new();
    cases.shell = Vec::new();
    let report = run_suite(&engine, &cases, |_| {}).await;
    assert_eq!(report.skipped(), 12);
    assert!(matches!(report.get("Display", "KillDisplay"), Some(Verdict::Skip(_))));
    let failures = failures(&report);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The native mock (no wasm) behaves as the wasm mock on every case type it
/// offers: the suite with the mock's cases, shells and displays left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_mock_passes_the_mocks_cases_but_shells_and_displays() {
    let mut cases = mock_cases();
    cases.shell.clear();
    cases.display.clear();
    // Built into the host, it has no instance to trap.
    cases.recover.clear();
    let engine: Arc<dyn Engine> =
        enginehost::bench::native_mock::NativeMock::new(enginehost::contract::WorkerControl::new());
    let report = run_suite(&engine, &cases, |_| {}).await;
    let failures = failures(&report);
    assert!(failures.is_empty(), "{failures:#?}");
    // Every subtest but the 12 of shells and displays and the 2 of recovery.
    assert_eq!(report.passed() + 14, SUBTESTS.len(), "{}", report.summary());
}
