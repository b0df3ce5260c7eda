//! Per-task bounds on process count and memory: cgroup `pids.max` and `memory.max`.
//!
//! Owns: finding where each controller can be used and setting the limit there, the descriptors a child writes "0"
//! to (joining before exec, while still root), reading how often a limit was hit, and removing what it made.
//!
//! Where it can be used differs between machines. On a pure cgroup v2 host the controllers are enabled down to the
//! task's cgroup (`+pids +memory` in `cgroup.subtree_control` of the worker's tree; the task cgroup holds no process of
//! its own, only per-process children, so the no-internal-process rule is kept) and the limit is the task cgroup's. On
//! a hybrid host (v2 mounted without controllers, each controller on a v1 hierarchy, as on the machines this project
//! runs on) a v2 limit bounds nothing, so the task gets a directory of its own in each v1 hierarchy
//! (`<own cgroup>/enginehost-<task key>`), with `pids.max` / `memory.limit_in_bytes`, and each process joins it too.
//! Where neither can be written (not root, no controller), [`TaskBounds::create`] says so and the task runs unbounded:
//! the caller warns.
//!
//! Must not: decide the numbers (the operator's `[limits]`), kill (the v2 tree and the fallback do), or remove a
//! directory that still holds a process (removal waits; the janitor retries).

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// A controller this module sets a limit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// Process (and thread) count.
    Pids,
    /// Memory, page cache included.
    Memory,
}

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Controller::Pids => "pids",
            Controller::Memory => "memory",
        }
    }
}

/// One limit set somewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bound {
    controller: Controller,
    /// The cgroup directory holding the limit.
    dir: PathBuf,
    /// A v1 directory of the task's own (to join and to remove); false for the task's v2 cgroup.
    v1: bool,
    /// The limit.
    value: u64,
    /// The hit count already reported.
    reported: u64,
}

/// The bounds of one task.
#[derive(Debug, Default)]
pub struct TaskBounds {
    bounds: Vec<Bound>,
}

/// What [`TaskBounds::create`] could not bound, for the operator's log.
pub type Unbounded = Vec<String>;

impl TaskBounds {
    /// Sets `pids` and `memory` (bytes) for the task whose v2 cgroup is `v2_task` (if any) and whose key is `key`:
    /// in the v2 cgroup where its controller is available, else in a v1 directory of its own. Returns what it could
    /// not bound and why.
    pub fn create(v2_task: Option<&Path>, key: &str, pids: u64, memory: u64) -> (TaskBounds, Unbounded) {
        let mut bounds = TaskBounds::default();
        let mut missing = Vec::new();
        for (controller, value) in [(Controller::Pids, pids), (Controller::Memory, memory)] {
            match bound(v2_task, key, controller, value) {
                Ok(b) => bounds.bounds.push(b),
                Err(why) => missing.push(format!("{}: {why}", controller.name())),
            }
        }
        (bounds, missing)
    }

    /// The v1 directories a child joins before exec (`cgroup.procs`, opened as root in the parent).
    pub fn open_procs(&self) -> io::Result<Vec<OwnedFd>> {
        self.bounds
            .iter()
            .filter(|b| b.v1)
            .map(|b| {
                Ok(fs::OpenOptions::new()
                    .write(true)
                    .open(b.dir.join("cgroup.procs"))?
                    .into())
            })
            .collect()
    }

    /// The v1 directories made for the task (for the cleanup journal).
    pub fn own_dirs(&self) -> Vec<PathBuf> {
        self.bounds.iter().filter(|b| b.v1).map(|b| b.dir.clone()).collect()
    }

    /// One sentence per limit hit since the last call, naming the limit and the key that sets it.
    pub fn new_hits(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for b in &mut self.bounds {
            let hits = hit_count(&b.dir, b.controller, b.v1);
            if hits > b.reported {
                b.reported = hits;
                out.push(match b.controller {
                    Controller::Pids => format!(
                        "the task reached its limit of {} processes and threads ({hits} forks refused); \
                         the operator sets it with [limits] task-pids",
                        b.value
                    ),
                    Controller::Memory => format!(
                        "the task reached its memory limit of {} MiB: {hits} of its processes were killed for memory \
                         (out of memory in the task's cgroup); the operator sets it with [limits] task-memory",
                        b.value >> 20
                    ),
                });
            }
        }
        out
    }
}

