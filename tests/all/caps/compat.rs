//! Plugins built for contract 0.1.0 (committed binaries, never rebuilt) load and
//! pass their conformance suites on this host.

use std::path::PathBuf;

use enginehost::conformance::{Cases, Verdict, run_suite};
use enginehost::runtime::EngineOptions;

use crate::common::*;

fn fixture(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/contract-0.1.0")
        .join(file)
}

async fn suite(name: &str) -> enginehost::conformance::Report {
    let wasm = std::fs::read(fixture(&format!("{name}.wasm"))).unwrap();
    let meta = enginehost::plugin::metadata::read(&wasm).expect("a 0.1.0 plugin is accepted");
    assert_eq!(meta.contract, "0.1.0");
    let cases: Cases =
        serde_json::from_str(&std::fs::read_to_string(fixture(&format!("{name}.cases.json"))).unwrap()).unwrap();
    let plugin = RUNTIME
        .load(name, &wasm)
        .expect("a 0.1.0 plugin links against the 0.1.2 host");
    let engine: std::sync::Arc<dyn enginehost::contract::Engine> = RUNTIME
        .start_engine(
            &plugin,
            EngineOptions {
                config: cases.config.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    run_suite(&engine, &cases, |_| {}).await
}

/// The display checks the suite gained after contract 0.1.0 (issue 11: what real
/// VNC viewers need). The 0.1.0 mock predates them; its display server fails them,
/// which is the suite getting stricter, not the contract changing.
const STRICTER_DISPLAY_CHECKS: &[&str] = &["RfbVersions", "FullUpdate", "PixelFormats", "IdleIsQuiet"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_0_1_0_mock_passes_its_suite() {
    let report = suite("mock").await;
    for r in &report.results {
        let newer = r.case == "Display" && STRICTER_DISPLAY_CHECKS.contains(&r.name);
        match (&r.verdict, newer) {
            (Verdict::Pass, false) => {}
            (Verdict::Fail(_), true) => {}
            // Recovery came with contract 0.1.4; its cases file has no Recover case.
            (Verdict::Skip(_), false) if r.case == "Recover" => {}
            _ => panic!("unexpected: {r}"),
        }
    }
    assert_eq!(report.skipped(), 2);
    assert_eq!(report.failed(), STRICTER_DISPLAY_CHECKS.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_0_1_0_template_engine_passes_its_suite() {
    let report = suite("template_engine").await;
    assert_eq!(report.failed(), 0, "{:#?}", report.results);
    assert_eq!(report.passed(), 12, "{}", report.summary());
}
