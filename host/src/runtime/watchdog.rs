//! The deadlines of one instance's calls, on one coarse timer instead of a tokio
//! timer per call. A timer per call cost a wake-up of the thread parked in the
//! I/O driver for nearly every call (registering the only timer moves the
//! driver's next wake-up, which it learns through an eventfd), which was a good
//! part of what a call into an engine cost beyond wasmtime's own floor
//! (docs/benchmarks.md).
//!
//! A call registers its deadline ([`Watchdog::enter`]) and removes it when it
//! returns (the guard's drop). The instance's watchdog task ticks every
//! [`Watchdog::tick`] while calls are registered, and kills the instance at the
//! first tick past a deadline (so a call is stopped at most one tick late: an
//! eighth of the shortest timeout, at most one second); when two ticks in a row
//! find nothing registered it parks until the next registration.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::actor::Instance;

/// A registered call.
struct Pending {
    deadline: Instant,
    what: &'static str,
    limit: Duration,
    key: &'static str,
}

/// The deadlines of one instance.
pub(crate) struct Watchdog {
    calls: Mutex<HashMap<u64, Pending>>,
    next: AtomicU64,
    /// The watchdog task is parked (waiting for a registration).
    parked: AtomicBool,
    wake: tokio::sync::Notify,
    tick: Duration,
}

/// Removes its call's deadline when dropped.
pub(crate) struct Entry<'a> {
    watchdog: &'a Watchdog,
    id: u64,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.watchdog.lock().remove(&self.id);
    }
}

impl Watchdog {
    /// A watchdog whose ticks are an eighth of `shortest` (10 ms … 1 s).
    pub(crate) fn new(shortest: Duration) -> Watchdog {
        Watchdog {
            calls: Mutex::default(),
            next: AtomicU64::new(0),
            parked: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            tick: (shortest / 8).clamp(Duration::from_millis(10), Duration::from_secs(1)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers the call `what`, due within `limit` (`key`: the setting).
    pub(crate) fn enter(&self, what: &'static str, limit: Duration, key: &'static str) -> Entry<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + limit;
        self.lock().insert(
            id,
            Pending {
                deadline,
                what,
                limit,
                key,
            },
        );
        if self.parked.load(Ordering::Acquire) {
            self.wake.notify_one();
        }
        Entry { watchdog: self, id }
    }

    /// Wakes a parked watchdog (the instance is going away).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// The reason to stop the instance, if a call is past its deadline.
    fn overdue(&self, now: Instant) -> Option<String> {
        self.lock().values().find(|p| p.deadline <= now).map(|p| {
            format!(
                "it did not answer {} within {:?} ({}); its instance was stopped",
                p.what, p.limit, p.key
            )
        })
    }

    /// The watchdog task of `instance`: ends when the instance is dropped or dead.
    pub(crate) async fn run(self: Arc<Self>, instance: Weak<Instance>) {
        let mut idle_ticks = 0;
        loop {
            if idle_ticks >= 2 {
                self.parked.store(true, Ordering::Release);
                // A registration between the check and the wait leaves a permit.
                if self.lock().is_empty() {
                    self.wake.notified().await;
                }
                self.parked.store(false, Ordering::Release);
                idle_ticks = 0;
            }
            tokio::time::sleep(self.tick).await;
            let Some(instance) = instance.upgrade() else { return };
            if !instance.is_alive() {
                return;
            }
            if let Some(reason) = self.overdue(Instant::now()) {
                instance.kill(reason);
                return;
            }
            idle_ticks = if self.lock().is_empty() { idle_ticks + 1 } else { 0 };
        }
    }
}
