//! Taking a running VM over after the engine's instance trapped (contract
//! 0.1.4). What a task needs to go on lives outside the instance: the qemu
//! process (kept by the host, `process::adopt`), the task's endpoint with its
//! connections (kept too, `endpoint::adopt`: the agent's log request goes on
//! copying into the task log host-side, so no byte of the output is lost or
//! repeated), and QMP on `qmp.sock` (qemu takes a new client once the old one's
//! connection closed). The record holds the rest: qemu's pid, the command, and
//! how far the agent's protocol got (booted, the log's end, the result), written
//! after each step with no await in between.
//!
//! Lost with the old instance: shells and displays (their connections end; the
//! agent kills a shell whose connection ends before its exit frame), and the
//! actions it had sent or queued (the calls that asked for them failed with the
//! trap). The agent retries a poll or a result that got no answer. Action ids
//! carry the instance's epoch, so a late reply to an old action never answers a
//! new one.

use std::rc::Rc;

use enginehost_sdk::caps::{endpoint, process};
use enginehost_sdk::{Error, Result, TaskContext};
use serde::{Deserialize, Serialize};

use crate::QemuEngine;
use crate::agent::{Agent, Reported};
use crate::sandbox::QemuSandbox;
use crate::task::{META_SOCKET, Task};

/// What a fresh instance needs to take a task over.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct Record {
    /// qemu's pid.
    pub(crate) pid: u32,
    /// When the boot must be over (Unix ms): a recovery does not extend it.
    pub(crate) boot_by_ms: u64,
    /// Which instance of the task this is (0 for the one that started it): the
    /// prefix of its action ids.
    pub(crate) epoch: u32,
    /// The body of `execute` (the command and its environment).
    pub(crate) execute: String,
    /// The agent fetched the command.
    pub(crate) booted: bool,
    /// The log request ended: whether it was whole.
    pub(crate) log_complete: Option<bool>,
    /// The agent reported the result.
    pub(crate) reported: Option<Reported>,
}

/// Writes the task's record (until the task ends, is killed or aborted).
pub(crate) struct Keeper {
    context: Rc<TaskContext>,
    on: std::cell::Cell<bool>,
}

impl Keeper {
    pub(crate) fn new(context: Rc<TaskContext>) -> Self {
        Keeper {
            context,
            on: std::cell::Cell::new(true),
        }
    }

    /// Records `record`; one that does not fit (a huge environment) leaves the
    /// task unrecoverable, as before contract 0.1.4.
    pub(crate) fn save(&self, record: &Record) {
        if !self.on.get() {
            return;
        }
        let bytes = serde_json::to_vec(record).expect("a record serializes");
        if self.context.set_recovery_record(&bytes).is_err() {
            self.stop();
        }
    }

    /// No more records: a trap from now on ends the task as before 0.1.4 (it was
    /// killed or aborted, or its result is in).
    pub(crate) fn stop(&self) {
        self.on.set(false);
        let _ = self.context.set_recovery_record(&[]);
    }
}

/// Takes the task of `record` over: adopts qemu and the endpoint, goes on with
/// the agent where the record says it was, and reconnects QMP (a VM the old
/// instance had not resumed yet is resumed now).
pub(crate) async fn recover(engine: Rc<QemuEngine>, context: TaskContext, data: &[u8]) -> Result<QemuSandbox> {
    let record: Record = serde_json::from_slice(data)
        .map_err(|e| Error::NonFatalInternalError(format!("the qemu engine's recovery record: {e}")))?;
    let context = Rc::new(context);
    let qemu = process::adopt(&context, record.pid)
        .map_err(|e| Error::NonFatalInternalError(format!("taking qemu (pid {}) over: {}", record.pid, e.message())))?;
    let ep = endpoint::adopt(&context, META_SOCKET)
        .map_err(|e| Error::NonFatalInternalError(format!("taking the task's endpoint over: {}", e.message())))?;
    let agent = Agent::restore(context.clone(), &record);
    let task = Task::launch(&engine, context, agent, qemu, Rc::new(ep), Vec::new());
    task.take_control()
        .await
        .map_err(|why| Error::NonFatalInternalError(format!("taking the VM over: {why}; it was stopped")))?;
    Ok(QemuSandbox::new(task))
}
