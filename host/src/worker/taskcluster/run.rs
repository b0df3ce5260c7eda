//! One claimed run, from claim to resolution:
//!
//! 1. a directory of its own (`<tasks>/<taskId>-<runId>`: the log, the artifacts),
//!    removed at the end whatever happens;
//! 2. the claim kept: reclaimed ahead of `takenUntil`, the credentials swapped; a 409
//!    means the run is no longer ours, so the task is aborted and nothing more is
//!    uploaded or reported;
//! 3. the live log served, with the `public/logs/live.log` reference;
//! 4. the task read (`malformed-payload` when it is not valid, explained in the log)
//!    and run through [`crate::worker::execute`], as `enginehost run` runs it;
//! 5. artifacts uploaded (error artifacts for the missing ones), then the log
//!    (`live_backing.log`, gzip) and `live.log` turned into a link to it;
//! 6. the resolution reported.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use taskcluster::chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::client::{CallError, Claim, Deployment, ExceptionReason, Resolution, RunClient, reclaim_delay, transient};
use super::cot;
use super::formats::{Formats, Plan};
use super::livelog::LiveLogServer;
use super::payload::{LogNames, TaskDefinition};
use super::upload::{ErrorReason, Uploader, content_type, files_of};
use super::{Engines, WorkerIdentity};
use crate::contract::TaskLog;
use crate::contract::metrics::{Metrics, ResolutionLabels};
use crate::policy::ArtifactStorage;
use crate::worker::artifacts::{ArtifactKind, ArtifactSpec};
use crate::worker::interactive::{InteractiveServer, Session};
use crate::worker::{ArtifactStatus, Extras, Outcome, execute_with};

/// What every run of one worker shares.
pub(super) struct Shared {
    pub deployment: Deployment,
    pub identity: WorkerIdentity,
    pub engines: Arc<Engines>,
    /// The payload format and the engines it maps tasks onto.
    pub formats: Formats,
    pub storage: ArtifactStorage,
    pub reclaim_margin: Duration,
    pub live_log: Option<LiveLogServer>,
    /// Serves the shells and displays of interactive tasks.
    pub interactive: Option<InteractiveServer>,
    /// Writable caches kept across tasks.
    pub caches: Arc<crate::worker::caches::Caches>,
    /// Where runs get their directories.
    pub tasks_dir: std::path::PathBuf,
    /// Cancelled to abort every running task (shutdown).
    pub abort: CancellationToken,
    /// For `s3` uploads.
    pub http: reqwest::Client,
}

/// How a run ended, as far as the worker loop cares.
#[derive(Debug, Default)]
pub(super) struct RunEnd {
    /// The engine reported a fatal internal error: the worker must stop.
    pub fatal: bool,
    /// The engine the task ran on (for the metrics; `none` if it did not run).
    pub engine: Option<String>,
}

const LOG_TYPE: &str = "text/plain; charset=utf-8";
/// How long a task waits, before it starts, for the queue to take its live log's
/// reference.
const LIVE_LOG_WAIT: Duration = Duration::from_secs(15);

/// Runs `claim` to its end; never fails (every failure is logged and, when the run
/// is still ours, reported).
pub(super) async fn run_claim(shared: Arc<Shared>, claim: Claim) -> RunEnd {
    let span = tracing::info_span!("run", task = %claim.task_id, run = claim.run_id);
    async move {
        tracing::info!(taken_until = %claim.taken_until, "claimed");
        let metrics = Metrics::global();
        metrics.tasks_running.inc();
        let started = std::time::Instant::now();
        let dir = shared.tasks_dir.join(format!("{}-{}", claim.task_id, claim.run_id));
        let end = match RunClient::new(&shared.deployment, &claim) {
            Ok(run) => one_run(&shared, Arc::new(run), &claim, &dir).await,
            Err(e) => {
                tracing::error!("cannot use the run's credentials: {e:#}; the claim will expire");
                RunEnd::default()
            }
        };
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), "removing the run's directory: {e}");
        }
        metrics.tasks_running.dec();
        let engine = Metrics::engine(end.engine.as_deref().unwrap_or("none"));
        metrics
            .task_duration
            .get_or_create(&engine)
            .observe(started.elapsed().as_secs_f64());
        end
    }
    .instrument(span)
    .await
}

