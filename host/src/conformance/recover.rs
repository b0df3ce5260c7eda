//! Recover (enginehost's addition, contract 0.1.4): a running task survives a
//! trap of its engine's instance (`Engine::inject_trap`, the same teardown as a
//! trap or a missed deadline) and ends with its real result, its whole log and
//! its artifacts; a storm of traps ends in a clean failure.

use std::sync::Arc;
use std::time::Duration;

use super::cases::RecoverCase;
use super::harness::{Check, Run, ensure, step, with_run};
use crate::contract::{Engine, EngineError};

/// The line the host writes into the task log when a fresh instance takes over.
const RESTARTED: &str = "and was restarted; the task goes on in the new instance";

async fn trap(engine: &Arc<dyn Engine>, why: &str) -> Check {
    ensure!(
        engine.inject_trap(why).await,
        "the engine has no instance to tear down (built into the host): it cannot claim the Recover case"
    );
    Ok(())
}

pub async fn survive_trap(engine: &Arc<dyn Engine>, c: &RecoverCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        run.new_sandbox_builder(&c.payload).await?;
        run.start().await?;
        let trapper = async {
            tokio::time::sleep(Duration::from_millis(c.trap_after_ms)).await;
            trap(engine, "the conformance suite's injected trap").await
        };
        let (trapped, success) = tokio::join!(trapper, run.wait());
        trapped?;
        ensure!(
            success?,
            "the task failed after its engine was restarted; it must end with its real (successful) result"
        );
        let log = run.read_log().await?;
        ensure!(
            log.matches(RESTARTED).count() == 1,
            "the log must say once that the engine was restarted and the task went on ({RESTARTED:?}); it is:\n{log}"
        );
        if let Some(target) = &c.target {
            ensure!(log.contains(target.as_str()), "the log lacks {target:?}; it is:\n{log}");
        }
        if let Some(path) = &c.artifact_path {
            let result = run.result.clone().expect("wait stored the result set");
            let data = step("extract-file after recovery", result.extract_file(path).await)?
                .read_to_end()
                .await;
            let text = String::from_utf8_lossy(&data);
            let want = c.artifact_text.as_deref().unwrap_or_default();
            ensure!(
                text.contains(want),
                "{path} holds {text:?}, which does not contain {want:?}"
            );
        }
        Ok(())
    })
    .await
}

pub async fn trap_storm(engine: &Arc<dyn Engine>, c: &RecoverCase) -> Check {
    let mut run = Run::new(engine, &[])?;
    run.new_sandbox_builder(&c.payload).await?;
    run.start().await?;
    let log = run.log().clone();
    // Tear the instance down again as soon as each recovery said so, until the
    // task fails: at most a few recoveries per task are allowed.
    let storm = async {
        let mut reader = log.reader().map_err(|e| format!("opening a log reader: {e}"))?;
        let mut seen = Vec::new();
        for n in 1..=10 {
            trap(engine, &format!("the conformance suite's trap storm, trap {n}")).await?;
            // Wait for the host's line about this trap's recovery (or the log's end).
            let before = String::from_utf8_lossy(&seen).matches(RESTARTED).count();
            let mut chunk = [0u8; 4096];
            loop {
                let read = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut chunk)).await;
                let Ok(Ok(got)) = read else { return Ok(()) };
                if got == 0 {
                    return Ok(());
                }
                seen.extend_from_slice(&chunk[..got]);
                if String::from_utf8_lossy(&seen).matches(RESTARTED).count() > before {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok::<(), String>(())
    };
    let (stormed, result) = tokio::join!(storm, async {
        let sandbox = run.sandbox();
        let result = sandbox.wait_for_result().await;
        run.log().close();
        result
    });
    stormed?;
    match result {
        Err(EngineError::PluginFailed { reason, .. }) => {
            ensure!(
                reason.contains("not recovered"),
                "the task failed, but the reason does not say it was not recovered: {reason}"
            );
        }
        Err(e) => {
            return Err(format!(
                "the task failed with {e}; expected the engine's failure (plugin-failed)"
            ));
        }
        Ok(_) => return Err("the task survived a storm of traps; recovery must be bounded".into()),
    }
    let text = run.read_log().await?;
    let restarts = text.matches(RESTARTED).count();
    ensure!(
        (1..=5).contains(&restarts),
        "the task was restarted {restarts} times in the storm; expected at least once and at most a few:\n{text}"
    );
    // The sandbox is gone with its instance: nothing to abort or dispose.
    drop(run);
    Ok(())
}
