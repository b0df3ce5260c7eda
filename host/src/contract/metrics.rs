//! What the worker and the engine runtime count, for the operator's Prometheus
//! (`[worker] metrics-listen`, docs/worker.md "Metrics"): one process-wide registry
//! ([`Metrics::global`]), written by the runtime (instance starts and deaths, call
//! latency, the compile cache) and the worker (claims, resolutions, durations,
//! queue retries and errors), read by the metrics listener ([`Metrics::render`]).
//!
//! Names follow Prometheus' conventions: `enginehost_` prefix, base units
//! (seconds), `_total` for counters, a few bounded labels (engine names come from
//! the operator's config, call names from the contract, resolutions from the
//! protocol), never a task id.

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `engine`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EngineLabel {
    /// The engine's name.
    pub engine: String,
}

/// `engine`, `call`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The engine's name.
    pub engine: String,
    /// The contract call (`build-sandbox`, `wait-for-result`, ...).
    pub call: String,
}

/// `engine`, `resolution`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResolutionLabels {
    /// The engine's name (`none` when the payload named no served engine).
    pub engine: String,
    /// `completed`, `failed`, `exception/<reason>`.
    pub resolution: String,
}

/// `call` (a queue or object-service call).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueCallLabel {
    /// `claimWork`, `createArtifact`, `reporting the resolution`, ...
    pub call: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Runs claimed from the queue.
    pub tasks_claimed: Counter,
    /// Runs resolved (reported), by engine and resolution.
    pub tasks_resolved: Family<ResolutionLabels, Counter>,
    /// Tasks running now.
    pub tasks_running: Gauge,
    /// How long tasks ran, from claim to resolution.
    pub task_duration: Histograms<EngineLabel>,
    /// Engine instances started (the first and every restart).
    pub instance_starts: Family<EngineLabel, Counter>,
    /// Engine instances that died (a trap, a missed deadline, a hit limit).
    pub instance_traps: Family<EngineLabel, Counter>,
    /// Engine instances started again after one died.
    pub instance_restarts: Family<EngineLabel, Counter>,
    /// Running tasks taken over by a fresh instance after theirs died (0.1.4).
    pub task_recoveries: Family<EngineLabel, Counter>,
    /// How long each call into an engine took.
    pub call_duration: Histograms<CallLabels>,
    /// Components loaded from the compile cache.
    pub compile_cache_hits: Counter,
    /// Components compiled (not in the cache, or the cache is off).
    pub compile_cache_misses: Counter,
    /// Queue calls that failed for good.
    pub queue_errors: Family<QueueCallLabel, Counter>,
    /// Queue calls tried again after a transient failure.
    pub queue_retries: Family<QueueCallLabel, Counter>,
    /// Seconds engines ran tasks' guest code (per-task accounting).
    pub engine_wasm: Family<EngineLabel, Counter<f64, AtomicU64>>,
    /// Seconds instances spent on tasks outside their guest code.
    pub engine_host: Family<EngineLabel, Counter<f64, AtomicU64>>,
    /// The largest linear memory an engine's instance had at the end of a task.
    pub engine_memory_peak: Family<EngineLabel, Gauge>,
}

fn task_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 4.0, 9)) // 1 s … 18 h
}

