//! What the host costs per plugin and per task, with the mock:
//!
//! - `load`: compiling the mock component against loading it from the compile
//!   cache (each includes reading the metadata and linking);
//! - `lifecycle`: one whole task (builder → set env → start → wait → extract one
//!   file → dispose) on the wasm mock against the same on [`NativeMock`], and the
//!   wasm mock with every limit on against every limit off (no epoch checks, no
//!   deadlines, no store limits);
//! - `lifecycle.floor_us`: the same number of component-model async calls into a
//!   trivial component, straight from the task that owns its Store (wasmtime's
//!   own cost, `runtime::Floor`), and the wasm lifecycle's ratio to it;
//! - `usage`: what per-task accounting measured for one lifecycle, and what the
//!   accounting costs (the wasm mock with `[host] accounting` on against off);
//! - `concurrent`: N sandboxes waiting at once in one engine, and the host's RSS.
//!
//! Ratios whose target is close to 1 (`limits.overhead`, `usage.overhead`) are the
//! median of the per-round ratios of alternating rounds; the others compare the
//! best round of each side (noise only adds time).
//!
//! The mock's `true` has no file to extract; the lifecycle runs `write-files a`
//! (which also succeeds at once) so that the extraction is a real one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use super::native_mock::NativeMock;
use super::{Figure, Options, Target};
use crate::contract::{Engine, TaskContext, TaskInfo, TaskLog, UsageReport, WorkerControl};
use crate::plugin::BUILTIN;
use crate::policy::{HostSettings, ResolvedLimits};
use crate::runtime::{EngineOptions, Runtime};

fn mock_wasm() -> anyhow::Result<&'static [u8]> {
    BUILTIN
        .iter()
        .find(|(f, _, _)| *f == "mock.wasm")
        .map(|(_, w, _)| *w)
        .context("the mock is built in")
}

/// The floor component (`tests/fixtures/floor`), embedded by build.rs.
const FLOOR_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/fixture_floor.wasm"));

/// Calls into the engine per lifecycle: new-sandbox-builder,
/// set-environment-variable, start, wait-for-result, extract-file, dispose, and the
/// drops of the builder, the sandbox and the result set.
const LIFECYCLE_CALLS: u32 = 9;

fn settings(options: &Options, cache: bool) -> HostSettings {
    HostSettings {
        work_dir: Some(options.scratch.join("work")),
        compile_cache: Some(cache),
        cache_dir: Some(options.scratch.join("cache")),
        ..Default::default()
    }
}

/// The median of per-round ratios (`a[i] / b[i]`).
fn median_ratio(a: &[Duration], b: &[Duration]) -> f64 {
    super::median(a.iter().zip(b).map(|(a, b)| us(*a) / us(*b)).collect())
}

/// The best of several measurements: on a shared machine, noise only adds time.
fn best(v: Vec<Duration>) -> Duration {
    v.into_iter().min().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The host's resident set, in MiB.
pub(crate) fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// `load.*`: the mock compiled, then loaded from the cache, alternately.
fn load(options: &Options) -> anyhow::Result<Vec<Figure>> {
    let wasm = mock_wasm()?;
    let cold = Runtime::with_host(settings(options, false))?;
    let cached = Runtime::with_host(settings(options, true))?;
    cached.load("mock", wasm)?; // fills the cache
    let rounds = if options.quick { 3 } else { 7 };
    let (mut compile, mut from_cache) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        ensure!(!cold.load("mock", wasm)?.from_cache());
        compile.push(t.elapsed());
        let t = Instant::now();
        ensure!(
            cached.load("mock", wasm)?.from_cache(),
            "the mock was not loaded from the cache"
        );
        from_cache.push(t.elapsed());
    }
    let (compile, from_cache) = (best(compile), best(from_cache));
    let mut figures = vec![
        Figure::new("load.cold_ms", ms(compile), "ms"),
        Figure::new("load.cached_ms", ms(from_cache), "ms"),
        Figure::new("load.speedup", ms(compile) / ms(from_cache), "").target(Target::AtLeast(50.0)),
    ];
    if let Some(path) = &options.python_engine {
        // A componentize-py engine carries CPython (~20 MB): what its first load
        // and a cached load cost, beside the mock's.
        let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        cached.load("python", &wasm)?;
        let (mut compile, mut from_cache) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            let t = Instant::now();
            ensure!(!cold.load("python", &wasm)?.from_cache());
            compile.push(t.elapsed());
            let t = Instant::now();
            ensure!(cached.load("python", &wasm)?.from_cache());
            from_cache.push(t.elapsed());
        }
        figures.push(Figure::new("load.python_cold_ms", ms(best(compile)), "ms"));
        figures.push(Figure::new("load.python_cached_ms", ms(best(from_cache)), "ms"));
    }
    Ok(figures)
}

