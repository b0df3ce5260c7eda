//! `GET /display/<token>?display=NAME`: a display's raw RFB stream over a
//! WebSocket, binary frames both ways (what noVNC speaks). The task's end closes
//! it with code 4410.

use std::sync::Arc;

use futures::StreamExt as _;
use hyper::Response;
use tokio_tungstenite::tungstenite::Message;

use super::SessionState;
use super::routes::{Body, Bridge, Socket, bad_request, ended_frame, engine_error, send_last, send_or_end};
use crate::contract::{DisplayConnection, Sandbox};

/// Opens the display the query names; its errors are the response.
pub(super) async fn open(sandbox: &dyn Sandbox, query: &[(String, String)]) -> Result<Bridge, Response<Body>> {
    let mut name = None;
    for (key, value) in query {
        match key.as_str() {
            "display" if name.is_none() => name = Some(value.clone()),
            "display" => return Err(bad_request("display= is given twice: name one display")),
            other => {
                return Err(bad_request(&format!(
                    "unknown query parameter {other:?}: a display takes display=NAME"
                )));
            }
        }
    }
    let Some(name) = name else {
        return Err(bad_request(
            "display=NAME is required: the names are listed at ../displays/<token>",
        ));
    };
    match sandbox.open_display(&name).await {
        // Abandoned, the connection is dropped: that closes the display.
        Ok(connection) => Ok(Bridge {
            run: Box::new(move |socket, state| Box::pin(run(socket, state, connection))),
            abandon: Box::new(|| Box::pin(async {})),
        }),
        Err(e) => Err(engine_error(&e, &format!("opening display {name:?}"))),
    }
}

async fn run(socket: Socket, state: Arc<SessionState>, connection: DisplayConnection) {
    let DisplayConnection { input, mut output } = connection;
    let (mut to_page, mut from_page) = socket.split();
    // The viewer's bytes, in their own task: a server that stops reading holds up
    // the viewer, not the screen.
    let mut reader = tokio::spawn(async move {
        while let Some(Ok(message)) = from_page.next().await {
            match message {
                Message::Binary(bytes) => {
                    if !input.send(bytes.to_vec()).await {
                        break;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    loop {
        tokio::select! {
            chunk = output.next_chunk() => match chunk {
                Some(chunk) => if !send_or_end(&mut to_page, Message::Binary(chunk.into()), &state).await {
                    send_last(&mut to_page, vec![ended_frame()]).await;
                    break;
                },
                None => {
                    // The engine closed the display: mostly because the task is
                    // ending, which the page is told when it has.
                    let last = if state.ended_soon().await { ended_frame() } else { Message::Close(None) };
                    send_last(&mut to_page, vec![last]).await;
                    break;
                }
            },
            _ = &mut reader => break,
            () = state.over() => {
                send_last(&mut to_page, vec![ended_frame()]).await;
                break;
            }
        }
    }
    super::routes::closing(&mut reader).await;
}
