//! Per-task accounting (`[host] accounting`, on by default): which task each
//! moment of an instance's time belongs to, with wasmtime's task groups.
//!
//! Every host → guest call starts a task group (wasmtime's `TaskGroupHook`): the
//! call's guest task and every subtask it creates, however long they outlive the
//! call. Just before a call for a task starts, the actor's job tags the next group
//! with the task's [`TaskUsage`] ([`Ledger::tag_next`]); `handle_start` files the
//! new group under it. wasmtime reports each switch into and out of a group's
//! threads (`handle_enter` / `handle_exit`): that is the task's run time. Inside
//! it, the Store's call hook times each stretch of guest code (from an entry into
//! wasm or a return from the host to the next return or call out, in
//! `limits::install`) and adds it to [`SharedLedger::add_wasm`]; the group's exit
//! moves that sum to the task: its wasm time. Calls made for no task
//! (instantiation, `init`, resource drops, the engine's own calls) are tagged with
//! nothing and counted nowhere.
//!
//! The ledger is shared between the hook (owned by the Store's concurrent state)
//! and the call hook (which sees the Store's data): the groups behind a mutex
//! (group events are few), the guest time in an atomic the call hook adds to
//! without a lock (call hooks fire at every call between wasm and the host, the
//! component model's built-ins included). Both only ever run on the thread that
//! polls the Store, so nothing is contended.
//! Memory: [`PeakLimiter`] wraps the Store's limits and keeps the largest linear
//! memory granted; each task notes it after each of its calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use wasmtime::component::TaskGroupId;
use wasmtime::{ResourceLimiter, StoreLimits};

use crate::contract::TaskUsage;

/// Which task each task group belongs to, and what is running now.
#[derive(Default)]
pub(crate) struct Ledger {
    /// The task the next host → guest call is made for.
    pending: Option<Arc<TaskUsage>>,
    /// Live groups made for a task.
    groups: HashMap<TaskGroupId, Arc<TaskUsage>>,
    /// The task whose group is entered, and since when.
    entered: Option<(Arc<TaskUsage>, Instant)>,
}

#[derive(Default)]
struct Shared {
    ledger: Mutex<Ledger>,
    /// Nanoseconds of guest code since the last group switch.
    wasm: AtomicU64,
}

/// A [`Ledger`] shared by a Store's hooks.
#[derive(Clone, Default)]
pub(crate) struct SharedLedger(Arc<Shared>);

impl SharedLedger {
    fn lock(&self) -> MutexGuard<'_, Ledger> {
        // A panic while holding it cannot leave the ledger inconsistent enough to
        // matter: keep counting.
        self.0.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next host → guest call is made for `task` (`None`: for no task).
    pub(crate) fn tag_next(&self, task: Option<Arc<TaskUsage>>) {
        if let Some(task) = &task {
            task.add_call();
        }
        self.lock().pending = task;
    }

    /// A stretch of guest code ran (the call hook's measure).
    pub(crate) fn add_wasm(&self, d: std::time::Duration) {
        self.0.wasm.fetch_add(nanos(d), Ordering::Relaxed);
    }

    /// The guest time since the last switch, reset.
    fn take_wasm(&self) -> u64 {
        self.0.wasm.swap(0, Ordering::Relaxed)
    }

    /// The hook wasmtime calls on task-group events.
    pub(crate) fn hook(&self) -> GroupHook {
        GroupHook(self.clone())
    }
}

impl Ledger {
    /// Leaves the entered group, if any: its run time and `wasm` go to its task.
    fn exit(&mut self, wasm: u64) {
        if let Some((task, since)) = self.entered.take() {
            task.add_run(nanos(since.elapsed()));
            task.add_wasm(wasm);
        }
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// wasmtime's task-group hook over a [`SharedLedger`].
pub(crate) struct GroupHook(SharedLedger);

impl wasmtime::component::TaskGroupHook for GroupHook {
    fn handle_start(&mut self, id: TaskGroupId) -> wasmtime::Result<()> {
        let mut ledger = self.0.lock();
        if let Some(task) = ledger.pending.take() {
            ledger.groups.insert(id, task);
        }
        Ok(())
    }

    fn handle_enter(&mut self, id: TaskGroupId) -> wasmtime::Result<()> {
        let wasm = self.0.take_wasm();
        let mut ledger = self.0.lock();
        ledger.exit(wasm);
        ledger.entered = ledger.groups.get(&id).map(|task| (task.clone(), Instant::now()));
        Ok(())
    }

    fn handle_exit(&mut self, _id: TaskGroupId) -> wasmtime::Result<()> {
        let wasm = self.0.take_wasm();
        self.0.lock().exit(wasm);
        Ok(())
    }

    fn handle_finish(&mut self, id: TaskGroupId) -> wasmtime::Result<()> {
        self.0.lock().groups.remove(&id);
        Ok(())
    }
}

/// The Store's limits, keeping the largest linear memory they granted.
pub(crate) struct PeakLimiter {
    pub(crate) limits: StoreLimits,
    pub(crate) peak: Arc<AtomicU64>,
}

impl ResourceLimiter for PeakLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let granted = self.limits.memory_growing(current, desired, maximum)?;
        if granted {
            self.peak.fetch_max(desired as u64, Ordering::Relaxed);
        }
        Ok(granted)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
