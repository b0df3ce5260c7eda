//! cgroup v2 as plain file I/O: the per-worker tree `enginehost-<pid>` and the cgroups (engine, task, process) in it.
//!
//! Owns: finding the cgroup2 mount and our own cgroup, making/removing cgroup directories, reading their members,
//! signalling them, and `cgroup.kill`. A cgroup is the only tree kill that a `setsid` + double-fork daemon cannot
//! escape, so callers should prefer it and fall back to `killpg` + kill-by-uid only when [`CgroupTree::create`] fails.
//!
//! Must not: enable controllers (no `subtree_control` writes, so the no-internal-process rule never applies), touch
//! cgroups outside our own `enginehost-*` directories, or remove anything on drop (cleanup is explicit and journaled
//! by the caller, because a drop cannot wait for a cgroup to empty).

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TREE_PREFIX: &str = "enginehost-";

/// This process's cgroup v2 subtree `<mount>/<own cgroup>/enginehost-<pid>/`.
///
/// Siblings named `enginehost-<other pid>` belong to other (maybe dead) workers; see [`CgroupTree::sweep_dead`].
#[derive(Debug, Clone)]
pub struct CgroupTree {
    root: PathBuf,
}

impl CgroupTree {
    /// Finds the cgroup2 mount (/proc/self/mountinfo; it may be /sys/fs/cgroup or /sys/fs/cgroup/unified) and this
    /// process's cgroup ("0::/path" line of /proc/self/cgroup), creates `enginehost-<pid>` there (if absent) and checks
    /// that `cgroup.kill` exists in it. Err(reason) when cgroup v2 is unusable here (not mounted, not writable, too old).
    pub fn create() -> Result<CgroupTree, String> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("read mountinfo: {e}"))?;
        let (mount_root, mount_point) =
            parse_cgroup2_mount(&mountinfo).ok_or("cgroup v2 is not mounted (no cgroup2 line in mountinfo)")?;
        let own = fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("read /proc/self/cgroup: {e}"))?;
        let own = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or("this process has no cgroup v2 membership (no 0:: line in /proc/self/cgroup)")?;
        // Our path is relative to the cgroup namespace root; a mount of a subtree shows that subtree as its root.
        let rel = if mount_root == "/" {
            own
        } else {
            own.strip_prefix(mount_root.as_str())
                .ok_or_else(|| format!("own cgroup {own} is outside the cgroup2 mount root {mount_root}"))?
        };
        let parent = mount_point.join(rel.trim_start_matches('/'));
        let root = parent.join(format!("{TREE_PREFIX}{}", std::process::id()));
        let created = match fs::create_dir(&root) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(format!("cannot create {}: {e}", root.display())),
        };
        if !root.join("cgroup.kill").exists() {
            if created {
                let _ = fs::remove_dir(&root);
            }
            return Err(format!(
                "{} has no cgroup.kill (kernel older than 5.14)",
                root.display()
            ));
        }
        Ok(CgroupTree { root })
    }

    /// The `enginehost-<pid>` directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Kills and removes the `enginehost-<pid>` siblings whose pid is not a live process (a worker that died), returning
    /// what it removed. Never touches live ones.
    ///
    /// A dead worker's pid may have been reused by an unrelated process; its tree is then kept (the safe side) until
    /// that process is gone too. Pids are this pid namespace's: workers in other pid namespaces must not share our
    /// cgroup (containers normally have their own). Blocks for up to ~1 s per dead tree while it empties.
    pub fn sweep_dead(&self) -> Vec<PathBuf> {
        let Some(parent) = self.root.parent() else {
            return Vec::new();
        };
        let Ok(entries) = fs::read_dir(parent) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(TREE_PREFIX))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let cg = Cgroup::open(entry.path());
            cg.kill();
            let deadline = std::time::Instant::now() + Duration::from_secs(1);
            while cg.is_populated() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            match cg.remove() {
                Ok(()) => removed.push(entry.path()),
                Err(e) => tracing::warn!("cannot remove dead worker cgroup {}: {e}", entry.path().display()),
            }
        }
        removed
    }

    /// Removes the tree root itself if it is empty (no child cgroups, no processes); for a clean worker exit.
    pub fn remove_if_empty(&self) -> io::Result<()> {
        rmdir(&self.root)
    }
}