/// One log for every task of the bench (a log per task would be a file each).
fn context(log: &TaskLog) -> TaskContext {
    TaskContext::new(TaskInfo::default(), log.clone())
}

/// One whole task on `engine`; what it cost, if the engine accounts.
async fn lifecycle_once(engine: &dyn Engine, log: &TaskLog, payload: &Value) -> anyhow::Result<Option<UsageReport>> {
    let ctx = context(log);
    let builder = engine.new_sandbox_builder(ctx.clone(), payload.clone()).await?;
    builder.set_environment_variable("BENCH", "1").await?;
    let sandbox = builder.start().await?;
    let results = sandbox.wait_for_result().await?;
    ensure!(results.success(), "the mock task failed");
    let file = results.extract_file("a").await?.read_to_end().await;
    ensure!(file == b"Hello World", "the extracted file holds {file:?}");
    results.dispose().await?;
    drop(results);
    Ok(ctx.usage().report())
}

/// The mean time of one lifecycle over `n` in a row, measured in a task of its own
/// as the worker runs each task (not on the thread that blocks on the runtime).
async fn lifecycle_batch(engine: &Arc<dyn Engine>, log: &TaskLog, n: u32) -> anyhow::Result<Duration> {
    Ok(lifecycle_batch_usage(engine, log, n).await?.0)
}

/// [`lifecycle_batch`], and the mean usage of the batch's tasks (`None` if the
/// engine accounts nothing).
async fn lifecycle_batch_usage(
    engine: &Arc<dyn Engine>,
    log: &TaskLog,
    n: u32,
) -> anyhow::Result<(Duration, Option<UsageReport>)> {
    let (engine, log) = (engine.clone(), log.clone());
    tokio::spawn(async move {
        let payload = json!({"delay": 0, "function": "write-files", "argument": "a"});
        let t = Instant::now();
        let mut sum: Option<UsageReport> = None;
        for _ in 0..n {
            let usage = lifecycle_once(engine.as_ref(), &log, &payload).await?;
            if let Some(u) = usage {
                let s = sum.get_or_insert_with(|| UsageReport {
                    wasm_ms: 0.0,
                    host_calls_ms: 0.0,
                    calls: 0,
                    ..u.clone()
                });
                s.wasm_ms += u.wasm_ms;
                s.host_calls_ms += u.host_calls_ms;
                s.calls += u.calls;
                s.memory_peak_bytes = s.memory_peak_bytes.max(u.memory_peak_bytes);
            }
        }
        let took = t.elapsed() / n;
        Ok((
            took,
            sum.map(|s| UsageReport {
                wasm_ms: s.wasm_ms / f64::from(n),
                host_calls_ms: s.host_calls_ms / f64::from(n),
                calls: s.calls / u64::from(n),
                ..s
            }),
        ))
    })
    .await?
}

async fn start_mock(runtime: &Runtime, limits: ResolvedLimits) -> anyhow::Result<Arc<dyn Engine>> {
    let plugin = runtime.load("mock", mock_wasm()?)?;
    let options = EngineOptions {
        limits,
        ..Default::default()
    };
    Ok(runtime.start_engine(&plugin, options).await?)
}

