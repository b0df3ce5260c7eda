//! `enginehost worker --config FILE`: a long-running Taskcluster worker
//! (docs/worker.md). Reads and checks the config, checks the deployment and the
//! credentials, starts each engine once, then claims and runs tasks until SIGTERM or
//! SIGINT (or an engine's stop-now). Operator logs go to stderr (`ENGINEHOST_LOG`,
//! default `info` here).
//!
//! `enginehost worker run --config FILE --with-worker-runner` is the command line
//! worker-runner uses for generic-worker: FILE is the JSON config it wrote
//! ([`OperatorConfig::from_worker_runner`]), and stdin/stdout speak its protocol
//! (`worker::taskcluster::runner`).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use enginehost::contract::{Engine, WorkerControl};
use enginehost::plugin::{Catalog, Trust};
use enginehost::policy::{CredentialSource, OperatorConfig, ShutdownMode, WorkerSettings};
use enginehost::runtime::{Runtime, WasmEngine};
use enginehost::worker::taskcluster::runner::Runner;
use enginehost::worker::taskcluster::{Deployment, Engines, Stopped, Worker, WorkerIdentity, WorkerOptions};
use taskcluster::Credentials;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::PluginsArgs;

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// `run` (optional): worker-runner's spelling, `<path> run --config FILE
    /// --with-worker-runner`.
    #[arg(value_parser = ["run"], hide = true)]
    verb: Option<String>,
    /// The operator config (TOML) with a `[worker]` table: the deployment, the task
    /// queue, the credentials, the capacity and the engines served; `[engines.NAME]`,
    /// `[plugins.NAME.*]`, `[limits]` and `[host]` as for `run`
    /// (examples/worker-taskcluster.toml). With `--with-worker-runner`: the JSON
    /// config worker-runner wrote (docs/worker.md).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Started by worker-runner: read its JSON config, speak its protocol on
    /// stdin/stdout (docs/worker.md "Deploying with worker-manager").
    #[arg(long)]
    pub(super) with_worker_runner: bool,
    /// Overrides `[worker] plugins`.
    #[command(flatten)]
    plugins: PluginsArgs,
}

/// The worker's own credentials, as `[worker] credentials` says.
fn credentials(source: &CredentialSource) -> anyhow::Result<Credentials> {
    match source {
        CredentialSource::Environment => Credentials::from_env()
            // The error's outer context is the variable's name.
            .map_err(|e| anyhow::anyhow!("[worker] credentials = \"env\", but {e} is not set (or not text)")),
        CredentialSource::Static {
            client_id,
            access_token,
            certificate,
        } => Ok(Credentials {
            client_id: client_id.clone(),
            access_token: access_token.clone(),
            certificate: certificate.clone(),
        }),
    }
}

/// Warns when a config holding an access token can be read by others.
fn warn_if_readable(path: &Path, settings: &WorkerSettings) {
    if !matches!(settings.credentials, CredentialSource::Static { .. }) {
        return;
    }
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                config = %path.display(),
                "the config holds an access token and other users may read it (mode {:o}); chmod 600 it, or use \
                 credentials = \"env\"",
                mode & 0o777
            );
        }
    }
}

/// SIGTERM and SIGINT: the first stops claiming (and aborts the running tasks when
/// `[worker] shutdown = "abort"`), a second aborts them.
fn install_signals(mode: ShutdownMode, stop: CancellationToken, abort: CancellationToken) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let name = tokio::select! {
                Some(()) = term.recv() => "SIGTERM",
                Some(()) = int.recv() => "SIGINT",
                else => return,
            };
            seen += 1;
            match (seen, mode) {
                (1, ShutdownMode::Abort) => {
                    tracing::info!(
                        "{name}: no more claims; aborting the running tasks (each resolves as exception worker-shutdown)"
                    );
                    stop.cancel();
                    abort.cancel();
                }
                (1, ShutdownMode::Finish) => {
                    tracing::info!("{name}: no more claims; the running tasks finish (another signal aborts them)");
                    stop.cancel();
                }
                _ => {
                    tracing::info!("{name} again: aborting the running tasks");
                    abort.cancel();
                }
            }
        }
    });
    Ok(())
}

