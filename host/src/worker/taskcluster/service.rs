//! The claim loop: claim up to the free capacity, run each claim in a task of its
//! own, and stop claiming on a signal (`stop`), when an engine asks (stop-now) or
//! reports a fatal internal error; then wait for the running tasks (aborted by the
//! `abort` token given at start, per `[worker] shutdown`) and return.
//!
//! A stop drops the `claimWork` in flight at once, closing its connection: the queue
//! claims nothing for a request whose client has gone (checked on a real queue), so
//! an idle worker exits at once and a stopping one claims no retry of the tasks it
//! is aborting. A failing `claimWork` is tried again after a pause that doubles up
//! to [`MAX_CLAIM_PAUSE`] (with jitter), so the worker resumes within seconds of the
//! queue's return.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use taskcluster::Credentials;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Engines;
use super::client::{Deployment, WorkerIdentity, WorkerQueue, jitter};
use super::livelog::LiveLogServer;
use super::metrics::{Health, MetricsServer};
use super::run::{RunEnd, Shared, run_claim};
use crate::contract::WorkerControl;
use crate::contract::metrics::Metrics;
use crate::policy::WorkerSettings;

/// The longest pause between failing `claimWork` calls.
const MAX_CLAIM_PAUSE: Duration = Duration::from_secs(5);

/// What a worker is made of.
pub struct WorkerOptions {
    /// `[worker]`.
    pub settings: WorkerSettings,
    /// The worker's own credentials (checked already), and later ones
    /// (worker-runner's `new-credentials`).
    pub credentials: tokio::sync::watch::Receiver<Credentials>,
    /// The engines it serves.
    pub engines: Arc<Engines>,
    /// What the engines use to ask the worker to stop (stop-now).
    pub control: Arc<WorkerControl>,
    /// The host's work directory: each run gets `<work-dir>/tasks/<worker-id>/<taskId>-<runId>`.
    pub work_dir: PathBuf,
    /// The chain-of-trust key, when `[worker] chain-of-trust-key` is set.
    pub chain_of_trust: Option<super::formats::ChainOfTrust>,
    /// `[interactive]`: the server for tasks that ask to be interactive.
    pub interactive: Option<crate::policy::InteractiveSettings>,
}

/// Why the worker stopped claiming (it waited for its running tasks before returning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM or SIGINT.
    Signal,
    /// An engine asked the worker to stop (stop-now).
    StopNow,
    /// An engine reported a fatal internal error.
    Fatal,
}

/// A worker, ready to claim.
pub struct Worker {
    shared: Arc<Shared>,
    queue: WorkerQueue,
    capacity: u32,
    poll_interval: Duration,
    control: Arc<WorkerControl>,
    health: Arc<Health>,
    metrics: Option<MetricsServer>,
}

