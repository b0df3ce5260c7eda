//! Byte streams between the worker and engines: chunks over a bounded channel, so
//! a slow reader slows the writer down instead of filling memory.

use tokio::sync::mpsc;

/// Chunks in flight per stream before the writer waits.
const DEPTH: usize = 16;

/// A new pipe: what is sent into the [`ByteSink`] comes out of the [`ByteStream`].
pub fn byte_pipe() -> (ByteSink, ByteStream) {
    let (tx, rx) = mpsc::channel(DEPTH);
    (ByteSink(tx), ByteStream { rx, head: None })
}

/// The reading end of a byte stream; end-of-stream when every sink is dropped.
pub struct ByteStream {
    pub(crate) rx: mpsc::Receiver<Vec<u8>>,
    /// Bytes to yield before the channel's (a stream handed back by an engine
    /// with part of a chunk already taken).
    pub(crate) head: Option<Vec<u8>>,
}

impl ByteStream {
    /// The next chunk, or `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if let Some(head) = self.head.take() {
            return Some(head);
        }
        self.rx.recv().await
    }

    /// The next chunk if one is there now: `Some(Some(chunk))`, `Some(None)` at the
    /// end, `None` when the writer has not sent the next one yet.
    pub fn try_next_chunk(&mut self) -> Option<Option<Vec<u8>>> {
        if let Some(head) = self.head.take() {
            return Some(Some(head));
        }
        match self.rx.try_recv() {
            Ok(chunk) => Some(Some(chunk)),
            Err(mpsc::error::TryRecvError::Disconnected) => Some(None),
            Err(mpsc::error::TryRecvError::Empty) => None,
        }
    }

    /// Polls for the next chunk (`None` at the end).
    pub fn poll_chunk(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Vec<u8>>> {
        if let Some(head) = self.head.take() {
            return std::task::Poll::Ready(Some(head));
        }
        self.rx.poll_recv(cx)
    }

    /// The next chunk, from a blocking thread (never from async code).
    pub fn blocking_next_chunk(&mut self) -> Option<Vec<u8>> {
        if let Some(head) = self.head.take() {
            return Some(head);
        }
        self.rx.blocking_recv()
    }

    /// Everything up to the end.
    pub async fn read_to_end(mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk().await {
            out.extend_from_slice(&chunk);
        }
        out
    }

    /// A stream that yields `bytes` and ends.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let (_, rx) = mpsc::channel(1);
        ByteStream {
            rx,
            head: (!bytes.is_empty()).then_some(bytes),
        }
    }
}

/// The writing end of a byte stream; dropping it ends the stream.
#[derive(Clone)]
pub struct ByteSink(pub(crate) mpsc::Sender<Vec<u8>>);

impl ByteSink {
    /// Sends `bytes`; `false` if the reader is gone.
    pub async fn send(&self, bytes: Vec<u8>) -> bool {
        bytes.is_empty() || self.0.send(bytes).await.is_ok()
    }

    /// Sends `bytes` from a blocking thread (never from async code); `false` if
    /// the reader is gone.
    pub fn blocking_send(&self, bytes: Vec<u8>) -> bool {
        bytes.is_empty() || self.0.blocking_send(bytes).is_ok()
    }
}
