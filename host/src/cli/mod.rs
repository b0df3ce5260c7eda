//! The `enginehost` command line: one file per subcommand. Errors become exit
//! statuses here: 2 for bad input (task file, engine name, payload), 3 for
//! everything else (operator config, plugins, internal errors).

mod bench;
mod install;
mod keygen;
mod new;
mod pack;
mod plugins;
mod push;
mod run;
mod sign;
mod test;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use enginehost::contract::WorkerControl;
use enginehost::plugin::{Catalog, Entry};
use enginehost::policy::OperatorConfig;
use enginehost::runtime::{EngineOptions, Runtime, WasmEngine};
use enginehost::worker::schema;

/// Runs CI tasks on engines shipped as WebAssembly components.
#[derive(Parser)]
#[command(name = "enginehost", version, about)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

impl Args {
    /// The log level when `ENGINEHOST_LOG` is not set: `info` for the worker (a
    /// service logs its claims, uploads and resolutions), else `warn`.
    pub fn default_log_level(&self) -> &'static str {
        match self.command {
            Command::Worker(_) => "info",
            _ => "warn",
        }
    }

    /// Whether this is `worker run --with-worker-runner` (stdout is the protocol's).
    pub fn with_worker_runner(&self) -> bool {
        matches!(&self.command, Command::Worker(w) if w.with_worker_runner)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Runs one task: validate, build, start, stream the log, wait, extract artifacts.
    /// Exit status: 0 success, 1 failure, 2 malformed payload or task file,
    /// 3 internal error, 130 cancelled (Ctrl-C).
    Run(run::RunArgs),
    /// Lists the engines available (built in and from the plugin directory), what
    /// each asks for and is granted, and the plugin files that were rejected, with
    /// the reason; `plugins lock` and `plugins diff` keep the directory reviewed.
    Plugins(plugins::PluginsArgs),
    /// Runs the conformance suite (every enginetest case) against an engine; one
    /// line per subtest, then `N passed, N failed, N skipped`. Exit status 1 when
    /// anything failed.
    Test(test::TestArgs),
    /// Scaffolds a new engine (a Rust crate, or Python with --lang python) that
    /// builds and passes `enginehost test` as is.
    New(new::NewArgs),
    /// Stamps the enginehost metadata and capabilities sections into a component
    /// built by any toolchain, checked as the host will read them.
    Pack(pack::PackArgs),
    /// Writes a new ed25519 key (for the chain of trust, `[worker] chain-of-trust-key`,
    /// and for `enginehost sign`) and prints its public key.
    Keygen(keygen::KeygenArgs),
    /// Installs a plugin file, or one pulled from an OCI registry, into the plugin
    /// directory, checked as a load checks it; an upgrade that requests more needs
    /// --accept-capabilities; writes its `plugins.lock` entry.
    Install(install::InstallArgs),
    /// Publishes a plugin file to an OCI registry (one application/wasm layer) and
    /// prints the pinned reference that `install` takes.
    Push(push::PushArgs),
    /// Signs a plugin file with an ed25519 key (`enginehost keygen`'s): a signature
    /// section over its bytes, which `[host] trusted-keys` and `require-signature` check.
    Sign(sign::SignArgs),
    /// Measures the host (throughput, load, lifecycle, concurrency, limits), one
    /// `name: value` line per figure; exit status 1 when a figure misses its target.
    Bench(bench::BenchArgs),
    /// Runs as a Taskcluster worker: claims tasks from the queue `[worker]` names,
    /// runs them on its engines, uploads logs and artifacts, resolves them; stops on
    /// SIGTERM/SIGINT. Exit status 0 after a clean stop, 3 when the config, the
    /// deployment or the credentials are wrong (docs/worker.md).
    Worker(worker::WorkerArgs),
}

/// Where plugins come from.
#[derive(clap::Args, Clone)]
pub struct PluginsArgs {
    /// Plugin directory: every `*.wasm` in it is a candidate engine [default:
    /// $ENGINEHOST_PLUGINS, else /var/lib/enginehost/plugins]
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// Compile every plugin afresh: neither read nor write the compile cache.
    #[arg(long)]
    no_cache: bool,
}

impl PluginsArgs {
    /// The host settings of `config`, with `--no-cache` applied.
    fn host_settings(&self, config: &OperatorConfig) -> enginehost::policy::HostSettings {
        let mut settings = config.host.clone();
        if self.no_cache {
            settings.compile_cache = Some(false);
        }
        settings
    }
}

/// Bad input from the user: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The engine `name` of `catalog`; an unknown name is bad input.
fn lookup<'c>(catalog: &'c Catalog, name: &str) -> Result<&'c Entry, BadInput> {
    catalog.get(name).ok_or_else(|| {
        BadInput(format!(
            "no engine named '{name}'; available engines: {}",
            catalog.names().join(", ")
        ))
    })
}

/// The worker's side of an engine's limits.
fn task_limits(l: &enginehost::policy::ResolvedLimits) -> enginehost::worker::TaskLimits {
    enginehost::worker::TaskLimits {
        kill_grace: l.kill_grace,
        log_size: l.log_size,
        artifacts: enginehost::worker::artifacts::ArtifactLimits {
            file_size: l.artifact_size,
            task_size: l.task_artifacts_size,
            files: l.artifact_files,
            stall: l.stall_timeout,
        },
    }
}

/// The operator config named by `--config`, or an empty one.
fn operator_config(path: Option<&std::path::Path>) -> anyhow::Result<OperatorConfig> {
    match path {
        Some(path) => Ok(OperatorConfig::load(path)?),
        None => Ok(OperatorConfig::default()),
    }
}

/// Compiles engine `name` and starts it with its config and grants from `config`
/// (its `[engines.NAME]` table must be valid against the engine's config schema).
async fn start_engine(
    runtime: &Runtime,
    catalog: &Catalog,
    name: &str,
    config: &OperatorConfig,
    worker: Arc<WorkerControl>,
) -> anyhow::Result<Arc<WasmEngine>> {
    lookup(catalog, name)?;
    let plugin = catalog.load(runtime, name)?;
    let engine_config = config.engine_config(name);
    let limits = config.limits_for(name);
    let config_schema = runtime.config_schema(&plugin, limits).await?;
    if let Err(messages) = schema::validate(&config_schema, &engine_config, &format!("engines.{name}")) {
        anyhow::bail!(
            "the config for engine '{name}' is not valid:\n  {}",
            messages.join("\n  ")
        );
    }
    let options = EngineOptions {
        config: engine_config,
        grants: config.grants(name),
        worker,
        limits,
    };
    runtime
        .start_engine(&plugin, options)
        .await
        .with_context(|| format!("starting engine '{name}'"))
}

/// Runs the command; returns the exit status.
pub async fn run(args: Args) -> i32 {
    let result = match args.command {
        Command::Run(a) => run::run(a).await,
        Command::Plugins(a) => plugins::run(a).await,
        Command::Test(a) => test::run(a).await,
        Command::New(a) => new::run(a),
        Command::Pack(a) => pack::run(a),
        Command::Keygen(a) => keygen::run(a),
        Command::Sign(a) => sign::run(a),
        Command::Install(a) => install::run(a).await,
        Command::Push(a) => push::run(a).await,
        Command::Bench(a) => bench::run(a).await,
        Command::Worker(a) => worker::run(a).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<BadInput>().is_some() { 2 } else { 3 }
        }
    }
}
