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

/// A guest stream as a [`ByteStream`] (inside a call). A stream the host made
/// itself ([`host_stream`]) and the engine only handed on comes back as the
/// original channel: no byte is copied through the component model.
pub(crate) fn guest_stream<T, D: HasData + ?Sized>(
    acc: &Accessor<T, D>,
    reader: StreamReader<u8>,
) -> wasmtime::Result<ByteStream> {
    acc.with(|mut a| match reader.try_into::<ByteStream>(&mut a) {
        Ok(stream) => Ok(stream),
        Err(reader) => {
            let (sink, stream) = byte_pipe();
            reader.pipe(&mut a, ChannelSink::new(sink.0))?;
            Ok(stream)
        }
    })
}

/// A new guest stream fed from `source` (inside a call).
pub(crate) fn host_stream<T, D: HasData + ?Sized>(
    acc: &Accessor<T, D>,
    source: ByteStream,
) -> wasmtime::Result<StreamReader<u8>> {
    acc.with(|mut a| StreamReader::new(&mut a, ChannelSource::new(source)))
}

/// The most bytes taken from a guest stream per step: memory stays bounded in
/// bytes (channel depth × this), whatever size the engine writes at once.
const SLICE: usize = 64 * 1024;

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
                let n = src.remaining().len().min(SLICE);
                let chunk = src.remaining()[..n].to_vec();
                src.mark_read(n);
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
    /// How much of `pending` was already produced (no memmove per partial write).
    offset: usize,
}

impl ChannelSource {
    pub(crate) fn new(stream: ByteStream) -> Self {
        ChannelSource {
            rx: stream.rx,
            pending: stream.head.unwrap_or_default(),
            offset: 0,
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
        if self.offset == self.pending.len() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => {
                    self.pending = chunk;
                    self.offset = 0;
                }
                Poll::Ready(None) => return Poll::Ready(Ok(StreamResult::Dropped)),
                Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if dst.remaining(&mut store) == Some(0) {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let this = &mut *self;
        let left = &this.pending[this.offset..];
        let mut direct = dst.as_direct(store, left.len());
        let n = direct.remaining().len().min(left.len());
        direct.remaining()[..n].copy_from_slice(&left[..n]);
        direct.mark_written(n);
        this.offset += n;
        Poll::Ready(Ok(StreamResult::Completed))
    }

    /// Hands the channel back when the stream returns to the host unread
    /// (see [`guest_stream`]).
    fn try_into(me: Pin<Box<Self>>, ty: std::any::TypeId) -> Result<Box<dyn std::any::Any>, Pin<Box<Self>>> {
        if ty != std::any::TypeId::of::<ByteStream>() {
            return Err(me);
        }
        let me = Pin::into_inner(me);
        let head = me.pending[me.offset..].to_vec();
        Ok(Box::new(ByteStream {
            rx: me.rx,
            head: (!head.is_empty()).then_some(head),
        }))
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
        let n = src.remaining().len().min(SLICE);
        let accepted = self.log.write(&src.remaining()[..n]);
        src.mark_read(n);
        self.written += n as u64;
        if !accepted {
            // The log is full or closed: the engine's writes end here.
            return Poll::Ready(Ok(StreamResult::Dropped));
        }
        Poll::Ready(Ok(StreamResult::Completed))
    }
}
