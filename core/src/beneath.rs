//! Opening paths beneath a directory so that the object checked is the object used.
//!
//! Owns: `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` (and, where the kernel has no
//! openat2, a component-by-component `O_NOFOLLOW` walk that refuses the same things), opening a unix socket as an
//! `O_PATH` descriptor and connecting through that very descriptor (`/proc/self/fd/N`), so that no symlink planted or
//! swapped in by a task between a check and the connect is ever followed.
//!
//! Must not: follow a symlink anywhere in a path given relative to a root, or decide what is allowed (callers check
//! the grant first, then call here with the root they may use).

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// Why a path cannot be opened beneath its root, in words a task author can act on.
fn explain(rel: &Path, e: io::Error) -> io::Error {
    let why = match e.raw_os_error() {
        Some(libc::ELOOP) => "a symlink is in the way (symlinks are not followed here)",
        Some(libc::EXDEV) => "it leads out of the directory",
        Some(libc::ENOENT) => "no such file or directory",
        Some(libc::ENOTDIR) => "a part of it is not a directory",
        Some(libc::EACCES) | Some(libc::EPERM) => "permission denied",
        _ => return io::Error::new(e.kind(), format!("'{}': {e}", rel.display())),
    };
    io::Error::new(e.kind(), format!("'{}': {why}", rel.display()))
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))
}

/// Opens `rel` beneath `root` with `flags` (O_CLOEXEC is added), following no symlink and no `..` out of `root`.
/// `rel` must be relative; empty or `.` opens `root` itself again.
pub fn open(root: BorrowedFd<'_>, rel: &Path, flags: i32) -> io::Result<OwnedFd> {
    if rel.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{}' is not a relative path", rel.display()),
        ));
    }
    let target = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = cstring(target.as_os_str().as_bytes())?;
    // SAFETY: open_how is plain data; all-zero is its "nothing asked" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    loop {
        // SAFETY: openat2 with a valid dirfd, a NUL-terminated path and a properly sized open_how.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a fresh descriptor the kernel just gave us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // EAGAIN: a concurrent rename made the kernel give up on a "beneath" check; retrying is what it asks.
            Some(libc::EAGAIN) => continue,
            Some(libc::ENOSYS) => return open_by_components(root, target, flags).map_err(|e| explain(rel, e)),
            _ => return Err(explain(rel, e)),
        }
    }
}

/// The same walk without openat2 (kernels before 5.6): each directory opened with `O_NOFOLLOW`, `..` and absolute
/// parts refused outright.
fn open_by_components(root: BorrowedFd<'_>, rel: &Path, flags: i32) -> io::Result<OwnedFd> {
    let parts: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(Ok(p)),
            Component::CurDir => None,
            _ => Some(Err(io::Error::from_raw_os_error(libc::EXDEV))),
        })
        .collect::<io::Result<_>>()?;
    let mut dir = root.try_clone_to_owned()?;
    let Some((last, dirs)) = parts.split_last() else {
        return open_at(dir.as_fd(), OsStr::new("."), flags);
    };
    for part in dirs {
        dir = open_at(dir.as_fd(), part, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)?;
    }
    open_at(dir.as_fd(), last, flags | libc::O_NOFOLLOW)
}

/// `openat(dir, name, flags | O_CLOEXEC)` for one path component.
pub fn open_at(dir: BorrowedFd<'_>, name: &OsStr, flags: i32) -> io::Result<OwnedFd> {
    let c = cstring(name.as_bytes())?;
    loop {
        // SAFETY: a valid dirfd and a NUL-terminated name.
        let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC, 0o600) };
        if fd >= 0 {
            // SAFETY: a fresh descriptor the kernel just gave us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// `fstat` of a descriptor.
pub fn stat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: fstat fills the struct it is given.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd.as_raw_fd(), &mut st) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    }
}