fn call_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 4.0, 14)) // 10 µs … 11 min
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("enginehost");
        let m = Metrics {
            tasks_claimed: Counter::default(),
            tasks_resolved: Family::default(),
            tasks_running: Gauge::default(),
            task_duration: Family::new_with_constructor(task_histogram as fn() -> Histogram),
            instance_starts: Family::default(),
            instance_traps: Family::default(),
            instance_restarts: Family::default(),
            task_recoveries: Family::default(),
            call_duration: Family::new_with_constructor(call_histogram as fn() -> Histogram),
            compile_cache_hits: Counter::default(),
            compile_cache_misses: Counter::default(),
            queue_errors: Family::default(),
            queue_retries: Family::default(),
            engine_wasm: Family::default(),
            engine_host: Family::default(),
            engine_memory_peak: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("tasks_claimed", "Runs claimed from the queue", m.tasks_claimed.clone());
        r.register(
            "tasks_resolved",
            "Runs resolved, by engine and resolution",
            m.tasks_resolved.clone(),
        );
        r.register("tasks_running", "Tasks running now", m.tasks_running.clone());
        r.register_with_unit(
            "task_duration",
            "How long tasks ran, from claim to resolution",
            prometheus_client::registry::Unit::Seconds,
            m.task_duration.clone(),
        );
        r.register(
            "engine_instance_starts",
            "Engine instances started",
            m.instance_starts.clone(),
        );
        r.register(
            "engine_instance_traps",
            "Engine instances that died (trap, missed deadline, hit limit)",
            m.instance_traps.clone(),
        );
        r.register(
            "engine_instance_restarts",
            "Engine instances started again after one died",
            m.instance_restarts.clone(),
        );
        r.register(
            "engine_task_recoveries",
            "Running tasks taken over by a fresh engine instance after theirs died",
            m.task_recoveries.clone(),
        );
        r.register_with_unit(
            "engine_call_duration",
            "How long each call into an engine took",
            prometheus_client::registry::Unit::Seconds,
            m.call_duration.clone(),
        );
        r.register(
            "compile_cache_hits",
            "Components loaded from the compile cache",
            m.compile_cache_hits.clone(),
        );
        r.register(
            "compile_cache_misses",
            "Components compiled because the cache had none",
            m.compile_cache_misses.clone(),
        );
        r.register(
            "queue_errors",
            "Queue calls that failed for good",
            m.queue_errors.clone(),
        );
        r.register(
            "queue_retries",
            "Queue calls tried again after a transient failure",
            m.queue_retries.clone(),
        );
        r.register_with_unit(
            "engine_task_wasm",
            "Time engines ran tasks' guest code",
            prometheus_client::registry::Unit::Seconds,
            m.engine_wasm.clone(),
        );
        r.register_with_unit(
            "engine_task_host",
            "Time engine instances spent on tasks outside guest code (host calls, the component model)",
            prometheus_client::registry::Unit::Seconds,
            m.engine_host.clone(),
        );
        r.register_with_unit(
            "engine_memory_peak",
            "The largest linear memory of an engine's instance, at the end of its last task",
            prometheus_client::registry::Unit::Bytes,
            m.engine_memory_peak.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The process's metrics.
    pub fn global() -> &'static Metrics {
        static METRICS: OnceLock<Metrics> = OnceLock::new();
        METRICS.get_or_init(Metrics::new)
    }

    /// The text exposition (OpenMetrics 1.0, which Prometheus scrapes as
    /// `application/openmetrics-text`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The same in Prometheus' own text format (0.0.4), for scrapers that do not ask
    /// for OpenMetrics (and `promtool check metrics`): a counter's HELP and TYPE name
    /// its `_total` samples, and there are no `# UNIT` or `# EOF` lines.
    pub fn render_prometheus(&self) -> String {
        openmetrics_to_prometheus(&self.render())
    }

    /// Counts a queue call tried again.
    pub fn queue_retry(&self, call: &str) {
        self.queue_retries
            .get_or_create(&QueueCallLabel { call: call.to_string() })
            .inc();
    }

    /// Counts a queue call that failed for good.
    pub fn queue_error(&self, call: &str) {
        self.queue_errors
            .get_or_create(&QueueCallLabel { call: call.to_string() })
            .inc();
    }

    /// Records one call into `engine`.
    pub fn engine_call(&self, engine: &str, call: &str, seconds: f64) {
        self.call_histogram(engine, call).observe(seconds);
    }

    /// The latency histogram of `call` into `engine` (a handle on the registered
    /// one: callers keep it instead of looking it up per call).
    pub fn call_histogram(&self, engine: &str, call: &str) -> Histogram {
        self.call_duration
            .get_or_create(&CallLabels {
                engine: engine.to_string(),
                call: call.to_string(),
            })
            .clone()
    }

    /// Adds one task's usage to its engine's totals.
    pub fn task_usage(&self, usage: &super::UsageReport) {
        let engine = Metrics::engine(&usage.engine);
        self.engine_wasm.get_or_create(&engine).inc_by(usage.wasm_ms / 1e3);
        self.engine_host
            .get_or_create(&engine)
            .inc_by(usage.host_calls_ms / 1e3);
        self.engine_memory_peak
            .get_or_create(&engine)
            .set(i64::try_from(usage.memory_peak_bytes).unwrap_or(i64::MAX));
    }

    /// The `engine` label.
    pub fn engine(engine: &str) -> EngineLabel {
        EngineLabel {
            engine: engine.to_string(),
        }
    }
}

/// OpenMetrics text → Prometheus text 0.0.4.
fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_what_was_counted() {
        let m = Metrics::new();
        m.tasks_claimed.inc();
        m.engine_call("mock", "wait-for-result", 0.25);
        m.queue_retry("claimWork");
        let text = m.render();
        assert!(text.contains("enginehost_tasks_claimed_total 1"), "{text}");
        assert!(
            text.contains("enginehost_engine_call_duration_seconds_count{engine=\"mock\",call=\"wait-for-result\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("enginehost_queue_retries_total{call=\"claimWork\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        let prometheus = m.render_prometheus();
        assert!(
            prometheus.contains("# TYPE enginehost_tasks_claimed_total counter\n"),
            "{prometheus}"
        );
        assert!(
            prometheus.contains("# HELP enginehost_queue_retries_total "),
            "{prometheus}"
        );
        assert!(
            !prometheus.contains("# EOF") && !prometheus.contains("# UNIT"),
            "{prometheus}"
        );
        assert!(
            prometheus.contains("# TYPE enginehost_tasks_running gauge\n"),
            "{prometheus}"
        );
    }
}
