//! Reading what dockerd sends: a [`Reader`] (the SDK's `BufReader`) over an
//! answer's body or an upgraded connection (exact reads, bounded chunks), the demultiplexer of Docker's
//! `multiplexed-stream` (frames of an 8-byte header `[stream, 0, 0, 0, size u32
//! BE]` and the payload), and [`LogLines`], which writes whole lines into the task
//! log. Memory stays bounded: one chunk (at most 64 KiB) and a partial line each.

use enginehost_sdk::http::{self, Incoming};
use enginehost_sdk::io::{BufReader, ChunkSource};
use enginehost_sdk::{StreamReader, StreamWriter, TaskContext, byte_stream, spawn_local};

pub use enginehost_sdk::io::CHUNK;

/// Where bytes come from.
pub enum Source {
    /// An HTTP answer's body (chunked or not: hyper decodes it).
    Body(Incoming),
    /// An upgraded connection (attach, exec).
    Raw(StreamReader<u8>),
}

impl ChunkSource for Source {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        match self {
            Source::Body(body) => match http::next_data(body).await {
                Ok(data) => Ok(data.map(|d| d.to_vec())),
                Err(e) => Err(format!("the answer broke off: {e}")),
            },
            Source::Raw(rx) => rx.next_chunk().await,
        }
    }
}

/// Buffered reads over a [`Source`] (the SDK's reader).
pub type Reader = BufReader<Source>;

/// Which stream a frame of a multiplexed stream belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Channel {
    Stdout,
    Stderr,
    /// dockerd's own error while reading a container's logs (type 3).
    System,
}

/// Reads a `multiplexed-stream` to its end, handing the payload to `sink`: each
/// chunk read is parsed whole, and the payload of consecutive frames of one
/// stream goes on in one piece (a task that writes small lines makes many small
/// frames). Stdin frames, which dockerd never sends, count as stdout.
pub async fn demux(reader: &mut Reader, mut sink: impl AsyncFnMut(Channel, Vec<u8>)) -> Result<(), String> {
    let mut header: Vec<u8> = Vec::with_capacity(8);
    let (mut channel, mut left) = (Channel::Stdout, 0usize);
    while let Some(chunk) = reader.some(CHUNK).await? {
        let mut rest = &chunk[..];
        let mut batch: Vec<u8> = Vec::new();
        while !rest.is_empty() {
            if left == 0 {
                let take = (8 - header.len()).min(rest.len());
                header.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if header.len() < 8 {
                    break;
                }
                let next = match header[0] {
                    2 => Channel::Stderr,
                    3 => Channel::System,
                    _ => Channel::Stdout,
                };
                left = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
                header.clear();
                if next != channel && !batch.is_empty() {
                    sink(channel, std::mem::take(&mut batch)).await;
                }
                channel = next;
                continue;
            }
            let take = left.min(rest.len());
            batch.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            left -= take;
        }
        if !batch.is_empty() {
            sink(channel, batch).await;
        }
    }
    if left > 0 || !header.is_empty() {
        return Err("the stream ended in the middle of a frame".into());
    }
    Ok(())
}

/// A line the engine writes into the task log itself.
pub async fn note(context: &TaskContext, line: &str) {
    enginehost_sdk::write_log_bytes(context, format!("[docker] {line}\n").into_bytes()).await;
}

/// Whether docker's `logs` endpoint will give back exactly the bytes the
/// attach stream gave, so that a recovery can skip what the task log has by
/// counting bytes. The json-file driver stores each message as a JSON string:
/// invalid UTF-8 comes back as U+FFFD (three bytes), and a line longer than
/// its 16 KiB buffer is split into messages, which can cut a character in two.
/// So: valid UTF-8 throughout, and no non-ASCII byte in a line that long.
#[derive(Default)]
pub struct Faithful {
    /// An incomplete character at the end of the last chunk.
    pending: Vec<u8>,
    /// Bytes since the last newline, and whether one was not ASCII.
    line: usize,
    non_ascii: bool,
    broken: bool,
}

/// docker's copier buffer (lines longer than this are split), with a margin.
const SPLIT_LINE: usize = 8 * 1024;

impl Faithful {
    /// Takes the next bytes of one stream; false once the stream is not
    /// faithful (for good).
    pub fn check(&mut self, bytes: &[u8]) -> bool {
        if self.broken {
            return false;
        }
        let mut data = std::mem::take(&mut self.pending);
        data.extend_from_slice(bytes);
        match std::str::from_utf8(&data) {
            Ok(_) => {}
            Err(e) if e.error_len().is_none() => self.pending = data[e.valid_up_to()..].to_vec(),
            Err(_) => self.broken = true,
        }
        for &b in bytes {
            if b == b'\n' {
                (self.line, self.non_ascii) = (0, false);
            } else {
                self.line += 1;
                self.non_ascii |= !b.is_ascii();
                if self.non_ascii && self.line > SPLIT_LINE {
                    self.broken = true;
                }
            }
        }
        !self.broken
    }

    /// At the stream's end: faithful, with no character cut off.
    pub fn complete(&self) -> bool {
        !self.broken && self.pending.is_empty()
    }
}

/// Raw bytes (a tty's output) to `sink` until the end.
pub async fn copy(reader: &mut Reader, mut sink: impl AsyncFnMut(Vec<u8>)) -> Result<(), String> {
    while let Some(chunk) = reader.some(CHUNK).await? {
        sink(chunk).await;
    }
    Ok(())
}

/// Bytes for the task log, written in whole lines (other writers share the log);
/// a line longer than [`CHUNK`] is written in pieces.
pub struct LogLines {
    out: StreamWriter<u8>,
    line: Vec<u8>,
    /// Bytes of the input handed to the log so far (a recovery record's offset).
    delivered: u64,
}

impl LogLines {
    /// Lines into `context`'s log, through one `write-log` call for the whole task.
    pub fn new(context: &std::rc::Rc<TaskContext>) -> Self {
        let (out, rx) = byte_stream();
        let context = context.clone();
        spawn_local(async move {
            context.write_log(rx).await;
        });
        LogLines {
            out,
            line: Vec::new(),
            delivered: 0,
        }
    }

    /// How many bytes pushed so far are in the log (not a partial last line).
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Writes the whole lines in `bytes` (in one write), keeping a partial last one.
    pub async fn push(&mut self, bytes: &[u8]) {
        match bytes.iter().rposition(|b| *b == b'\n') {
            Some(last) => {
                let mut lines = std::mem::take(&mut self.line);
                lines.extend_from_slice(&bytes[..=last]);
                self.delivered += lines.len() as u64;
                let _ = self.out.write_all(lines).await;
                self.line.extend_from_slice(&bytes[last + 1..]);
            }
            None => self.line.extend_from_slice(bytes),
        }
        if self.line.len() >= CHUNK {
            let line = std::mem::take(&mut self.line);
            self.delivered += line.len() as u64;
            let _ = self.out.write_all(line).await;
        }
    }

    /// Writes a partial last line, with a newline.
    pub async fn finish(&mut self) {
        if !self.line.is_empty() {
            let mut line = std::mem::take(&mut self.line);
            self.delivered += line.len() as u64;
            line.push(b'\n');
            let _ = self.out.write_all(line).await;
        }
    }
}
