//! `enginehost test ENGINE|FILE.wasm`: the conformance suite against one engine,
//! one line per subtest, then `N passed, N failed, N skipped`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use enginehost::conformance::{Cases, run_suite};
use enginehost::contract::{Engine, WorkerControl};
use enginehost::plugin::{Catalog, Trust};
use enginehost::policy::Capabilities;
use enginehost::runtime::Runtime;

use super::{BadInput, PluginsArgs};

#[derive(clap::Args)]
pub struct TestArgs {
    /// An engine name (built in or in the plugin directory) or a `.wasm` file.
    engine: String,
    /// The cases file (JSON) [default: the built-in engine's own cases; for
    /// FILE.wasm, `cases.json` beside it]
    #[arg(long, value_name = "FILE")]
    cases: Option<PathBuf>,
    /// Operator config (TOML): its `[plugins.NAME.*]` grants apply (instead of the
    /// cases file's `grants`), and its `[engines.NAME]` table replaces the cases
    /// file's `config`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    plugins: PluginsArgs,
}

fn read_cases(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("cannot read cases file {}: {e}", path.display())).into())
}

pub async fn run(args: TestArgs) -> anyhow::Result<i32> {
    let mut config = super::operator_config(args.config.as_deref())?;
    let mut catalog = Catalog::scan_with(args.plugins.plugins.as_deref(), &Trust::of(&config.host)?)?;
    let is_file = args.engine.ends_with(".wasm");
    let name = if is_file {
        let path = Path::new(&args.engine);
        catalog
            .add_file(path)
            .map_err(|r| BadInput(format!("{}: {r}", path.display())))?
    } else {
        args.engine.clone()
    };
    let entry = super::lookup(&catalog, &name)?;
    let cases_text = match (&args.cases, entry.builtin_cases()) {
        (Some(path), _) => read_cases(path)?,
        (None, Some(text)) => text.to_string(),
        (None, None) if is_file => {
            let path = Path::new(&args.engine).with_file_name("cases.json");
            read_cases(&path).context("no --cases given and no cases.json beside the .wasm")?
        }
        (None, None) => {
            return Err(BadInput(format!("engine '{name}' has no built-in cases; pass --cases FILE")).into());
        }
    };
    let cases: Cases =
        serde_json::from_str(&cases_text).map_err(|e| BadInput(format!("the cases file is not valid: {e}")))?;
    // The operator config decides grants; without it, the cases file's grants
    // apply. Without an [engines.NAME] table, the cases file's config is the engine's.
    config
        .engines
        .entry(name.clone())
        .or_insert_with(|| cases.config.clone());
    if args.config.is_none()
        && let Some(grants) = &cases.grants
    {
        let grants: Capabilities = serde_json::from_value(grants.clone())
            .map_err(|e| BadInput(format!("the cases file's grants are not valid: {e}")))?;
        grants
            .check_grant(&name)
            .map_err(|e| BadInput(format!("the cases file's grants are not valid: {e}")))?;
        config.plugins.insert(name.clone(), grants);
    }
    let runtime = Runtime::with_host(args.plugins.host_settings(&config))?;
    let engine: Arc<dyn Engine> = super::start_engine(&runtime, &catalog, &name, &config, WorkerControl::new()).await?;
    let overrides = if entry.overrides_builtin {
        " (it overrides the built-in engine of that name)"
    } else {
        ""
    };
    println!("conformance suite for engine '{name}' from {}{overrides}", entry.origin);
    let mut denied = false;
    let report = run_suite(&engine, &cases, |r| {
        let line = r.to_string();
        denied |= line.starts_with("FAIL") && line.contains("[plugins.");
        println!("{line}");
    })
    .await;
    if denied {
        let from = match &args.config {
            Some(path) => format!("the config {} does not grant it", path.display()),
            None => "no --config was given".to_string(),
        };
        println!(
            "hint: the engine was denied a capability ({from}): grant what the FAIL lines name in the \
             [plugins.{name}.*] tables of an operator config (--config FILE) or in the cases file's \
             \"grants\" table (docs/capabilities.md)"
        );
    }
    let disposed = engine.dispose().await;
    drop(engine);
    runtime.shutdown().await;
    if let Err(e) = disposed {
        println!("FAIL  engine dispose: {e}");
        println!("{}", report.summary());
        return Ok(1);
    }
    println!("{}", report.summary());
    Ok(if report.failed() > 0 { 1 } else { 0 })
}
