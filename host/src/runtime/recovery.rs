//! Recovery (contract 0.1.4): a task whose engine left a recovery record
//! survives a trap of its instance. Its capability scope stays open
//! (`caps::scope`), and the first call the worker makes on its sandbox after
//! the trap (the pending `wait-for-result` fails at once, so that is right away)
//! starts a fresh instance, calls `recovery.recover-sandbox` with the task's
//! context and record, and re-points the sandbox at what it returns
//! ([`Recovery::recover`]). Objects the dead instance gave out (shells,
//! display connections) fail with its death message; new ones work.
//!
//! Bounded: [`MAX_PER_TASK`] recoveries per task, [`MAX_PER_MINUTE`] per engine;
//! `recover-sandbox` runs within `limits.start-timeout`. Any failure fails the
//! task as a trap did before 0.1.4, naming the trap and why recovery failed.
//! A task with a record that may not go on (a bound, a cancel, a rule-out, a
//! second death during `recover-sandbox`) is still handed to a fresh instance
//! once, whose sandbox is aborted at once ([`Recovery::clean_up`]): what the
//! task runs outside the host's reach (a container in dockerd) is removed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use futures::FutureExt;
use wasmtime::component::ResourceAny;

use super::actor::{Deadline, Instance};
use super::adapter::WasmEngine;
use super::handle::{Handle, flat};
use crate::caps::{TaskHandle, TaskScope};
use crate::contract::{EngineError, Result, TaskContext};
use crate::wit::bindings::types::Error as WitError;

/// The most times one task is taken over by a fresh instance.
pub(crate) const MAX_PER_TASK: u32 = 3;
/// The most recoveries of one engine's tasks within [`WINDOW`].
pub(crate) const MAX_PER_MINUTE: usize = 20;
const WINDOW: Duration = Duration::from_secs(60);

/// The recent recoveries of one engine (the trap-storm bound).
#[derive(Default)]
pub(crate) struct RecoveryWindow(Mutex<VecDeque<Instant>>);

impl RecoveryWindow {
    /// Counts one recovery now; false (nothing counted) when [`MAX_PER_MINUTE`]
    /// happened within the last minute.
    fn take(&self) -> bool {
        let mut recent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while recent.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
            recent.pop_front();
        }
        if recent.len() >= MAX_PER_MINUTE {
            return false;
        }
        recent.push_back(now);
        true
    }
}

/// What a started sandbox needs to be taken over by a fresh instance.
pub(crate) struct Recovery {
    pub(crate) engine: Weak<WasmEngine>,
    pub(crate) context: TaskContext,
    pub(crate) scope: Arc<TaskScope>,
    attempts: AtomicU32,
    /// Set once recovery failed or was ruled out: every later call fails with it.
    failed: OnceLock<EngineError>,
    /// Set when recovery was ruled out (a wait on a recovery in flight ends).
    ruled: tokio::sync::watch::Sender<bool>,
}

