//! [`WitIo`]: a component-model byte stream pair (the unix-socket import's shape)
//! as hyper's `Read`/`Write`. One read and one write are in flight at most: a
//! write is accepted whole (copied once), and the next write or a flush waits for
//! it, so memory stays bounded by one chunk each way.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use hyper::rt::{Read, ReadBufCursor, Write};

use crate::{StreamReader, StreamResult, StreamWriter};

/// Bytes asked for per read.
const READ_SIZE: usize = 64 * 1024;

type ReadFuture = Pin<Box<dyn Future<Output = (StreamReader<u8>, StreamResult, Vec<u8>)> + Send>>;
type WriteFuture = Pin<Box<dyn Future<Output = (StreamWriter<u8>, bool)> + Send>>;

/// A connection's two streams as one hyper IO object.
pub struct WitIo {
    rx: Option<StreamReader<u8>>,
    reading: Option<ReadFuture>,
    /// Bytes read but not handed out yet (`buf[pos..]`).
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    tx: Option<StreamWriter<u8>>,
    writing: Option<WriteFuture>,
    broken: bool,
}

impl WitIo {
    /// Reads from `rx`, writes into `tx`.
    pub fn new(rx: StreamReader<u8>, tx: StreamWriter<u8>) -> Self {
        WitIo {
            rx: Some(rx),
            reading: None,
            buf: Vec::new(),
            pos: 0,
            eof: false,
            tx: Some(tx),
            writing: None,
            broken: false,
        }
    }

    /// The streams back (after an upgrade), with the bytes read but not consumed.
    /// `None` for a stream that ended, or whose operation was still in flight.
    pub fn into_parts(mut self) -> (Option<StreamReader<u8>>, Option<StreamWriter<u8>>, Vec<u8>) {
        let rest = self.buf.split_off(self.pos);
        (self.rx.take(), self.tx.take(), rest)
    }

    fn poll_written(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(writing) = self.writing.as_mut() {
            let (tx, complete) = ready!(writing.as_mut().poll(cx));
            self.writing = None;
            self.tx = Some(tx);
            self.broken |= !complete;
        }
        if self.broken {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Poll::Ready(Ok(()))
    }
}

impl Read for WitIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, mut out: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.pos < this.buf.len() {
                let n = (this.buf.len() - this.pos).min(out.remaining());
                out.put_slice(&this.buf[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if this.reading.is_none() {
                let Some(mut rx) = this.rx.take() else {
                    this.eof = true;
                    continue;
                };
                let mut spare = std::mem::take(&mut this.buf);
                spare.clear();
                spare.reserve(READ_SIZE);
                this.reading = Some(Box::pin(async move {
                    let (result, data) = rx.read(spare).await;
                    (rx, result, data)
                }));
            }
            let reading = this.reading.as_mut().expect("a read is in flight");
            let (rx, result, data) = ready!(reading.as_mut().poll(cx));
            this.reading = None;
            match result {
                StreamResult::Complete(_) => {
                    this.rx = Some(rx);
                    this.buf = data;
                    this.pos = 0;
                }
                StreamResult::Dropped | StreamResult::Cancelled => this.eof = true,
            }
        }
    }
}

impl Write for WitIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_written(cx))?;
        let Some(mut tx) = self.tx.take() else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        let bytes = data.to_vec();
        self.writing = Some(Box::pin(async move {
            let left = tx.write_all(bytes).await;
            (tx, left.is_empty())
        }));
        // Started now; its completion wakes whoever polls next.
        let _ = self.poll_written(cx);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_written(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_written(cx))?;
        self.tx = None;
        Poll::Ready(Ok(()))
    }
}
