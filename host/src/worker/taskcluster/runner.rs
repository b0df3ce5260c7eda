//! worker-runner's protocol (`tools/workerproto` in the taskcluster monorepo), for
//! `enginehost worker run --config FILE --with-worker-runner`: one message per line
//! on stdin and stdout, each `~` and a JSON object with a `type`.
//!
//! - worker-runner sends `welcome` with its capabilities; the worker answers `hello`
//!   with those of [`CAPABILITIES`] it also has; only those are used after.
//! - In: `graceful-termination` (`finish-tasks`: let running tasks end, or abort
//!   them), `new-credentials` (`client-id`, `access-token`, `certificate`: the
//!   worker's own calls use them from the next one on; runs keep their own).
//! - Out: `log` (every operator log line, as `body.textPayload` with `level` and
//!   `target`), `error-report` (a fatal stop), `shutdown` (an engine asked the
//!   worker to stop: worker-runner then retires the worker).
//!
//! Nothing else is written to stdout in this mode (the operator log goes to stderr
//! as always, and to worker-runner as `log` messages).

use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};
use taskcluster::Credentials;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What this worker can speak.
pub const CAPABILITIES: &[&str] = &[
    "graceful-termination",
    "new-credentials",
    "log",
    "error-report",
    "shutdown",
];

/// The longest line taken from worker-runner (longer ones are skipped, never held).
const MAX_LINE: usize = 1 << 20;

/// The protocol's state: what was negotiated, and stdout.
pub struct Runner {
    negotiated: Mutex<Vec<String>>,
    out: Mutex<std::io::Stdout>,
}

static GLOBAL: OnceLock<Arc<Runner>> = OnceLock::new();

impl Runner {
    /// Starts reading worker-runner's messages from stdin: `graceful-termination`
    /// cancels `stop` (and `abort` unless tasks may finish), `new-credentials` are
    /// sent into `credentials`. Also makes it [`Runner::global`] (for the log layer).
    pub fn start(
        stop: CancellationToken,
        abort: CancellationToken,
        credentials: watch::Sender<Credentials>,
    ) -> Arc<Runner> {
        let runner = Arc::new(Runner {
            negotiated: Mutex::new(Vec::new()),
            out: Mutex::new(std::io::stdout()),
        });
        let _ = GLOBAL.set(runner.clone());
        let reader = runner.clone();
        tokio::spawn(async move {
            let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
            loop {
                let mut line = Vec::new();
                // At most MAX_LINE bytes are held; the rest of a longer line is skipped.
                let read = (&mut stdin).take(MAX_LINE as u64).read_until(b'\n', &mut line).await;
                match read {
                    Ok(0) => {
                        tracing::warn!("worker-runner closed the worker's stdin; the worker goes on without it");
                        return;
                    }
                    Ok(_) if !line.ends_with(b"\n") && line.len() == MAX_LINE => {
                        tracing::warn!("worker-runner: a line over {MAX_LINE} bytes is not a message; skipped");
                        let mut rest = Vec::new();
                        while let Ok(n) = (&mut stdin).take(MAX_LINE as u64).read_until(b'\n', &mut rest).await {
                            if n == 0 || rest.ends_with(b"\n") {
                                break;
                            }
                            rest.clear();
                        }
                    }
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        reader.receive(text.trim_end_matches(['\n', '\r']), &stop, &abort, &credentials);
                    }
                    Err(e) => {
                        tracing::warn!("reading from worker-runner: {e}; the worker goes on without it");
                        return;
                    }
                }
            }
        });
        runner
    }

    /// The runner of this process, once started.
    pub fn global() -> Option<&'static Arc<Runner>> {
        GLOBAL.get()
    }

    fn has(&self, capability: &str) -> bool {
        self.negotiated
            .lock()
            .expect("runner lock")
            .iter()
            .any(|c| c == capability)
    }

    /// Writes one message (`~{json}`); a failure is dropped (stdout gone).
    fn send(&self, message: &Value) {
        let mut out = self.out.lock().expect("runner stdout lock");
        let _ = writeln!(out, "~{message}");
        let _ = out.flush();
    }

    fn receive(
        &self,
        line: &str,
        stop: &CancellationToken,
        abort: &CancellationToken,
        creds: &watch::Sender<Credentials>,
    ) {
        let Some(message) = line
            .strip_prefix('~')
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
        else {
            tracing::debug!(
                "worker-runner: not a message, ignored: {}",
                crate::text::shown(line, 200)
            );
            return;
        };
        let field = |k: &str| message.get(k).and_then(Value::as_str).map(str::to_string);
        match message.get("type").and_then(Value::as_str).unwrap_or_default() {
            "welcome" => {
                let theirs: Vec<&str> = message
                    .get("capabilities")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let both: Vec<String> = CAPABILITIES
                    .iter()
                    .filter(|c| theirs.contains(c))
                    .map(|c| c.to_string())
                    .collect();
                *self.negotiated.lock().expect("runner lock") = both.clone();
                self.send(&json!({"type": "hello", "capabilities": both}));
                tracing::info!(capabilities = %both.join(","), "worker-runner: capabilities negotiated");
            }
            "graceful-termination" => {
                let finish = message.get("finish-tasks").and_then(Value::as_bool).unwrap_or(false);
                if finish {
                    tracing::info!("worker-runner: graceful termination; no more claims, the running tasks finish");
                } else {
                    tracing::info!(
                        "worker-runner: graceful termination; no more claims, the running tasks are aborted"
                    );
                    abort.cancel();
                }
                stop.cancel();
            }
            "new-credentials" => match (field("client-id"), field("access-token")) {
                (Some(client_id), Some(access_token)) => {
                    let certificate = field("certificate").filter(|c| !c.is_empty());
                    tracing::info!(client_id = %client_id, "worker-runner: new credentials");
                    creds.send_replace(Credentials {
                        client_id,
                        access_token,
                        certificate,
                    });
                }
                _ => tracing::warn!("worker-runner: new-credentials without client-id and access-token; ignored"),
            },
            other => tracing::debug!("worker-runner: message {other:?} is not one this worker handles; ignored"),
        }
    }

    /// A `log` message, if negotiated.
    pub fn log(&self, level: &str, target: &str, text: &str) {
        if self.has("log") {
            self.send(&json!({"type": "log", "body": {"textPayload": text, "level": level, "target": target}}));
        }
    }

    /// An `error-report`, if negotiated (shown among the worker pool's errors).
    pub fn error_report(&self, title: &str, description: &str) {
        if self.has("error-report") {
            self.send(&json!({
                "type": "error-report",
                "kind": "worker-error",
                "title": title,
                "description": description,
                "extra": {},
            }));
        }
    }

    /// Asks worker-runner to retire this worker, if negotiated.
    pub fn shutdown(&self) {
        if self.has("shutdown") {
            self.send(&json!({"type": "shutdown"}));
        }
    }
}

/// A `tracing` layer that copies every event to worker-runner as a `log` message
/// (once `log` is negotiated).
pub struct RunnerLogLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RunnerLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let Some(runner) = Runner::global() else {
            return;
        };
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0.insert_str(0, &format!("{value:?}"));
                } else {
                    self.0.push_str(&format!(" {}={value:?}", field.name()));
                }
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "message" {
                    self.0.insert_str(0, value);
                } else {
                    self.0.push_str(&format!(" {}={value}", field.name()));
                }
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        let meta = event.metadata();
        runner.log(&meta.level().to_string().to_lowercase(), meta.target(), &text.0);
    }
}