fn bound(v2_task: Option<&Path>, key: &str, controller: Controller, value: u64) -> Result<Bound, String> {
    let name = controller.name();
    if let Some(task) = v2_task
        && enable_v2(task, name)
    {
        let file = if controller == Controller::Pids {
            "pids.max"
        } else {
            "memory.max"
        };
        fs::write(task.join(file), value.to_string()).map_err(|e| format!("writing {file}: {e}"))?;
        if controller == Controller::Memory {
            // No swap beyond the limit, where swap accounting exists.
            let _ = fs::write(task.join("memory.swap.max"), "0");
        }
        return Ok(Bound {
            controller,
            dir: task.to_path_buf(),
            v1: false,
            value,
            reported: 0,
        });
    }
    let base = v1_own_dir(name)?;
    let dir = base.join(format!("enginehost-{key}"));
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    let file = if controller == Controller::Pids {
        "pids.max"
    } else {
        "memory.limit_in_bytes"
    };
    if let Err(e) = fs::write(dir.join(file), value.to_string()) {
        let _ = fs::remove_dir(&dir);
        return Err(format!("writing {}: {e}", dir.join(file).display()));
    }
    Ok(Bound {
        controller,
        dir,
        v1: true,
        value,
        reported: 0,
    })
}

/// Makes `controller` available in the v2 cgroup `task` by enabling it in each ancestor's `subtree_control` up from
/// the worker's tree (`enginehost-<pid>`); true once `task` has the controller's files.
fn enable_v2(task: &Path, controller: &str) -> bool {
    let available = |dir: &Path| {
        fs::read_to_string(dir.join("cgroup.controllers")).is_ok_and(|c| c.split_whitespace().any(|w| w == controller))
    };
    if available(task) {
        return true;
    }
    // The ancestors that are ours: the engine cgroup and the worker's tree root (their names start that way).
    let mut ours = Vec::new();
    let mut dir = task.parent();
    while let Some(d) = dir {
        ours.push(d.to_path_buf());
        if d.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("enginehost-"))
        {
            break;
        }
        dir = d.parent();
    }
    let Some(top) = ours.last() else { return false };
    if !available(top) {
        return false; // the worker's own cgroup does not hand the controller down: not ours to change
    }
    for d in ours.iter().rev() {
        if fs::write(d.join("cgroup.subtree_control"), format!("+{controller}")).is_err() {
            return false;
        }
    }
    available(task)
}

/// This process's cgroup directory in the v1 hierarchy of `controller`.
fn v1_own_dir(controller: &str) -> Result<PathBuf, String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("reading mountinfo: {e}"))?;
    let mount = mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut right = right.split(' ');
            let (fstype, _source, options) = (right.next()?, right.next()?, right.next()?);
            if fstype != "cgroup" || !options.split(',').any(|o| o == controller) {
                return None;
            }
            let fields: Vec<&str> = left.split(' ').collect();
            Some((fields.get(3)?.to_string(), PathBuf::from(fields.get(4)?)))
        })
        .ok_or_else(|| format!("neither cgroup v2 nor a v1 hierarchy offers the {controller} controller here"))?;
    let own = fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("reading /proc/self/cgroup: {e}"))?;
    let path = own
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
            list.split(',').any(|c| c == controller).then(|| path.to_string())
        })
        .ok_or_else(|| format!("this process is in no v1 {controller} cgroup"))?;
    let (root, point) = mount;
    let rel = path.strip_prefix(root.as_str()).unwrap_or(&path);
    Ok(point.join(rel.trim_start_matches('/')))
}

/// How often the limit in `dir` was hit.
fn hit_count(dir: &Path, controller: Controller, v1: bool) -> u64 {
    let field = |file: &str, key: &str| {
        fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
            })
            .unwrap_or(0)
    };
    match (controller, v1) {
        (Controller::Pids, _) => field("pids.events", "max "),
        // OOM kills only: reaching the limit by page cache is reclaimed silently and is no event for the task.
        (Controller::Memory, false) => field("memory.events", "oom_kill "),
        (Controller::Memory, true) => field("memory.oom_control", "oom_kill "),
    }
}

/// Removes a v1 directory made for a task once its processes are gone (waits up to `wait`); ENOENT is fine.
pub async fn remove_dir(dir: &Path, wait: std::time::Duration) -> io::Result<()> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tokio::time::Instant::now() < deadline => {
                // Kill what is left (a v1 cgroup has no cgroup.kill) and wait for it to go.
                if let Ok(pids) = fs::read_to_string(dir.join("cgroup.procs")) {
                    for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        // SAFETY: kill(2) has no memory-safety preconditions.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Removes the v1 limit directories (`enginehost-<pid>-…`) of workers that are gone (a worker killed before its
/// janitor ran); returns what it removed. A directory still holding a process is left for a later start.
pub fn sweep_dead() -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for controller in [Controller::Pids, Controller::Memory] {
        let Ok(base) = v1_own_dir(controller.name()) else {
            continue;
        };
        let Ok(entries) = fs::read_dir(&base) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("enginehost-"))
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            if fs::remove_dir(entry.path()).is_ok() {
                removed.push(entry.path());
            }
        }
    }
    removed
}

/// The machine's memory, from `/proc/meminfo` (for the default task memory limit).
pub fn total_memory() -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
