//! One engine instance = one Store = one tokio task (the actor), which keeps a
//! single `run_concurrent` event loop alive for the instance's whole life (guest
//! tasks only progress while it is polled). Callers send jobs (closures that make
//! one or more calls with the Store's `Accessor`) and await a oneshot reply; many
//! jobs run at once, so `abort`/`kill`/`new-shell` are served while a
//! `wait-for-result` is pending.
//!
//! A trap (or any wasmtime error) in any job ends the loop: every job in flight is
//! dropped, and every caller, then and later, gets the instance's death message
//! naming the plugin, the trap and the guest's last stderr lines. The adapter then
//! starts a fresh instance for the next use.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot, watch};
use wasmtime::Store;
use wasmtime::component::Accessor;

use super::LoadedPlugin;
use super::accounting::SharedLedger;
use super::state::{HostState, stderr_tail};
use super::watchdog::Watchdog;
use crate::caps::CapsCtx;
use crate::contract::metrics::Metrics;
use crate::contract::{EngineError, TaskUsage};
use crate::policy::ResolvedLimits;
use crate::wit::bindings::EngineExports;
use anyhow::Context as _;
use prometheus_client::metrics::histogram::Histogram;

/// What a job receives: the Store's accessor and the engine's exports.
pub(crate) type Acc = Accessor<HostState>;
type Job = Box<dyn for<'a> FnOnce(&'a Acc, &'a EngineExports) -> BoxFuture<'a, wasmtime::Result<()>> + Send>;

/// A live (or dead) engine instance.
pub(crate) struct Instance {
    plugin: Arc<str>,
    jobs: mpsc::UnboundedSender<Job>,
    death: watch::Receiver<Option<String>>,
    /// Tears the instance down with a reason (a call that missed its deadline).
    kill: watch::Sender<Option<String>>,
    pub(crate) limits: ResolvedLimits,
    /// Which task each call is for (`None`: accounting is off).
    ledger: Option<SharedLedger>,
    /// The largest linear memory the instance was granted, in bytes.
    memory_peak: Arc<std::sync::atomic::AtomicU64>,
    /// The deadlines of calls in flight.
    watchdog: Arc<Watchdog>,
    /// The latency histogram of each call, by the contract's name of the call.
    histograms: std::sync::Mutex<Vec<(&'static str, Histogram)>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        // A parked watchdog wakes up, finds the instance gone, and ends.
        self.watchdog.wake();
    }
}

/// How long a call may take before the instance is torn down.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    /// `limits.call-timeout`.
    Quick,
    /// `limits.start-timeout`.
    Start,
    /// `limits.init-timeout`.
    Init,
    /// No deadline (wait-for-result, shell wait, extract-folder: bounded elsewhere).
    None,
}

