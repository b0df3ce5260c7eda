//! What a user waits for: one trivial task through all of `enginehost run`'s
//! stages (`worker::run_task`: validation, builder, start, wait, dispose, the task
//! log) against the bare backend doing the same, alternately, round by round:
//!
//! - `native`: `true` as a native task, without and with a task user
//!   (`createUser`), against spawning `true` directly;
//! - `docker`: `true` in a container on the docker engine against
//!   `docker run --rm IMAGE true` on the same dockerd (only with a socket:
//!   `--docker-socket` or `ENGINEHOST_DOCKER_SOCKET`; the image must be there, e.g.
//!   `.ci/docker-test-image.sh`'s `enginehost/busybox:test`); and a task
//!   printing many lines with its recovery record (rewritten after each log
//!   write) against one without (a task with a cache keeps none).
//!
//! Ratios are the median of per-round ratios; times are the best round.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{Figure, Options, Target, median, start_builtin};
use crate::contract::{Engine, TaskContext, TaskInfo, TaskLog, Volume};
use crate::policy::HostSettings;
use crate::runtime::Runtime;
use crate::worker::{Outcome, TaskFile, TaskLimits, run_task};

/// The image `--only docker` runs unless told otherwise.
pub const DEFAULT_DOCKER_IMAGE: &str = "enginehost/busybox:test";

/// The native engine's operator config (`CREATE`: `createUser`).
const NATIVE: &str = r#"
[engines.native]
createUser = CREATE
[plugins.native.files]
sandbox = true
[plugins.native.process]
exec = ["/bin/**", "/usr/bin/**"]
run-as = ["worker", "task-user"]
[plugins.native.users]
create = true
"#;

/// The native engine's config, with or without a task user.
pub(super) fn native_config(create_user: bool) -> String {
    NATIVE.replace("CREATE", if create_user { "true" } else { "false" })
}

fn docker_config(socket: &Path) -> String {
    let socket = socket.display();
    format!(
        r#"
[engines.docker]
dockerSocket = "unix://{socket}"
privileged = "never"
[plugins.docker.unix-sockets]
connect = ["{socket}"]
"#
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One task through the worker's stages; its wall time.
async fn task(engine: &Arc<dyn Engine>, payload: &Value, scratch: &Path) -> anyhow::Result<Duration> {
    let file: TaskFile = serde_json::from_value(json!({"engine": engine.name(), "payload": payload}))?;
    let log = TaskLog::temporary()?;
    let t = Instant::now();
    let outcome = run_task(
        engine.as_ref(),
        &file,
        &log,
        &scratch.join("artifacts"),
        &CancellationToken::new(),
        &TaskLimits::default(),
    )
    .await;
    let took = t.elapsed();
    if outcome != Outcome::Success {
        let text = String::from_utf8_lossy(&log.read_to_end().await?).into_owned();
        bail!("the benchmark's {} task ended {outcome:?}: {text}", engine.name());
    }
    Ok(took)
}

/// A command's wall time (it must succeed).
fn command(program: &str, args: &[&str]) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = std::process::Command::new(program).args(args).output()?;
    let took = t.elapsed();
    ensure!(
        out.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(took)
}

fn runtime(options: &Options) -> anyhow::Result<Runtime> {
    Runtime::with_host(HostSettings {
        work_dir: Some(options.scratch.join("work")),
        cache_dir: Some(options.scratch.join("cache")),
        ..Default::default()
    })
}

/// `native.*`.
pub(super) async fn native(options: &Options) -> anyhow::Result<Vec<Figure>> {
    let rounds = if options.quick { 5 } else { 15 };
    let runtime = runtime(options)?;
    let plain = start_builtin(&runtime, "native", &native_config(false)).await?;
    // A task user needs root (useradd); without it only the plain figures are measured.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let user = if root {
        Some(start_builtin(&runtime, "native", &native_config(true)).await?)
    } else {
        None
    };
    let payload = json!({"command": ["true"]});
    let (mut bare, mut ours, mut with_user, mut ratios) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    task(&plain, &payload, &options.scratch).await?; // warm up
    for _ in 0..rounds {
        let b = command("true", &[])?;
        let o = task(&plain, &payload, &options.scratch).await?;
        if let Some(user) = &user {
            with_user.push(task(user, &payload, &options.scratch).await?);
        }
        ratios.push(ms(o) / ms(b));
        bare.push(b);
        ours.push(o);
    }
    plain.dispose().await?;
    if let Some(user) = &user {
        user.dispose().await?;
    }
    let best = |v: Vec<Duration>| v.into_iter().min().unwrap_or_default();
    let mut figures = vec![
        Figure::new("native.spawn_ms", ms(best(bare)), "ms, `true` spawned directly"),
        Figure::new("native.task_ms", ms(best(ours)), "ms, `true` as a native task"),
    ];
    if user.is_some() {
        figures.push(Figure::new(
            "native.task_user_ms",
            ms(best(with_user)),
            "ms, the same with a task user (createUser)",
        ));
    }
    figures.push(Figure::new(
        "native.task_ratio",
        median(ratios),
        "task / spawn, median of rounds",
    ));
    drop((plain, user));
    runtime.shutdown().await;
    Ok(figures)
}

/// The dockerd socket to measure against, if any.
pub fn docker_socket(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| std::env::var_os("ENGINEHOST_DOCKER_SOCKET").map(PathBuf::from))
}

