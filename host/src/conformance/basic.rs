//! EnvVar (§3.2), Logging (§3.3), Kill (§3.4), Proxy (§3.8) and Volume (§3.9).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::cases::{EnvVarCase, KillCase, LoggingCase, ProxyCase, VolumeCase};
use super::harness::{Check, Run, ensure, step, with_run};
use crate::contract::{Engine, EngineError, HttpRequest, HttpResponse, ProxyHandler, TaskLog, Volume};

pub async fn print_variable(engine: &Arc<dyn Engine>, c: &EnvVarCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        run.new_sandbox_builder(&c.payload).await?;
        step(
            "set-environment-variable",
            run.builder()
                .set_environment_variable(&c.variable_name, "Hello World")
                .await,
        )?;
        run.start().await?;
        ensure!(
            run.wait().await?,
            "the task failed; it should print the variable and succeed"
        );
        let log = run.read_log().await?;
        ensure!(
            log.contains("Hello World"),
            "the log does not contain the variable's value 'Hello World':\n{log}"
        );
        Ok(())
    })
    .await
}

pub async fn variable_name_conflict(engine: &Arc<dyn Engine>, c: &EnvVarCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        run.new_sandbox_builder(&c.payload).await?;
        step(
            "the first set-environment-variable",
            run.builder()
                .set_environment_variable(&c.variable_name, "Hello World")
                .await,
        )?;
        let second = run
            .builder()
            .set_environment_variable(&c.variable_name, "Hello World2")
            .await;
        ensure!(
            second == Err(EngineError::NamingConflict),
            "setting {} a second time returned {second:?}; expected naming-conflict",
            c.variable_name
        );
        Ok(())
    })
    .await
}

pub async fn invalid_variable_names(engine: &Arc<dyn Engine>, c: &EnvVarCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        run.new_sandbox_builder(&c.payload).await?;
        for name in &c.invalid_variable_names {
            let r = run.builder().set_environment_variable(name, "Hello World").await;
            ensure!(
                matches!(r, Err(EngineError::MalformedPayload(_))),
                "setting the invalid name '{name}' returned {r:?}; expected malformed-payload"
            );
        }
        Ok(())
    })
    .await
}

async fn grep_log(engine: &Arc<dyn Engine>, c: &LoggingCase, payload: &Value, success: bool, present: bool) -> Check {
    with_run(engine, &c.scopes, async |run: &mut Run| {
        let got = run.build_run(payload).await?;
        ensure!(got == success, "the task's success was {got}, expected {success}");
        let log = run.read_log().await?;
        ensure!(
            log.contains(&c.target) == present,
            "the log {} '{}':\n{log}",
            if present { "does not contain" } else { "contains" },
            c.target
        );
        Ok(())
    })
    .await
}

pub async fn log_target(engine: &Arc<dyn Engine>, c: &LoggingCase) -> Check {
    grep_log(engine, c, &c.target_payload, true, true).await
}

pub async fn log_target_when_failing(engine: &Arc<dyn Engine>, c: &LoggingCase) -> Check {
    grep_log(engine, c, &c.failing_payload, false, true).await
}

pub async fn silent_task(engine: &Arc<dyn Engine>, c: &LoggingCase) -> Check {
    grep_log(engine, c, &c.silent_payload, true, false).await
}

pub async fn kill(engine: &Arc<dyn Engine>, c: &KillCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        run.new_sandbox_builder(&c.payload).await?;
        run.start().await?;
        let sandbox = run.sandbox();
        let log = run.log().clone();
        let target = c.target.clone();
        let killer = async move {
            Run::wait_for_in_log(&log, &target).await?;
            step("kill", sandbox.kill().await)
        };
        let (killed, success) = tokio::join!(killer, run.wait());
        killed?;
        ensure!(
            !success?,
            "wait-for-result gave a successful result set after kill; expected success = false"
        );
        Ok(())
    })
    .await
}

/// A proxy handler that records requests and answers with a fixed status, after
/// an optional wait for a line in the log.
struct PingHandler {
    status: u16,
    wait_for: Option<(TaskLog, String)>,
    seen: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl ProxyHandler for PingHandler {
    async fn handle(&self, request: HttpRequest) -> HttpResponse {
        if let Some((log, needle)) = &self.wait_for {
            let _ = Run::wait_for_in_log(log, needle).await;
        }
        self.seen
            .lock()
            .expect("handler lock")
            .push((request.method, request.path));
        HttpResponse {
            status: self.status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: b"Yay, you managed to ping the end-point, secret=42!!!".to_vec(),
        }
    }
}

async fn ping(engine: &Arc<dyn Engine>, c: &ProxyCase, status: u16, live: bool) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        let wait_for = live.then(|| (run.log().clone(), "Pinging".to_string()));
        let handler = Arc::new(PingHandler {
            status,
            wait_for,
            seen: Mutex::new(Vec::new()),
        });
        run.new_sandbox_builder(&c.ping_proxy_payload).await?;
        step(
            "attach-proxy",
            run.builder().attach_proxy(&c.proxy_name, handler.clone()).await,
        )?;
        run.start().await?;
        let success = run.wait().await?;
        ensure!(
            success == (status == 200),
            "the task's success was {success} with a {status} answer"
        );
        let seen = handler.seen.lock().expect("handler lock").clone();
        ensure!(!seen.is_empty(), "the proxy handler was never called");
        for (method, path) in &seen {
            ensure!(
                method == "GET" || method.is_empty(),
                "the handler saw method {method}, expected GET"
            );
            ensure!(
                path == "/v1/ping",
                "the handler saw path {path}, expected /v1/ping (prefix stripped)"
            );
        }
        let log = run.read_log().await?;
        ensure!(
            log.contains("secret=42"),
            "the log does not contain the response body (secret=42):\n{log}"
        );
        ensure!(
            !live || log.contains("Pinging"),
            "the log does not contain 'Pinging':\n{log}"
        );
        Ok(())
    })
    .await
}

