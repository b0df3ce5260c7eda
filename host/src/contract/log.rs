//! The task log (seed `runtime/taskcontext.go`, docs/engine-contract.md §5): a
//! file-backed stream with one writer side and any number of live readers. Each
//! reader starts at byte 0, sees every byte in order, waits for more, and reaches
//! end-of-file only after [`TaskLog::close`]. Writes after close are dropped.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Where the log is and how far it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Progress {
    len: u64,
    closed: bool,
}

struct Inner {
    path: PathBuf,
    file: Mutex<Option<File>>,
    progress: watch::Sender<Progress>,
    /// Bytes the log may hold (`limits.log-size`); then one notice, then nothing.
    limit: AtomicU64,
    full: AtomicBool,
    /// A temporary log's file, already unlinked: kept open (read-only) so that
    /// readers can open it again through `/proc/self/fd` until the last clone goes.
    /// Nothing is left on disk, even if the process ends with clones still alive.
    _anchor: Option<File>,
}

/// A task log; clones share it.
#[derive(Clone)]
pub struct TaskLog {
    inner: Arc<Inner>,
}

impl TaskLog {
    /// A log in a new temporary file, gone when the last clone is dropped (or the
    /// process ends): the file is unlinked at once and reached through
    /// `/proc/self/fd` ([`TaskLog::path`]).
    pub fn temporary() -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("enginehost-log-").tempdir()?;
        let path = dir.path().join("task.log");
        let file = Self::open_new(&path)?;
        let anchor = File::open(&path)?;
        drop(dir); // the directory and the file's name go; the open file stays
        let path = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&anchor)));
        Ok(Self::from_file(path, file, Some(anchor)))
    }

    /// A log in a new file at `path` (truncated if it exists), kept when the log is
    /// dropped: the caller owns the file.
    pub fn create_at(path: &Path) -> std::io::Result<Self> {
        Ok(Self::from_file(path.to_owned(), Self::open_new(path)?, None))
    }

    fn open_new(path: &Path) -> std::io::Result<File> {
        File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)
    }

    fn from_file(path: PathBuf, file: File, anchor: Option<File>) -> Self {
        let (progress, _) = watch::channel(Progress { len: 0, closed: false });
        TaskLog {
            inner: Arc::new(Inner {
                path,
                file: Mutex::new(Some(file)),
                progress,
                limit: AtomicU64::new(u64::MAX),
                full: AtomicBool::new(false),
                _anchor: anchor,
            }),
        }
    }

    /// The file behind the log (for a temporary log, its `/proc/self/fd/N`, valid
    /// while the log lives).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Caps the log at `bytes`: what is written beyond is dropped, after one line
    /// saying so.
    pub fn set_limit(&self, bytes: u64) {
        self.inner.limit.store(bytes, Ordering::SeqCst);
    }

    /// Appends raw bytes (the seed's `LogDrain`). Returns false when they were not
    /// all kept: the log is closed, or at its limit.
    pub fn write(&self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return true;
        }
        let mut file = self.inner.file.lock().expect("task log lock poisoned");
        let Some(f) = file.as_mut() else { return false };
        if self.inner.full.load(Ordering::SeqCst) {
            return false;
        }
        let (len, limit) = (
            self.inner.progress.borrow().len,
            self.inner.limit.load(Ordering::SeqCst),
        );
        let room = limit.saturating_sub(len);
        let kept = &bytes[..bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
        let mut written = 0;
        if f.write_all(kept).is_ok() {
            written += kept.len();
        }
        if kept.len() < bytes.len() {
            self.inner.full.store(true, Ordering::SeqCst);
            let notice = format!(
                "\n[taskcluster:error] The task log reached its limit of {limit} bytes (limits.log-size); \
                 the rest of the task's output is dropped.\n"
            );
            if f.write_all(notice.as_bytes()).is_ok() {
                written += notice.len();
            }
        }
        self.inner.progress.send_modify(|p| p.len += written as u64);
        kept.len() == bytes.len()
    }

    /// Writes `[taskcluster] <message>` as a line.
    pub fn log(&self, message: &str) {
        self.write(format!("[taskcluster] {message}\n").as_bytes());
    }

    /// Writes `[taskcluster:error] <message>` as a line.
    pub fn log_error(&self, message: &str) {
        self.write(format!("[taskcluster:error] {message}\n").as_bytes());
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.inner.progress.borrow().len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the log: readers reach end-of-file, later writes are dropped.
    /// Idempotent.
    pub fn close(&self) {
        let mut file = self.inner.file.lock().expect("task log lock poisoned");
        if let Some(f) = file.take() {
            let _ = f.sync_data();
        }
        self.inner.progress.send_modify(|p| p.closed = true);
    }

    /// Whether [`TaskLog::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.progress.borrow().closed
    }

    /// A reader from byte 0.
    pub fn reader(&self) -> std::io::Result<LogReader> {
        Ok(LogReader {
            file: File::open(&self.inner.path)?,
            pos: 0,
            progress: self.inner.progress.subscribe(),
        })
    }

    /// The whole log once it is closed (waits for close).
    pub async fn read_to_end(&self) -> std::io::Result<Vec<u8>> {
        self.reader()?.read_to_end().await
    }
}

