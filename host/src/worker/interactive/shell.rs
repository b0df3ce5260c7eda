//! `GET /shell/<token>?command=…&tty=true`: a `new-shell` over a WebSocket.
//!
//! Query: `command` (repeatable, one argv item each; none: the engine's default
//! shell) and `tty` (`true`/`false`, default `false`).
//!
//! Frames (docs/interactive.md):
//! - client → server, binary `0x00` + bytes: standard input; `0x00` alone closes it;
//! - client → server, text `{"type":"resize","cols":C,"rows":R}`: resizes the tty;
//! - server → client, binary `0x01` + bytes: standard output, `0x02` + bytes:
//!   standard error;
//! - server → client, text `{"type":"exit","success":BOOL}` when the shell has
//!   ended and its output is all sent, then a normal close; `{"type":"error",…}`
//!   if waiting for it failed;
//! - the task's end closes the socket with code 4410 and the shell is aborted;
//!   so is closing the socket from the page.

use std::sync::Arc;

use futures::StreamExt as _;
use hyper::Response;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::SessionState;
use super::routes::{Body, Bridge, Socket, bad_request, ended_frame, engine_error, send_last, send_or_end};
use crate::contract::{ByteStream, Sandbox, Shell};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;

/// Starts the shell the query asks for; its errors are the response.
pub(super) async fn open(sandbox: &dyn Sandbox, query: &[(String, String)]) -> Result<Bridge, Response<Body>> {
    let mut command = Vec::new();
    let mut tty = false;
    for (name, value) in query {
        match name.as_str() {
            "command" => command.push(value.clone()),
            "tty" => {
                tty = match value.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(bad_request(&format!("tty={value:?}: write tty=true or tty=false"))),
                }
            }
            other => {
                return Err(bad_request(&format!(
                    "unknown query parameter {other:?}: a shell takes command (repeatable) and tty"
                )));
            }
        }
    }
    let shell: Arc<dyn Shell> = match sandbox.new_shell(&command, tty).await {
        Ok(shell) => Arc::from(shell),
        Err(e) => return Err(engine_error(&e, "starting the shell")),
    };
    let abandoned = shell.clone();
    Ok(Bridge {
        run: Box::new(move |socket, state| Box::pin(run(socket, state, shell))),
        abandon: Box::new(move || {
            Box::pin(async move {
                let _ = abandoned.abort().await;
            })
        }),
    })
}

async fn run(socket: Socket, state: Arc<SessionState>, shell: Arc<dyn Shell>) {
    let (mut to_page, mut from_page) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(16);
    for (stream, tag) in [(shell.stdout(), STDOUT), (shell.stderr(), STDERR)] {
        if let Some(stream) = stream {
            tokio::spawn(pump(stream, tag, out_tx.clone()));
        }
    }
    drop(out_tx);

    // The page's side: its own task, so that a shell that does not read its input
    // holds up the page's typing, not the output.
    let page_gone = CancellationToken::new();
    let mut reader = {
        let shell = shell.clone();
        let page_gone = page_gone.clone();
        tokio::spawn(async move {
            let mut stdin = shell.stdin();
            while let Some(Ok(message)) = from_page.next().await {
                match message {
                    Message::Binary(bytes) if bytes.first() == Some(&STDIN) => {
                        if bytes.len() == 1 {
                            stdin = None;
                        } else if let Some(sink) = &stdin
                            && !sink.send(bytes[1..].to_vec()).await
                        {
                            stdin = None;
                        }
                    }
                    Message::Text(text) => {
                        if let Some((cols, rows)) = resize(&text) {
                            let _ = shell.set_size(cols, rows).await;
                        }
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            page_gone.cancel();
        })
    };

    let waiting = shell.wait();
    tokio::pin!(waiting);
    let mut result = None;
    let mut output_done = false;
    loop {
        tokio::select! {
            out = out_rx.recv(), if !output_done => match out {
                Some(message) => if !send_or_end(&mut to_page, message, &state).await {
                    let _ = shell.abort().await;
                    if state.ended.is_cancelled() || tokio::time::Instant::now() >= state.deadline {
                        send_last(&mut to_page, vec![ended_frame()]).await;
                    }
                    break;
                },
                None => output_done = true,
            },
            r = &mut waiting, if result.is_none() => result = Some(r),
            () = page_gone.cancelled() => {
                let _ = shell.abort().await;
                break;
            }
            () = state.over() => {
                let _ = shell.abort().await;
                send_last(&mut to_page, vec![ended_frame()]).await;
                break;
            }
        }
        if output_done && let Some(result) = &result {
            // Aborted by the engine: the task is ending (a kill or an abort ends its
            // shells before its wait returns). Say so when it has, as the page expects.
            if result.is_err() && state.ended_soon().await {
                send_last(&mut to_page, vec![ended_frame()]).await;
                break;
            }
            let message = match result {
                Ok(success) => serde_json::json!({"type": "exit", "success": success}),
                Err(e) => serde_json::json!({"type": "error", "message": format!("the shell failed: {e}")}),
            };
            send_last(
                &mut to_page,
                vec![Message::Text(message.to_string().into()), Message::Close(None)],
            )
            .await;
            break;
        }
    }
    super::routes::closing(&mut reader).await;
}

/// A stream's chunks as tagged binary frames, until it ends.
async fn pump(mut stream: ByteStream, tag: u8, out: mpsc::Sender<Message>) {
    loop {
        // The bridge gone, the pump goes too, even if the engine never ends the stream.
        let chunk = tokio::select! {
            chunk = stream.next_chunk() => chunk,
            () = out.closed() => return,
        };
        let Some(chunk) = chunk else { return };
        let mut frame = Vec::with_capacity(chunk.len() + 1);
        frame.push(tag);
        frame.extend_from_slice(&chunk);
        if out.send(Message::Binary(frame.into())).await.is_err() {
            return;
        }
    }
}

/// `{"type":"resize","cols":C,"rows":R}` with sizes a tty can have.
fn resize(text: &str) -> Option<(u16, u16)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if v.get("type")?.as_str()? != "resize" {
        return None;
    }
    let size = |k: &str| v.get(k)?.as_u64().filter(|n| (1..=1000).contains(n)).map(|n| n as u16);
    Some((size("cols")?, size("rows")?))
}
