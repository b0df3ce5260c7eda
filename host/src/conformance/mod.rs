//! The conformance suite for engine authors: the seed's `enginetest` (engine-
//! contract.md §3) ported to the worker traits, so it checks any engine, a `.wasm`
//! plugin or a native implementation, through the same path the worker uses.
//!
//! An engine's values live in a cases file ([`Cases`], JSON) next to the engine. A
//! case type the file omits is reported as skipped, never passed. Used by
//! `enginehost test` and by `cargo test` (every shipped engine with its cases).
//!
//! - `harness`: the seed's run/dispose rules.
//! - `cases`: the cases file.
//! - `basic`, `artifacts`, `shell`, `display`, `viewer`, `recover`: the subtests.
//! - `rfb`: the RFB (VNC) client of the display subtests.

mod artifacts;
mod basic;
use enginehost_core::cases;
mod display;
mod harness;
mod recover;
mod rfb;
mod serve;
mod shell;
mod viewer;

use std::sync::Arc;
use std::time::Duration;

pub use cases::Cases;
pub use harness::Check;

use crate::contract::Engine;

/// The longest a subtest may take before it fails as hung.
const SUBTEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Every subtest, as (case type, subtest).
pub const SUBTESTS: &[(&str, &str)] = &[
    ("EnvVar", "PrintVariable"),
    ("EnvVar", "VariableNameConflict"),
    ("EnvVar", "InvalidVariableNames"),
    ("Logging", "LogTarget"),
    ("Logging", "LogTargetWhenFailing"),
    ("Logging", "SilentTask"),
    ("Kill", "Kill"),
    ("Artifact", "ExtractTextFile"),
    ("Artifact", "ExtractFileNotFound"),
    ("Artifact", "ExtractFolderNotFound"),
    ("Artifact", "ExtractNestedFolderPath"),
    ("Artifact", "ExtractFolderHandlerInterrupt"),
    ("Shell", "Command"),
    ("Shell", "BadCommand"),
    ("Shell", "AbortSleepCommand"),
    ("Shell", "KillSleepCommand"),
    ("Display", "ListDisplays"),
    ("Display", "Displays"),
    ("Display", "InvalidDisplayName"),
    ("Display", "KillDisplay"),
    ("Display", "RfbVersions"),
    ("Display", "FullUpdate"),
    ("Display", "PixelFormats"),
    ("Display", "IdleIsQuiet"),
    ("Proxy", "PingProxyPayload"),
    ("Proxy", "Ping404IsUnsuccessful"),
    ("Proxy", "LiveLogging"),
    ("Volume", "WriteReadVolume"),
    ("Volume", "ReadEmptyVolume"),
    ("Volume", "WriteToReadOnlyVolume"),
    ("Volume", "ReadToReadOnlyVolume"),
    ("Recover", "SurviveTrap"),
    ("Recover", "TrapStorm"),
];

/// A subtest's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It passed.
    Pass,
    /// It failed, with the reason.
    Fail(String),
    /// It did not run, with the reason.
    Skip(String),
}

/// One subtest's result.
#[derive(Debug, Clone)]
pub struct SubtestResult {
    /// The case type (`Shell`).
    pub case: &'static str,
    /// The variant of the case type, when the cases file gives several.
    pub variant: Option<String>,
    /// The subtest (`AbortSleepCommand`).
    pub name: &'static str,
    /// What happened.
    pub verdict: Verdict,
}

impl std::fmt::Display for SubtestResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let case = match &self.variant {
            Some(v) => format!("{}({v})", self.case),
            None => self.case.to_string(),
        };
        match &self.verdict {
            Verdict::Pass => write!(f, "pass  {case}/{}", self.name),
            Verdict::Fail(why) => write!(f, "FAIL  {case}/{}: {why}", self.name),
            Verdict::Skip(why) => write!(f, "skip  {case}/{}: {why}", self.name),
        }
    }
}

/// All results of one suite run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// In [`SUBTESTS`] order.
    pub results: Vec<SubtestResult>,
}

impl Report {
    fn count(&self, f: impl Fn(&Verdict) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.verdict)).count()
    }
    /// Subtests that passed.
    pub fn passed(&self) -> usize {
        self.count(|v| *v == Verdict::Pass)
    }
    /// Subtests that failed.
    pub fn failed(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Fail(_)))
    }
    /// Subtests that were skipped.
    pub fn skipped(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Skip(_)))
    }
    /// `N passed, N failed, N skipped`.
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.skipped()
        )
    }
    /// The result of one subtest.
    pub fn get(&self, case: &str, name: &str) -> Option<&Verdict> {
        self.results
            .iter()
            .find(|r| r.case == case && r.name == name)
            .map(|r| &r.verdict)
    }
}