/// `lifecycle.*`, `limits.overhead` and `usage.*`: batches of the engines (and of
/// the floor) in turn.
async fn lifecycle(options: &Options) -> anyhow::Result<Vec<Figure>> {
    let limited = Runtime::with_host(settings(options, true))?;
    let unlimited = Runtime::without_cpu_limit(settings(options, true))?;
    let unaccounted = Runtime::with_host(HostSettings {
        accounting: Some(false),
        ..settings(options, true)
    })?;
    let wasm = start_mock(&limited, ResolvedLimits::default()).await?;
    let wasm_off = start_mock(&unlimited, ResolvedLimits::unlimited()).await?;
    let wasm_unaccounted = start_mock(&unaccounted, ResolvedLimits::default()).await?;
    let native: Arc<dyn Engine> = NativeMock::new(WorkerControl::new());
    let floor = limited.floor(FLOOR_WASM, LIFECYCLE_CALLS).await?;
    let log = TaskLog::temporary()?;
    let (rounds, n) = if options.quick { (7, 300) } else { (15, 2_000) };
    for engine in [&wasm, &wasm_off, &wasm_unaccounted, &native] {
        lifecycle_batch(engine, &log, n / 10).await?; // warm up
    }
    floor.batch(n / 10).await?;
    let (mut on, mut off, mut unacc, mut yardstick, mut floors) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut usage = None;
    for _ in 0..rounds {
        let (t, u) = lifecycle_batch_usage(&wasm, &log, n).await?;
        on.push(t);
        usage = u;
        floors.push(floor.batch(n).await?);
        off.push(lifecycle_batch(&wasm_off, &log, n).await?);
        yardstick.push(lifecycle_batch(&native, &log, n).await?);
        unacc.push(lifecycle_batch(&wasm_unaccounted, &log, n).await?);
    }
    let (limits_overhead, usage_overhead) = (median_ratio(&on, &off), median_ratio(&on, &unacc));
    let (on, yardstick, floor_us) = (best(on), best(yardstick), best(floors));
    let call = one_call(&wasm, &log, n * 10).await?;
    for engine in [&wasm, &wasm_off, &wasm_unaccounted] {
        engine.dispose().await?;
    }
    drop((wasm, wasm_off, wasm_unaccounted, floor));
    limited.shutdown().await;
    unlimited.shutdown().await;
    unaccounted.shutdown().await;
    let one_thread = lifecycle_on_one_thread(options, rounds, n)?;
    let usage = usage.context("the wasm mock accounted nothing for its tasks")?;
    Ok(vec![
        Figure::new("lifecycle.wasm_us", us(on), "µs").target(Target::AtMost(50.0)),
        Figure::new(
            "lifecycle.floor_us",
            us(floor_us),
            "µs, the same number of async calls into a component that does nothing",
        ),
        Figure::new("lifecycle.floor_ratio", us(on) / us(floor_us), "").target(Target::AtMost(1.5)),
        Figure::new("lifecycle.native_us", us(yardstick), "µs"),
        Figure::new(
            "lifecycle.ratio",
            us(on) / us(yardstick),
            "wasm / native mock, for information",
        ),
        Figure::new(
            "lifecycle.call_us",
            us(call),
            "µs, one list-displays call into the wasm mock",
        ),
        Figure::new(
            "lifecycle.wasm_1_thread_us",
            us(one_thread),
            "µs, the same on a one-thread tokio runtime",
        ),
        Figure::new("limits.overhead", limits_overhead, "median of rounds").target(Target::AtMost(1.1)),
        Figure::new(
            "usage.wasm_us",
            usage.wasm_ms * 1e3,
            "µs of guest code in one lifecycle",
        ),
        Figure::new(
            "usage.host_us",
            usage.host_calls_ms * 1e3,
            "µs of the instance's time on the task outside guest code",
        ),
        Figure::new("usage.calls", usage.calls as f64, "calls made for the task"),
        Figure::new(
            "usage.memory_mb",
            usage.memory_peak_bytes as f64 / (1024.0 * 1024.0),
            "MiB, the instance's memory high-water mark",
        ),
        Figure::new(
            "usage.overhead",
            usage_overhead,
            "accounting on / off, median of rounds",
        )
        .target(Target::AtMost(1.05)),
    ])
}

