//! What the host costs per plugin and per task, with the mock:
//!
//! - `load`: compiling the mock component against loading it from the compile
//!   cache (each includes reading the metadata and linking);
//! - `lifecycle`: one whole task (builder → set env → start → wait → extract one
//!   file → dispose) on the wasm mock against the same on [`NativeMock`], and the
//!   wasm mock with every limit on against every limit off (no epoch checks, no
//!   deadlines, no store limits);
//! - `concurrent`: N sandboxes waiting at once in one engine, and the host's RSS.
//!
//! The mock's `true` has no file to extract; the lifecycle runs `write-files a`
//! (which also succeeds at once) so that the extraction is a real one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use super::{Figure, Options, Target};
use crate::contract::{Engine, TaskContext, TaskInfo, TaskLog, WorkerControl};
use crate::native_mock::NativeMock;
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

fn settings(options: &Options, cache: bool) -> HostSettings {
    HostSettings {
        work_dir: Some(options.scratch.join("work")),
        compile_cache: Some(cache),
        cache_dir: Some(options.scratch.join("cache")),
        ..Default::default()
    }
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
    Ok(vec![
        Figure::new("load.cold_ms", ms(compile), "ms"),
        Figure::new("load.cached_ms", ms(from_cache), "ms"),
        Figure::new("load.speedup", ms(compile) / ms(from_cache), "").target(Target::AtLeast(50.0)),
    ])
}

/// One log for every task of the bench (a log per task would be a file each).
fn context(log: &TaskLog) -> TaskContext {
    TaskContext::new(TaskInfo::default(), log.clone())
}

/// One whole task on `engine`.
async fn lifecycle_once(engine: &dyn Engine, log: &TaskLog, payload: &Value) -> anyhow::Result<()> {
    let builder = engine.new_sandbox_builder(context(log), payload.clone()).await?;
    builder.set_environment_variable("BENCH", "1").await?;
    let sandbox = builder.start().await?;
    let results = sandbox.wait_for_result().await?;
    ensure!(results.success(), "the mock task failed");
    let file = results.extract_file("a").await?.read_to_end().await;
    ensure!(file == b"Hello World", "the extracted file holds {file:?}");
    results.dispose().await?;
    Ok(())
}

/// The mean time of one lifecycle over `n` in a row, measured in a task of its own
/// as the worker runs each task (not on the thread that blocks on the runtime).
async fn lifecycle_batch(engine: &Arc<dyn Engine>, log: &TaskLog, n: u32) -> anyhow::Result<Duration> {
    let (engine, log) = (engine.clone(), log.clone());
    tokio::spawn(async move {
        let payload = json!({"delay": 0, "function": "write-files", "argument": "a"});
        let t = Instant::now();
        for _ in 0..n {
            lifecycle_once(engine.as_ref(), &log, &payload).await?;
        }
        Ok(t.elapsed() / n)
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

/// `lifecycle.*` and `limits.overhead`: batches of the three engines in turn, the
/// best batch of each.
async fn lifecycle(options: &Options) -> anyhow::Result<Vec<Figure>> {
    let limited = Runtime::with_host(settings(options, true))?;
    let unlimited = Runtime::without_cpu_limit(settings(options, true))?;
    let wasm = start_mock(&limited, ResolvedLimits::default()).await?;
    let wasm_off = start_mock(&unlimited, ResolvedLimits::unlimited()).await?;
    let native: Arc<dyn Engine> = NativeMock::new(WorkerControl::new());
    let log = TaskLog::temporary()?;
    let (rounds, n) = if options.quick { (7, 300) } else { (15, 2_000) };
    for engine in [&wasm, &wasm_off, &native] {
        lifecycle_batch(engine, &log, n / 10).await?; // warm up
    }
    let (mut on, mut off, mut yardstick) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        on.push(lifecycle_batch(&wasm, &log, n).await?);
        yardstick.push(lifecycle_batch(&native, &log, n).await?);
        off.push(lifecycle_batch(&wasm_off, &log, n).await?);
    }
    let (on, off, yardstick) = (best(on), best(off), best(yardstick));
    let call = one_call(&wasm, &log, n * 10).await?;
    wasm.dispose().await?;
    wasm_off.dispose().await?;
    drop((wasm, wasm_off));
    limited.shutdown().await;
    unlimited.shutdown().await;
    let one_thread = lifecycle_on_one_thread(options, rounds, n)?;
    Ok(vec![
        Figure::new("lifecycle.wasm_us", us(on), "µs").target(Target::AtMost(50.0)),
        Figure::new("lifecycle.native_us", us(yardstick), "µs"),
        Figure::new("lifecycle.ratio", us(on) / us(yardstick), "").target(Target::AtMost(2.0)),
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
        Figure::new("limits.overhead", us(on) / us(off), "").target(Target::AtMost(1.1)),
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
    if options.wants("lifecycle") || options.wants("limits") {
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