/// `fd` itself when it holds a unix socket; else an error saying what it holds instead (a symlink is never
/// followed here: the caller opened it with `O_NOFOLLOW`).
fn only_socket(fd: OwnedFd, shown: &Path) -> io::Result<OwnedFd> {
    let st = stat(fd.as_fd())?;
    let what = match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => return Ok(fd),
        libc::S_IFLNK => "a symlink (not followed; name the socket itself)",
        _ => "not a unix socket",
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("'{}' is {what}", shown.display()),
    ))
}

/// The unix socket `rel` beneath `root` as an `O_PATH` descriptor: no symlink followed on the way or at the end.
pub fn socket_beneath(root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    only_socket(open(root, rel, libc::O_PATH | libc::O_NOFOLLOW)?, rel)
}

/// The unix socket at the absolute path `path` as an `O_PATH` descriptor. The directory part is the operator's (it
/// may hold system symlinks such as `/var/run`) and is resolved once; the last part is never followed, so a symlink
/// swapped in for the socket is refused, not connected.
pub fn socket_at(path: &Path) -> io::Result<OwnedFd> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{}' names no socket", path.display()),
        ));
    };
    let dir = std::fs::File::open(parent)?;
    only_socket(open_at(dir.as_fd(), name, libc::O_PATH | libc::O_NOFOLLOW)?, path)
}

/// Connects to the socket an `O_PATH` descriptor holds (through its `/proc/self/fd` link, which names that inode and
/// nothing else). The descriptor may be closed once this returns.
pub async fn connect(socket: &OwnedFd) -> io::Result<tokio::net::UnixStream> {
    let via = format!("/proc/self/fd/{}", socket.as_raw_fd());
    tokio::net::UnixStream::connect(via).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root() -> (tempfile::TempDir, std::fs::File) {
        let t = tempfile::tempdir().unwrap();
        let f = std::fs::File::open(t.path()).unwrap();
        (t, f)
    }

    #[test]
    fn symlinks_are_never_followed() {
        let (t, dir) = root();
        std::fs::create_dir(t.path().join("real")).unwrap();
        std::fs::write(t.path().join("real/f"), b"x").unwrap();
        symlink("real", t.path().join("link")).unwrap();
        symlink("/etc", t.path().join("out")).unwrap();
        assert!(open(dir.as_fd(), Path::new("real/f"), libc::O_RDONLY).is_ok());
        for bad in ["link/f", "out/passwd", "../x", "real/../../x"] {
            let e = open(dir.as_fd(), Path::new(bad), libc::O_RDONLY).unwrap_err();
            assert!(e.to_string().contains(bad), "{bad}: {e}");
        }
        assert!(open(dir.as_fd(), Path::new("/etc/passwd"), libc::O_RDONLY).is_err());
        // The fallback refuses the same.
        assert!(open_by_components(dir.as_fd(), Path::new("real/f"), libc::O_RDONLY).is_ok());
        for bad in ["link/f", "out/passwd", "../x"] {
            assert!(
                open_by_components(dir.as_fd(), Path::new(bad), libc::O_RDONLY).is_err(),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn a_socket_is_connected_through_the_descriptor_that_was_checked() {
        let (t, dir) = root();
        let listener = tokio::net::UnixListener::bind(t.path().join("s.sock")).unwrap();
        let fd = socket_beneath(dir.as_fd(), Path::new("s.sock")).unwrap();
        // Swapping the name for a symlink after the check changes nothing: the descriptor is the socket.
        std::fs::rename(t.path().join("s.sock"), t.path().join("moved.sock")).unwrap();
        symlink("/run/elsewhere.sock", t.path().join("s.sock")).unwrap();
        let _client = connect(&fd).await.unwrap();
        listener.accept().await.unwrap();
        // The symlink itself is refused.
        let e = socket_beneath(dir.as_fd(), Path::new("s.sock")).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        let e = socket_at(&t.path().join("s.sock")).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        assert!(socket_at(&t.path().join("moved.sock")).is_ok());
    }
}