/// The mean time of one trivial call into the wasm mock (`list-displays` on a
/// live sandbox), the unit the lifecycle is made of.
async fn one_call(engine: &Arc<dyn Engine>, log: &TaskLog, n: u32) -> anyhow::Result<Duration> {
    let payload = json!({"delay": 60_000, "function": "true", "argument": ""});
    let sandbox = engine.new_sandbox_builder(context(log), payload).await?.start().await?;
    let took = tokio::spawn({
        let sandbox = sandbox.clone();
        async move {
            let t = Instant::now();
            for _ in 0..n {
                sandbox.list_displays().await?;
            }
            anyhow::Ok(t.elapsed() / n)
        }
    })
    .await??;
    sandbox.abort().await?;
    Ok(took)
}

/// The wasm mock's lifecycle on a one-thread tokio runtime (no hand-off between
/// threads: the caller and the engine's actor take turns on one), for comparison
/// with `enginehost`'s multi-thread runtime: the best of `rounds` batches of `n`.
fn lifecycle_on_one_thread(options: &Options, rounds: usize, n: u32) -> anyhow::Result<Duration> {
    let settings = settings(options, true);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let threads = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                threads.block_on(async {
                    let runtime = Runtime::with_host(settings)?;
                    let engine = start_mock(&runtime, ResolvedLimits::default()).await?;
                    let log = TaskLog::temporary()?;
                    lifecycle_batch(&engine, &log, n / 10).await?;
                    let mut batches = Vec::new();
                    for _ in 0..rounds {
                        batches.push(lifecycle_batch(&engine, &log, n).await?);
                    }
                    engine.dispose().await?;
                    drop(engine);
                    runtime.shutdown().await;
                    Ok(best(batches))
                })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the one-thread lifecycle panicked"))?
    })
}

/// `concurrent.*`: N mock sandboxes (delay 60 s) waiting at once in one engine,
/// the host's RSS with all of them, then all aborted.
async fn concurrent(options: &Options) -> anyhow::Result<Vec<Figure>> {
    let runtime = Runtime::with_host(settings(options, true))?;
    let engine = start_mock(&runtime, ResolvedLimits::default()).await?;
    let log = TaskLog::temporary()?;
    let n = 10_000;
    let payload = json!({"delay": 60_000, "function": "true", "argument": ""});
    let mut sandboxes = Vec::with_capacity(n);
    for _ in 0..n {
        let builder = engine.new_sandbox_builder(context(&log), payload.clone()).await?;
        sandboxes.push(builder.start().await?);
    }
    let waits: Vec<_> = sandboxes
        .iter()
        .map(|s| {
            let s = s.clone();
            tokio::spawn(async move { s.wait_for_result().await.err() })
        })
        .collect();
    // Every wait is in the engine before the RSS is read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss = rss_mb();
    for s in &sandboxes {
        s.abort().await?;
    }
    for w in waits {
        ensure!(w.await?.is_some(), "an aborted wait returned a result");
    }
    engine.dispose().await?;
    drop((sandboxes, engine));
    runtime.shutdown().await;
    Ok(vec![
        Figure::new("concurrent.sandboxes", n as f64, ""),
        Figure::new("concurrent.rss_mb", rss, "MiB").target(Target::AtMost(1024.0)),
    ])
}

/// Every figure of this module.
pub(crate) async fn run(options: &Options, report: &mut (dyn FnMut(&Figure) + Send)) -> anyhow::Result<Vec<Figure>> {
    let mut all = Vec::new();
    if options.wants("load") {
        all.extend(load(options)?);
        all.iter().for_each(&mut *report);
    }
    if options.wants("lifecycle") || options.wants("limits") || options.wants("usage") {
        let figures = lifecycle(options).await?;
        figures.iter().for_each(&mut *report);
        all.extend(figures);
    }
    if options.wants("concurrent") {
        let figures = concurrent(options).await?;
        figures.iter().for_each(&mut *report);
        all.extend(figures);
    }
    Ok(all)
}
