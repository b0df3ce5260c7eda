//! Byte streams between the worker and engines: chunks over a bounded channel, so
//! a slow reader slows the writer down instead of filling memory.

use tokio::sync::mpsc;

/// Chunks in flight per stream before the writer waits.
const DEPTH: usize = 16;

/// A new pipe: what is sent into the [`ByteSink`] comes out of the [`ByteStream`].
pub fn byte_pipe() -> (ByteSink, ByteStream) {
    let (tx, rx) = mpsc::channel(DEPTH);
    (ByteSink(tx), ByteStream(rx))
}

/// The reading end of a byte stream; end-of-stream when every sink is dropped.
pub struct ByteStream(pub(crate) mpsc::Receiver<Vec<u8>>);

impl ByteStream {
    /// The next chunk, or `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        self.0.recv().await
    }

    /// Everything up to the end.
    pub async fn read_to_end(mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = self.0.recv().await {
            out.extend_from_slice(&chunk);
        }
        out
    }

    /// A stream that yields `bytes` and ends.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let (tx, rx) = mpsc::channel(1);
        if !bytes.is_empty() {
            let _ = tx.try_send(bytes);
        }
        ByteStream(rx)
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
}
