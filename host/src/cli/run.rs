//! `enginehost run TASK.json`: one task through the seed's stages, the task log
//! streamed live to stdout, a summary on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use enginehost::contract::{Engine as _, TaskLog, WorkerControl};
use enginehost::plugin::{Catalog, Origin};
use enginehost::runtime::Runtime;
use enginehost::worker::{Outcome, TaskFile, run_task};
use tokio_util::sync::CancellationToken;

use super::{BadInput, PluginsArgs};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The task file: {"engine", "payload", "env", "maxRunTime", "artifacts"}.
    task: PathBuf,
    #[command(flatten)]
    plugins: PluginsArgs,
    /// Operator config (TOML): `[engines.NAME]` is the engine's config,
    /// `[plugins.NAME.*]` what it is granted, `[host]` where and how it runs.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where artifacts land.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    artifacts: PathBuf,
}

fn read_task(path: &Path) -> anyhow::Result<TaskFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("cannot read task file {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        BadInput(format!(
            "task file {} is not a valid task: {e}\n  expected: {{\"engine\": NAME, \"payload\": {{...}}, \"env\": {{...}}, \
             \"maxRunTime\": SECONDS, \"artifacts\": [{{\"type\": \"file\"|\"directory\", \"path\": PATH, \"name\": NAME}}]}}",
            path.display()
        ))
        .into()
    })
}

pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let task = read_task(&args.task)?;
    let catalog = Catalog::scan(args.plugins.plugins.as_deref())?;
    let config = super::operator_config(args.config.as_deref())?;
    let runtime = Runtime::with_host(args.plugins.host_settings(&config))?;
    let worker = WorkerControl::new();
    let engine = super::start_engine(&runtime, &catalog, &task.engine, &config, worker.clone()).await?;

    let log = TaskLog::temporary().context("creating the task log")?;
    let mut reader = log.reader().context("opening the task log")?;
    let live = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut stdout = std::io::stdout();
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 || stdout.write_all(&buf[..n]).and_then(|()| stdout.flush()).is_err() {
                break;
            }
        }
    });
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    // Registered here, synchronously: from the next line on Ctrl-C aborts the task.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the Ctrl-C handler")?;
    tokio::spawn(async move {
        if interrupt.recv().await.is_some() {
            eprintln!("\ninterrupted: aborting the sandbox");
            on_ctrl_c.cancel();
        }
    });
    eprintln!("running a {} task (Ctrl-C aborts it)", task.engine);
    if let Some(entry) = catalog.get(&task.engine)
        && let Origin::File(path) = &entry.origin
    {
        let note = if entry.overrides_builtin {
            ", which overrides the built-in engine of that name"
        } else {
            ""
        };
        eprintln!("engine '{}' is served by {}{note}", task.engine, path.display());
    }

    let limits = super::task_limits(&config.limits_for(&task.engine));
    let outcome = run_task(engine.as_ref(), &task, &log, &args.artifacts, &cancel, &limits).await;
    let _ = live.await;
    match &outcome {
        Outcome::Success => eprintln!("task succeeded"),
        Outcome::Failure => eprintln!("task failed"),
        Outcome::Malformed(messages) => {
            eprintln!("task payload is malformed:");
            messages.iter().for_each(|m| eprintln!("  {m}"));
        }
        Outcome::InternalError(m) => eprintln!("internal error: {m}"),
        Outcome::FatalInternalError(m) => eprintln!("fatal internal error: {m}"),
        Outcome::Cancelled => eprintln!("task cancelled"),
    }
    if worker.stop_requested() {
        eprintln!("note: the engine asked the worker to stop taking tasks (StopNow)");
    }
    if let Err(e) = engine.dispose().await {
        eprintln!("warning: disposing the engine: {e}");
    }
    drop(engine);
    // Task users, sandbox directories and cgroups are gone when `run` returns.
    runtime.shutdown().await;
    Ok(outcome.exit_code())
}