/// `docker.*` (nothing without a socket).
pub(super) async fn docker(options: &Options) -> anyhow::Result<Vec<Figure>> {
    let Some(socket) = options.docker_socket.clone() else {
        eprintln!("docker: skipped (no dockerd socket: --docker-socket or ENGINEHOST_DOCKER_SOCKET)");
        return Ok(Vec::new());
    };
    let image = options.docker_image.as_deref().unwrap_or(DEFAULT_DOCKER_IMAGE);
    let rounds = if options.quick { 5 } else { 15 };
    let runtime = runtime(options)?;
    let engine = start_builtin(&runtime, "docker", &docker_config(&socket)).await?;
    let host = format!("unix://{}", socket.display());
    let payload = json!({"image": image, "command": ["true"]});
    let docker_run = ["-H", &host, "run", "--rm", image, "true"];
    task(&engine, &payload, &options.scratch).await?; // warm up (the image's first use)
    command("docker", &docker_run)?;
    let (mut bare, mut ours, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let b = command("docker", &docker_run)?;
        let o = task(&engine, &payload, &options.scratch).await?;
        ratios.push(ms(o) / ms(b));
        bare.push(b);
        ours.push(o);
    }
    // The recovery record after each log write (contract 0.1.4) against the
    // same output without one (a task with a cache keeps none).
    let lines = if options.quick { 500_000 } else { 2_000_000 };
    let output = json!({"image": image, "command": ["seq", "1", lines.to_string()]});
    let cache = engine.new_volume(json!({})).await?;
    let mut record_ratios = Vec::new();
    for _ in 0..rounds.min(5) {
        let recorded = output_task(&engine, &output, None).await?;
        let unrecorded = output_task(&engine, &output, Some(&cache)).await?;
        record_ratios.push(ms(recorded) / ms(unrecorded));
    }
    cache.dispose().await?;
    drop(cache);
    engine.dispose().await?;
    drop(engine);
    runtime.shutdown().await;
    let best = |v: Vec<Duration>| v.into_iter().min().unwrap_or_default();
    Ok(vec![
        Figure::new("docker.run_ms", ms(best(bare)), "ms, `docker run --rm IMAGE true`"),
        Figure::new("docker.task_ms", ms(best(ours)), "ms, `true` as a docker task"),
        Figure::new(
            "docker.task_ratio",
            median(ratios),
            "task / docker run, median of rounds",
        )
        .target(Target::AtMost(1.3)),
        Figure::new(
            "docker.output_record_ratio",
            median(record_ratios),
            "a task printing `seq` lines, with its recovery record kept after each log write / without one, median",
        )
        .target(Target::AtMost(1.1)),
    ])
}

/// One docker task through the contract, with `cache` mounted (then it keeps
/// no recovery record) or not: the time to its result.
async fn output_task(
    engine: &Arc<dyn Engine>,
    payload: &Value,
    cache: Option<&Arc<dyn Volume>>,
) -> anyhow::Result<Duration> {
    let info = TaskInfo {
        task_id: "bench".into(),
        ..Default::default()
    };
    let context = TaskContext::new(info, TaskLog::temporary()?);
    let t = Instant::now();
    let builder = engine.new_sandbox_builder(context.clone(), payload.clone()).await?;
    if let Some(cache) = cache {
        builder.attach_volume("/cache/", cache.as_ref(), false).await?;
    }
    let sandbox = builder.start().await?;
    let result = sandbox.wait_for_result().await?;
    let took = t.elapsed();
    ensure!(result.success(), "the benchmark's docker output task failed");
    result.dispose().await?;
    Ok(took)
}