/// Keeps the claim: reclaims ahead of `takenUntil` until `stop`. On a 409, or when
/// `takenUntil` passes without a reclaim, the claim is lost: `lost` and `task` are
/// cancelled.
async fn keep_claim(
    run: Arc<RunClient>,
    margin: Duration,
    lost: CancellationToken,
    task: CancellationToken,
    stop: CancellationToken,
) {
    let gone = |why: String| {
        tracing::warn!("the claim is lost ({why}): the task is aborted; nothing more is uploaded or reported");
        lost.cancel();
        task.cancel();
    };
    loop {
        let remaining = (run.taken_until() - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(reclaim_delay(remaining, margin)) => {}
        }
        let reclaimed = tokio::select! {
            () = stop.cancelled() => return,
            r = run.reclaim() => r,
        };
        match reclaimed {
            Ok(until) => tracing::debug!(taken_until = %until, "reclaimed; the run's credentials are swapped"),
            Err(CallError::Conflict(why)) => return gone(format!("reclaimTask: {why}")),
            Err(CallError::Other(e)) => {
                if run.taken_until() <= Utc::now() {
                    return gone(format!("no reclaim succeeded before takenUntil; the last: {e:#}"));
                }
                tracing::warn!("reclaimTask failed: {e:#}; trying again before takenUntil");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Appends a worker's line to the (closed) log file: what happened after the task,
/// in the log its author reads.
fn note(log: &Path, line: &str) {
    use std::io::Write;
    let appended = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = appended {
        tracing::warn!("writing to the task log: {e}");
    }
}

async fn one_run(shared: &Shared, run: Arc<RunClient>, claim: &Claim, dir: &Path) -> RunEnd {
    let (lost, task_cancel, keeper_stop) = (
        CancellationToken::new(),
        shared.abort.child_token(),
        CancellationToken::new(),
    );
    let keeper = tokio::spawn(
        keep_claim(
            run.clone(),
            shared.reclaim_margin,
            lost.clone(),
            task_cancel.clone(),
            keeper_stop.clone(),
        )
        .in_current_span(),
    );
    let (end, resolution) = claimed(shared, &run, claim, dir, &lost, &task_cancel).await;
    // The claim is kept through the uploads; a reclaim racing the report would only
    // get a 409 that means nothing.
    keeper_stop.cancel();
    let _ = keeper.await;
    if let Some(resolution) = resolution
        && resolve(&run, &lost, resolution).await
    {
        let labels = ResolutionLabels {
            engine: end.engine.clone().unwrap_or_else(|| "none".into()),
            resolution: resolution.to_string(),
        };
        Metrics::global().tasks_resolved.get_or_create(&labels).inc();
    }
    end
}

/// Reports `resolution`, unless the claim is lost; whether the queue took it.
async fn resolve(run: &RunClient, lost: &CancellationToken, resolution: Resolution) -> bool {
    if lost.is_cancelled() {
        return false;
    }
    match run.report(resolution).await {
        Ok(()) => {
            tracing::info!(%resolution, "resolved");
            true
        }
        Err(CallError::Conflict(why)) => {
            tracing::warn!(%resolution, "not resolved: the run is no longer this worker's ({why})");
            false
        }
        Err(CallError::Other(e)) => {
            tracing::error!(
                %resolution,
                "resolving the run failed: {e:#}; the queue will resolve it when the claim expires"
            );
            false
        }
    }
}

/// Everything but the report: the run's end, and its resolution (none when the claim
/// was lost).
async fn claimed(
    shared: &Shared,
    run: &Arc<RunClient>,
    claim: &Claim,
    dir: &Path,
    lost: &CancellationToken,
    task_cancel: &CancellationToken,
) -> (RunEnd, Option<Resolution>) {
    let definition = match TaskDefinition::read(&claim.task) {
        Ok(d) => d,
        Err(e) => {
            // Without the task's expiry nothing can be uploaded.
            tracing::error!("{e}");
            return (
                RunEnd::default(),
                Some(Resolution::Exception(ExceptionReason::MalformedPayload)),
            );
        }
    };
    let uploader = Uploader {
        run,
        storage: shared.storage,
        expires: definition.expires,
        http: &shared.http,
        gzip: false,
        scratch: dir,
    };
    let artifacts_dir = dir.join("artifacts");
    let log_path = dir.join("live_backing.log");
    let _ = std::fs::remove_dir_all(dir);
    let log = match std::fs::create_dir_all(&artifacts_dir).and_then(|()| TaskLog::create_at(&log_path)) {
        Ok(log) => log,
        Err(e) => {
            tracing::error!(dir = %dir.display(), "preparing the run's directory: {e}");
            return (
                RunEnd::default(),
                Some(Resolution::Exception(ExceptionReason::InternalError)),
            );
        }
    };

    // What the payload asks for, before anything is published: it names the logs.
    let plan = shared
        .formats
        .plan(&claim.task_id, claim.run_id, &definition)
        .and_then(|plan| sign_private_mounts(run, plan));
    let logs = plan.as_ref().map(|p| p.logs.clone()).unwrap_or_default();
    let notes = plan.as_ref().map(|p| p.notes.clone()).unwrap_or_default();
    let chain_of_trust = plan.as_ref().is_ok_and(|p| p.chain_of_trust);
    let retry_codes = plan.as_ref().map(|p| p.retry_exit_codes.clone()).unwrap_or_default();
    let caches = plan.as_ref().map(|p| p.caches.clone()).unwrap_or_default();
    let purge_codes = plan.as_ref().map(|p| p.purge_exit_codes.clone()).unwrap_or_default();

    // The live log, while the task runs.
    let published = match shared.live_log.as_ref().filter(|_| logs.live_enabled) {
        Some(server) => match server.publish(&log) {
            // The task does not wait long for the queue: without the reference the
            // log is only uploaded at the end.
            Ok(p) => match tokio::time::timeout(LIVE_LOG_WAIT, uploader.reference(&logs.live, &p.url, LOG_TYPE))
                .await
                .unwrap_or_else(|_| {
                    Err(CallError::Other(anyhow::anyhow!(
                        "the queue did not take it within {LIVE_LOG_WAIT:?}"
                    )))
                }) {
                Ok(()) => {
                    tracing::info!(url = %p.url, "live log");
                    Some(p)
                }
                Err(CallError::Conflict(why)) => {
                    tracing::warn!("creating {}: {why}; the claim is lost: nothing more is done", logs.live);
                    return (RunEnd::default(), None);
                }
                Err(CallError::Other(e)) => {
                    tracing::warn!("creating {}: {e:#}; the log is uploaded at the end only", logs.live);
                    None
                }
            },
            Err(e) => {
                tracing::warn!("publishing the live log: {e:#}");
                None
            }
        },
        None => None,
    };

    let id = &shared.identity;
    log.log(&format!(
        "Task {}, run {}, claimed by worker {}/{} on {} (enginehost {})",
        claim.task_id,
        claim.run_id,
        id.worker_group,
        id.worker_id,
        id.task_queue_id,
        env!("CARGO_PKG_VERSION"),
    ));
    if shared.formats.foreign() {
        log.log(&format!("Payload format: {}", shared.formats.name()));
    }
    notes.iter().for_each(|n| log.log(n));
    let mut ran_on = None;
    let mut usage = None;
    let mut exit_code = None;
    let (outcome, statuses) = match plan.map(|p| p.task) {
        Err(problems) => {
            log.log_error("The task's payload is not valid:");
            problems.iter().for_each(|p| log.log_error(p));
            log.close();
            (Outcome::Malformed(problems), Vec::new())
        }
        Ok(_) if task_cancel.is_cancelled() => {
            log.log_error("The worker is shutting down: the task was not started");
            log.close();
            (Outcome::Cancelled, Vec::new())
        }
        Ok(task) => 'task: {
            let (engine, limits) = shared.engines.get(&task.engine).expect("a served engine");
            ran_on = Some((task.engine.clone(), engine.clone()));
            match engine.provenance() {
                Some(p) => log.log(&format!(
                    "Engine: {} {} (sha256 {})",
                    task.engine,
                    p.version,
                    &p.sha256[..p.sha256.len().min(12)]
                )),
                None => log.log(&format!("Engine: {}", task.engine)),
            }
            tracing::info!(engine = %task.engine, "running");
            // A setup failure ends the task here, through the usual end (its log is uploaded).
            let mut return_early = None;
            let held = match caches.is_empty() {
                true => None,
                false => match shared.caches.take(engine.as_ref(), &task.engine, &caches).await {
                    Ok(held) => {
                        for (name, mountpoint) in &caches {
                            let how = if held.fresh.contains(name) {
                                "new"
                            } else {
                                "kept from an earlier task"
                            };
                            log.log(&format!("Cache {name} at {mountpoint}: {how}"));
                        }
                        Some(held)
                    }
                    Err(e) => {
                        let detail = e.detail().map(|d| format!(" ({d})")).unwrap_or_default();
                        let m = format!("creating the task's caches: {e}{detail}");
                        log.log_error(&m);
                        log.close();
                        return_early = Some(Outcome::InternalError(m));
                        None
                    }
                },
            };
            if let Some(outcome) = return_early {
                break 'task (outcome, Vec::new());
            }
            let session = match shared.interactive.as_ref().filter(|_| task.features.interactive) {
                Some(server) => interactive_links(server, &uploader, &log).await,
                None => None,
            };
            // The proxy signs only while the task runs: a handler kept past it
            // (by an engine, or a container that outlives its task) gets 410.
            let task_over = CancellationToken::new();
            let proxy_closes = task_over.clone().drop_guard();
            let proxies = match task.features.taskcluster_proxy {
                true => match super::proxy::proxies(run, task_over) {
                    Ok(proxies) => proxies,
                    Err(e) => {
                        let m = format!("setting up the task's Taskcluster proxy: {e:#}");
                        log.log_error(&m);
                        log.close();
                        return_early = Some(Outcome::InternalError(m));
                        Vec::new()
                    }
                },
                false => Vec::new(),
            };
            if let Some(outcome) = return_early {
                if let Some(held) = held {
                    held.release(false).await;
                }
                break 'task (outcome, Vec::new());
            }
            let extras = Extras {
                interactive: session.as_ref(),
                proxies,
                volumes: held.as_ref().map(|h| h.mounts()).unwrap_or_default(),
            };
            let report = execute_with(
                engine.as_ref(),
                &task,
                &log,
                &artifacts_dir,
                task_cancel,
                &limits,
                &extras,
            )
            .await;
            drop(extras);
            drop(proxy_closes);
            drop(session);
            if let Some(held) = held {
                let listed = report.exit_code.filter(|c| purge_codes.contains(c));
                if let Some(code) = listed {
                    note(
                        &log_path,
                        &format!(
                            "[taskcluster] Exit code {code} is in onExitStatus.purgeCaches: the task's caches are \
                             deleted"
                        ),
                    );
                }
                // A task that did not end by itself (aborted, cancelled, the engine
                // failed) may have left its caches half-written, or on an engine
                // instance that is gone: they are not given to the next task.
                let clean = matches!(report.outcome, Outcome::Success | Outcome::Failure);
                held.release(listed.is_some() || !clean).await;
            }
            usage = report.usage;
            exit_code = report.exit_code;
            (report.outcome, report.artifacts)
        }
    };
    let fatal = matches!(outcome, Outcome::FatalInternalError(_));
    let end = RunEnd {
        fatal,
        engine: ran_on.as_ref().map(|(name, _)| name.clone()),
    };
    if lost.is_cancelled() {
        // Cancelled, past its deadline, or the claim lost: nothing is reported, but
        // the log still goes up (the queue takes artifacts on a resolved run for a
        // while), as generic-worker does.
        note(
            &log_path,
            "[taskcluster:error] The run is no longer this worker's (cancelled, deadline exceeded or claim lost): \
             the task was aborted",
        );
        let _ = upload_log(&uploader, &logs, &log_path, dir).await;
        return (end, None);
    }
    let mut resolution = match &outcome {
        Outcome::Success => Resolution::Completed,
        Outcome::Failure => Resolution::Failed,
        Outcome::Malformed(_) => Resolution::Exception(ExceptionReason::MalformedPayload),
        Outcome::InternalError(_) | Outcome::FatalInternalError(_) => {
            Resolution::Exception(ExceptionReason::InternalError)
        }
        Outcome::Cancelled => Resolution::Exception(ExceptionReason::WorkerShutdown),
    };
    if resolution == Resolution::Failed && exit_code.is_none() && !retry_codes.is_empty() {
        note(
            &log_path,
            "[taskcluster] onExitStatus.retry: the engine recorded no exit code (it predates contract 0.1.3, or \
             the task was killed): the task is resolved as failed",
        );
    }
    // onExitStatus.retry: a failure with a listed exit code is intermittent.
    if resolution == Resolution::Failed
        && let Some(code) = exit_code.filter(|c| retry_codes.contains(c))
    {
        resolution = Resolution::Exception(ExceptionReason::IntermittentTask);
        note(
            &log_path,
            &format!(
                "[taskcluster] Exit code {code} is in onExitStatus.retry: the task is resolved as \
                 intermittent-task (the queue retries it while it has retries left)"
            ),
        );
    }
    if resolution == Resolution::Exception(ExceptionReason::WorkerShutdown) {
        note(
            &log_path,
            "[taskcluster:error] The worker is shutting down: the task was aborted",
        );
    }

    // Artifacts: each file, or an error artifact saying why not.
    for (spec, status) in &statuses {
        let reason = match status {
            ArtifactStatus::Extracted => None,
            ArtifactStatus::Missing(_) if spec.optional => continue,
            ArtifactStatus::Missing(m) => Some((ErrorReason::FileMissing, m)),
            ArtifactStatus::TooLarge(m) => Some((ErrorReason::TooLarge, m)),
            ArtifactStatus::Failed(m) => Some((ErrorReason::NotReadable, m)),
        };
        let own = uploader.for_artifact(spec);
        let uploaded = match reason {
            Some((reason, message)) => own.error(&spec.name, reason, message).await.map(|()| {
                tracing::info!(artifact = %spec.name, reason = reason.as_str(), "error artifact");
            }),
            None => upload_files(&own, &artifacts_dir, spec).await,
        };
        match uploaded {
            Ok(()) => {}
            Err(CallError::Conflict(why)) => {
                tracing::warn!(artifact = %spec.name, "uploading: {why}; the run is no longer this worker's");
                let _ = upload_log(&uploader, &logs, &log_path, dir).await;
                return (end, None);
            }
            Err(CallError::Other(e)) => {
                tracing::error!(artifact = %spec.name, "uploading failed: {e:#}");
                note(
                    &log_path,
                    &format!("[taskcluster:error] Uploading artifact {} failed: {e:#}", spec.name),
                );
                // The queue being away does not change what the task did.
                if !transient(&e) {
                    resolution = Resolution::Exception(ExceptionReason::InternalError);
                }
            }
        }
    }

    // The chain of trust: what was uploaded, signed.
    if chain_of_trust && let (Some(signer), Some((engine, ran))) = (shared.formats.signer(), &ran_on) {
        let uploaded: Vec<_> = statuses
            .iter()
            .filter(|(_, status)| *status == ArtifactStatus::Extracted)
            .flat_map(|(spec, _)| files_of(&artifacts_dir, &spec.name).unwrap_or_default())
            .collect();
        let run_facts = cot::Run {
            task: &claim.task,
            task_id: &claim.task_id,
            run_id: claim.run_id,
            worker_group: &id.worker_group,
            worker_id: &id.worker_id,
            engine,
            plugin: ran.provenance(),
        };
        match upload_chain_of_trust(&uploader, signer, run_facts, &uploaded, dir).await {
            Ok(()) => tracing::info!(artifact = cot::CERTIFICATE, "signed the chain of trust"),
            Err(CallError::Conflict(_)) => return (end, None),
            Err(CallError::Other(e)) => {
                tracing::error!("the chain of trust: {e:#}");
                note(
                    &log_path,
                    &format!("[taskcluster:error] Uploading the chain of trust failed: {e:#}"),
                );
                if !transient(&e) {
                    resolution = Resolution::Exception(ExceptionReason::InternalError);
                }
            }
        }
    }

    // What the task cost its engine, beside the log that ends with the same line.
    if let Some(usage) = &usage {
        match upload_usage(&uploader, usage, dir).await {
            Ok(()) => {}
            Err(CallError::Conflict(_)) => return (end, None),
            Err(CallError::Other(e)) => {
                tracing::warn!("uploading {USAGE}: {e:#}");
                note(
                    &log_path,
                    &format!("[taskcluster:error] Uploading {USAGE} failed: {e:#}"),
                );
            }
        }
    }

    note(&log_path, &format!("[taskcluster] Resolving the run as {resolution}"));
    match upload_log(&uploader, &logs, &log_path, dir).await {
        Ok(()) => {}
        Err(CallError::Conflict(_)) => return (end, None),
        Err(CallError::Other(e)) if !transient(&e) => {
            resolution = Resolution::Exception(ExceptionReason::InternalError);
        }
        Err(CallError::Other(_)) => {}
    }
    // The live log stays served until live.log no longer points at it.
    drop(published);
    (end, Some(resolution))
}

/// The artifacts of an interactive task's pages.
pub const SHELL_LINK: &str = "private/enginehost/shell.html";
/// See [`SHELL_LINK`].
pub const DISPLAY_LINK: &str = "private/enginehost/display.html";

/// A session for the task, its pages' links published as reference artifacts (as
/// generic-worker publishes its interactive link) that expire with the session;
/// none when they cannot be published (the task then runs without one). The
/// links carry the token: they go to the queue only, never to the log.
/// How long the signed URL of a private artifact a task mounts is valid: the
/// download starts while the task is set up, right after the claim.
const MOUNT_URL_TTL: Duration = Duration::from_secs(3600);

/// `plan` with the URL of each mount of a private artifact signed with the run's
/// credentials (which carry the task's scopes).
fn sign_private_mounts(run: &RunClient, mut plan: Plan) -> Result<Plan, Vec<String>> {
    let credentials = run.credentials();
    for (i, artifact) in std::mem::take(&mut plan.private_mounts) {
        let url = run
            .deployment()
            .signed_artifact_url(
                &credentials,
                &artifact.task,
                artifact.indexed,
                &artifact.name,
                MOUNT_URL_TTL,
            )
            .map_err(|e| vec![format!("task.payload.mounts[{i}]: {e:#}")])?;
        plan.task.payload["mounts"][i]["url"] = serde_json::Value::String(url);
    }
    Ok(plan)
}

async fn interactive_links(server: &InteractiveServer, uploader: &Uploader<'_>, log: &TaskLog) -> Option<Session> {
    let session = match server.session() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("creating the interactive session: {e:#}");
            log.log_error("The task asked to be interactive, but the worker could not create its session");
            return None;
        }
    };
    let expires = taskcluster::chrono::DateTime::<taskcluster::chrono::Utc>::from(session.expires);
    let uploader = uploader.expiring_by(expires);
    for (name, url) in [(SHELL_LINK, &session.shell_url), (DISPLAY_LINK, &session.display_url)] {
        if let Err(e) = uploader.reference(name, url, "text/html; charset=utf-8").await {
            tracing::error!("creating {name}: {e:#}");
            log.log_error(&format!(
                "The task asked to be interactive, but its link {name} could not be published; it runs without"
            ));
            return None;
        }
    }
    log.log(&format!(
        "Interactive: while the task runs, its shell and displays open from the artifacts {SHELL_LINK} and \
         {DISPLAY_LINK}"
    ));
    Some(session)
}

/// Uploads the backing log (gzip) and turns the live log into a link to it (unless
/// the payload turned the live log off); every failure is logged for the operator
/// (the task's log cannot say it any more).
async fn upload_log(uploader: &Uploader<'_>, logs: &LogNames, log_path: &Path, dir: &Path) -> Result<(), CallError> {
    let size = match uploader
        .gzipped_log(&logs.backing, log_path, &dir.join("live_backing.log.gz"))
        .await
    {
        Ok(size) => size,
        Err(e) => {
            tracing::error!("uploading the log failed: {e:#}");
            return Err(e);
        }
    };
    tracing::info!(artifact = %logs.backing, compressed = size, "uploaded the log");
    if !logs.live_enabled {
        return Ok(());
    }
    uploader
        .link(&logs.live, &logs.backing, LOG_TYPE)
        .await
        .inspect_err(|e| {
            tracing::error!("linking {}: {e:#}", logs.live);
        })
}

/// Signs and uploads the chain of trust of the files in `uploaded` (artifact name,
/// file), written in the run's directory first.
async fn upload_chain_of_trust(
    uploader: &Uploader<'_>,
    signer: &cot::Signer,
    run: cot::Run<'_>,
    uploaded: &[(String, std::path::PathBuf)],
    dir: &Path,
) -> Result<(), CallError> {
    let other = |e: std::io::Error| CallError::Other(anyhow::anyhow!("{e}"));
    let (certificate, signature) = cot::certify(signer, run, uploaded).map_err(other)?;
    let (json, sig) = (dir.join("chain-of-trust.json"), dir.join("chain-of-trust.json.sig"));
    tokio::fs::write(&json, certificate).await.map_err(other)?;
    tokio::fs::write(&sig, signature).await.map_err(other)?;
    uploader.file(cot::CERTIFICATE, &json, "application/json").await?;
    uploader.file(cot::SIGNATURE, &sig, "application/octet-stream").await?;
    Ok(())
}

/// The artifact with the task's [`UsageReport`](crate::contract::UsageReport).
pub const USAGE: &str = "public/enginehost/usage.json";

/// Uploads the task's usage as [`USAGE`] (a file in the run's directory first).
async fn upload_usage(
    uploader: &Uploader<'_>,
    usage: &crate::contract::UsageReport,
    dir: &Path,
) -> Result<(), CallError> {
    let path = dir.join("usage.json");
    let json = serde_json::to_vec_pretty(usage).map_err(|e| CallError::Other(e.into()))?;
    tokio::fs::write(&path, json)
        .await
        .map_err(|e| CallError::Other(anyhow::anyhow!("writing {}: {e}", path.display())))?;
    uploader.file(USAGE, &path, "application/json").await.map(|_| ())
}

/// Uploads every file of the extracted artifact `spec`.
async fn upload_files(uploader: &Uploader<'_>, dir: &Path, spec: &ArtifactSpec) -> Result<(), CallError> {
    let name = &spec.name;
    let files = files_of(dir, name).map_err(|e| CallError::Other(anyhow::anyhow!("listing artifact {name}: {e}")))?;
    for (artifact, path) in files {
        let content_type = match (&spec.content_type, spec.kind) {
            // A file artifact's own type; a directory's files each by name.
            (Some(t), ArtifactKind::File) => t.clone(),
            _ => content_type(&artifact),
        };
        let size = uploader.file(&artifact, &path, &content_type).await?;
        tracing::info!(artifact = %artifact, size, storage = ?uploader.storage, "uploaded");
    }
    Ok(())
}
