//! A network namespace per task: the processes of a task that was not granted the worker's network get one of their
//! own, holding only a loopback interface (up), so they reach neither the outside nor the worker's own services
//! (listening on `0.0.0.0`, `127.0.0.1` or an abstract unix socket, which is per namespace too).
//!
//! Owns: making the namespace (on a short-lived thread, which `unshare(CLONE_NEWNET)` moves alone) and keeping it as
//! a descriptor of `/proc/thread-self/ns/net`, which children enter with `setns` before exec
//! ([`super::spawn::SpawnSpec::netns`]). The namespace goes away with the last process in it and the descriptor.
//!
//! Must not: decide which task gets the host's network (the policy's `[process] network`), or touch the host's own
//! namespace.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Makes a fresh network namespace with its loopback up.
///
/// # Errors
/// When namespaces cannot be made here (`EPERM`: the worker is not root; `ENOSYS`/`EINVAL`: a kernel without them).
pub fn create() -> io::Result<OwnedFd> {
    std::thread::Builder::new()
        .name("enginehost-netns".into())
        .spawn(|| -> io::Result<OwnedFd> {
            // SAFETY: unshare affects only this thread, which ends right after.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            loopback_up()?;
            let path = c"/proc/thread-self/ns/net";
            // SAFETY: a NUL-terminated path.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a fresh descriptor.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })?
        .join()
        .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

/// A TCP listener bound to `addr` inside the namespace `ns` (the socket stays in
/// it; the thread that made it leaves). The task network's proxy listens so.
///
/// # Errors
/// When the namespace cannot be entered or the address bound.
pub fn listen_tcp(ns: &OwnedFd, addr: std::net::SocketAddr) -> io::Result<std::net::TcpListener> {
    let ns = ns.try_clone()?;
    std::thread::Builder::new()
        .name("enginehost-netns".into())
        .spawn(move || -> io::Result<std::net::TcpListener> {
            // SAFETY: setns affects only this thread, which ends right after.
            if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let listener = std::net::TcpListener::bind(addr)?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })?
        .join()
        .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

/// `ip link set lo up` in the calling thread's namespace.
fn loopback_up() -> io::Result<()> {
    // SAFETY: a socket for the ioctls, closed at the end; ifreq is plain data.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(io::Error::last_os_error());
        }
        let sock = OwnedFd::from_raw_fd(sock);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_new_namespace_has_only_loopback() {
        let Ok(ns) = super::create() else {
            eprintln!("skipped: network namespaces cannot be made here (not root)");
            return;
        };
        // Enter it on a thread of our own and look around.
        let seen = std::thread::spawn(move || {
            // SAFETY: setns on this thread only.
            assert_eq!(
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) },
                0
            );
            let links = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
            let names: Vec<String> = links
                .lines()
                .skip(2)
                .filter_map(|l| l.split(':').next().map(|n| n.trim().to_string()))
                .collect();
            let local = std::net::TcpListener::bind("127.0.0.1:0").map(|l| l.local_addr().unwrap());
            (names, local.is_ok())
        })
        .join()
        .unwrap();
        assert_eq!(seen.0, ["lo"]);
        assert!(seen.1, "loopback is up: a task can still talk to itself");
    }
}
