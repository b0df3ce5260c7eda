//! Starting one child process exactly as specified: program, argv, whole environment, cwd fd, ids, cgroup, stdio, pty.
//!
//! Owns the fork/exec recipe and its one `pre_exec` hook. Everything the child needs is prepared in the parent
//! (fds opened, group list allocated) so that the hook only makes async-signal-safe syscalls: after fork() in a
//! multi-threaded process, the child may not allocate or take locks.
//!
//! Must not: resolve or check paths (the caller opened `cwd` and `File` stdio safely and checked the grant), inherit
//! anything implicitly (environment, cwd, stdio), use `Command::uid/gid/current_dir` (see [`spawn`]), or set
//! PR_SET_PDEATHSIG (it fires when the forking *thread* exits, and under tokio that can be any pool thread; a dying
//! worker is covered by the cgroup kill and the janitor's journal instead).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Stdio;

use tokio::net::unix::pipe;

pub use super::child::{Child, ExitStatus};
use super::child::{Streams, start};
use super::pty;

/// The ids a child drops to, in the child, after it joined its cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// Real, effective and saved uid (setuid as root sets all three, and clears the capabilities).
    pub uid: u32,
    /// Real, effective and saved gid.
    pub gid: u32,
    /// The supplementary groups (replacing, not adding to, the worker's).
    pub groups: Vec<u32>,
}

/// The child's stdin.
#[derive(Debug)]
pub enum Stdin {
    /// /dev/null.
    Null,
    /// A pipe whose write end is [`Child::take_stdin`].
    Pipe,
    /// Used as given: the caller opened it safely.
    File(std::fs::File),
}

/// The child's stdout (and the stderr choices other than 2>&1).
#[derive(Debug)]
pub enum Output {
    /// /dev/null.
    Null,
    /// A pipe whose read end is [`Child::take_stdout`] / [`Child::take_stderr`].
    Pipe,
    /// Used as given: the caller opened it safely.
    File(std::fs::File),
}

/// The child's stderr.
#[derive(Debug)]
pub enum Stderr {
    /// /dev/null.
    Null,
    /// A pipe of its own whose read end is [`Child::take_stderr`].
    Pipe,
    /// Used as given: the caller opened it safely.
    File(std::fs::File),
    /// 2>&1 onto whatever stdout is (the same pipe or open file description, so the order of writes is kept).
    Stdout,
}

/// Everything about one child. Nothing is inherited from the worker except what is named here.
#[derive(Debug)]
pub struct SpawnSpec {
    /// Absolute path that is exec'd (a relative one is refused: no PATH search ever happens).
    pub program: PathBuf,
    /// argv[0] as the process sees it (may differ from program), then the arguments. Empty = argv[0] is `program`.
    pub argv: Vec<String>,
    /// The WHOLE environment: nothing is inherited.
    pub env: Vec<(String, String)>,
    /// An open directory; the child fchdir()s to it (opened by the caller safely, e.g. RESOLVE_BENEATH).
    pub cwd: OwnedFd,
    /// Drop to this user in the child (setgroups, setgid, setuid, in that order).
    pub ids: Option<Ids>,
    /// If set ([`super::cgroup::Cgroup::open_procs`]), the child writes "0" to it first thing (joins that cgroup).
    pub cgroup_procs: Option<OwnedFd>,
    /// More `cgroup.procs` to join the same way (the task's v1 limit directories, [`super::bounds`]).
    pub also_join: Vec<OwnedFd>,
    /// A network namespace ([`super::netns`]) the child enters before it drops privileges; `None`: the worker's.
    pub netns: Option<OwnedFd>,
    /// fd 0; with `pty` it must be `Pipe` (= writes to the master).
    pub stdin: Stdin,
    /// fd 1; with `pty` it must be `Pipe` (= reads from the master).
    pub stdout: Output,
    /// fd 2; ignored with `pty` (the terminal is fd 2).
    pub stderr: Stderr,
    /// (columns, rows): the child gets a new pty slave as stdin/stdout/stderr and as its controlling terminal; then
    /// `stdin: Pipe`/`stdout: Pipe` mean "through the pty master" (stderr is ignored: it is the same terminal).
    /// Non-pipe stdin/stdout with a pty: Err(InvalidInput).
    pub pty: Option<(u16, u16)>,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// A duplicate of `fd` numbered >= 3 with FD_CLOEXEC: std's stdio setup dup2()s onto 0/1/2 before our hook runs, so a
/// low-numbered cwd or cgroup fd (a worker with closed stdio) would be clobbered; CLOEXEC keeps it out of the program.
fn high_cloexec(fd: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a valid fd returns a new fd that we own.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh fd nobody else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(new) })
}

