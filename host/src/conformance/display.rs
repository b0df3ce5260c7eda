//! Display (§3.7): list, open with a real RFB (VNC) client handshake up to
//! ServerInit, refuse an unknown name, and close open displays on kill.

use std::sync::Arc;
use std::time::Duration;

use super::cases::DisplayCase;
use super::harness::{Check, Run, ensure, step, with_run};
use crate::contract::{ByteSink, ByteStream, DisplayConnection, Engine, EngineError};

/// How long an RFB read may take before the handshake fails.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A minimal RFB client: the handshake up to ServerInit (RFC 6143 §7.1–7.3),
/// security type None, versions 3.3 to 3.8.
struct RfbClient {
    input: ByteSink,
    output: ByteStream,
    buf: Vec<u8>,
}

impl RfbClient {
    async fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < n {
            let chunk = tokio::time::timeout(READ_TIMEOUT, self.output.next_chunk())
                .await
                .map_err(|_| format!("the RFB server sent nothing for {READ_TIMEOUT:?}"))?;
            let chunk =
                chunk.ok_or_else(|| format!("the RFB server hung up (wanted {n} bytes, had {})", self.buf.len()))?;
            self.buf.extend_from_slice(&chunk);
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn send(&self, bytes: &[u8]) -> Check {
        ensure!(self.input.send(bytes.to_vec()).await, "the RFB server stopped reading");
        Ok(())
    }

    async fn u32(&mut self) -> Result<u32, String> {
        let b = self.read_exact(4).await?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Runs the handshake; returns the framebuffer size from ServerInit.
    async fn handshake(&mut self) -> Result<(u32, u32), String> {
        let version = self.read_exact(12).await?;
        let text = String::from_utf8_lossy(&version).into_owned();
        let minor: u32 = match (text.get(..4), text.get(8..11)) {
            (Some("RFB "), Some(m)) => m.parse().map_err(|_| format!("bad RFB version {text:?}"))?,
            _ => return Err(format!("not an RFB server: it greeted with {text:?}")),
        };
        let minor = minor.min(8);
        self.send(format!("RFB 003.{minor:03}\n").as_bytes()).await?;
        if minor >= 7 {
            let count = self.read_exact(1).await?[0] as usize;
            if count == 0 {
                let len = self.u32().await? as usize;
                let reason = self.read_exact(len).await?;
                return Err(format!("the RFB server refused: {}", String::from_utf8_lossy(&reason)));
            }
            let types = self.read_exact(count).await?;
            ensure!(
                types.contains(&1),
                "the RFB server offers no security type None (offers {types:?})"
            );
            self.send(&[1]).await?;
            if minor >= 8 {
                ensure!(self.u32().await? == 0, "the RFB server's SecurityResult is a failure");
            }
        } else {
            ensure!(self.u32().await? == 1, "the RFB 3.3 server demands authentication");
        }
        self.send(&[1]).await?; // ClientInit, shared
        let init = self.read_exact(20).await?;
        let (w, h) = (
            u16::from_be_bytes([init[0], init[1]]),
            u16::from_be_bytes([init[2], init[3]]),
        );
        let name_len = self.u32().await? as usize;
        self.read_exact(name_len).await?;
        Ok((w.into(), h.into()))
    }
}

async fn started(run: &mut Run, c: &DisplayCase) -> Check {
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
            let DisplayConnection { input, output } =
                step(&format!("open-display {}", d.name), sandbox.open_display(&d.name).await)?;
            let mut client = RfbClient {
                input,
                output,
                buf: Vec::new(),
            };
            let (w, h) = client
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
