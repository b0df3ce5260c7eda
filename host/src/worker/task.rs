//! The task file and the seed's per-task stages (docs/engine-contract.md §1.2).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::artifacts::{self, ArtifactError, ArtifactLimits, ArtifactSpec};
use super::interactive::Session;
use crate::contract::{Engine, EngineError, ProxyHandler, Sandbox, TaskContext, TaskInfo, TaskLog, Volume};

/// A task as `enginehost run` reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskFile {
    /// The engine's name.
    pub engine: String,
    /// The engine's payload (`task.payload`).
    #[serde(default = "empty_object")]
    pub payload: Value,
    /// Environment variables for the task.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Seconds before the task is killed; none = no limit.
    #[serde(default)]
    pub max_run_time: Option<u64>,
    /// What to extract after the task.
    #[serde(default)]
    pub artifacts: Vec<ArtifactSpec>,
    /// The task id (default: `local-task`).
    #[serde(default)]
    pub task_id: Option<String>,
    /// The scopes the task has.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// What the task asks of the worker beyond its engine.
    #[serde(default)]
    pub features: Features,
    /// The run id (0 for a task file; the claim's for a worker).
    #[serde(skip)]
    pub run_id: u32,
}

/// `features`: what a task asks of the worker (the seed's key shape).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    /// A person may open the task's shells and displays while it runs
    /// (docs/interactive.md); the worker must have `[interactive]`.
    #[serde(default)]
    pub interactive: bool,
    /// The task calls the Taskcluster API through `http://taskcluster/` with its
    /// run's credentials (a worker only; the engine must offer proxies).
    #[serde(default, rename = "taskclusterProxy")]
    pub taskcluster_proxy: bool,
}

/// What a worker adds to a task beyond its task file.
#[derive(Default)]
pub struct Extras<'a> {
    /// The task's interactive session (its links reach the sandbox while it runs).
    pub interactive: Option<&'a Session>,
    /// Proxies attached to the sandbox, by name.
    pub proxies: Vec<(String, Arc<dyn ProxyHandler>)>,
    /// Writable volumes mounted in the sandbox (caches), by mountpoint.
    pub volumes: Vec<(String, Arc<dyn Volume>)>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The task succeeded.
    Success,
    /// The task failed (its own fault, or killed).
    Failure,
    /// The payload or task file is not acceptable; each message was logged.
    Malformed(Vec<String>),
    /// The engine or plugin failed; the detail was logged.
    InternalError(String),
    /// The engine failed and says the worker must stop (fatal-internal-error); the
    /// detail was logged.
    FatalInternalError(String),
    /// Cancelled (Ctrl-C): the sandbox was aborted.
    Cancelled,
}

impl Outcome {
    /// The process exit status: 0 success, 1 failure, 2 malformed payload,
    /// 3 internal error, 130 cancelled.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Success => 0,
            Outcome::Failure => 1,
            Outcome::Malformed(_) => 2,
            Outcome::InternalError(_) | Outcome::FatalInternalError(_) => 3,
            Outcome::Cancelled => 130,
        }
    }
}

/// Logs and classifies an engine error (seed taskrun's stage errors).
fn fail(ctx: &TaskContext, stage: &str, error: EngineError) -> Outcome {
    let log = ctx.log();
    match error {
        EngineError::MalformedPayload(messages) => {
            messages.iter().for_each(|m| log.log_error(m));
            Outcome::Malformed(messages)
        }
        EngineError::FeatureNotSupported => {
            let m = format!("{stage}: the engine does not support what this task asks for ({error})");
            log.log_error(&m);
            Outcome::Malformed(vec![m])
        }
        EngineError::SandboxAborted => Outcome::Cancelled,
        EngineError::FatalInternalError(detail) => {
            let detail = if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            };
            let m = format!("{stage}: {}{detail}", EngineError::FatalInternalError(String::new()));
            log.log_error(&m);
            Outcome::FatalInternalError(m)
        }
        other => {
            let detail = other.detail().map(|d| format!(" ({d})")).unwrap_or_default();
            let m = format!("{stage}: {other}{detail}");
            log.log_error(&m);
            Outcome::InternalError(m)
        }
    }
}

/// What bounds one task on the worker's side (`[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskLimits {
    /// After maxRunTime's kill, and again after the abort that follows, how long
    /// the engine gets to end the task before it is stopped.
    pub kill_grace: Duration,
    /// Bytes of the task log.
    pub log_size: u64,
    /// Bounds on the artifacts.
    pub artifacts: ArtifactLimits,
}

