//! What bounds one engine instance: its CPU slice (a guest that runs longer than
//! `limits.cpu-slice` without awaiting is stopped), its memory and instances
//! (`StoreLimits`), its component handles, and the deadlines of calls.
//!
//! The CPU slice: a thread ticks the wasmtime engine's epoch every [`TICK`]; a
//! Store's epoch deadline is one tick ahead, so while wasm runs, the callback runs
//! once per tick. A call hook notes each entry into wasm from the host (an export
//! call, or a guest task resumed after an await) and resets the count; the
//! callback traps when one entry has lasted more than the slice. Time in host
//! calls and time waiting counts for nothing: a guest that awaits is never stopped.
//! Below the slice, the callback yields to the executor at every tick, so a guest
//! that computes never holds the thread it shares with other tasks for more than
//! a tick.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{CallHook, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};

use super::HostState;
use crate::policy::ResolvedLimits;

/// How often the epoch advances.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// Advances an engine's epoch every [`TICK`] until dropped.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    pub(crate) fn start(engine: &wasmtime::Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, engine) = (stop.clone(), engine.weak());
        std::thread::Builder::new()
            .name("enginehost-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .expect("starting the epoch thread");
        Ticker { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The CPU watch of one Store.
pub(crate) struct CpuWatch {
    plugin: Arc<str>,
    /// Nesting of host → wasm entries (0: the host runs).
    depth: u32,
    /// Ticks seen since the outermost entry.
    ticks: u64,
    /// Ticks allowed per entry.
    slice_ticks: u64,
    slice: Duration,
}

impl CpuWatch {
    pub(crate) fn new(plugin: Arc<str>, slice: Duration) -> Self {
        CpuWatch {
            plugin,
            depth: 0,
            ticks: 0,
            slice_ticks: u64::try_from(slice.as_millis() / TICK.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            slice,
        }
    }
}

/// The memory and instance limits of one Store.
pub(crate) fn store_limits(limits: &ResolvedLimits) -> StoreLimits {
    StoreLimitsBuilder::new()
        .memory_size(usize::try_from(limits.memory).unwrap_or(usize::MAX))
        .instances(64)
        .tables(256)
        .memories(64)
        .table_elements(1_000_000)
        .build()
}

/// Installs the limits on a new Store (`epochs`: the engine has epoch
/// interruption on; without it only memory and handles are bounded), and the
/// call hook that accounting needs.
pub(crate) fn install(store: &mut Store<HostState>, limits: &ResolvedLimits, epochs: bool) {
    store.limiter(|s| &mut s.limits);
    store.set_max_component_handles(usize::try_from(limits.handles).unwrap_or(usize::MAX));
    if epochs {
        install_cpu_slice(store);
    }
    // The call hook times each entry for the CPU slice and, with accounting, for the task.
    if epochs || store.data().ledger.is_some() {
        install_call_hook(store);
    }
}

fn install_cpu_slice(store: &mut Store<HostState>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let watch = &mut ctx.data_mut().cpu;
        if watch.depth > 0 {
            watch.ticks += 1;
            if watch.ticks > watch.slice_ticks {
                return Err(wasmtime::Error::msg(format!(
                    "engine plugin '{}' ran for more than {:?} without awaiting (limits.cpu-slice); \
                     its instance was stopped",
                    watch.plugin, watch.slice
                )));
            }
        }
        // Yield to the executor at every tick: a guest that computes for a while
        // shares the thread with every other task instead of holding it for its
        // whole slice.
        Ok(UpdateDeadline::Yield(1))
    });
}

fn install_call_hook(store: &mut Store<HostState>) {
    store.call_hook(|mut ctx, hook| {
        let state = ctx.data_mut();
        if let Some(ledger) = &state.ledger {
            match hook {
                CallHook::CallingWasm | CallHook::ReturningFromHost => {
                    state.wasm_since = Some(std::time::Instant::now());
                }
                CallHook::ReturningFromWasm | CallHook::CallingHost => {
                    if let Some(since) = state.wasm_since.take() {
                        ledger.add_wasm(since.elapsed());
                    }
                }
            }
        }
        let watch = &mut state.cpu;
        match hook {
            CallHook::CallingWasm => {
                if watch.depth == 0 {
                    watch.ticks = 0;
                }
                watch.depth += 1;
            }
            CallHook::ReturningFromWasm => watch.depth = watch.depth.saturating_sub(1),
            CallHook::CallingHost | CallHook::ReturningFromHost => {}
        }
        Ok(())
    });
}