/// Output pipes hold 1 MiB (the default 64 KiB makes a fast writer and the host's
/// copy take turns every 64 KiB); where the system limit is lower, the default stays.
fn widen(pipe: &impl std::os::fd::AsRawFd) {
    // SAFETY: F_SETPIPE_SZ on a pipe this module just made.
    unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
}

/// Spawns; an exec failure (ENOENT, EACCES, ENOEXEC...) is returned as the io::Error of this call (std reports it
/// from the child through a CLOEXEC pipe), with its errno intact. Must be called within a tokio runtime: the reaper
/// task and the async pipe ends are registered with it.
///
/// The child's `pre_exec` runs, in this order and for these reasons:
/// 1. write "0" to `cgroup_procs` and `also_join`: first, while still root, because joining needs write access to
///    the common ancestor's `cgroup.procs` (root-owned); after setuid it would fail with EACCES. Then `setns` into
///    `netns`, which needs CAP_SYS_ADMIN too.
/// 2. `setsid()`: a new session and process group, so [`Child::signal_group`] reaches the tree (fallback kill) and the
///    child cannot signal the worker's group; for a pty, then `ioctl(0, TIOCSCTTY)` (only a session leader without a
///    controlling terminal may acquire one; std has already dup'ed the slave onto 0/1/2).
/// 3. `setgroups`, `setgid`, `setuid`: groups and gid need privilege, so they go before uid, which drops it for good.
/// 4. `fchdir(cwd)`: after the drop, so the directory is entered with the task user's own permissions.
/// 5. the soft limit of open files this process started with (it raised its own, [`raise_open_files`]).
/// 6. every signal back to SIG_DFL: exec keeps *ignored* signals ignored, and std resets only SIGPIPE (it resets the
///    mask), so a worker started under `nohup` would hand SIGHUP-immune tasks out. glibc's internal 32/33 are left.
///
/// `Command::uid/gid/current_dir` are not used because std applies them *before* pre_exec, which breaks step 1.
pub fn spawn(spec: SpawnSpec) -> io::Result<Child> {
    if !spec.program.is_absolute() {
        return Err(invalid(format!(
            "program {} is not an absolute path",
            spec.program.display()
        )));
    }
    if let Some((k, _)) = spec.env.iter().find(|(k, _)| k.is_empty() || k.contains('=')) {
        return Err(invalid(format!("bad environment variable name {k:?}")));
    }
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.env_clear().envs(spec.env.iter().map(|(k, v)| (k, v)));
    match spec.argv.split_first() {
        Some((arg0, args)) => cmd.arg0(arg0).args(args),
        None => cmd.arg0(&spec.program),
    };

    let mut streams = Streams::default();
    let mut pty_control = None;
    if let Some((cols, rows)) = spec.pty {
        if !matches!((&spec.stdin, &spec.stdout), (Stdin::Pipe, Output::Pipe)) {
            return Err(invalid(
                "a pty needs stdin: Pipe and stdout: Pipe (they go through its master)".into(),
            ));
        }
        let (master, slave) = pty::open(cols, rows, spec.ids.as_ref().map(|i| i.uid))?;
        cmd.stdin(slave.try_clone()?).stdout(slave.try_clone()?).stderr(slave);
        // Registered with tokio before the fork, so nothing after spawn can fail and strand a running child.
        let (reader, writer, control) = pty::split(master)?;
        streams.stdin = Some(Box::pin(writer));
        streams.stdout = Some(Box::pin(reader));
        pty_control = Some(control);
    } else {
        match spec.stdin {
            Stdin::Null => cmd.stdin(Stdio::null()),
            Stdin::File(f) => cmd.stdin(f),
            Stdin::Pipe => {
                let (r, w) = io::pipe()?;
                streams.stdin = Some(Box::pin(pipe::Sender::from_owned_fd(w.into())?));
                cmd.stdin(r)
            }
        };
        // The child's stdout target, kept as an fd so that `Stderr::Stdout` can dup the very same one.
        let out: Option<OwnedFd> = match spec.stdout {
            Output::Null => None,
            Output::File(f) => Some(f.into()),
            Output::Pipe => {
                let (r, w) = io::pipe()?;
                widen(&r);
                streams.stdout = Some(Box::pin(pipe::Receiver::from_owned_fd(r.into())?));
                Some(w.into())
            }
        };
        match spec.stderr {
            Stderr::Null => cmd.stderr(Stdio::null()),
            Stderr::File(f) => cmd.stderr(f),
            Stderr::Stdout => match &out {
                Some(fd) => cmd.stderr(fd.try_clone()?),
                None => cmd.stderr(Stdio::null()),
            },
            Stderr::Pipe => {
                let (r, w) = io::pipe()?;
                widen(&r);
                streams.stderr = Some(Box::pin(pipe::Receiver::from_owned_fd(r.into())?));
                cmd.stderr(w)
            }
        };
        match out {
            Some(fd) => cmd.stdout(fd),
            None => cmd.stdout(Stdio::null()),
        };
    }

    let cwd = high_cloexec(&spec.cwd)?;
    let mut joins = Vec::with_capacity(1 + spec.also_join.len());
    for fd in spec.cgroup_procs.iter().chain(&spec.also_join) {
        joins.push(high_cloexec(fd)?);
    }
    let netns = spec.netns.as_ref().map(high_cloexec).transpose()?;
    let join_fds: Vec<RawFd> = joins.iter().map(|f| f.as_raw_fd()).collect();
    let setup = Setup {
        joins: join_fds,
        netns: netns.as_ref().map_or(-1, |f| f.as_raw_fd()),
        setctty: pty_control.is_some(),
        ids: spec.ids,
        cwd: cwd.as_raw_fd(),
        nofile: STARTED_WITH_NOFILE.load(std::sync::atomic::Ordering::SeqCst),
    };
    // SAFETY: the hook only calls async-signal-safe syscalls on fds that stay open until spawn returns, and reads
    // memory (the group and fd lists) allocated before the fork; it allocates nothing (io::Error from errno is not
    // boxed).
    unsafe {
        cmd.pre_exec(move || child_setup(&setup));
    }
    let child = cmd.spawn()?;
    // Dropping the Command closes the parent's copies of the child's pipe ends and pty slave: without that, reading
    // stdout (or the pty master) would never reach EOF.
    drop(cmd);
    drop((cwd, joins, netns));
    Ok(start(child, streams, pty_control))
}