/// Runs one subtest; `None` when the cases file omits its case type.
async fn run_one(e: &Arc<dyn Engine>, c: &Cases, case: &str, name: &str, i: usize) -> Option<Check> {
    use {artifacts as a, basic as b, display as d, shell as s, viewer as v};
    Some(match (case, name) {
        ("EnvVar", "PrintVariable") => b::print_variable(e, c.env_var.get(i)?).await,
        ("EnvVar", "VariableNameConflict") => b::variable_name_conflict(e, c.env_var.get(i)?).await,
        ("EnvVar", "InvalidVariableNames") => b::invalid_variable_names(e, c.env_var.get(i)?).await,
        ("Logging", "LogTarget") => b::log_target(e, c.logging.get(i)?).await,
        ("Logging", "LogTargetWhenFailing") => b::log_target_when_failing(e, c.logging.get(i)?).await,
        ("Logging", "SilentTask") => b::silent_task(e, c.logging.get(i)?).await,
        ("Kill", "Kill") => b::kill(e, c.kill.get(i)?).await,
        ("Artifact", "ExtractTextFile") => a::extract_text_file(e, c.artifact.get(i)?).await,
        ("Artifact", "ExtractFileNotFound") => a::extract_file_not_found(e, c.artifact.get(i)?).await,
        ("Artifact", "ExtractFolderNotFound") => a::extract_folder_not_found(e, c.artifact.get(i)?).await,
        ("Artifact", "ExtractNestedFolderPath") => a::extract_nested_folder_path(e, c.artifact.get(i)?).await,
        ("Artifact", "ExtractFolderHandlerInterrupt") => {
            a::extract_folder_handler_interrupt(e, c.artifact.get(i)?).await
        }
        ("Shell", "Command") => s::command(e, c.shell.get(i)?).await,
        ("Shell", "BadCommand") => s::bad_command(e, c.shell.get(i)?).await,
        ("Shell", "AbortSleepCommand") => s::abort_sleep_command(e, c.shell.get(i)?).await,
        ("Shell", "KillSleepCommand") => s::kill_sleep_command(e, c.shell.get(i)?).await,
        ("Display", "ListDisplays") => d::list_displays(e, c.display.get(i)?).await,
        ("Display", "Displays") => d::displays(e, c.display.get(i)?).await,
        ("Display", "InvalidDisplayName") => d::invalid_display_name(e, c.display.get(i)?).await,
        ("Display", "KillDisplay") => d::kill_display(e, c.display.get(i)?).await,
        ("Display", "RfbVersions") => v::rfb_versions(e, c.display.get(i)?).await,
        ("Display", "FullUpdate") => v::full_update(e, c.display.get(i)?).await,
        ("Display", "PixelFormats") => v::pixel_formats(e, c.display.get(i)?).await,
        ("Display", "IdleIsQuiet") => v::idle_is_quiet(e, c.display.get(i)?).await,
        ("Proxy", "PingProxyPayload") => b::ping_proxy_payload(e, c.proxy.get(i)?).await,
        ("Proxy", "Ping404IsUnsuccessful") => b::ping_404_is_unsuccessful(e, c.proxy.get(i)?).await,
        ("Proxy", "LiveLogging") => b::live_logging(e, c.proxy.get(i)?).await,
        ("Volume", "WriteReadVolume") => b::write_read_volume(e, c.volume.get(i)?).await,
        ("Volume", "ReadEmptyVolume") => b::read_empty_volume(e, c.volume.get(i)?).await,
        ("Volume", "WriteToReadOnlyVolume") => b::write_to_read_only_volume(e, c.volume.get(i)?).await,
        ("Volume", "ReadToReadOnlyVolume") => b::read_to_read_only_volume(e, c.volume.get(i)?).await,
        ("Recover", "SurviveTrap") => recover::survive_trap(e, c.recover.get(i)?).await,
        ("Recover", "TrapStorm") => recover::trap_storm(e, c.recover.get(i)?).await,
        _ => Err(format!("no subtest {case}/{name}")),
    })
}

/// The variants the cases file gives of `case` (their names; none = not given).
fn variants(c: &Cases, case: &str) -> Vec<Option<String>> {
    macro_rules! names {
        ($v:expr) => {
            $v.iter().map(|x| x.variant.clone()).collect()
        };
    }
    match case {
        "EnvVar" => names!(c.env_var),
        "Logging" => names!(c.logging),
        "Kill" => names!(c.kill),
        "Artifact" => names!(c.artifact),
        "Shell" => names!(c.shell),
        "Display" => names!(c.display),
        "Proxy" => names!(c.proxy),
        "Volume" => names!(c.volume),
        "Recover" => names!(c.recover),
        _ => Vec::new(),
    }
}

/// Runs every subtest against `engine` with `cases`, one after another (as the
/// seed does), once per variant of its case type; `progress` sees each result as
/// it comes. The cases' `serve` files are served for the whole run.
pub async fn run_suite(engine: &Arc<dyn Engine>, cases: &Cases, mut progress: impl FnMut(&SubtestResult)) -> Report {
    let mut report = Report::default();
    let server = if cases.serve.is_empty() {
        None
    } else {
        match serve::FileServer::start(&cases.serve).await {
            Ok(server) => Some(server),
            Err(e) => {
                let result = SubtestResult {
                    case: "Suite",
                    variant: None,
                    name: "Serve",
                    verdict: Verdict::Fail(format!("cannot serve the cases' files: {e}")),
                };
                progress(&result);
                report.results.push(result);
                return report;
            }
        }
    };
    let cases = match &server {
        Some(server) => cases.with_server(server.url()),
        None => cases.clone(),
    };
    for &(case, name) in SUBTESTS {
        let variants = variants(&cases, case);
        if variants.is_empty() {
            let verdict = Verdict::Skip(format!("the cases file has no {case} case"));
            let result = SubtestResult {
                case,
                variant: None,
                name,
                verdict,
            };
            progress(&result);
            report.results.push(result);
            continue;
        }
        let several = variants.len() > 1;
        for (i, variant) in variants.into_iter().enumerate() {
            let verdict = match tokio::time::timeout(SUBTEST_TIMEOUT, run_one(engine, &cases, case, name, i)).await {
                Err(_) => Verdict::Fail(format!("did not finish within {SUBTEST_TIMEOUT:?}")),
                Ok(None) => Verdict::Skip(format!("the cases file has no {case} case")),
                Ok(Some(Ok(()))) => Verdict::Pass,
                Ok(Some(Err(why))) => Verdict::Fail(why),
            };
            let variant = variant.or_else(|| several.then(|| (i + 1).to_string()));
            let result = SubtestResult {
                case,
                variant,
                name,
                verdict,
            };
            progress(&result);
            report.results.push(result);
        }
    }
    report
}
