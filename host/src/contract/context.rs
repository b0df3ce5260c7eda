//! [`TaskContext`]: what an engine learns about the task it runs (seed
//! `runtime.TaskContext`): identity, scopes, the task log and cancellation.
//! [`WorkerControl`] is the seed's `Environment.Worker` (StopNow).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use tokio::sync::watch;

use super::TaskLog;

/// The task's identity and grants.
#[derive(Debug, Clone, Default)]
pub struct TaskInfo {
    /// The task id ("" in conformance runs).
    pub task_id: String,
    /// The run id.
    pub run_id: u32,
    /// The scopes the task was granted.
    pub scopes: Vec<String>,
}

struct Inner {
    info: TaskInfo,
    log: TaskLog,
    cancelled: watch::Sender<bool>,
    usage: Arc<super::usage::TaskUsage>,
    /// The exit code the engine recorded ([`NO_EXIT_CODE`]: none).
    exit_code: AtomicI64,
}

/// No exit code recorded (outside `i32`).
const NO_EXIT_CODE: i64 = i64::MIN;

/// One task's context; clones share it.
#[derive(Clone)]
pub struct TaskContext {
    inner: Arc<Inner>,
}

impl TaskContext {
    /// A context for `info` writing to `log`.
    pub fn new(info: TaskInfo, log: TaskLog) -> Self {
        let (cancelled, _) = watch::channel(false);
        TaskContext {
            inner: Arc::new(Inner {
                info,
                log,
                cancelled,
                usage: Arc::default(),
                exit_code: AtomicI64::new(NO_EXIT_CODE),
            }),
        }
    }

    /// The task's identity.
    pub fn info(&self) -> &TaskInfo {
        &self.inner.info
    }

    /// What the task cost its engine so far (the runtime adds to it).
    pub fn usage(&self) -> &Arc<super::usage::TaskUsage> {
        &self.inner.usage
    }

    /// The task log.
    pub fn log(&self) -> &TaskLog {
        &self.inner.log
    }

    /// True if any one of `sets` is fully covered by the task's scopes; a granted
    /// scope ending in `*` covers every scope it is a prefix of.
    pub fn has_scopes(&self, sets: &[Vec<String>]) -> bool {
        let granted = &self.inner.info.scopes;
        sets.iter()
            .any(|set| set.iter().all(|need| scopes_cover(granted, need)))
    }

    /// Records the task's exit code (contract 0.1.3); the last call wins.
    pub fn set_exit_code(&self, code: i32) {
        self.inner.exit_code.store(i64::from(code), Ordering::SeqCst);
    }

    /// The exit code the engine recorded, if it did.
    pub fn exit_code(&self) -> Option<i32> {
        i32::try_from(self.inner.exit_code.load(Ordering::SeqCst)).ok()
    }

    /// Cancels the task (worker shutdown or task cancellation).
    pub fn cancel(&self) {
        self.inner.cancelled.send_replace(true);
    }

    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.inner.cancelled.borrow()
    }

    /// Resolves when the task is cancelled.
    pub async fn cancelled(&self) {
        let mut rx = self.inner.cancelled.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// The worker's controls engines may use (seed `Environment.Worker`).
#[derive(Default)]
pub struct WorkerControl {
    stop_now: AtomicBool,
}

impl WorkerControl {
    /// A shared control with nothing requested.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// An engine asked the worker to stop taking tasks.
    pub fn stop_now(&self) {
        self.stop_now.store(true, Ordering::SeqCst);
    }

    /// Whether an engine asked the worker to stop.
    pub fn stop_requested(&self) -> bool {
        self.stop_now.load(Ordering::SeqCst)
    }
}

/// Whether `granted` covers the scope `need`: Taskcluster's rule, a granted scope
/// ending in `*` covers every scope it is a prefix of.
pub fn scopes_cover(granted: &[String], need: &str) -> bool {
    granted.iter().any(|g| match g.strip_suffix('*') {
        Some(prefix) => need.starts_with(prefix),
        None => g == need,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_scopes_follows_the_seed() {
        let info = TaskInfo {
            scopes: vec!["a".into(), "worker:privileged:*".into()],
            ..Default::default()
        };
        let ctx = TaskContext::new(info, TaskLog::temporary().unwrap());
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(ctx.has_scopes(&[s(&["a", "worker:privileged:x/y"])]));
        assert!(ctx.has_scopes(&[s(&["b"]), s(&["a"])]));
        assert!(!ctx.has_scopes(&[s(&["a", "b"])]));
        assert!(!ctx.has_scopes(&[]));
    }
}
