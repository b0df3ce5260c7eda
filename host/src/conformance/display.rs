//! Display (§3.7): list, open with a real RFB (VNC) client handshake up to
//! ServerInit, refuse an unknown name, and close open displays on kill. What a
//! person's viewer needs beyond that is in `viewer`.

use std::sync::Arc;
use std::time::Duration;

use super::cases::DisplayCase;
use super::harness::{Check, Run, ensure, step, with_run};
use super::rfb::{RfbClient, ServerInit};
use crate::contract::{DisplayConnection, Engine, EngineError};

/// Builds and starts the display case's sandbox.
pub(super) async fn started(run: &mut Run, c: &DisplayCase) -> Check {
    run.new_sandbox_builder(&c.payload).await?;
    run.start().await
}

pub async fn list_displays(engine: &Arc<dyn Engine>, c: &DisplayCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        started(run, c).await?;
        let displays = step("list-displays", run.sandbox().list_displays().await)?;
        ensure!(
            displays.len() == c.displays.len(),
            "list-displays gave {} displays, expected {}",
            displays.len(),
            c.displays.len()
        );
        for d in &displays {
            let want = c
                .displays
                .iter()
                .find(|w| w.name == d.name)
                .ok_or(format!("unexpected display {:?}", d.name))?;
            ensure!(
                want.description.is_empty() || want.description == d.description,
                "display {} has description {:?}, expected {:?}",
                d.name,
                d.description,
                want.description
            );
            ensure!(
                want.width == 0 || want.width == d.width,
                "display {} is {} wide, expected {}",
                d.name,
                d.width,
                want.width
            );
            ensure!(
                want.height == 0 || want.height == d.height,
                "display {} is {} high, expected {}",
                d.name,
                d.height,
                want.height
            );
        }
        Ok(())
    })
    .await
}

pub async fn displays(engine: &Arc<dyn Engine>, c: &DisplayCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        started(run, c).await?;
        let sandbox = run.sandbox();
        let listed = step("list-displays", sandbox.list_displays().await)?;
        ensure!(!listed.is_empty(), "list-displays gave no display");
        let mut resized = Vec::new();
        for d in &listed {
            let conn = step(&format!("open-display {}", d.name), sandbox.open_display(&d.name).await)?;
            let ServerInit {
                width: w, height: h, ..
            } = RfbClient::new(conn)
                .handshake()
                .await
                .map_err(|e| format!("display {}: {e}", d.name))?;
            if (w, h) != (d.width, d.height) {
                resized.push((d.name.clone(), w, h));
            }
        }
        let again = step("list-displays (second time)", sandbox.list_displays().await)?;
        for (name, w, h) in resized {
            if let Some(d) = again.iter().find(|d| d.name == name && (d.width, d.height) != (0, 0)) {
                ensure!(
                    (d.width, d.height) == (w, h),
                    "display {name} lists {}×{} but its framebuffer is {w}×{h}",
                    d.width,
                    d.height
                );
            }
        }
        Ok(())
    })
    .await
}

pub async fn invalid_display_name(engine: &Arc<dyn Engine>, c: &DisplayCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        started(run, c).await?;
        let r = run.sandbox().open_display(&c.invalid_display_name).await.map(|_| ());
        ensure!(
            r == Err(EngineError::NoSuchDisplay),
            "open-display {:?} returned {r:?}; expected no-such-display",
            c.invalid_display_name
        );
        Ok(())
    })
    .await
}

pub async fn kill_display(engine: &Arc<dyn Engine>, c: &DisplayCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        started(run, c).await?;
        let sandbox = run.sandbox();
        let name = c
            .displays
            .first()
            .map(|d| d.name.clone())
            .ok_or("the cases file lists no display")?;
        let DisplayConnection { input, mut output } = step("open-display", sandbox.open_display(&name).await)?;
        let (closed_tx, mut closed) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            while output.next_chunk().await.is_some() {}
            let _ = closed_tx.send(());
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        ensure!(
            closed.try_recv().is_err(),
            "the display connection closed by itself within 100 ms, before any handshake"
        );
        step("kill", sandbox.kill().await)?;
        // The seed allows 100 ms; a loaded machine gets more, the behaviour is the same.
        let ended = tokio::time::timeout(Duration::from_secs(5), closed).await;
        ensure!(ended.is_ok(), "the display connection stayed open after kill");
        drop(input);
        Ok(())
    })
    .await
}
