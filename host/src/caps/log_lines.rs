//! Bytes on their way into the task log, cut into whole prefixed lines: the
//! host's copies of process output (`process` `task-log`) and of request bodies
//! (the endpoint's `body-to-log` routes). The bytes never enter the engine.

use crate::contract::TaskLog;

/// The longest line kept whole; longer ones are split (a writer that never sends
/// a newline cannot make the host buffer without end).
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Bytes on their way into the task log: with a prefix, cut into whole lines
/// (each written with the prefix; one longer than [`MAX_LINE`] is cut there);
/// without one, written as they come. Also used by the endpoint's `body-to-log`
/// routes.
pub(crate) struct LogLines {
    log: TaskLog,
    prefix: String,
    line: Vec<u8>,
}

impl LogLines {
    /// Lines for `log`, each prefixed with `prefix` ("" = bytes as they come).
    pub(crate) fn new(log: TaskLog, prefix: String) -> Self {
        LogLines {
            log,
            prefix,
            line: Vec::new(),
        }
    }

    /// Writes the whole lines in `bytes` (and keeps a partial last one).
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.prefix.is_empty() {
            self.log.write(bytes);
            return;
        }
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            write_line(&self.log, &self.prefix, &mut self.line, &rest[..=i]);
            rest = &rest[i + 1..];
        }
        self.line.extend_from_slice(rest);
        while self.line.len() >= MAX_LINE {
            let tail = self.line.split_off(MAX_LINE);
            let head = std::mem::replace(&mut self.line, tail);
            write_line(
                &self.log,
                &self.prefix,
                &mut Vec::new(),
                &[head.as_slice(), b"\n"].concat(),
            );
        }
    }

    /// Ends a partial last line with a newline and writes it.
    pub(crate) fn finish(mut self) {
        if !self.line.is_empty() {
            let mut line = std::mem::take(&mut self.line);
            line.push(b'\n');
            write_line(&self.log, &self.prefix, &mut Vec::new(), &line);
        }
    }
}

/// Writes `pending` + `end` as one prefixed line and clears `pending`.
fn write_line(log: &TaskLog, prefix: &str, pending: &mut Vec<u8>, end: &[u8]) {
    let mut out = Vec::with_capacity(prefix.len() + pending.len() + end.len());
    out.extend_from_slice(prefix.as_bytes());
    out.append(pending);
    out.extend_from_slice(end);
    log.write(&out);
}
