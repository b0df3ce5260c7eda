//! `enginehost run TASK.json`: one task through the seed's stages, the task log
//! streamed live to stdout, a summary on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use enginehost::contract::{Engine as _, TaskLog, WorkerControl};
use enginehost::plugin::{Catalog, Origin, Trust};
use enginehost::runtime::Runtime;
use enginehost::worker::interactive::InteractiveServer;
use enginehost::worker::{Extras, Outcome, TaskFile, execute_with};
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
    /// Read TASK.json as a task written for another worker: generic-worker's posix
    /// payload (on the native engine) or docker-worker's (on the docker engine), as
    /// `enginehost worker` with `[worker] payload-format` runs it. TASK.json is a task
    /// definition (`payload`, `scopes`, ...) or the payload alone; artifact and index
    /// mounts use $TASKCLUSTER_ROOT_URL.
    #[arg(long, value_name = "FORMAT", value_parser = ["enginehost", "generic-worker", "docker-worker"], default_value = "enginehost")]
    payload_format: String,
    /// Serve the task's shells and displays while it runs, and print the links of
    /// the two pages (shell.html, display.html) that open them in a browser.
    #[arg(long)]
    interactive: bool,
    /// Where `--interactive` serves (default: `[interactive] listen` of the config,
    /// else 127.0.0.1 on a free port).
    #[arg(long, value_name = "IP:PORT", requires = "interactive")]
    interactive_listen: Option<std::net::SocketAddr>,
}

/// The plan of `path`, a task definition or payload written for another worker,
/// through its front-end (its task file, retry codes and caches); each note is
/// printed.
fn read_foreign(path: &Path, format: &str) -> anyhow::Result<enginehost::worker::taskcluster::formats::Plan> {
    use enginehost::policy::PayloadFormat;
    use enginehost::worker::taskcluster::formats::Formats;
    use enginehost::worker::taskcluster::payload::TaskDefinition;
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("cannot read task file {}: {e}", path.display())))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| BadInput(format!("task file {} is not JSON: {e}", path.display())))?;
    // A definition has a payload object; anything else is the payload itself.
    let mut definition = match value.get("payload") {
        Some(p) if p.is_object() => value.clone(),
        _ => serde_json::json!({"payload": value}),
    };
    if definition.get("expires").is_none() {
        definition["expires"] = serde_json::json!("9999-12-31T00:00:00.000Z");
    }
    let definition = TaskDefinition::read(&definition).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    let format = match format {
        "generic-worker" => PayloadFormat::GenericWorker,
        _ => PayloadFormat::DockerWorker,
    };
    let root_url = std::env::var("TASKCLUSTER_ROOT_URL").unwrap_or_default();
    let plan = Formats::local(format, &root_url)
        .plan("local-task", 0, &definition)
        .map_err(|problems| {
            BadInput(format!(
                "task file {} is not a valid {} task:\n  {}",
                path.display(),
                format.as_str(),
                problems.join("\n  ")
            ))
        })?;
    plan.notes.iter().for_each(|n| eprintln!("note: {n}"));
    Ok(plan)
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
    let (task, retry_codes, caches) = match args.payload_format.as_str() {
        "enginehost" => (read_task(&args.task)?, Vec::new(), Vec::new()),
        format => {
            let plan = read_foreign(&args.task, format)?;
            if let Some((i, artifact)) = plan.private_mounts.first() {
                return Err(BadInput(format!(
                    "task.payload.mounts[{i}]: {} is a private artifact: only `enginehost worker` mounts those (it \
                     signs their URLs with the run's credentials); remove the mount to run the task here",
                    artifact.name
                ))
                .into());
            }
            (plan.task, plan.retry_exit_codes, plan.caches)
        }
    };
    if task.features.taskcluster_proxy {
        return Err(BadInput(
            "features.taskclusterProxy: only `enginehost worker` gives a task its Taskcluster proxy (it signs the \
             task's calls with the run's credentials); remove it to run the task here"
                .into(),
        )
        .into());
    }
    let config = super::operator_config(args.config.as_deref())?;
    let catalog = Catalog::scan_with(args.plugins.plugins.as_deref(), &Trust::of(&config.host)?)?;
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

    let interactive = match args.interactive {
        true => {
            let mut settings = config
                .interactive
                .clone()
                .unwrap_or(enginehost::policy::InteractiveSettings {
                    listen: ([127, 0, 0, 1], 0).into(),
                    public_url: None,
                    expires: std::time::Duration::from_secs(24 * 3600),
                    max_connections: 8,
                });
            if let Some(listen) = args.interactive_listen {
                settings.listen = listen;
            }
            let server = InteractiveServer::start(&settings).await?;
            let session = server.session()?;
            eprintln!("interactive: while the task runs, open");
            eprintln!("  its shell:    {}", session.shell_url);
            eprintln!("  its displays: {}", session.display_url);
            Some((server, session))
        }
        false => {
            if task.features.interactive {
                eprintln!(
                    "note: the task asks to be interactive (features.interactive); pass --interactive to serve it"
                );
            }
            None
        }
    };
    // A worker keeps caches across tasks; one task here gets new ones, deleted after.
    let held = match caches.is_empty() {
        true => None,
        false => {
            let names: Vec<&str> = caches.iter().map(|(n, _)| n.as_str()).collect();
            eprintln!(
                "note: the caches {} are new for this task and deleted after it",
                names.join(", ")
            );
            let caches_here = std::sync::Arc::new(enginehost::worker::caches::Caches::default());
            Some(
                caches_here
                    .take(engine.as_ref(), &task.engine, &caches)
                    .await
                    .map_err(|e| {
                        let detail = e.detail().map(|d| format!(" ({d})")).unwrap_or_default();
                        anyhow::anyhow!("creating the task's caches: {e}{detail}")
                    })?,
            )
        }
    };
    let limits = super::task_limits(&config.limits_for(&task.engine));
    let report = execute_with(
        engine.as_ref(),
        &task,
        &log,
        &args.artifacts,
        &cancel,
        &limits,
        &Extras {
            interactive: interactive.as_ref().map(|(_, session)| session),
            volumes: held.as_ref().map(|h| h.mounts()).unwrap_or_default(),
            ..Default::default()
        },
    )
    .await;
    if let Some(held) = held {
        held.release(true).await;
    }
    drop(interactive);
    let outcome = report.outcome;
    let _ = live.await;
    match &outcome {
        Outcome::Success => eprintln!("task succeeded"),
        Outcome::Failure => match report.exit_code.filter(|c| retry_codes.contains(c)) {
            Some(code) => eprintln!(
                "task failed with exit code {code}, which onExitStatus.retry lists: a worker resolves it as \
                 intermittent-task"
            ),
            None => eprintln!("task failed"),
        },
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