impl Default for TaskLimits {
    fn default() -> Self {
        TaskLimits {
            kill_grace: Duration::from_secs(30),
            log_size: 1 << 30,
            artifacts: ArtifactLimits::default(),
        }
    }
}

/// What became of one artifact of the task file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactStatus {
    /// Extracted under the artifacts directory.
    Extracted,
    /// Not in the sandbox; the message (also in the task log) says what was missing.
    Missing(String),
    /// Beyond a size or count limit; nothing of it was kept.
    TooLarge(String),
    /// Could not be written or read; nothing of it was kept.
    Failed(String),
}

/// How a task ended, and what became of each artifact the stages reached (none when
/// the task ended before its artifacts).
#[derive(Debug, Clone)]
pub struct TaskReport {
    /// How the task ended.
    pub outcome: Outcome,
    /// Each artifact of the task file that extraction was tried for, in order.
    pub artifacts: Vec<(ArtifactSpec, ArtifactStatus)>,
    /// What the task cost its engine (`None`: the engine accounts nothing).
    pub usage: Option<crate::contract::UsageReport>,
    /// The exit code the engine recorded (contract 0.1.3), if it did.
    pub exit_code: Option<i32>,
}

/// Runs `task` on `engine`, writing the task log to `log` (closed on return) and
/// artifacts under `artifacts_dir`, within `limits`. `cancel` aborts the sandbox.
pub async fn run_task(
    engine: &dyn Engine,
    task: &TaskFile,
    log: &TaskLog,
    artifacts_dir: &Path,
    cancel: &CancellationToken,
    limits: &TaskLimits,
) -> Outcome {
    execute(engine, task, log, artifacts_dir, cancel, limits).await.outcome
}

/// [`run_task`], also reporting each artifact's fate (what a worker uploads, and the
/// error artifacts it makes for the others). `enginehost run` and `enginehost worker`
/// both run tasks through here.
pub async fn execute(
    engine: &dyn Engine,
    task: &TaskFile,
    log: &TaskLog,
    artifacts_dir: &Path,
    cancel: &CancellationToken,
    limits: &TaskLimits,
) -> TaskReport {
    execute_with(engine, task, log, artifacts_dir, cancel, limits, &Extras::default()).await
}

/// [`execute`], with what a worker adds: the task's sandbox reachable through
/// `extras.interactive` while it runs (the session ends when the task does), and
/// `extras.proxies` attached to it.
pub async fn execute_with(
    engine: &dyn Engine,
    task: &TaskFile,
    log: &TaskLog,
    artifacts_dir: &Path,
    cancel: &CancellationToken,
    limits: &TaskLimits,
    extras: &Extras<'_>,
) -> TaskReport {
    let interactive = extras.interactive;
    let info = TaskInfo {
        task_id: task.task_id.clone().unwrap_or_else(|| "local-task".into()),
        run_id: task.run_id,
        scopes: task.scopes.clone(),
    };
    log.set_limit(limits.log_size);
    let ctx = TaskContext::new(info, log.clone());
    let mut artifacts = Vec::new();
    let run = Stages {
        engine,
        task,
        ctx: &ctx,
        artifacts_dir,
        cancel,
        limits,
        interactive,
        proxies: &extras.proxies,
        volumes: &extras.volumes,
    };
    let outcome = stages(run, &mut artifacts).await;
    if let Some(session) = interactive {
        session.end();
    }
    // The task's objects are gone: what it cost is final. The log's last line.
    let usage = ctx.usage().report();
    if let Some(usage) = &usage {
        log.log(&usage.to_string());
        crate::contract::metrics::Metrics::global().task_usage(usage);
    }
    log.close();
    TaskReport {
        outcome,
        artifacts,
        usage,
        exit_code: ctx.exit_code(),
    }
}

/// Problems with the names of `env`: a name that cannot be an environment variable
/// (empty, or containing `=` or NUL) is the payload's fault, found before any engine
/// sees it.
pub fn env_name_problems(env: &BTreeMap<String, String>) -> Vec<String> {
    env.keys()
        .filter(|name| name.is_empty() || name.contains(['=', '\0']))
        .map(|name| {
            format!(
                "task.env: {name:?} cannot be an environment variable name: a name must be non-empty and contain \
                 neither '=' nor NUL"
            )
        })
        .collect()
}

