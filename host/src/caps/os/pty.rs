//! Pseudo-terminals for interactive children: opening a master/slave pair and the async halves of the master.
//!
//! Owns: posix_openpt/grantpt/unlockpt/ptsname_r, the initial and later window sizes (TIOCSWINSZ; the kernel sends
//! SIGWINCH to the foreground group), the slave's owner, and reading/writing the non-blocking master through tokio.
//!
//! Must not: make the terminal the *worker's* controlling terminal (O_NOCTTY everywhere; only the child, a fresh
//! session leader, does TIOCSCTTY in `spawn`'s pre_exec), or keep the slave open in the worker after spawn (the
//! master then never sees EOF).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn set_size(fd: RawFd, cols: u16, rows: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize that lives across the call.
    cvt(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// Opens a pty pair of `cols`×`rows`: (master, non-blocking; slave, blocking). Both are O_CLOEXEC and O_NOCTTY; the
/// slave is handed to the child as 0/1/2 by std (dup2 clears CLOEXEC on those). With `owner`, the slave device is
/// chown'ed to it, so the task user can reopen its own terminal (e.g. via /dev/tty or `tty`), as login does.
pub(super) fn open(cols: u16, rows: u16, owner: Option<u32>) -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: each call either fails (checked) or returns a new fd that is immediately owned.
    unsafe {
        let master = OwnedFd::from_raw_fd(cvt(libc::posix_openpt(
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))?);
        cvt(libc::grantpt(master.as_raw_fd()))?;
        cvt(libc::unlockpt(master.as_raw_fd()))?;
        let mut name = [0 as libc::c_char; 64];
        let rc = libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let slave = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        let slave = OwnedFd::from_raw_fd(cvt(slave)?);
        set_size(slave.as_raw_fd(), cols, rows)?;
        if let Some(uid) = owner {
            cvt(libc::fchown(slave.as_raw_fd(), uid, u32::MAX))?;
        }
        let flags = cvt(libc::fcntl(master.as_raw_fd(), libc::F_GETFL))?;
        cvt(libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK))?;
        Ok((master, slave))
    }
}

/// Splits a non-blocking master into its read half, write half and control handle; they share one registration.
pub(super) fn split(master: OwnedFd) -> io::Result<(PtyReader, PtyWriter, PtyControl)> {
    // SAFETY: the OwnedFd is moved in, so the fd stays open and the same until the AsyncFd drops it.
    let fd = Arc::new(unsafe { AsyncFd::register(master) }?);
    Ok((PtyReader(fd.clone()), PtyWriter(fd.clone()), PtyControl(fd)))
}

/// Resizes a child's terminal. Cloneable; keeps the master open while any clone lives.
#[derive(Clone)]
pub struct PtyControl(Arc<AsyncFd<OwnedFd>>);

impl PtyControl {
    /// Sets the window size (TIOCSWINSZ on the master); the kernel sends SIGWINCH to the terminal's foreground group.
    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        set_size(self.0.as_raw_fd(), cols, rows)
    }
}

impl std::fmt::Debug for PtyControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PtyControl(fd {})", self.0.as_raw_fd())
    }
}

/// The output side of the terminal (what the child writes). EIO, which Linux returns once every slave fd is closed,
/// is reported as EOF.
pub(super) struct PtyReader(Arc<AsyncFd<OwnedFd>>);

impl AsyncRead for PtyReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let res = guard.try_io(|fd| {
                // SAFETY: reads into a buffer of the given length.
                let n = unsafe { libc::read(fd.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

/// The input side of the terminal (what the child reads). Shutdown does nothing: to end input, send the terminal's
/// EOF character (^D) or close the program; dropping this half only stops writing.
pub(super) struct PtyWriter(Arc<AsyncFd<OwnedFd>>);

impl AsyncWrite for PtyWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            let res = guard.try_io(|fd| {
                // SAFETY: writes from a buffer of the given length.
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
#[path = "pty_tests.rs"]
mod tests;
