//! Reading byte streams in records: exact reads and lines, over a
//! [`StreamReader`], with memory bounded by the caller's sizes.

use enginehost_sdk::{StreamReader, StreamResult};

/// The most bytes read at once.
pub const CHUNK: usize = 64 * 1024;

/// Buffered reads over a stream.
pub struct Reader {
    rx: StreamReader<u8>,
    buf: Vec<u8>,
    pos: usize,
}

impl Reader {
    pub fn new(rx: StreamReader<u8>) -> Self {
        Reader {
            rx,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// Makes bytes available; `false` at the end.
    async fn fill(&mut self) -> bool {
        while self.pos == self.buf.len() {
            let (result, data) = self.rx.read(Vec::with_capacity(CHUNK)).await;
            match result {
                StreamResult::Complete(_) => {
                    self.buf = data;
                    self.pos = 0;
                }
                StreamResult::Dropped | StreamResult::Cancelled => return false,
            }
        }
        true
    }

    /// Exactly `n` bytes, or `None` if the stream ends first.
    pub async fn exact(&mut self, n: usize) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(n.min(CHUNK));
        while out.len() < n {
            if !self.fill().await {
                return None;
            }
            let take = (n - out.len()).min(self.buf.len() - self.pos);
            out.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
        }
        Some(out)
    }

    /// One line without its `\n` (at most `max` bytes; a longer one is cut), or
    /// `None` at the end.
    pub async fn line(&mut self, max: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            if !self.fill().await {
                return None;
            }
            let rest = &self.buf[self.pos..];
            match rest.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    if out.len() < max {
                        out.extend_from_slice(&rest[..i.min(max - out.len())]);
                    }
                    self.pos += i + 1;
                    return Some(out);
                }
                None => {
                    if out.len() < max {
                        out.extend_from_slice(&rest[..rest.len().min(max - out.len())]);
                    }
                    self.pos = self.buf.len();
                }
            }
        }
    }
}