/// worker-runner's JSON config.
fn load_runner_config(path: &Path) -> anyhow::Result<OperatorConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    OperatorConfig::from_worker_runner(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<i32> {
    let result = serve_config(&args).await;
    if let (Some(runner), Err(e)) = (Runner::global(), &result) {
        runner.error_report("the worker stopped", &format!("{e:#}"));
    }
    result
}

async fn serve_config(args: &WorkerArgs) -> anyhow::Result<i32> {
    let config = if args.with_worker_runner {
        load_runner_config(&args.config)?
    } else {
        OperatorConfig::load(&args.config)?
    };
    let Some(settings) = config.worker.clone() else {
        anyhow::bail!(
            "config {}: there is no [worker] table; a worker needs root-url, task-queue-id, worker-group, worker-id, \
             credentials and engines (examples/worker-taskcluster.toml, docs/worker.md)",
            args.config.display()
        );
    };
    // From here on, SIGTERM and SIGINT stop the worker cleanly.
    let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
    install_signals(settings.shutdown, stop.clone(), abort.clone())?;
    warn_if_readable(&args.config, &settings);
    let credentials = credentials(&settings.credentials)?;
    let (new_credentials, credentials_rx) = tokio::sync::watch::channel(credentials.clone());
    let runner = args
        .with_worker_runner
        .then(|| Runner::start(stop.clone(), abort.clone(), new_credentials));
    let identity = WorkerIdentity {
        task_queue_id: settings.task_queue_id.clone(),
        worker_group: settings.worker_group.clone(),
        worker_id: settings.worker_id.clone(),
    };
    Deployment::new(&settings.root_url)
        .check(&credentials, &identity)
        .await?;
    tracing::info!(root_url = %settings.root_url, client_id = %credentials.client_id, "the deployment accepts the worker's credentials");

    let plugin_dir = args.plugins.plugins.clone().or_else(|| settings.plugins.clone());
    let catalog = Catalog::scan_with(plugin_dir.as_deref(), &Trust::of(&config.host)?)?;
    let host = args.plugins.host_settings(&config);
    let work_dir = host.work_dir.clone().unwrap_or_else(enginehost::caps::default_work_dir);
    let runtime = Runtime::with_host(host)?;
    let control = WorkerControl::new();
    let mut started: Vec<Arc<WasmEngine>> = Vec::new();
    let result = serve(
        &runtime,
        &catalog,
        &config,
        settings,
        credentials_rx,
        control,
        work_dir,
        (stop, abort),
        plugin_dir,
        &mut started,
    )
    .await;
    for engine in started {
        if let Err(e) = engine.dispose().await {
            tracing::warn!(engine = engine.name(), "disposing the engine: {e}");
        }
    }
    // Task users, sandbox directories and cgroups are gone when `worker` returns.
    runtime.shutdown().await;
    match result? {
        Stopped::Signal => Ok(0),
        Stopped::StopNow => {
            // An engine asked for the worker to go: worker-runner retires it.
            if let Some(runner) = &runner {
                runner.shutdown();
            }
            Ok(0)
        }
        Stopped::Fatal => {
            let why = "an engine reported a fatal internal error; the worker stopped (see the log above)";
            if let Some(runner) = &runner {
                runner.error_report("fatal engine error", why);
            }
            eprintln!("error: {why}");
            Ok(3)
        }
    }
}

/// That the engine a payload format maps its tasks onto takes what the format gives
/// it (native's `commands`, docker's `image`): else the worker would refuse every
/// task at run time.
fn check_format_engine(settings: &WorkerSettings, name: &str, schema: &serde_json::Value) -> anyhow::Result<()> {
    let needs = |key: &Option<String>, field: &str, setting: &str| {
        if key.as_deref() != Some(name) || schema.pointer(&format!("/properties/{field}")).is_some() {
            return Ok(());
        }
        anyhow::bail!(
            "[worker] {setting}: engine '{name}' does not take a payload with {field:?}, which payload-format = \
             {:?} gives it; name an engine of that kind in {setting}",
            settings.payload_format.as_str()
        )
    };
    use enginehost::policy::PayloadFormat;
    if settings.payload_format == PayloadFormat::GenericWorker {
        needs(&settings.native_engine, "commands", "native-engine")?;
    }
    if settings.payload_format != PayloadFormat::Enginehost {
        needs(&settings.docker_engine, "image", "docker-engine")?;
    }
    Ok(())
}

/// The chain-of-trust key (`[worker] chain-of-trust-key`), and the engines whose
/// tasks may run as the worker's own user, who can read it: their tasks cannot ask
/// for a chain of trust.
fn chain_of_trust(
    settings: &WorkerSettings,
    config: &OperatorConfig,
) -> anyhow::Result<Option<enginehost::worker::taskcluster::formats::ChainOfTrust>> {
    use enginehost::policy::RunAs;
    let Some(path) = &settings.chain_of_trust_key else {
        return Ok(None);
    };
    let signer = enginehost::worker::taskcluster::cot::Signer::read(path)
        .map_err(|e| anyhow::anyhow!("[worker] chain-of-trust-key: {e}"))?;
    tracing::info!(public_key = %signer.public_key(), "chain of trust: signing with this key");
    let unsafe_engines = settings
        .engines
        .iter()
        .filter(|name| {
            config
                .grants(name)
                .process
                .is_some_and(|p| p.run_as.contains(&RunAs::Worker))
        })
        .map(|name| {
            (
                name.clone(),
                format!(
                    "engine '{name}' may run task processes as the worker's own user ([plugins.{name}.process] \
                     run-as has \"worker\"), who can read the signing key; this worker signs no chain of trust for \
                     its tasks"
                ),
            )
        })
        .collect();
    Ok(Some(enginehost::worker::taskcluster::formats::ChainOfTrust {
        signer: Arc::new(signer),
        unsafe_engines,
    }))
}

/// Starts the engines (into `started`, for the caller to dispose) and runs the worker.
#[allow(clippy::too_many_arguments)]
async fn serve(
    runtime: &Runtime,
    catalog: &Catalog,
    config: &OperatorConfig,
    settings: WorkerSettings,
    credentials: tokio::sync::watch::Receiver<Credentials>,
    control: Arc<WorkerControl>,
    work_dir: PathBuf,
    (stop, abort): (CancellationToken, CancellationToken),
    plugin_dir: Option<PathBuf>,
    started: &mut Vec<Arc<WasmEngine>>,
) -> anyhow::Result<Stopped> {
    let chain_of_trust = chain_of_trust(&settings, config)?;
    let mut engines = Engines::new(settings.default_engine.clone());
    for name in &settings.engines {
        // A config mistake (exit status 3), even when `run` would call it bad input.
        let engine = super::start_engine(runtime, catalog, name, config, control.clone())
            .await
            .map_err(|e| anyhow::anyhow!("[worker] engines: engine '{name}': {e:#}"))?;
        started.push(engine.clone());
        check_format_engine(&settings, name, &engine.payload_schema())?;
        engines.add(name, engine, super::task_limits(&config.limits_for(name)));
        tracing::info!(engine = %name, "engine started");
    }
    let engines = Arc::new(engines);
    let reload = Reload {
        runtime,
        config,
        settings: settings.clone(),
        engines: engines.clone(),
        control: control.clone(),
    };
    let options = WorkerOptions {
        chain_of_trust,
        interactive: config.interactive.clone(),
        settings,
        credentials,
        engines,
        control,
        work_dir,
    };
    let worker = Worker::start(options, abort).await?;
    match plugin_dir.filter(|d| d.is_dir()) {
        None => worker.run(stop).await,
        Some(dir) => tokio::select! {
            stopped = worker.run(stop) => stopped,
            never = reload.watch(dir, started) => match never {},
        },
    }
}

/// Hot reload of the plugin directory: when the file of an engine the worker
/// serves changes and the new one passes what a start checks (the lock, the
/// signature rules, metadata, the engine's start, the payload format), new tasks
/// go to an engine started from it; the tasks that started on the old one finish
/// there, and it is disposed once none is left. A rejected file is logged and
/// changes nothing.
struct Reload<'a> {
    runtime: &'a Runtime,
    config: &'a OperatorConfig,
    settings: WorkerSettings,
    engines: Arc<Engines>,
    control: Arc<WorkerControl>,
}

