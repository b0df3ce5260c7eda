//! Writable caches kept across tasks (docker-worker's `cache`, d2g's cache
//! mounts): for each engine and cache name a pool of the engine's volumes
//! (`new-volume`). A task takes one instance of each cache it names for itself
//! alone (a new, empty one when every instance is in use, as docker-worker does),
//! and gives it back at its end, or has it deleted (`onExitStatus.purgeCaches`,
//! or when the task did not end cleanly). Caches live as long as the worker: the
//! engine removes its volumes when it is disposed. Uses the contract only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::contract::{Engine, EngineError, Volume};

/// Idle instances by (engine, cache name).
type Pools = HashMap<(String, String), Vec<Arc<dyn Volume>>>;

/// The worker's caches.
#[derive(Default)]
pub struct Caches {
    free: Mutex<Pools>,
}

/// The caches one task holds: `(name, mountpoint, volume)`.
pub struct Held {
    caches: Arc<Caches>,
    engine: String,
    entries: Vec<(String, String, Arc<dyn Volume>)>,
    /// Names of the caches that were new (empty) for this task.
    pub fresh: Vec<String>,
}

impl Caches {
    /// An instance of each of `wanted` (`(name, mountpoint)`) for a task on
    /// `engine` (served as `engine_name`).
    ///
    /// # Errors
    /// The engine's, when it cannot make a volume; what was taken is deleted.
    pub async fn take(
        self: &Arc<Self>,
        engine: &dyn Engine,
        engine_name: &str,
        wanted: &[(String, String)],
    ) -> Result<Held, EngineError> {
        let mut held = Held {
            caches: self.clone(),
            engine: engine_name.to_string(),
            entries: Vec::new(),
            fresh: Vec::new(),
        };
        for (name, mountpoint) in wanted {
            let key = (engine_name.to_string(), name.clone());
            // A cache lost with its engine instance (a trap) is dropped: the
            // next one, or a new one, serves instead.
            let free = self.free.lock().expect("caches lock").get_mut(&key).and_then(|pool| {
                pool.retain(|v| !v.is_lost());
                pool.pop()
            });
            let volume = match free {
                Some(v) => v,
                None => match engine.new_volume(serde_json::json!({})).await {
                    Ok(v) => {
                        held.fresh.push(name.clone());
                        v
                    }
                    Err(e) => {
                        // What was taken so far is deleted: nothing is half-given.
                        held.release(true).await;
                        return Err(e);
                    }
                },
            };
            held.entries.push((name.clone(), mountpoint.clone(), volume));
        }
        Ok(held)
    }
}

impl Held {
    /// `(mountpoint, volume)` of each cache.
    pub fn mounts(&self) -> Vec<(String, Arc<dyn Volume>)> {
        self.entries.iter().map(|(_, m, v)| (m.clone(), v.clone())).collect()
    }

    /// Gives the caches back for later tasks, or (`purge`) deletes them.
    pub async fn release(mut self, purge: bool) {
        for (name, _, volume) in std::mem::take(&mut self.entries) {
            if purge {
                if let Err(e) = volume.dispose().await {
                    tracing::warn!(cache = %name, "deleting a purged cache: {e}");
                }
            } else {
                let key = (self.engine.clone(), name);
                self.caches
                    .free
                    .lock()
                    .expect("caches lock")
                    .entry(key)
                    .or_default()
                    .push(volume);
            }
        }
    }
}