impl Worker {
    /// Prepares the runs' directory (what a killed predecessor left there is removed)
    /// and the live log's server. `abort` aborts every running task when cancelled.
    pub async fn start(options: WorkerOptions, abort: CancellationToken) -> anyhow::Result<Worker> {
        let settings = options.settings;
        let identity = WorkerIdentity {
            task_queue_id: settings.task_queue_id.clone(),
            worker_group: settings.worker_group.clone(),
            worker_id: settings.worker_id.clone(),
        };
        let deployment = Deployment::new(&settings.root_url);
        let tasks_dir = options.work_dir.join("tasks").join(&settings.worker_id);
        if tasks_dir.exists() {
            std::fs::remove_dir_all(&tasks_dir)
                .with_context(|| format!("removing what a previous worker left in {}", tasks_dir.display()))?;
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(&tasks_dir)
            .with_context(|| format!("creating {}", tasks_dir.display()))?;
        // Logs and artifacts of tasks: the worker's only.
        std::fs::set_permissions(&tasks_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .with_context(|| format!("restricting {}", tasks_dir.display()))?;
        let live_log = match &settings.live_log {
            Some(live) => Some(LiveLogServer::start(live).await?),
            None => None,
        };
        let interactive = match &options.interactive {
            Some(settings) => Some(crate::worker::interactive::InteractiveServer::start(settings).await?),
            None => None,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            // No overall timeout (an upload may take long), but no endless stall either.
            .read_timeout(Duration::from_secs(300))
            .build()
            .context("building the HTTP client for uploads")?;
        let queue = WorkerQueue::new(&deployment, options.credentials, identity.clone())?;
        let health = Arc::new(Health::default());
        health.tick();
        let metrics = match settings.metrics_listen {
            Some(listen) => Some(MetricsServer::start(listen, health.clone()).await?),
            None => None,
        };
        Ok(Worker {
            shared: Arc::new(Shared {
                deployment,
                identity,
                engines: options.engines,
                formats: super::formats::Formats::new(&settings, options.chain_of_trust)
                    .with_interactive(interactive.is_some()),
                storage: settings.artifact_storage,
                reclaim_margin: settings.reclaim_margin,
                live_log,
                interactive,
                caches: Default::default(),
                tasks_dir,
                abort,
                http,
            }),
            queue,
            capacity: settings.capacity,
            poll_interval: settings.poll_interval,
            control: options.control,
            health,
            metrics,
        })
    }

    /// The metrics listener's local address, if it runs.
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().map(MetricsServer::address)
    }

    /// The live log server's local address, if it runs.
    pub fn live_log_address(&self) -> Option<std::net::SocketAddr> {
        self.shared.live_log.as_ref().map(LiveLogServer::address)
    }

    /// The interactive server's local address, if it runs.
    pub fn interactive_address(&self) -> Option<std::net::SocketAddr> {
        self.shared
            .interactive
            .as_ref()
            .map(crate::worker::interactive::InteractiveServer::address)
    }

    /// Claims and runs tasks until `stop` is cancelled, an engine asks to stop, or
    /// one fails fatally; then waits for the running tasks. An error means the queue
    /// refused the worker's credentials (after the running tasks ended).
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<Stopped> {
        let identity = &self.shared.identity;
        tracing::info!(
            task_queue_id = %identity.task_queue_id,
            worker = %format!("{}/{}", identity.worker_group, identity.worker_id),
            capacity = self.capacity,
            engines = %self.shared.engines.names().join(","),
            "claiming tasks"
        );
        let mut running: JoinSet<RunEnd> = JoinSet::new();
        let mut stopped = None;
        let mut pause = self.poll_interval;
        let failure = loop {
            self.health.tick();
            while let Some(done) = running.try_join_next() {
                ended(done, &mut stopped);
            }
            if stopped.is_none() {
                if stop.is_cancelled() {
                    stopped = Some(Stopped::Signal);
                } else if self.control.stop_requested() {
                    stopped = Some(Stopped::StopNow);
                }
            }
            if stopped.is_some() {
                break None;
            }
            let free = self.capacity.saturating_sub(running.len() as u32);
            if free == 0 {
                tokio::select! {
                    Some(done) = running.join_next() => ended(done, &mut stopped),
                    () = stop.cancelled() => {}
                    // An engine's stop-now is a flag: looked at this often.
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                continue;
            }
            let answer = tokio::select! {
                // Dropping the call closes its connection: the queue claims nothing for it.
                () = stop.cancelled() => continue,
                answer = self.queue.claim_work(free) => answer,
            };
            match answer {
                Ok(claims) => {
                    pause = self.poll_interval;
                    let empty = claims.is_empty();
                    for claim in claims {
                        match claim {
                            Ok(claim) => {
                                Metrics::global().tasks_claimed.inc();
                                running.spawn(run_claim(self.shared.clone(), claim));
                            }
                            Err(e) => tracing::error!("claimWork answered a claim this worker cannot read: {e}"),
                        }
                    }
                    if empty {
                        tokio::select! {
                            () = stop.cancelled() => {}
                            () = tokio::time::sleep(self.poll_interval) => {}
                        }
                    }
                }
                Err(e) => {
                    let status = taskcluster::err_status_code(&e).map(|s| s.as_u16());
                    if matches!(status, Some(401 | 403)) {
                        break Some(e.context(
                            "the queue refused the worker's credentials; check [worker] credentials and the scopes \
                             (docs/worker.md)",
                        ));
                    }
                    Metrics::global().queue_retry("claimWork");
                    let wait = jitter(pause);
                    tracing::warn!("claimWork failed: {e:#}; trying again in {wait:.1?}");
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = tokio::time::sleep(wait) => {}
                    }
                    pause = (pause * 2).min(MAX_CLAIM_PAUSE);
                }
            }
        };
        self.health.stopping();
        let why = match (&failure, stopped) {
            (Some(_), _) => "the queue refused the credentials",
            (None, Some(Stopped::Signal)) => "signal",
            (None, Some(Stopped::StopNow)) => "an engine asked the worker to stop",
            (None, Some(Stopped::Fatal)) => "an engine reported a fatal internal error",
            (None, None) => "stopped",
        };
        tracing::info!(
            running = running.len(),
            "no longer claiming ({why}); waiting for the running tasks"
        );
        while let Some(done) = running.join_next().await {
            ended(done, &mut stopped);
        }
        tracing::info!("every task has ended");
        match failure {
            Some(e) => Err(e),
            None => Ok(stopped.unwrap_or(Stopped::Signal)),
        }
    }
}

fn ended(done: Result<RunEnd, tokio::task::JoinError>, stopped: &mut Option<Stopped>) {
    match done {
        Ok(end) if end.fatal => {
            tracing::error!("an engine reported a fatal internal error: the worker stops claiming");
            stopped.get_or_insert(Stopped::Fatal);
        }
        Ok(_) => {}
        Err(e) => tracing::error!("a run's task failed: {e}"),
    }
}
