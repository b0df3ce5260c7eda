//! Child processes: the one place that waits for them. The agent is a child subreaper (and may be
//! PID 1), so orphans of tasks and shells end up here too. A single thread peeks at each exited
//! child with `waitid(WNOWAIT)`, kills the rest of its process group while the leader's pid is
//! still reserved (so a stray background job can neither keep the output pipe open nor outlive
//! its task, and a reused pid is never signalled), then reaps it and hands the status over.
//! Nothing else in the agent may call `wait`.

use std::collections::BTreeMap;
use std::io;
use std::process::{Child, Command};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The shell protocol's encoding: the exit code, or minus the signal number.
    pub fn as_i32(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => -s,
        }
    }
}

struct Entry {
    status: Option<Exit>,
    kill_group: bool,
}

struct Table {
    children: BTreeMap<i32, Entry>,
    spawned: u64,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    children: BTreeMap::new(),
    spawned: 0,
});
static CHANGED: Condvar = Condvar::new();

/// Becomes a child subreaper and starts the waiting thread. Call once, before any spawn.
pub fn start() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    thread::spawn(run);
}

/// Spawns `cmd` and registers the child. The table lock is held across the spawn so the waiting
/// thread cannot reap the child before it is registered (nor race std's own wait when exec fails).
/// With `kill_group`, the child's process group gets SIGKILL when the child exits.
pub fn spawn(cmd: &mut Command, kill_group: bool) -> io::Result<Child> {
    let mut t = TABLE.lock().unwrap();
    let child = cmd.spawn()?;
    t.children.insert(
        child.id() as i32,
        Entry {
            status: None,
            kill_group,
        },
    );
    t.spawned += 1;
    CHANGED.notify_all();
    Ok(child)
}

/// Blocks until `pid` (from `spawn`) has exited; forgets it.
pub fn wait(pid: i32) -> Exit {
    let mut t = TABLE.lock().unwrap();
    loop {
        if let Some(status) = t.children.get(&pid).and_then(|e| e.status) {
            t.children.remove(&pid);
            return status;
        }
        t = CHANGED.wait(t).unwrap();
    }
}

/// Sends `sig` to the process group led by `pid` if `pid` has not exited yet. Returns whether it
/// was still running. Checked under the table lock, so a reaped (and maybe reused) pid is never hit.
pub fn signal_group_if_running(pid: i32, sig: i32) -> bool {
    let t = TABLE.lock().unwrap();
    match t.children.get(&pid) {
        Some(Entry { status: None, .. }) => {
            // SAFETY: plain syscall.
            unsafe { libc::kill(-pid, sig) };
            true
        }
        _ => false,
    }
}

fn run() {
    loop {
        // SAFETY: waitid fills the zeroed siginfo_t; WNOWAIT leaves the child a zombie.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ECHILD) {
                // No children: sleep until something is spawned (or re-check after a while).
                let t = TABLE.lock().unwrap();
                let seen = t.spawned;
                let _ = CHANGED.wait_timeout_while(t, Duration::from_secs(1), |t| t.spawned == seen);
            }
            continue;
        }
        // SAFETY: waitid succeeded with WEXITED, so these fields are valid.
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        let exit = if info.si_code == libc::CLD_EXITED {
            Exit::Code(status)
        } else {
            Exit::Signal(status)
        };
        let mut t = TABLE.lock().unwrap();
        if let Some(e) = t.children.get_mut(&pid) {
            if e.kill_group {
                // SAFETY: plain syscall; the zombie leader still reserves the group id.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            e.status = Some(exit);
        }
        // SAFETY: reaps exactly this zombie (std may already have reaped a failed exec: ECHILD is fine).
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        CHANGED.notify_all();
    }
}
