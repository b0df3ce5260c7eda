//! [`BufReader`]: reading a byte stream in records (exact reads, lines, bounded
//! chunks) with memory bounded by the caller's sizes, over any [`ChunkSource`]
//! (a [`StreamReader`], or an engine's own source such as an HTTP body).

use crate::{StreamReader, StreamResult};

/// The most bytes read from a stream at once.
pub const CHUNK: usize = 64 * 1024;

/// Where a [`BufReader`]'s bytes come from, a chunk at a time.
#[allow(async_fn_in_trait)]
pub trait ChunkSource {
    /// The next non-empty chunk; `Ok(None)` at the end, `Err` when the source
    /// broke off (said for a person).
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String>;
}

impl ChunkSource for StreamReader<u8> {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        loop {
            let (result, data) = self.read(Vec::with_capacity(CHUNK)).await;
            match result {
                StreamResult::Complete(_) if data.is_empty() => continue,
                StreamResult::Complete(_) => return Ok(Some(data)),
                StreamResult::Dropped | StreamResult::Cancelled => return Ok(None),
            }
        }
    }
}

/// Buffered reads over a [`ChunkSource`].
pub struct BufReader<S = StreamReader<u8>> {
    source: S,
    buf: Vec<u8>,
    pos: usize,
}

impl<S: ChunkSource> BufReader<S> {
    /// Reads `source`.
    pub fn new(source: S) -> Self {
        Self::with_head(source, Vec::new())
    }

    /// Reads `source` after `head`, bytes already read from it.
    pub fn with_head(source: S, head: Vec<u8>) -> Self {
        BufReader {
            source,
            buf: head,
            pos: 0,
        }
    }

    /// Makes bytes available; `false` at the end.
    async fn fill(&mut self) -> Result<bool, String> {
        while self.pos == self.buf.len() {
            match self.source.next_chunk().await? {
                Some(data) => {
                    self.buf = data;
                    self.pos = 0;
                }
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Exactly `n` bytes; `None` at a clean end before any; an error when the end
    /// comes in the middle of the record.
    pub async fn exact(&mut self, n: usize) -> Result<Option<Vec<u8>>, String> {
        let mut out = Vec::with_capacity(n.min(CHUNK));
        while out.len() < n {
            if !self.fill().await? {
                if out.is_empty() {
                    return Ok(None);
                }
                return Err(format!("the stream ended {} bytes into a {n}-byte record", out.len()));
            }
            let take = (n - out.len()).min(self.buf.len() - self.pos);
            out.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
        }
        Ok(Some(out))
    }

    /// Up to `max` bytes (at least one); `None` at the end.
    pub async fn some(&mut self, max: usize) -> Result<Option<Vec<u8>>, String> {
        if !self.fill().await? {
            return Ok(None);
        }
        let take = max.min(self.buf.len() - self.pos);
        let out = self.buf[self.pos..self.pos + take].to_vec();
        self.pos += take;
        Ok(Some(out))
    }

    /// One line without its `\n` (at most `max` bytes kept; the rest of a longer
    /// line is skipped), or `None` at the end (a last line without `\n` is
    /// dropped).
    pub async fn line(&mut self, max: usize) -> Result<Option<Vec<u8>>, String> {
        let mut out = Vec::new();
        loop {
            if !self.fill().await? {
                return Ok(None);
            }
            let rest = &self.buf[self.pos..];
            let (end, found) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (i, true),
                None => (rest.len(), false),
            };
            if out.len() < max {
                out.extend_from_slice(&rest[..end.min(max - out.len())]);
            }
            if found {
                self.pos += end + 1;
                return Ok(Some(out));
            }
            self.pos = self.buf.len();
        }
    }

    /// Passes `n` bytes to `sink` in chunks of at most [`CHUNK`]; an error if the
    /// stream ends first.
    pub async fn forward(&mut self, mut n: u64, mut sink: impl AsyncFnMut(Vec<u8>)) -> Result<(), String> {
        while n > 0 {
            let max = n.min(CHUNK as u64) as usize;
            match self.some(max).await? {
                Some(chunk) => {
                    n -= chunk.len() as u64;
                    sink(chunk).await;
                }
                None => return Err(format!("the stream ended {n} bytes early")),
            }
        }
        Ok(())
    }
}