/// The soft limit of open files this process started with (0: not raised).
static STARTED_WITH_NOFILE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Raises this process's soft limit of open files to its hard limit: the host
/// holds descriptors per task (pipes, sockets, and a walk of a task's tree takes
/// one per level), and the usual soft limit of 1024 is meant for programs that
/// open few. Children get the limit the process started with back (programs that
/// close every descriptor up to the limit, or use `select`, expect the usual one).
pub fn raise_open_files() {
    // SAFETY: getrlimit/setrlimit on this process with a struct they fill or read.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            let started = limit.rlim_cur;
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                let _ = STARTED_WITH_NOFILE.compare_exchange(
                    0,
                    started,
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                );
            }
        }
    }
}

/// What the `pre_exec` hook needs, prepared before the fork.
struct Setup {
    /// `cgroup.procs` descriptors to write "0" to.
    joins: Vec<RawFd>,
    /// A network namespace to enter, or -1.
    netns: RawFd,
    setctty: bool,
    ids: Option<Ids>,
    cwd: RawFd,
    /// The soft limit of open files to give back (0: leave it).
    nofile: u64,
}

/// The `pre_exec` hook; see [`spawn`] for the order. Runs in the forked child.
fn child_setup(setup: &Setup) -> io::Result<()> {
    let check = |r: libc::c_long| if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) };
    // SAFETY: plain syscalls on valid fds and on slices that outlive the call.
    unsafe {
        for &fd in &setup.joins {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(io::Error::last_os_error());
            }
        }
        if setup.netns >= 0 {
            check(libc::setns(setup.netns, libc::CLONE_NEWNET) as libc::c_long)?;
        }
        check(libc::setsid() as libc::c_long)?;
        if setup.setctty {
            check(libc::ioctl(0, libc::TIOCSCTTY, 0) as libc::c_long)?;
        }
        if let Some(ids) = &setup.ids {
            check(libc::setgroups(ids.groups.len(), ids.groups.as_ptr()) as libc::c_long)?;
            check(libc::setgid(ids.gid) as libc::c_long)?;
            check(libc::setuid(ids.uid) as libc::c_long)?;
        }
        check(libc::fchdir(setup.cwd) as libc::c_long)?;
        if setup.nofile > 0 {
            let mut limit: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur = setup.nofile.min(limit.rlim_max);
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
        for sig in (1..=64).filter(|&s| s != libc::SIGKILL && s != libc::SIGSTOP) {
            libc::signal(sig, libc::SIG_DFL); // EINVAL for glibc's reserved ones: fine
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "spawn_tests.rs"]
mod tests;