pub async fn ping_proxy_payload(engine: &Arc<dyn Engine>, c: &ProxyCase) -> Check {
    ping(engine, c, 200, false).await
}

pub async fn ping_404_is_unsuccessful(engine: &Arc<dyn Engine>, c: &ProxyCase) -> Check {
    ping(engine, c, 404, false).await
}

pub async fn live_logging(engine: &Arc<dyn Engine>, c: &ProxyCase) -> Check {
    ping(engine, c, 200, true).await
}

async fn volume_run(
    engine: &Arc<dyn Engine>,
    c: &VolumeCase,
    v: &dyn Volume,
    payload: &Value,
    ro: bool,
) -> Result<bool, String> {
    let mut success = false;
    with_run(engine, &[], async |run: &mut Run| {
        run.new_sandbox_builder(payload).await?;
        step("attach-volume", run.builder().attach_volume(&c.mountpoint, v, ro).await)?;
        run.start().await?;
        success = run.wait().await?;
        Ok(())
    })
    .await?;
    Ok(success)
}

async fn with_volume(engine: &Arc<dyn Engine>, body: impl AsyncFnOnce(Arc<dyn Volume>) -> Check) -> Check {
    let volume = step("new-volume", engine.new_volume(json!({})).await)?;
    let outcome = body(volume.clone()).await;
    outcome.and(step("volume dispose", volume.dispose().await))
}

pub async fn write_read_volume(engine: &Arc<dyn Engine>, c: &VolumeCase) -> Check {
    with_volume(engine, async |v| {
        ensure!(
            volume_run(engine, c, v.as_ref(), &c.write_volume_payload, false).await?,
            "writing the volume failed"
        );
        ensure!(
            volume_run(engine, c, v.as_ref(), &c.check_volume_payload, false).await?,
            "reading back what was written failed"
        );
        Ok(())
    })
    .await
}

pub async fn read_empty_volume(engine: &Arc<dyn Engine>, c: &VolumeCase) -> Check {
    with_volume(engine, async |v| {
        ensure!(
            !volume_run(engine, c, v.as_ref(), &c.check_volume_payload, false).await?,
            "reading an empty volume succeeded"
        );
        Ok(())
    })
    .await
}

/// For an engine without read-only mounts (`readOnly: false`): a read-only
/// attachment is refused as immutable-mount-not-supported, never mounted writable.
async fn read_only_is_refused(engine: &Arc<dyn Engine>, c: &VolumeCase) -> Check {
    with_volume(engine, async |v| {
        let mut refused = None;
        with_run(engine, &[], async |run: &mut Run| {
            run.new_sandbox_builder(&c.check_volume_payload).await?;
            refused = Some(run.builder().attach_volume(&c.mountpoint, v.as_ref(), true).await);
            Ok(())
        })
        .await?;
        match refused {
            Some(Err(EngineError::ImmutableMountNotSupported)) => Ok(()),
            other => Err(format!(
                "the cases say readOnly: false, so attach-volume with read-only must give \
                 immutable-mount-not-supported; it gave {other:?}"
            )),
        }
    })
    .await
}

pub async fn write_to_read_only_volume(engine: &Arc<dyn Engine>, c: &VolumeCase) -> Check {
    if !c.read_only {
        return read_only_is_refused(engine, c).await;
    }
    with_volume(engine, async |v| {
        let _ = volume_run(engine, c, v.as_ref(), &c.write_volume_payload, true).await?;
        ensure!(
            !volume_run(engine, c, v.as_ref(), &c.check_volume_payload, false).await?,
            "a write through a read-only mount persisted"
        );
        Ok(())
    })
    .await
}

pub async fn read_to_read_only_volume(engine: &Arc<dyn Engine>, c: &VolumeCase) -> Check {
    if !c.read_only {
        return read_only_is_refused(engine, c).await;
    }
    with_volume(engine, async |v| {
        ensure!(
            volume_run(engine, c, v.as_ref(), &c.write_volume_payload, false).await?,
            "writing the volume failed"
        );
        ensure!(
            volume_run(engine, c, v.as_ref(), &c.check_volume_payload, true).await?,
            "reading through a read-only mount failed"
        );
        Ok(())
    })
    .await
}
