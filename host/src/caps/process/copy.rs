//! Host copies of process output into the task log: the bytes never enter the
//! engine. With a prefix, output is cut into lines and each is written whole with
//! its prefix (a line longer than [`MAX_LINE`] is cut there); without one, bytes are
//! written as they come (`caps::log_lines`). Writes go straight to the log file.

use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::CopyGuard;
use crate::caps::log_lines::LogLines;
#[cfg(test)]
use crate::caps::log_lines::MAX_LINE;
use crate::contract::TaskLog;

/// Bytes read per system call.
const CHUNK: usize = 1024 * 1024;

/// Copies `reader` into `log` until end of file (or a read error), prefixing each
/// line with `prefix`. `_guard` is released when the copy ends.
pub(crate) async fn to_log(
    mut reader: Pin<Box<dyn AsyncRead + Send>>,
    log: TaskLog,
    prefix: String,
    _guard: CopyGuard,
) {
    let mut buf = vec![0u8; CHUNK];
    let mut lines = LogLines::new(log, prefix);
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => lines.push(&buf[..n]),
        }
    }
    lines.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn copy(input: &'static [u8], prefix: &str) -> String {
        let log = TaskLog::temporary().unwrap();
        let (copies, _) = tokio::sync::watch::channel(0);
        to_log(Box::pin(input), log.clone(), prefix.into(), CopyGuard::new(&copies)).await;
        assert_eq!(*copies.borrow(), 0, "the guard is released");
        log.close();
        String::from_utf8(log.read_to_end().await.unwrap()).unwrap()
    }

    #[tokio::test]
    async fn lines_get_the_prefix_and_a_last_partial_line_is_ended() {
        assert_eq!(copy(b"a\nbb\n\nc", "[p] ").await, "[p] a\n[p] bb\n[p] \n[p] c\n");
        assert_eq!(copy(b"raw\nbytes", "").await, "raw\nbytes");
        assert_eq!(copy(b"", "[p] ").await, "");
    }

    #[tokio::test]
    async fn an_endless_line_is_cut() {
        let long: &'static [u8] = Box::leak(vec![b'x'; MAX_LINE * 2 + 3].into_boxed_slice());
        let out = copy(long, "> ").await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), MAX_LINE + 2);
        assert_eq!(lines[2], "> xxx");
    }
}