impl Recovery {
    pub(crate) fn new(engine: Weak<WasmEngine>, context: TaskContext, scope: Arc<TaskScope>) -> Arc<Recovery> {
        Arc::new(Recovery {
            engine,
            context,
            scope,
            attempts: AtomicU32::new(0),
            failed: OnceLock::new(),
            ruled: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Whether a dead instance under the task may still be replaced: it left a
    /// record and no recovery failed.
    pub(crate) fn may_recover(&self) -> bool {
        self.failed.get().is_none() && self.scope.holds_recovery()
    }

    /// Why recovery failed, once it did.
    pub(crate) fn failure(&self) -> Option<EngineError> {
        self.failed.get().cloned()
    }

    /// The task is ended (kill or abort on a dead instance, terminate): it is
    /// not taken over. Its record stays, and with it its scope, until the
    /// clean-up that follows (the recovery in flight, or `abandon`) is done:
    /// the engine then still sees the task it removes.
    pub(crate) fn rule_out(&self, reason: &str, plugin: &str) {
        let _ = self.failed.set(EngineError::PluginFailed {
            plugin: plugin.to_string(),
            reason: reason.to_string(),
        });
        self.ruled.send_replace(true);
    }

    /// Resolves, with the reason, once recovery was ruled out.
    pub(crate) async fn ruled_out(&self) -> EngineError {
        let mut ruled = self.ruled.subscribe();
        let _ = ruled.wait_for(|r| *r).await;
        self.failure().unwrap_or(EngineError::SandboxTerminated)
    }

    /// Takes the task over on a fresh instance: the handle of the recovered
    /// sandbox, or the error the task fails with. `dead` is the sandbox's handle
    /// in the instance that died.
    /// `record` is the task's, read when the recovery started.
    pub(crate) async fn recover(&self, dead: &Handle, record: Option<Arc<[u8]>>) -> Result<Handle> {
        let death = dead.instance.failure().await;
        let result = self.try_recover(dead, &death, record).await;
        if let Err(e) = &result {
            self.scope.forget_recovery_record();
            let _ = self.failed.set(e.clone());
        }
        // Ruled out meanwhile (the worker terminated or aborted the task): the
        // recovered sandbox is aborted (what it runs outside the host goes too).
        if let Some(e) = self.failed.get() {
            if let Ok(handle) = result {
                abort(&handle).await;
            }
            return Err(e.clone());
        }
        result
    }

    async fn try_recover(&self, dead: &Handle, death: &EngineError, record: Option<Arc<[u8]>>) -> Result<Handle> {
        let (plugin, reason) = match death {
            EngineError::PluginFailed { plugin, reason } => (plugin.clone(), reason.clone()),
            other => return Err(other.clone()),
        };
        let Some(record) = record else {
            return Err(death.clone());
        };
        let not_recovered = |why: String| EngineError::PluginFailed {
            plugin: plugin.clone(),
            reason: format!("{reason}; the task was not recovered: {why}"),
        };
        let Some(engine) = self.engine.upgrade() else {
            return Err(not_recovered("the engine was stopped".into()));
        };
        let refused = if let Some(ruled) = self.failed.get() {
            Some(Err(ruled.clone()))
        } else if self.scope.has_ended() || self.context.is_cancelled() {
            Some(Err(not_recovered("the task had ended or was cancelled".into())))
        } else if self.attempts.fetch_add(1, Ordering::SeqCst) >= MAX_PER_TASK {
            Some(Err(not_recovered(format!(
                "its engine instance already failed {MAX_PER_TASK} times under it, the most a task is recovered"
            ))))
        } else if !engine.recoveries().take() {
            Some(Err(not_recovered(format!(
                "the engine's tasks were recovered {MAX_PER_MINUTE} times within the last minute, the most \
                 allowed (a trap storm)"
            ))))
        } else {
            None
        };
        if let Some(refused) = refused {
            self.clean_up(dead, &engine, record, &plugin).await;
            return refused;
        }
        let attempt = self.attempts.load(Ordering::SeqCst);
        let (instance, generation) = engine
            .instance()
            .await
            .map_err(|e| not_recovered(format!("no new instance: {e}")))?;
        self.scope.adopt(generation);
        tracing::warn!(engine = %plugin, attempt, "recovering a task after its instance failed: {reason}");
        crate::contract::metrics::Metrics::global()
            .task_recoveries
            .get_or_create(&crate::contract::metrics::Metrics::engine(&plugin))
            .inc();
        self.context.log().log(&format!(
            "The engine {plugin} failed ({}) and was restarted; the task goes on in the new instance \
             (recovery {attempt} of at most {MAX_PER_TASK}). Shells and displays opened before are closed.",
            crate::text::shown(&reason, 512)
        ));
        let recovered = self.recover_sandbox(&instance, record.clone()).await;
        // What the new instance did not take back (the old one's shells, what the
        // record did not name) goes now.
        self.scope.release_detained();
        if recovered.is_err() && !instance.is_alive() {
            // That instance died too, in the middle: one more, only to clean up.
            self.clean_up(dead, &engine, record, &plugin).await;
        }
        let res = recovered.map_err(|e| {
            let why = match e.detail() {
                Some(detail) if !matches!(e, EngineError::PluginFailed { .. }) => format!("{e}: {detail}"),
                _ => format!("{e}"),
            };
            let failed = not_recovered(format!("recover-sandbox failed: {why}"));
            self.context.log().log(&format!("Recovering the task failed: {why}"));
            failed
        })?;
        Ok(Handle {
            instance,
            res,
            slot: dead.slot.clone(),
        })
    }

    /// `recovery.recover-sandbox` on `instance` with the task's context and
    /// `record`, within `limits.start-timeout`.
    async fn recover_sandbox(&self, instance: &Arc<Instance>, record: Arc<[u8]>) -> Result<ResourceAny> {
        let (context, scope) = (self.context.clone(), self.scope.clone());
        let task = self.context.usage().clone();
        flat(
            instance
                .call_for(Some(&task), "recover-sandbox", Deadline::Start, move |acc, ex| {
                    async move {
                        let Some(recovery) = &ex.recovery else {
                            return Ok(Err(WitError::FeatureNotSupported));
                        };
                        let ctx = acc.with(|mut a| a.get().table.push(TaskHandle::new(context, scope)))?;
                        recovery.call_recover_sandbox(acc, ctx, record.to_vec()).await
                    }
                    .boxed()
                })
                .await,
        )
    }

    /// The task was ended (kill or abort while its instance was dead, before
    /// any recovery started; terminate): the record goes to a fresh instance
    /// all the same, only to be cleaned up.
    pub(crate) async fn abandon(&self, dead: &Handle, record: Arc<[u8]>) {
        if let Some(engine) = self.engine.upgrade() {
            // Terminate kills a live instance: the clean-up goes to the next one.
            dead.instance.failure().await;
            let plugin = dead.instance.plugin().to_string();
            self.clean_up(dead, &engine, record, &plugin).await;
        }
        self.scope.forget_recovery_record();
    }

    /// A task that may not go on but left a record: the engine gets the record
    /// once more (a fresh instance's `recover-sandbox`), and the sandbox it
    /// returns is aborted at once, so that what the task runs outside the host's
    /// reach (a container in dockerd, a VM) is removed like any aborted task's.
    /// Best effort: an engine that cannot is left as before 0.1.4.
    ///
    /// At most once per task, and counted in the engine's per-minute bound: a
    /// record that kills every instance it is given cannot take more with it.
    async fn clean_up(&self, dead: &Handle, engine: &WasmEngine, record: Arc<[u8]>, plugin: &str) {
        let task = self.context.info().task_id.clone();
        if !engine.recoveries().take() {
            tracing::warn!(engine = %plugin, task = %task, "a task that was not recovered is not cleaned up either (a trap storm): what its engine runs outside the host may be left");
            return;
        }
        let Ok((instance, generation)) = engine.instance().await else {
            return;
        };
        self.scope.adopt(generation);
        let recovered = self.recover_sandbox(&instance, record).await;
        self.scope.release_detained();
        match recovered {
            Ok(res) => {
                tracing::info!(engine = %plugin, task = %task, "removing what a task that was not recovered left running");
                abort(&Handle {
                    instance,
                    res,
                    slot: dead.slot.clone(),
                })
                .await;
            }
            Err(e) => tracing::warn!(
                engine = %plugin, task = %task,
                "a task that was not recovered could not be cleaned up (what its engine runs outside the host may be left): {e}"
            ),
        }
    }
}

/// Ends a recovered sandbox that may not go on (best effort): aborts it; if its
/// work had finished already (the engine answers sandbox-terminated: the record
/// it recovered from said so), its result set is taken and disposed of instead,
/// which stops what the result set kept (a VM kept for its artifacts).
pub(crate) async fn abort(handle: &Handle) {
    let aborted = handle.call("abort", Deadline::Quick, call_abort).await;
    if !matches!(aborted, Err(EngineError::SandboxTerminated)) {
        return;
    }
    let result = handle
        .call("wait-for-result", Deadline::Quick, |acc, ex, res| {
            async move { ex.sandbox().call_wait_for_result(acc, res).await }.boxed()
        })
        .await;
    if let Ok(result) = result {
        let _ = handle
            .sibling(result)
            .call("dispose", Deadline::Quick, |acc, ex, res| {
                async move { ex.result_set().call_dispose(acc, res).await }.boxed()
            })
            .await;
    }
}

/// The engine's `sandbox.abort` on `res` (here and for the worker's abort).
pub(crate) fn call_abort<'a>(
    acc: &'a super::actor::Acc,
    ex: &'a crate::wit::bindings::EngineExports,
    res: ResourceAny,
) -> futures::future::BoxFuture<'a, super::handle::Called<()>> {
    async move { ex.sandbox().call_abort(acc, res).await }.boxed()
}