/// A live reader of a [`TaskLog`].
pub struct LogReader {
    file: File,
    pos: u64,
    progress: watch::Receiver<Progress>,
}

impl LogReader {
    /// Reads up to `buf.len()` bytes, waiting for the writer; 0 means end-of-file
    /// (the log is closed and everything was read).
    pub async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let progress = *self.progress.borrow_and_update();
            if progress.len > self.pos {
                let want = (progress.len - self.pos).min(buf.len() as u64) as usize;
                self.file.seek(SeekFrom::Start(self.pos))?;
                let n = self.file.read(&mut buf[..want])?;
                self.pos += n as u64;
                return Ok(n);
            }
            if progress.closed || buf.is_empty() {
                return Ok(0);
            }
            if self.progress.changed().await.is_err() {
                return Ok(0); // the log is gone
            }
        }
    }

    /// Reads to end-of-file.
    pub async fn read_to_end(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.read(&mut buf).await?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TaskLog;

    #[tokio::test]
    async fn a_temporary_log_has_nothing_on_disk_and_still_reads_after_close() {
        let log = TaskLog::temporary().unwrap();
        log.log("kept");
        let target = std::fs::read_link(log.path()).unwrap();
        assert!(target.to_string_lossy().ends_with(" (deleted)"), "{}", target.display());
        log.close();
        assert_eq!(log.read_to_end().await.unwrap(), b"[taskcluster] kept\n");
    }

    #[tokio::test]
    async fn readers_start_at_zero_and_end_after_close() {
        let log = TaskLog::temporary().unwrap();
        log.log("one");
        let mut early = log.reader().unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(early.read(&mut buf).await.unwrap(), 1);
        assert_eq!(&buf, b"[");
        let pending = tokio::spawn({
            let log = log.clone();
            async move { log.read_to_end().await.unwrap() }
        });
        log.log_error("two");
        log.close();
        log.write(b"dropped");
        let all = String::from_utf8(pending.await.unwrap()).unwrap();
        assert_eq!(all, "[taskcluster] one\n[taskcluster:error] two\n");
        let rest = early.read_to_end().await.unwrap();
        assert_eq!(rest.len(), all.len() - 1);
    }

    #[tokio::test]
    async fn a_full_log_says_so_once_and_keeps_nothing_more() {
        let log = TaskLog::temporary().unwrap();
        log.set_limit(10);
        assert!(log.write(b"12345"));
        assert!(!log.write(b"6789abcdef"));
        assert!(!log.write(b"more"));
        log.close();
        let all = String::from_utf8(log.read_to_end().await.unwrap()).unwrap();
        assert!(
            all.starts_with("123456789a\n[taskcluster:error] The task log reached its limit of 10 bytes"),
            "{all}"
        );
        assert_eq!(all.matches("limit").count(), 2, "one notice: {all}");
    }
}
