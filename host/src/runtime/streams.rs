//! Bridges between component-model `stream<u8>` and the worker's byte channels:
//! [`ChannelSink`] consumes a guest stream into a [`ByteSink`]'s channel (with
//! backpressure), [`ChannelSource`] produces a guest stream from a [`ByteStream`],
//! and [`LogSink`] writes a guest stream straight into the task log.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::PollSender;
use wasmtime::StoreContextMut;
use wasmtime::component::{
    Accessor, Destination, HasData, Source, StreamConsumer, StreamProducer, StreamReader, StreamResult,
};

use crate::contract::{ByteStream, TaskLog, byte_pipe};

/// Pipes a guest stream into a new [`ByteStream`] (inside a call).
pub(crate) fn guest_stream<T, D: HasData + ?Sized>(
    acc: &Accessor<T, D>,
    reader: StreamReader<u8>,
) -> wasmtime::Result<ByteStream> {
    let (sink, stream) = byte_pipe();
    acc.with(|mut a| reader.pipe(&mut a, ChannelSink::new(sink.0)))?;
    Ok(stream)
}

/// A new guest stream fed from `source` (inside a call).
pub(crate) fn host_stream<T, D: HasData + ?Sized>(
    acc: &Accessor<T, D>,
    source: ByteStream,
) -> wasmtime::Result<StreamReader<u8>> {
    acc.with(|mut a| StreamReader::new(&mut a, ChannelSource::new(source)))
}

/// Consumes a guest stream into a channel; the channel ends when the guest's
/// stream does.
pub(crate) struct ChannelSink {
    tx: PollSender<Vec<u8>>,
}

impl ChannelSink {
    pub(crate) fn new(tx: mpsc::Sender<Vec<u8>>) -> Self {
        ChannelSink {
            tx: PollSender::new(tx),
        }
    }
}

impl<D> StreamConsumer<D> for ChannelSink {
    type Item = u8;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        store: StoreContextMut<D>,
        source: Source<'_, u8>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        match self.tx.poll_reserve(cx) {
            Poll::Pending if finish => Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(Ok(StreamResult::Dropped)), // reader gone
            Poll::Ready(Ok(())) => {
                let mut src = source.as_direct(store);
                let chunk = src.remaining().to_vec();
                src.mark_read(chunk.len());
                if chunk.is_empty() {
                    self.tx.abort_send();
                } else if self.tx.send_item(chunk).is_err() {
                    return Poll::Ready(Ok(StreamResult::Dropped));
                }
                Poll::Ready(Ok(StreamResult::Completed))
            }
        }
    }
}

/// Produces a guest stream from a channel; the guest sees the end when every
/// sender is dropped.
pub(crate) struct ChannelSource {
    rx: mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
}

impl ChannelSource {
    pub(crate) fn new(stream: ByteStream) -> Self {
        ChannelSource {
            rx: stream.0,
            pending: Vec::new(),
        }
    }
}

impl<D> StreamProducer<D> for ChannelSource {
    type Item = u8;
    type Buffer = Option<u8>;

    fn poll_produce<'a>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        dst: Destination<'a, u8, Option<u8>>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        if self.pending.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => self.pending = chunk,
                Poll::Ready(None) => return Poll::Ready(Ok(StreamResult::Dropped)),
                Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if dst.remaining(&mut store) == Some(0) {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let mut direct = dst.as_direct(store, self.pending.len());
        let n = direct.remaining().len().min(self.pending.len());
        direct.remaining()[..n].copy_from_slice(&self.pending[..n]);
        direct.mark_written(n);
        self.pending.drain(..n);
        Poll::Ready(Ok(StreamResult::Completed))
    }
}

/// Writes a guest stream into the task log as it arrives; reports the byte count
/// when the stream ends.
pub(crate) struct LogSink {
    log: TaskLog,
    written: u64,
    done: Option<oneshot::Sender<u64>>,
}

impl LogSink {
    pub(crate) fn new(log: TaskLog, done: oneshot::Sender<u64>) -> Self {
        LogSink {
            log,
            written: 0,
            done: Some(done),
        }
    }
}

impl Drop for LogSink {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(self.written);
        }
    }
}

impl<D> StreamConsumer<D> for LogSink {
    type Item = u8;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        store: StoreContextMut<D>,
        source: Source<'_, u8>,
        _finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let mut src = source.as_direct(store);
        let n = src.remaining().len();
        self.log.write(src.remaining());
        src.mark_read(n);
        self.written += n as u64;
        Poll::Ready(Ok(StreamResult::Completed))
    }
}
