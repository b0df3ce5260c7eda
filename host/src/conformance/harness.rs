//! The harness rules of the seed's `enginetest` (docs/engine-contract.md §3.1): a run is
//! one task context (task id "", run id 0, the case's scopes) with its own log;
//! payloads are validated against the engine's payload schema unfiltered; the log
//! is closed right after wait-for-result returns (so every byte must be written
//! before); an error-level line in the log fails the subtest; disposal discards the
//! builder (a no-op after start), aborts the sandbox (on sandbox-terminated it
//! waits for the result set) and disposes the result set, each of which must
//! succeed.

use std::sync::Arc;

use serde_json::Value;

use crate::contract::{Engine, EngineError, ResultSet, Sandbox, SandboxBuilder, TaskContext, TaskInfo, TaskLog};

/// A subtest's verdict: `Err` carries the reason it failed.
pub type Check = Result<(), String>;

/// Fails the subtest with a formatted reason unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}
pub(crate) use ensure;

/// Turns an engine error into a subtest failure naming the step.
pub fn step<T>(what: &str, r: Result<T, EngineError>) -> Result<T, String> {
    r.map_err(|e| match e.detail() {
        Some(d) => format!("{what} returned an error: {e} ({d})"),
        None => format!("{what} returned an error: {e}"),
    })
}

/// One task of a subtest.
pub struct Run {
    pub engine: Arc<dyn Engine>,
    pub context: TaskContext,
    pub builder: Option<Box<dyn SandboxBuilder>>,
    pub sandbox: Option<Arc<dyn Sandbox>>,
    pub result: Option<Arc<dyn ResultSet>>,
}

impl Run {
    /// A new run with `scopes`.
    pub fn new(engine: &Arc<dyn Engine>, scopes: &[String]) -> Result<Run, String> {
        let log = TaskLog::temporary().map_err(|e| format!("creating a task log: {e}"))?;
        let info = TaskInfo {
            task_id: String::new(),
            run_id: 0,
            scopes: scopes.to_vec(),
        };
        Ok(Run {
            engine: engine.clone(),
            context: TaskContext::new(info, log),
            builder: None,
            sandbox: None,
            result: None,
        })
    }

    /// The run's log.
    pub fn log(&self) -> &TaskLog {
        self.context.log()
    }

    /// Validates `payload` against the payload schema (unfiltered) and creates the
    /// builder.
    pub async fn new_sandbox_builder(&mut self, payload: &Value) -> Check {
        self.engine
            .payload_validator()
            .validate(payload, "task.payload")
            .map_err(|m| format!("the cases file's payload is not valid for the engine: {}", m.join("; ")))?;
        let builder = step(
            "new-sandbox-builder",
            self.engine
                .new_sandbox_builder(self.context.clone(), payload.clone())
                .await,
        )?;
        self.builder = Some(builder);
        Ok(())
    }

    /// The builder (after `new_sandbox_builder`).
    pub fn builder(&self) -> &dyn SandboxBuilder {
        self.builder.as_deref().expect("new_sandbox_builder is called first")
    }

    /// Starts the sandbox.
    pub async fn start(&mut self) -> Check {
        let sandbox = step("start", self.builder().start().await)?;
        self.sandbox = Some(sandbox);
        Ok(())
    }

    /// The sandbox (after `start`).
    pub fn sandbox(&self) -> Arc<dyn Sandbox> {
        self.sandbox.clone().expect("start is called first")
    }

    /// Waits for the result, closes the log, returns `success`.
    pub async fn wait(&mut self) -> Result<bool, String> {
        let result = step("wait-for-result", self.sandbox().wait_for_result().await);
        self.log().close();
        let result = result?;
        let success = result.success();
        self.result = Some(result);
        Ok(success)
    }

    /// Builds, starts and waits for `payload`.
    pub async fn build_run(&mut self, payload: &Value) -> Result<bool, String> {
        self.new_sandbox_builder(payload).await?;
        self.start().await?;
        self.wait().await
    }

    /// The whole log (waits for close).
    pub async fn read_log(&self) -> Result<String, String> {
        let bytes = self
            .log()
            .read_to_end()
            .await
            .map_err(|e| format!("reading the task log: {e}"))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Waits until the live log contains `needle`, reading one byte at a time (the
    /// seed's live-log check).
    pub async fn wait_for_in_log(log: &TaskLog, needle: &str) -> Check {
        let mut reader = log.reader().map_err(|e| format!("opening a log reader: {e}"))?;
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            let n = reader
                .read(&mut byte)
                .await
                .map_err(|e| format!("reading the live log: {e}"))?;
            ensure!(
                n == 1,
                "the log ended before '{needle}' appeared in it (read {} bytes)",
                seen.len()
            );
            seen.push(byte[0]);
            if seen.ends_with(needle.as_bytes()) {
                return Ok(());
            }
        }
    }

    /// The seed's disposal, in order; every step must succeed. Also fails the run
    /// when the engine wrote an error-level line to the log.
    pub async fn dispose(mut self) -> Check {
        if let Some(builder) = self.builder.take() {
            step(
                "discard (after start it must be a harmless no-op)",
                builder.discard().await,
            )?;
        }
        if let Some(sandbox) = self.sandbox.take() {
            match sandbox.abort().await {
                Ok(()) => {}
                Err(EngineError::SandboxTerminated) => {
                    if self.result.is_none() {
                        self.result = Some(step(
                            "wait-for-result after abort said terminated",
                            sandbox.wait_for_result().await,
                        )?);
                    }
                }
                Err(e) => {
                    return Err(format!(
                        "abort returned {e}; only success or sandbox-terminated are allowed"
                    ));
                }
            }
        }
        if let Some(result) = self.result.take() {
            step("result-set dispose", result.dispose().await)?;
        }
        let log = self.context.log().clone();
        log.close();
        let text = log.read_to_end().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        if let Some(line) = text.lines().find(|l| l.starts_with("[taskcluster:error]")) {
            return Err(format!("the engine wrote an error-level log line: {line}"));
        }
        Ok(())
    }
}

/// Runs `body` on a fresh run and always disposes it; the first failure wins.
pub async fn with_run<F>(engine: &Arc<dyn Engine>, scopes: &[String], body: F) -> Check
where
    F: AsyncFnOnce(&mut Run) -> Check,
{
    let mut run = Run::new(engine, scopes)?;
    let outcome = body(&mut run).await;
    let disposed = run.dispose().await;
    outcome.and(disposed)
}