impl Instance {
    /// Instantiates `plugin` in a new Store and starts its actor.
    pub(crate) async fn spawn(
        plugin: &LoadedPlugin,
        caps: CapsCtx,
        limits: ResolvedLimits,
    ) -> anyhow::Result<Arc<Instance>> {
        let state = HostState::new(caps, plugin.name.clone(), &limits, plugin.accounting)?;
        let (ledger, memory_peak) = (state.ledger.clone(), state.limits.peak.clone());
        let mut store = Store::new(plugin.pre.engine(), state);
        if let Some(ledger) = &ledger {
            store.task_group_hook(ledger.hook());
        }
        // A pending sandbox holds about 10 handles (its resources, the waiting
        // subtasks): limits.handles bounds floods, limits.live-tasks the tasks.
        super::limits::install(&mut store, &limits, plugin.epochs);
        let instantiated = tokio::time::timeout(limits.init_timeout, plugin.pre.instantiate_async(&mut store));
        let instance = instantiated.await.map_err(|_| {
            anyhow::anyhow!(
                "instantiating took longer than {:?} (limits.init-timeout)",
                limits.init_timeout
            )
        })??;
        let bindings = plugin.indices.load(&mut store, &instance)?;
        let recovery = match &plugin.recovery {
            Some(indices) => Some(
                indices
                    .load(&mut store, &instance)
                    .map_err(anyhow::Error::from)
                    .context("its `recovery` export does not match the contract's")?,
            ),
            None => None,
        };
        let exports = EngineExports {
            engine: bindings.enginehost_engine_engine().clone(),
            recovery,
        };
        let (jobs, rx) = mpsc::unbounded_channel();
        let (death_tx, death) = watch::channel(None);
        let (kill, killed) = watch::channel(None);
        let name = plugin.name.clone();
        let metrics = Metrics::global();
        metrics.instance_starts.get_or_create(&Metrics::engine(&name)).inc();
        let engine = Metrics::engine(&name);
        tokio::spawn(async move {
            let stderr = store.data().stderr.clone();
            let ended = run(&mut store, exports, rx, killed).await;
            // Before the Store (and every process handle in it) goes: the tasks
            // that can be taken over keep their processes.
            store.data().caps.guard.instance_died();
            drop(store);
            let message = match ended {
                Ok(()) => "the engine instance was shut down".to_string(),
                Err(e) => {
                    metrics.instance_traps.get_or_create(&engine).inc();
                    let mut message = format!("{e:#}");
                    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
                        message = format!("{trap}");
                    }
                    if let Some(tail) = stderr_tail(&stderr) {
                        message.push_str(&format!("; guest stderr: {tail}"));
                    }
                    crate::text::shown(&message, 4096)
                }
            };
            death_tx.send_replace(Some(message));
        });
        let shortest = [limits.call_timeout, limits.start_timeout, limits.init_timeout]
            .into_iter()
            .min()
            .unwrap_or(Duration::MAX);
        let watchdog = Arc::new(Watchdog::new(shortest));
        let instance = Arc::new(Instance {
            plugin: name,
            jobs,
            death,
            kill,
            limits,
            ledger,
            memory_peak,
            watchdog: watchdog.clone(),
            histograms: Default::default(),
        });
        tokio::spawn(watchdog.run(Arc::downgrade(&instance)));
        Ok(instance)
    }

    /// The latency histogram of `call` (made once per call name and instance).
    fn histogram(&self, call: &'static str) -> Histogram {
        let mut cached = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, h)) = cached.iter().find(|(c, _)| *c == call) {
            return h.clone();
        }
        let h = Metrics::global().call_histogram(&self.plugin, call);
        cached.push((call, h.clone()));
        h
    }

    /// The plugin's name.
    pub(crate) fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The largest linear memory the instance was granted so far, in bytes.
    pub(crate) fn memory_peak(&self) -> u64 {
        self.memory_peak.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Tears the instance down: every call in flight, and every later one, fails
    /// with `reason`.
    pub(crate) fn kill(&self, reason: String) {
        self.kill.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Whether the instance can still take calls.
    pub(crate) fn is_alive(&self) -> bool {
        !self.jobs.is_closed() && self.death.borrow().is_none()
    }

    /// Runs `f` (the call `what`) in the instance and returns its value; if the
    /// instance dies first (in `f` or anywhere else), the error names the plugin and
    /// the cause. A call that misses its `deadline` tears the instance down.
    pub(crate) async fn call<R, F>(&self, what: &'static str, deadline: Deadline, f: F) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(&'a Acc, &'a EngineExports) -> BoxFuture<'a, wasmtime::Result<R>> + Send + 'static,
    {
        self.call_for(None, what, deadline, f).await
    }

    /// [`Instance::call`] made for `task`: its time in the instance is the task's.
    pub(crate) async fn call_for<R, F>(
        &self,
        task: Option<&Arc<TaskUsage>>,
        what: &'static str,
        deadline: Deadline,
        f: F,
    ) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(&'a Acc, &'a EngineExports) -> BoxFuture<'a, wasmtime::Result<R>> + Send + 'static,
    {
        let started = std::time::Instant::now();
        let task = self.ledger.as_ref().and(task.cloned());
        let result = self.call_bounded(task.clone(), what, deadline, f).await;
        if let Some(task) = task {
            task.note_memory(self.memory_peak());
        }
        // The contract's name of the call ("describe" for the schema and capability calls made together).
        let call = if what.contains(' ') { "describe" } else { what };
        self.histogram(call).observe(started.elapsed().as_secs_f64());
        result
    }

    async fn call_bounded<R, F>(
        &self,
        task: Option<Arc<TaskUsage>>,
        what: &'static str,
        deadline: Deadline,
        f: F,
    ) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(&'a Acc, &'a EngineExports) -> BoxFuture<'a, wasmtime::Result<R>> + Send + 'static,
    {
        let (limit, key) = match deadline {
            Deadline::Quick => (self.limits.call_timeout, "limits.call-timeout"),
            Deadline::Start => (self.limits.start_timeout, "limits.start-timeout"),
            Deadline::Init => (self.limits.init_timeout, "limits.init-timeout"),
            Deadline::None => return self.call_unbounded(task, f).await,
        };
        if limit == Duration::MAX {
            return self.call_unbounded(task, f).await;
        }
        // Past the deadline the watchdog kills the instance: the call then fails
        // with the reason, like every other call in flight.
        let _deadline = self.watchdog.enter(what, limit, key);
        self.call_unbounded(task, f).await
    }

    async fn call_unbounded<R, F>(&self, task: Option<Arc<TaskUsage>>, f: F) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(&'a Acc, &'a EngineExports) -> BoxFuture<'a, wasmtime::Result<R>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = self.job_for(task, move |acc, exports| {
            Box::pin(async move {
                let value = f(acc, exports).await?;
                let _ = tx.send(value);
                Ok(())
            })
        });
        if self.jobs.send(job).is_ok()
            && let Ok(value) = rx.await
        {
            return Ok(value);
        }
        Err(self.failure().await)
    }

    /// Sends `f` without waiting for it (releasing handles); nothing if dead.
    pub(crate) fn spawn_call<F>(&self, f: F)
    where
        F: for<'a> FnOnce(&'a Acc, &'a EngineExports) -> BoxFuture<'a, wasmtime::Result<()>> + Send + 'static,
    {
        let _ = self.jobs.send(self.job_for(None, f));
    }

    /// `f` as a job whose calls are `task`'s: the tag is set at the job's first
    /// poll, right before its call starts a task group (with accounting on).
    fn job_for<F>(&self, task: Option<Arc<TaskUsage>>, f: F) -> Job
    where
        F: for<'a> FnOnce(&'a Acc, &'a EngineExports) -> BoxFuture<'a, wasmtime::Result<()>> + Send + 'static,
    {
        let ledger = self.ledger.clone();
        Box::new(move |acc, exports| {
            Box::pin(async move {
                if let Some(ledger) = &ledger {
                    ledger.tag_next(task);
                }
                f(acc, exports).await
            })
        })
    }

    /// The error every call gets once the instance is dead.
    pub(crate) async fn failure(&self) -> EngineError {
        let mut death = self.death.clone();
        let reason = match death.wait_for(|d| d.is_some()).await {
            Ok(d) => d.clone().unwrap_or_default(),
            Err(_) => "the engine instance is gone".to_string(),
        };
        EngineError::PluginFailed {
            plugin: self.plugin.to_string(),
            reason,
        }
    }
}

/// The actor's loop: take jobs, run them concurrently, stop at the first error,
/// when told to (`killed`), or when every sender is gone (after the jobs in flight
/// finish).
async fn run(
    store: &mut Store<HostState>,
    exports: EngineExports,
    mut rx: mpsc::UnboundedReceiver<Job>,
    mut killed: watch::Receiver<Option<String>>,
) -> wasmtime::Result<()> {
    store
        .run_concurrent(async move |acc| -> wasmtime::Result<()> {
            let exports = &exports;
            let mut inflight: FuturesUnordered<BoxFuture<'_, wasmtime::Result<()>>> = FuturesUnordered::new();
            loop {
                tokio::select! {
                    job = rx.recv() => match job {
                        Some(job) => inflight.push(job(acc, exports)),
                        None => break,
                    },
                    Some(done) = inflight.next(), if !inflight.is_empty() => done?,
                    Ok(reason) = killed.wait_for(Option::is_some) => {
                        return Err(wasmtime::Error::msg(reason.clone().unwrap_or_default()));
                    }
                }
            }
            while let Some(done) = inflight.next().await {
                done?;
            }
            Ok(())
        })
        .await?
}