/// Returns (root within the hierarchy, mount point) of the first cgroup2 mount in a mountinfo text.
fn parse_cgroup2_mount(mountinfo: &str) -> Option<(String, PathBuf)> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split(' ').next()? != "cgroup2" {
            return None;
        }
        let fields: Vec<&str> = left.split(' ').collect();
        let root = String::from_utf8(unescape(fields.get(3)?)).ok()?;
        Some((root, PathBuf::from(OsStr::from_bytes(&unescape(fields.get(4)?)))))
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space, etc.).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

fn rmdir(path: &Path) -> io::Result<()> {
    match fs::remove_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// One cgroup (a directory in cgroupfs). Not removed on drop.
#[derive(Debug, Clone)]
pub struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// mkdir `parent/name`. `name` must be a single path component.
    pub fn create(parent: &Path, name: &str) -> io::Result<Cgroup> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad cgroup name {name:?}"),
            ));
        }
        let path = parent.join(name);
        fs::create_dir(&path)?;
        Ok(Cgroup { path })
    }

    /// An existing cgroup (journal replay); nothing is checked.
    pub fn open(path: PathBuf) -> Cgroup {
        Cgroup { path }
    }

    /// Its directory in cgroupfs.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `cgroup.procs`, O_WRONLY|O_CLOEXEC, for a child to join before exec (`SpawnSpec::cgroup_procs`).
    ///
    /// Opened here, in the parent, as root: the child writes "0" through it in pre_exec before it drops privileges.
    pub fn open_procs(&self) -> io::Result<OwnedFd> {
        // std opens with O_CLOEXEC always.
        Ok(fs::OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.procs"))?
            .into())
    }

    /// Every pid in it and in its descendants (a snapshot; processes may come and go meanwhile).
    pub fn pids(&self) -> Vec<i32> {
        let mut out = Vec::new();
        collect_pids(&self.path, &mut out);
        out
    }

    /// Sends `sig` to every pid (recursive), ignoring ESRCH. Racy against forks and pid reuse by nature (it reads a
    /// list, then signals); use it for the polite TERM before [`Cgroup::kill`], not as the kill itself.
    pub fn signal(&self, sig: i32) {
        for pid in self.pids() {
            // SAFETY: kill(2) has no memory-safety preconditions.
            if unsafe { libc::kill(pid, sig) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ESRCH) {
                    tracing::warn!("kill({pid}, {sig}) in {}: {e}", self.path.display());
                }
            }
        }
    }

    /// Writes "1" to cgroup.kill: SIGKILL to the whole subtree, atomically against forks (sync, µs). A cgroup that is
    /// already gone is fine; any other failure falls back to [`Cgroup::signal`] with SIGKILL and is logged.
    pub fn kill(&self) {
        match fs::write(self.path.join("cgroup.kill"), b"1") {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(
                    "cgroup.kill in {} failed ({e}); signalling each pid",
                    self.path.display()
                );
                self.signal(libc::SIGKILL);
            }
        }
    }

    /// "populated 1" in cgroup.events: some process is in it or in a descendant. A missing cgroup is unpopulated.
    pub fn is_populated(&self) -> bool {
        fs::read_to_string(self.path.join("cgroup.events")).is_ok_and(|s| s.lines().any(|l| l == "populated 1"))
    }

    /// True once unpopulated, false after `timeout`. Polls cgroup.events every 2 ms (a kill empties it in a few ms;
    /// inotify would need a blocking thread or another dependency for no measurable gain).
    pub async fn wait_empty(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if !self.is_populated() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// rmdir descendants bottom-up, then itself (ENOENT is fine). Fails with EBUSY while processes remain.
    pub fn remove(&self) -> io::Result<()> {
        remove_tree(&self.path)
    }
}

/// Every pid in `dir` and its descendants, with an explicit stack (a root task can nest cgroups deeply).
fn collect_pids(dir: &Path, out: &mut Vec<i32>) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        stack.extend(subdirs(&dir));
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// rmdir of `dir`'s descendants bottom-up, then of `dir`, without recursion: a directory is removed once it has no
/// subdirectory left (cgroupfs holds only directories and control files, which go with their directory).
fn remove_tree(dir: &Path) -> io::Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(top) = stack.last().cloned() {
        let subs = subdirs(&top);
        if subs.is_empty() {
            rmdir(&top)?;
            stack.pop();
        } else {
            stack.extend(subs);
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "cgroup_tests.rs"]
mod tests;
