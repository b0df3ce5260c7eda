//! `cargo bench`: what the host costs, measured side by side in one run (this
//! machine is shared and noisy; compare rows, not absolute numbers). Prints a table.
//!
//! - compiling the mock component, and starting an engine (instantiate + init);
//! - one call through the actor (list-displays on a live sandbox);
//! - one whole mock task (builder → start → wait, delay 0) through the worker traits;
//! - N sandboxes pending at once in one engine: time to start them and RSS growth;
//! - then the figures of `enginehost bench` (`enginehost::bench`), one per line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use enginehost::contract::{Engine, TaskContext, TaskInfo, TaskLog};
use enginehost::plugin::BUILTIN;
use enginehost::runtime::{EngineOptions, Runtime};
use serde_json::json;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One log for every task of the bench: a log per task would hold a file open each.
static LOG: std::sync::LazyLock<TaskLog> = std::sync::LazyLock::new(|| TaskLog::temporary().expect("log"));

fn ctx() -> TaskContext {
    TaskContext::new(TaskInfo::default(), LOG.clone())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn row(what: &str, value: String) {
    println!("| {what:<58} | {value:>16} |");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runtime = Runtime::new().expect("runtime");
    let wasm = BUILTIN[0].1;
    println!("| {:<58} | {:>16} |", "measurement (median where repeated)", "value");
    println!("|{}|{}|", "-".repeat(60), "-".repeat(18));

    let compile: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            runtime.load("mock", wasm).expect("load");
            t.elapsed()
        })
        .collect();
    row(
        "compile + link the mock component (5×)",
        format!("{:.1?}", median(compile)),
    );
    let plugin = runtime.load("mock", wasm).expect("load");

    let mut starts = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let engine = runtime
            .start_engine(&plugin, EngineOptions::default())
            .await
            .expect("start");
        starts.push(t.elapsed());
        drop(engine);
    }
    row(
        "start an engine: instantiate + init + describe (20×)",
        format!("{:.1?}", median(starts)),
    );

    let engine: Arc<dyn Engine> = runtime
        .start_engine(&plugin, EngineOptions::default())
        .await
        .expect("start");
    let payload = json!({"delay": 60_000, "function": "true", "argument": ""});
    let sandbox = engine
        .new_sandbox_builder(ctx(), payload.clone())
        .await
        .unwrap()
        .start()
        .await
        .unwrap();
    let calls = 20_000;
    let t = Instant::now();
    for _ in 0..calls {
        sandbox.list_displays().await.unwrap();
    }
    row(
        "one call through the actor (list-displays, 20 000×)",
        format!("{:.2?}", t.elapsed() / calls),
    );
    sandbox.abort().await.unwrap();

    let task = json!({"delay": 0, "function": "true", "argument": ""});
    let mut tasks = Vec::new();
    for _ in 0..2_000 {
        let t = Instant::now();
        let rs = engine
            .new_sandbox_builder(ctx(), task.clone())
            .await
            .unwrap()
            .start()
            .await
            .unwrap();
        assert!(rs.wait_for_result().await.unwrap().success());
        tasks.push(t.elapsed());
    }
    row(
        "one whole mock task: builder, start, wait (2 000×)",
        format!("{:.1?}", median(tasks)),
    );

    for n in [1_000usize, 10_000] {
        let before = rss_kib();
        let t = Instant::now();
        let mut sandboxes = Vec::with_capacity(n);
        for _ in 0..n {
            sandboxes.push(
                engine
                    .new_sandbox_builder(ctx(), payload.clone())
                    .await
                    .unwrap()
                    .start()
                    .await
                    .unwrap(),
            );
        }
        let waits: Vec<_> = sandboxes
            .iter()
            .map(|s| {
                let s = s.clone();
                tokio::spawn(async move { s.wait_for_result().await.err() })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = t.elapsed();
        let grown = rss_kib().saturating_sub(before);
        let t = Instant::now();
        for s in &sandboxes {
            s.abort().await.unwrap();
        }
        for w in waits {
            assert!(w.await.unwrap().is_some(), "aborted waits return sandbox-aborted");
        }
        let aborted = t.elapsed();
        row(
            &format!("{n} sandboxes pending at once: start all (incl. 200 ms settle)"),
            format!("{started:.0?}"),
        );
        row(
            &format!("{n} sandboxes pending at once: RSS growth per sandbox"),
            format!("{:.1} KiB", grown as f64 / n as f64),
        );
        row(
            &format!("{n} sandboxes pending at once: abort all"),
            format!("{aborted:.0?}"),
        );
    }
    println!();
    let options = enginehost::bench::Options {
        quick: false,
        scratch: std::env::temp_dir().join(format!("enginehost-bench-{}", std::process::id())),
    };
    enginehost::bench::run(&options, |f| println!("{f}"))
        .await
        .expect("the benchmark runs");
}
