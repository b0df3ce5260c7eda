//! Throughput of the bytes the host moves itself, through the native engine:
//! a task writing N bytes to stdout (into the task log) against the same command
//! redirected to a file, and a directory of N bytes extracted as an artifact
//! against `cp -r`. Each pair runs alternately, the best of the rounds counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use super::{Figure, Options, Target};
use crate::contract::{Engine, TaskContext, TaskInfo, TaskLog};
use crate::policy::HostSettings;
use crate::runtime::Runtime;
use crate::worker::artifacts::{self, ArtifactKind, ArtifactSpec};

const MIB: u64 = 1 << 20;

fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / MIB as f64 / took.as_secs_f64()
}

fn sh(command: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let status = std::process::Command::new("sh").args(["-c", command]).status()?;
    if !status.success() {
        bail!("`{command}` failed: {status}");
    }
    Ok(t.elapsed())
}

async fn native(runtime: &Runtime) -> anyhow::Result<Arc<dyn Engine>> {
    super::start_builtin(runtime, "native", &super::backends::native_config(false)).await
}

fn context(log: &TaskLog) -> TaskContext {
    TaskContext::new(TaskInfo::default(), log.clone())
}

/// Runs `command` as a native task; returns the time from builder to result.
async fn task(
    engine: &Arc<dyn Engine>,
    log: &TaskLog,
    command: &str,
) -> anyhow::Result<(Duration, Arc<dyn crate::contract::ResultSet>)> {
    let t = Instant::now();
    let builder = engine
        .new_sandbox_builder(context(log), json!({"command": ["sh", "-c", command]}))
        .await?;
    let sandbox = builder.start().await?;
    let result = sandbox.wait_for_result().await?;
    let took = t.elapsed();
    if !result.success() {
        bail!("the benchmark task `{command}` failed");
    }
    Ok((took, result))
}

pub(super) async fn run(options: &Options) -> anyhow::Result<Vec<Figure>> {
    let (size, rounds) = if options.quick { (256 * MIB, 4) } else { (1024 * MIB, 5) };
    let scratch = &options.scratch;
    std::fs::create_dir_all(scratch)?;
    let runtime = Runtime::with_host(HostSettings {
        work_dir: Some(scratch.join("work")),
        ..Default::default()
    })?;
    let engine = native(&runtime).await?;
    let write = format!("head -c {size} /dev/zero");

    // stdout → task log, against a redirect to a file on the same disk.
    let (mut ours, mut theirs) = (Duration::MAX, Duration::MAX);
    for _ in 0..rounds {
        let file = scratch.join("redirect.out");
        theirs = theirs.min(sh(&format!("{write} > {}", file.display()))?);
        std::fs::remove_file(&file)?;
        let log = TaskLog::temporary()?;
        let (took, _) = task(&engine, &log, &write).await?;
        log.close();
        let written = std::fs::metadata(log.path())?.len();
        if written != size {
            bail!("the task log got {written} bytes of {size}");
        }
        ours = ours.min(took);
    }
    let log_ratio = theirs.as_secs_f64() / ours.as_secs_f64();

    // A directory artifact, against `cp -r`.
    let files: u64 = 64;
    let each = size / files;
    let log = TaskLog::temporary()?;
    let make = format!("mkdir out; for i in $(seq {files}); do head -c {each} /dev/zero > out/f$i; done; echo $HOME");
    let (_, result) = task(&engine, &log, &make).await?;
    log.close();
    let home = String::from_utf8(log.read_to_end().await?)?.trim().to_string();
    let spec = ArtifactSpec::new(ArtifactKind::Directory, "out", "out");
    let (mut extract, mut copy) = (Duration::MAX, Duration::MAX);
    for round in 0..rounds {
        let dest = scratch.join(format!("cp-{round}"));
        copy = copy.min(sh(&format!("cp -r {}/out {}", home, dest.display()))?);
        std::fs::remove_dir_all(&dest)?;
        let dest = scratch.join(format!("artifacts-{round}"));
        let t = Instant::now();
        artifacts::extract(
            result.as_ref(),
            &spec,
            &dest,
            &artifacts::Budget::new(Default::default()),
        )
        .await
        .map_err(|e| anyhow::anyhow!("extracting the artifact: {e:?}"))?;
        extract = extract.min(t.elapsed());
        let got: u64 = std::fs::read_dir(dest.join("out"))?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        if got != files * each {
            bail!("the artifact has {got} bytes of {}", files * each);
        }
        std::fs::remove_dir_all(&dest)?;
    }
    drop(result);
    drop(engine);
    runtime.shutdown().await;
    let _ = std::fs::remove_dir_all(scratch);
    let extract_ratio = copy.as_secs_f64() / extract.as_secs_f64();

    let mib = size / MIB;
    Ok(vec![
        Figure::new(
            "throughput.log_mb_s",
            mb_per_s(size, ours),
            "MiB/s, a native task's stdout into the task log",
        ),
        Figure::new(
            "throughput.log_redirect_mb_s",
            mb_per_s(size, theirs),
            "MiB/s, the same command > file",
        ),
        Figure::new("throughput.log_ratio", log_ratio, "").target(Target::AtLeast(0.8)),
        Figure::new(
            "throughput.artifact_mb_s",
            mb_per_s(size, extract),
            "MiB/s, a 64-file directory artifact",
        ),
        Figure::new(
            "throughput.cp_mb_s",
            mb_per_s(size, copy),
            "MiB/s, cp -r of the same directory",
        ),
        Figure::new("throughput.artifact_ratio", extract_ratio, "").target(Target::AtLeast(0.8)),
        Figure::new("throughput.size_mib", mib as f64, "MiB moved per measurement"),
    ])
}
