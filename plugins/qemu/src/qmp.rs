//! qemu's machine protocol (QMP) on `qmp.sock` in the sandbox: JSON lines, one
//! client (the engine), one command at a time. Used to start the guest (`cont`
//! after `-S`) and to stop the VM (`quit`).

use std::time::Duration;

use enginehost_sdk::caps::unix_socket::{self, UnixConnection};
use enginehost_sdk::{StreamWriter, TaskContext, sleep};
use futures::FutureExt;
use serde_json::{Value, json};

use enginehost_sdk::io::BufReader;

/// The longest QMP line read (events and answers are small).
const MAX_LINE: usize = 1 << 20;

/// A QMP connection after the capabilities handshake.
pub struct Qmp {
    tx: StreamWriter<u8>,
    rx: BufReader,
}

/// Waits for `f` at most `limit`; `None` on timeout.
pub async fn within<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    futures::select! {
        v = f.fuse() => Some(v),
        _ = sleep(limit).fuse() => None,
    }
}

impl Qmp {
    /// Connects (qemu makes the socket 20–70 ms after it starts; tries for
    /// `patience`) and negotiates capabilities.
    pub async fn connect(task: &TaskContext, patience: Duration) -> Result<Qmp, String> {
        let mut waited = Duration::ZERO;
        let step = Duration::from_millis(20);
        let UnixConnection { tx, rx } = loop {
            match unix_socket::connect_in_sandbox(task, "qmp.sock").await {
                Ok(c) => break c,
                Err(e) if waited >= patience => {
                    return Err(format!(
                        "cannot reach qemu's QMP socket after {patience:?}: {}",
                        e.message()
                    ));
                }
                Err(_) => {
                    sleep(step).await;
                    waited += step;
                }
            }
        };
        let mut qmp = Qmp {
            tx,
            rx: BufReader::new(rx),
        };
        let greeting = within(Duration::from_secs(10), qmp.read())
            .await
            .ok_or("qemu sent no QMP greeting within 10 s")??;
        if greeting.get("QMP").is_none() {
            return Err(format!("qemu's QMP greeting was unexpected: {greeting}"));
        }
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    async fn read(&mut self) -> Result<Value, String> {
        let line = self.rx.line(MAX_LINE).await?.ok_or("qemu closed its QMP socket")?;
        serde_json::from_slice(&line).map_err(|e| format!("qemu sent bad QMP JSON: {e}"))
    }

    /// Runs one command; its `return` value (events before it are skipped).
    pub async fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, String> {
        let mut request = json!({"execute": command});
        if let Some(a) = arguments {
            request["arguments"] = a;
        }
        let mut line = request.to_string().into_bytes();
        line.push(b'\n');
        let rest = self.tx.write_all(line).await;
        if !rest.is_empty() {
            return Err("qemu closed its QMP socket".into());
        }
        let answer = within(Duration::from_secs(10), async {
            loop {
                let v = self.read().await?;
                if let Some(r) = v.get("return") {
                    return Ok(r.clone());
                }
                if let Some(e) = v.get("error") {
                    return Err(format!("QMP {command}: {e}"));
                }
            }
        })
        .await;
        answer.unwrap_or_else(|| Err(format!("QMP {command}: no answer within 10 s")))
    }
}
