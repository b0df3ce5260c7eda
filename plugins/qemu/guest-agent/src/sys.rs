//! The few raw syscalls the agent needs beyond std: a new session for each task and shell, a
//! pseudo-terminal for tty shells (by hand through `/dev/ptmx`, close-on-exec on both ends),
//! window sizes, and the environment every command gets. Everything unsafe lives here or in
//! `reaper`.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Where tasks and shells run, and their HOME.
pub const HOME: &str = "/home/tc";
pub const PATH: &str = "/bin:/sbin:/usr/bin:/usr/sbin";

/// The environment of the task and its shells: the defaults below, overridden by the payload's
/// `env` (PROTOCOL.md "Environment").
pub fn task_env(payload: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("HOME".to_string(), HOME.to_string());
    env.insert("PATH".to_string(), PATH.to_string());
    env.insert("USER".to_string(), "root".to_string());
    env.insert("LOGNAME".to_string(), "root".to_string());
    env.insert("SHELL".to_string(), "/bin/sh".to_string());
    for (k, v) in payload {
        env.insert(k.clone(), v.clone());
    }
    env
}

/// A command with exactly `env`, cwd HOME (or `/` if HOME is missing), in a new session.
pub fn command(argv: &[String], env: &BTreeMap<String, String>) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_clear().envs(env);
    cmd.current_dir(if std::path::Path::new(HOME).is_dir() { HOME } else { "/" });
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Like `command`, and makes the session's controlling terminal the child's stdin (a pty slave).
pub fn command_with_ctty(argv: &[String], env: &BTreeMap<String, String>) -> Command {
    let mut cmd = command(argv, env);
    // SAFETY: ioctl is async-signal-safe; runs after the setsid hook above.
    unsafe {
        cmd.pre_exec(|| {
            if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Opens a pseudo-terminal pair (master, slave), both close-on-exec, sized 80x24.
pub fn open_pty() -> io::Result<(File, OwnedFd)> {
    // SAFETY: plain syscalls on fds we own; every fd is wrapped before any early return.
    unsafe {
        let m = libc::open(c"/dev/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if m < 0 {
            return Err(io::Error::last_os_error());
        }
        let master = File::from_raw_fd(m);
        let mut unlock: libc::c_int = 0;
        let mut n: libc::c_uint = 0;
        if libc::ioctl(m, libc::TIOCSPTLCK as _, &mut unlock) < 0 || libc::ioctl(m, libc::TIOCGPTN as _, &mut n) < 0 {
            return Err(io::Error::last_os_error());
        }
        let path = CString::new(format!("/dev/pts/{n}")).unwrap();
        let s = libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if s < 0 {
            return Err(io::Error::last_os_error());
        }
        let slave = OwnedFd::from_raw_fd(s);
        set_winsize(&master, 80, 24)?;
        Ok((master, slave))
    }
}

/// Sets a pty's window size; the kernel sends SIGWINCH to its foreground process group.
pub fn set_winsize(master: &File, cols: u16, rows: u16) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ as _, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