impl Reload<'_> {
    /// Watches `dir` until dropped (the worker stopped). Engines it starts go into
    /// `started` (disposed by the caller at the end); a replaced one leaves
    /// `started` when it is disposed here.
    async fn watch(&self, dir: PathBuf, started: &mut Vec<Arc<WasmEngine>>) -> std::convert::Infallible {
        use notify::Watcher as _;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.send(());
            }
        })
        .and_then(|mut w| w.watch(&dir, notify::RecursiveMode::NonRecursive).map(|()| w));
        let _watcher = match watcher {
            Ok(w) => {
                tracing::info!(dir = %dir.display(), "watching the plugin directory: a replaced plugin is reloaded");
                Some(w)
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "cannot watch the plugin directory; plugins are not reloaded: {e}");
                None
            }
        };
        let mut retired: Vec<Arc<WasmEngine>> = Vec::new();
        // What changed between the start's scan and the watch.
        self.rescan(&dir, started, &mut retired).await;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                Some(()) = rx.recv() => {
                    tracing::debug!(dir = %dir.display(), "the plugin directory changed");
                    // A copy or an install is several events: let them settle.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    while rx.try_recv().is_ok() {}
                    self.rescan(&dir, started, &mut retired).await;
                }
                _ = tick.tick() => {}
            }
            // Retired engines whose last task ended: only `started` and `retired` hold them.
            let mut i = 0;
            while i < retired.len() {
                if Arc::strong_count(&retired[i]) > 2 {
                    i += 1;
                    continue;
                }
                let old = retired.swap_remove(i);
                started.retain(|e| !Arc::ptr_eq(e, &old));
                if let Err(e) = old.dispose().await {
                    tracing::warn!(engine = old.name(), "disposing the replaced engine: {e}");
                }
                tracing::info!(
                    engine = old.name(),
                    "the replaced engine's last task ended; it is disposed"
                );
            }
        }
    }

    /// Starts every served engine whose file changed, and retires what it replaces.
    async fn rescan(&self, dir: &Path, started: &mut Vec<Arc<WasmEngine>>, retired: &mut Vec<Arc<WasmEngine>>) {
        // The settings passed this at the worker's start.
        let Ok(trust) = Trust::of(&self.config.host) else {
            return;
        };
        let catalog = match Catalog::scan_with(Some(dir), &trust) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "reading the plugin directory: {e:#}; nothing changes");
                return;
            }
        };
        for (path, why) in catalog.rejected() {
            tracing::warn!(file = %path.display(), "plugin file refused, nothing changes for it: {why}");
        }
        for name in self.engines.names() {
            let Some(entry) = catalog.get(&name) else { continue };
            if !matches!(entry.origin, enginehost::plugin::Origin::File(_)) {
                continue;
            }
            let digest = enginehost::plugin::trust::sha256_hex(&entry.wasm);
            let running = self.engines.get(&name).and_then(|(e, _)| e.provenance());
            if running.is_some_and(|p| p.sha256 == digest) {
                continue;
            }
            let engine = match super::start_engine(self.runtime, &catalog, &name, self.config, self.control.clone())
                .await
                .and_then(|e| check_format_engine(&self.settings, &name, &e.payload_schema()).map(|()| e))
            {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(engine = %name, "the new plugin file does not start; the running engine stays: {e:#}");
                    continue;
                }
            };
            started.push(engine.clone());
            if let Some(old) = self.engines.replace(&name, engine.clone() as Arc<dyn Engine>)
                && let Some(old) = started
                    .iter()
                    .find(|e| std::ptr::addr_eq(Arc::as_ptr(e), Arc::as_ptr(&old)))
            {
                retired.push(old.clone());
            }
            tracing::info!(
                engine = %name,
                version = %entry.metadata.version,
                sha256 = %digest,
                "reloaded from the plugin directory: new tasks run on it, running tasks finish on the engine they started on"
            );
        }
    }
}
