//! Test-only helpers: skip checks, a default spec, and guards that clean up processes, uids, users, cgroups and temp
//! dirs even when a test fails (Drop runs during unwinding).
//!
//! Must not be used outside `#[cfg(test)]` code.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::cgroup::{Cgroup, CgroupTree};
use super::spawn::{Output, SpawnSpec, Stderr, Stdin};
use super::{uidkill, users};

/// True (and says why) when the test needs root and we are not.
pub fn skip_unless_root(test: &str) -> bool {
    if users::is_root() {
        return false;
    }
    eprintln!("skipping {test}: needs root (euid is not 0)");
    true
}

/// An O_DIRECTORY fd for `SpawnSpec::cwd`.
pub fn open_dir(path: &Path) -> OwnedFd {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(path)
        .unwrap()
        .into()
}

/// A spec with PATH only, cwd "/", no ids, no cgroup, null stdio.
pub fn spec(program: &str, argv: &[&str]) -> SpawnSpec {
    SpawnSpec {
        program: program.into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        cwd: open_dir(Path::new("/")),
        ids: None,
        cgroup_procs: None,
        also_join: Vec::new(),
        netns: None,
        stdin: Stdin::Null,
        stdout: Output::Null,
        stderr: Stderr::Null,
        pty: None,
    }
}

/// Reads a stream to EOF as a string (with a 10 s limit so a bug hangs no test).
pub async fn read_all(r: Option<Pin<Box<dyn AsyncRead + Send>>>) -> String {
    let mut s = String::new();
    let mut r = r.expect("stream");
    let read = r.read_to_string(&mut s);
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("EOF within 10 s")
        .unwrap();
    s
}

/// Whether `pid` is a running (not zombie) process.
pub fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| !s.lines().any(|l| l.starts_with("State:") && l.contains('Z')))
}

/// A fresh directory under /tmp, removed (recursively) on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = PathBuf::from(format!(
            "/tmp/oslayer-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A uid in 200000..209999 that no user, group or process has; distinct per call within this test process.
pub fn free_uid() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let uid = 200_000 + (std::process::id().wrapping_mul(37).wrapping_add(n)) % 10_000;
        if !users::uid_in_use(uid) && !users::gid_in_use(uid) && !users::user_exists(&format!("ehtest{uid}")) {
            return uid;
        }
    }
}

/// Kills every process of a uid on drop.
pub struct UidGuard(pub u32);

impl Drop for UidGuard {
    fn drop(&mut self) {
        uidkill::kill_by_uid(self.0);
    }
}

/// Removes a user (and its processes and temp files) on drop, from a thread with its own runtime (Drop can't await).
pub struct UserGuard(pub String, pub u32);

impl Drop for UserGuard {
    fn drop(&mut self) {
        let (name, uid) = (self.0.clone(), self.1);
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(users::remove_user(&name, uid))
        });
        if let Ok(Err(e)) = done.join() {
            eprintln!("UserGuard: remove_user({}, {}): {e}", self.0, self.1);
        }
    }
}

/// How many TestCgroups are alive; the tree root is removed when the last one goes, under this lock, so that no test
/// removes the root while another is creating its cgroup in it.
static TREE_USERS: Mutex<usize> = Mutex::new(0);

/// A cgroup `<tree>/<name>-<n>` that is killed, emptied and removed on drop (with the tree root, if last).
pub struct TestCgroup {
    pub tree: CgroupTree,
    pub cg: Cgroup,
}

impl TestCgroup {
    /// None (and says why) when cgroup v2 is unusable here.
    pub fn new(name: &str) -> Option<TestCgroup> {
        static N: AtomicU32 = AtomicU32::new(0);
        let mut users = TREE_USERS.lock().unwrap_or_else(|e| e.into_inner());
        let tree = match CgroupTree::create() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("skipping: cgroup v2 unusable: {e}");
                return None;
            }
        };
        let cg = Cgroup::create(tree.root(), &format!("{name}-{}", N.fetch_add(1, Ordering::SeqCst))).unwrap();
        *users += 1;
        Some(TestCgroup { tree, cg })
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        self.cg.kill();
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.cg.is_populated() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Err(e) = self.cg.remove() {
            eprintln!("TestCgroup: remove {}: {e}", self.cg.path().display());
        }
        let mut users = TREE_USERS.lock().unwrap_or_else(|e| e.into_inner());
        *users -= 1;
        if *users == 0 {
            let _ = self.tree.remove_if_empty();
        }
    }
}

/// Removes a cgroup directory tree on drop (for hand-made ones, e.g. a fake dead worker's).
pub struct RmCgroup(pub PathBuf);

impl Drop for RmCgroup {
    fn drop(&mut self) {
        let cg = Cgroup::open(self.0.clone());
        cg.kill();
        let deadline = Instant::now() + Duration::from_secs(2);
        while cg.is_populated() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = cg.remove();
    }
}

/// SIGKILLs a child's process group on drop (for tests that run without a cgroup).
pub struct KillGroup(pub u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(-(self.0 as i32), libc::SIGKILL) };
    }
}