/// What the stages of one task work with.
#[derive(Clone, Copy)]
struct Stages<'a> {
    engine: &'a dyn Engine,
    task: &'a TaskFile,
    ctx: &'a TaskContext,
    artifacts_dir: &'a Path,
    cancel: &'a CancellationToken,
    limits: &'a TaskLimits,
    interactive: Option<&'a Session>,
    proxies: &'a [(String, Arc<dyn ProxyHandler>)],
    volumes: &'a [(String, Arc<dyn Volume>)],
}

async fn stages(stages: Stages<'_>, statuses: &mut Vec<(ArtifactSpec, ArtifactStatus)>) -> Outcome {
    let Stages {
        engine,
        task,
        ctx,
        artifacts_dir,
        cancel,
        limits,
        interactive,
        proxies,
        volumes,
    } = stages;
    // The env names, before any engine sees them.
    let problems = env_name_problems(&task.env);
    if !problems.is_empty() {
        return fail(ctx, "checking task.env", EngineError::MalformedPayload(problems));
    }
    // prepare: validate against the engine's schema, give it only its keys.
    let schema = engine.payload_validator();
    if let Err(messages) = schema.validate(&task.payload, "task.payload") {
        return fail(ctx, "validating the payload", EngineError::MalformedPayload(messages));
    }
    let payload = schema.filter(&task.payload);
    let builder = match engine.new_sandbox_builder(ctx.clone(), payload).await {
        Ok(b) => b,
        Err(e) => return fail(ctx, "creating the sandbox builder", e),
    };

    // build
    // A build call's error: what the engine does not support is the payload's fault.
    let unsupported = |result: Result<(), EngineError>, why: &dyn Fn() -> String| match result {
        Ok(()) => None,
        Err(EngineError::FeatureNotSupported | EngineError::MutableMountNotSupported) => {
            Some(EngineError::malformed(why()))
        }
        Err(e) => Some(e),
    };
    for (name, value) in &task.env {
        let error = match builder.set_environment_variable(name, value).await {
            Err(EngineError::NamingConflict) => Some(EngineError::malformed(format!(
                "Environment variable {name} has already been set."
            ))),
            result => unsupported(result, &|| {
                format!(
                    "task.env: the {} engine does not support environment variables, but {name} is set",
                    engine.name()
                )
            }),
        };
        if let Some(error) = error {
            let _ = builder.discard().await;
            return fail(ctx, "setting environment variables", error);
        }
    }
    for (mountpoint, volume) in volumes {
        let result = builder.attach_volume(mountpoint, volume.as_ref(), false).await;
        if let Some(error) = unsupported(result, &|| {
            format!(
                "task.payload.cache: the {} engine cannot mount a writable cache (at {mountpoint})",
                engine.name()
            )
        }) {
            let _ = builder.discard().await;
            return fail(ctx, "mounting the task's caches", error);
        }
    }
    for (name, handler) in proxies {
        let result = builder.attach_proxy(name, handler.clone()).await;
        if let Some(error) = unsupported(result, &|| {
            format!(
                "task.payload.features.taskclusterProxy: the {} engine offers its tasks no proxies; run the task on \
                 an engine that does (docker, qemu)",
                engine.name()
            )
        }) {
            let _ = builder.discard().await;
            return fail(ctx, "attaching the Taskcluster proxy", error);
        }
    }

    // start (the builder is spent either way)
    let started = builder.start().await;
    drop(builder);
    let sandbox = match started {
        Ok(s) => s,
        Err(e) => return fail(ctx, "starting the sandbox", e),
    };

    // waiting (and interactive while it runs: its links end with the wait)
    if let Some(session) = interactive {
        session.attach(sandbox.clone());
    }
    let waited = wait(sandbox.as_ref(), ctx, task.max_run_time, cancel, limits.kill_grace).await;
    if let Some(session) = interactive {
        session.end();
    }
    let result = match waited {
        Ok(r) => r,
        // Aborted because maxRunTime's kill was ignored, not by a cancel: failed.
        Err(EngineError::SandboxAborted) if !cancel.is_cancelled() => return Outcome::Failure,
        Err(e) => return fail(ctx, "waiting for the result", e),
    };
    let mut success = result.success();

    // stopped: artifacts
    let budget = artifacts::Budget::new(limits.artifacts);
    for spec in &task.artifacts {
        let status = match artifacts::extract(result.as_ref(), spec, artifacts_dir, &budget).await {
            Ok(()) => ArtifactStatus::Extracted,
            Err(ArtifactError::Engine(EngineError::ResourceNotFound)) if spec.optional => {
                let m = format!("artifact '{}': {} was not found (optional)", spec.name, spec.path);
                ctx.log().log(&m);
                ArtifactStatus::Missing(m)
            }
            Err(ArtifactError::Engine(EngineError::ResourceNotFound)) => {
                let m = format!("artifact '{}': {} was not found in the sandbox", spec.name, spec.path);
                ctx.log().log_error(&m);
                success = false;
                ArtifactStatus::Missing(m)
            }
            Err(ArtifactError::Engine(e)) => {
                let _ = result.dispose().await;
                return fail(ctx, &format!("extracting artifact '{}'", spec.name), e);
            }
            Err(ArtifactError::BadName(e)) => {
                let _ = result.dispose().await;
                return fail(
                    ctx,
                    "reading the task file",
                    EngineError::malformed(format!("artifacts[].name: {e}")),
                );
            }
            Err(ArtifactError::Io(e)) => {
                let m = format!("artifact '{}': {e}", spec.name);
                ctx.log().log_error(&m);
                success = false;
                ArtifactStatus::Failed(m)
            }
            Err(ArtifactError::TooLarge(e)) => {
                let m = format!("artifact '{}': {e}", spec.name);
                ctx.log().log_error(&m);
                success = false;
                ArtifactStatus::TooLarge(m)
            }
            Err(ArtifactError::Stalled(reason)) => {
                return fail(
                    ctx,
                    &format!("extracting artifact '{}'", spec.name),
                    EngineError::PluginFailed {
                        plugin: engine.name().to_string(),
                        reason,
                    },
                );
            }
        };
        if status != ArtifactStatus::Extracted {
            // Nothing of a failed artifact is kept: the worker uploads an error instead.
            if let Ok(path) = artifacts::confined(artifacts_dir, &spec.name) {
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
        }
        statuses.push((spec.clone(), status));
    }

    // dispose
    if let Err(e) = result.dispose().await {
        return fail(ctx, "disposing the result set", e);
    }
    if success { Outcome::Success } else { Outcome::Failure }
}

/// Waits for the result. At maxRunTime: kill; when the engine has not ended the
/// task `grace` later, abort; `grace` after that, stop the engine itself (its
/// pending wait then fails). Cancellation (Ctrl-C) starts at abort. Nothing an
/// engine does can make this wait forever once a deadline or a cancel comes.
async fn wait(
    sandbox: &dyn Sandbox,
    ctx: &TaskContext,
    max_run_time: Option<u64>,
    cancel: &CancellationToken,
    grace: Duration,
) -> Result<std::sync::Arc<dyn crate::contract::ResultSet>, EngineError> {
    #[derive(PartialEq, PartialOrd)]
    enum Step {
        Running,
        Killed,
        Aborted,
        Terminated,
    }
    let waiting = sandbox.wait_for_result();
    tokio::pin!(waiting);
    let far = tokio::time::Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let mut next = match max_run_time {
        Some(secs) => tokio::time::Instant::now() + Duration::from_secs(secs),
        None => far,
    };
    let mut step = Step::Running;
    loop {
        tokio::select! {
            result = &mut waiting => return result,
            () = tokio::time::sleep_until(next) => match step {
                Step::Running => {
                    step = Step::Killed;
                    ctx.log().log_error("Task killed because maxRunTime was exceeded");
                    if let Err(e) = sandbox.kill().await
                        && !matches!(e, EngineError::SandboxTerminated)
                    {
                        ctx.log().log_error(&format!("killing the sandbox: {e}"));
                    }
                    next = tokio::time::Instant::now() + grace;
                }
                Step::Killed => {
                    step = Step::Aborted;
                    ctx.log().log_error(&format!(
                        "the engine did not end the task within {grace:?} of the kill (limits.kill-grace); aborting it"
                    ));
                    let _ = sandbox.abort().await;
                    next = tokio::time::Instant::now() + grace;
                }
                _ => {
                    step = Step::Terminated;
                    let reason = format!(
                        "it did not end a task within {grace:?} of kill and abort (limits.kill-grace); its instance was stopped"
                    );
                    ctx.log().log_error(&format!("the engine {reason}"));
                    sandbox.terminate(&reason).await;
                    next = far;
                }
            },
            () = cancel.cancelled(), if step < Step::Aborted => {
                step = Step::Aborted;
                ctx.cancel();
                ctx.log().log_error("Task cancelled: the sandbox is being aborted");
                // On sandbox-terminated the task ended first: keep waiting for its result.
                let _ = sandbox.abort().await;
                next = tokio::time::Instant::now() + grace;
            }
        }
    }
}
