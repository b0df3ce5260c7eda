//! [`TaskHandle`]: a task as the capability layer sees it, behind an engine's
//! `task-context` handle: the worker's [`TaskContext`] and the task's capability
//! scope. Every method reaches only its own task; once the task ended, a kept
//! handle answers as an empty context and writes nothing.

use std::sync::Arc;

use super::TaskScope;
use crate::contract::TaskContext;

/// The longest line `log`/`log-error` keep, in characters (a message's lines are
/// each prefixed; control characters escaped: no forged lines).
const MAX_LOG_LINE: usize = 64 * 1024;
/// The most lines one `log`/`log-error` call writes.
const MAX_LOG_LINES: usize = 1000;

/// The host side of a `task-context`.
#[derive(Clone)]
pub struct TaskHandle {
    pub(crate) ctx: TaskContext,
    pub(crate) scope: Arc<TaskScope>,
}

impl TaskHandle {
    /// The handle of a task's context and capability scope.
    pub(crate) fn new(ctx: TaskContext, scope: Arc<TaskScope>) -> Self {
        TaskHandle { ctx, scope }
    }

    /// The context while its task lives; `None` once the task ended.
    pub(crate) fn live(&self) -> Option<&TaskContext> {
        (!self.scope.has_ended()).then_some(&self.ctx)
    }

    /// The task id ("" once the task ended).
    pub(crate) fn task_id(&self) -> String {
        self.live().map(|c| c.info().task_id.clone()).unwrap_or_default()
    }

    /// The run id (0 once the task ended).
    pub(crate) fn run_id(&self) -> u32 {
        self.live().map_or(0, |c| c.info().run_id)
    }

    /// The task's Taskcluster scopes (none once the task ended).
    pub(crate) fn scopes(&self) -> Vec<String> {
        self.live().map(|c| c.info().scopes.clone()).unwrap_or_default()
    }

    /// Whether the task's scopes satisfy one of `sets` (false once it ended).
    pub(crate) fn has_scopes(&self, sets: &[Vec<String>]) -> bool {
        self.live().is_some_and(|c| c.has_scopes(sets))
    }

    /// Writes `message` to the task log, line by line, made safe to print.
    pub(crate) fn log(&self, message: &str, error: bool) {
        let Some(ctx) = self.live() else { return };
        for line in crate::text::lines(message, MAX_LOG_LINE, MAX_LOG_LINES) {
            if error {
                ctx.log().log_error(&line);
            } else {
                ctx.log().log(&line);
            }
        }
    }

    /// Records the task's exit code (nothing once the task ended).
    pub(crate) fn set_exit_code(&self, code: i32) {
        if let Some(ctx) = self.live() {
            ctx.set_exit_code(code);
        }
    }

    /// Records what a fresh instance needs to take the task over (contract 0.1.4).
    pub(crate) fn set_recovery_record(&self, record: Vec<u8>) -> Result<(), String> {
        self.scope.set_recovery_record(record)
    }

    /// Resolves when the task is cancelled (at once if it already ended).
    pub(crate) fn cancelled(&self) -> impl Future<Output = ()> + Send + use<> {
        let (ctx, ended) = (self.ctx.clone(), self.scope.has_ended());
        async move {
            if !ended {
                ctx.cancelled().await;
            }
        }
    }
}
