//! Per-task accounting: what one task cost its engine. The runtime adds to a
//! task's [`TaskUsage`] (it reaches it through the task's context); the worker
//! reads it when the task ends, writes [`UsageReport`] as the task log's last line
//! and uploads it as `public/enginehost/usage.json`. An engine that records nothing
//! (the native mock) leaves no report.
//!
//! - `wasm`: time spent in this task's guest code (the calls made for the task and
//!   the guest tasks they spawned), without the host functions it called;
//! - `host calls`: the rest of the time the instance spent on the task's behalf:
//!   the host functions (capabilities, task log, files) its guest code called,
//!   their futures polled later, and the component model's lifting and lowering;
//! - `calls`: host → engine calls made for the task;
//! - `memory high-water`: the largest linear memory the instance had by the time
//!   of the task's last call (one instance serves many tasks: this is the
//!   instance's mark, not the task's share).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;

/// Counters of one task, added to by the runtime while the task runs.
#[derive(Debug, Default)]
pub struct TaskUsage {
    recorded: AtomicBool,
    engine: std::sync::OnceLock<String>,
    run_ns: AtomicU64,
    wasm_ns: AtomicU64,
    calls: AtomicU64,
    memory_peak: AtomicU64,
}

impl TaskUsage {
    /// Names the engine that runs the task (the first name sticks).
    pub fn set_engine(&self, name: &str) {
        let _ = self.engine.set(name.to_string());
        self.recorded.store(true, Ordering::Relaxed);
    }

    /// Time the instance spent on the task's threads (guest and host code).
    pub fn add_run(&self, ns: u64) {
        self.run_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Time in the task's guest code.
    pub fn add_wasm(&self, ns: u64) {
        self.wasm_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// One host → engine call for the task.
    pub fn add_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// The instance's memory high-water mark after a call for the task.
    pub fn note_memory(&self, bytes: u64) {
        self.memory_peak.fetch_max(bytes, Ordering::Relaxed);
    }

    /// What the task cost so far, if an engine recorded anything.
    pub fn report(&self) -> Option<UsageReport> {
        if !self.recorded.load(Ordering::Relaxed) {
            return None;
        }
        let run = self.run_ns.load(Ordering::Relaxed);
        let wasm = self.wasm_ns.load(Ordering::Relaxed).min(run);
        Some(UsageReport {
            engine: self.engine.get().cloned().unwrap_or_default(),
            wasm_ms: wasm as f64 / 1e6,
            host_calls_ms: (run - wasm) as f64 / 1e6,
            calls: self.calls.load(Ordering::Relaxed),
            memory_peak_bytes: self.memory_peak.load(Ordering::Relaxed),
        })
    }
}

/// One task's usage, as written to the task log and `usage.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    /// The engine that ran the task.
    pub engine: String,
    /// Milliseconds the instance ran the task's guest code.
    pub wasm_ms: f64,
    /// Milliseconds the instance spent on the task outside its guest code.
    pub host_calls_ms: f64,
    /// Host → engine calls made for the task.
    pub calls: u64,
    /// The instance's memory high-water mark, in bytes.
    pub memory_peak_bytes: u64,
}

impl std::fmt::Display for UsageReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "usage: engine {}: wasm {:.3} ms, host calls {:.3} ms, {} calls into the engine, \
             instance memory high-water {:.1} MiB",
            self.engine,
            self.wasm_ms,
            self.host_calls_ms,
            self.calls,
            self.memory_peak_bytes as f64 / (1024.0 * 1024.0)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_recorded_is_no_report() {
        assert_eq!(TaskUsage::default().report(), None);
    }

    #[test]
    fn host_time_is_the_run_time_outside_wasm() {
        let usage = TaskUsage::default();
        usage.set_engine("mock");
        usage.add_run(3_000_000);
        usage.add_wasm(2_000_000);
        usage.add_call();
        usage.note_memory(2 << 20);
        usage.note_memory(1 << 20);
        let report = usage.report().unwrap();
        assert_eq!(report.wasm_ms, 2.0);
        assert_eq!(report.host_calls_ms, 1.0);
        assert_eq!(report.calls, 1);
        assert_eq!(report.memory_peak_bytes, 2 << 20);
        assert_eq!(
            report.to_string(),
            "usage: engine mock: wasm 2.000 ms, host calls 1.000 ms, 1 calls into the engine, \
             instance memory high-water 2.0 MiB"
        );
    }
}
