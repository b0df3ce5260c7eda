//! The janitor: removes what tasks leave behind (cgroups, users, sandbox
//! directories), in the background, and makes that survive a crash.
//!
//! Before a task creates anything on the host, [`Janitor::record`] writes what it
//! is about to create to `journal/<key>.json` (atomically: write, then rename). A
//! finished cleanup deletes the entry. At start-up, [`Janitor::replay`] cleans up
//! after every entry whose worker process is gone — so a worker killed with SIGKILL
//! mid-task leaves nothing behind after its next start.
//!
//! Cleanup runs on a thread of its own (it must be reachable from `Drop`, which may
//! run outside any async runtime) with a small runtime for the async parts.
//! [`Janitor::drain`] waits until everything submitted so far is done.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::caps::os::cgroup::Cgroup;
use crate::caps::os::{bounds, tree, users};

/// What one task left on the host; also its journal entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cleanup {
    /// The journal entry to delete when done (not serialized: it is the file itself).
    #[serde(skip)]
    pub(crate) journal: Option<PathBuf>,
    /// A cgroup to kill and remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cgroup: Option<PathBuf>,
    /// Users (name, uid) to remove, after killing their processes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) users: Vec<(String, u32)>,
    /// A sandbox directory to delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sandbox: Option<PathBuf>,
    /// The task's v1 limit cgroups (pids, memory) to remove once empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) bounds: Vec<PathBuf>,
}

/// A journal entry on disk: the cleanup plus the worker that wrote it.
#[derive(Serialize, Deserialize)]
struct Entry {
    pid: u32,
    #[serde(flatten)]
    cleanup: Cleanup,
}

/// The cleanup thread and its journal.
pub(crate) struct Janitor {
    dir: PathBuf,
    jobs: std::sync::mpsc::Sender<Cleanup>,
    /// Cleanups submitted and not yet finished.
    pending: watch::Sender<usize>,
}

impl Janitor {
    /// Starts the thread; `dir` holds the journal.
    pub(crate) fn start(dir: &Path) -> std::io::Result<Arc<Janitor>> {
        super::make_dir(dir, 0o700)?;
        let (jobs, rx) = std::sync::mpsc::channel::<Cleanup>();
        let (pending, _) = watch::channel(0usize);
        let janitor = Arc::new(Janitor {
            dir: dir.to_path_buf(),
            jobs,
            pending: pending.clone(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new()
            .name("enginehost-janitor".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    runtime.block_on(clean(&job));
                    pending.send_modify(|n| *n = n.saturating_sub(1));
                }
            })?;
        Ok(janitor)
    }

    /// The journal file of task `key`.
    pub(crate) fn entry_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Writes `cleanup`'s journal entry (call before creating what it names).
    pub(crate) fn record(&self, cleanup: &Cleanup) -> std::io::Result<()> {
        let Some(path) = &cleanup.journal else {
            return Ok(());
        };
        let entry = Entry {
            pid: std::process::id(),
            cleanup: cleanup.clone(),
        };
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&entry).expect("a journal entry serializes"))?;
        std::fs::rename(&tmp, path)
    }

    /// Queues a cleanup (never blocks).
    pub(crate) fn submit(&self, cleanup: Cleanup) {
        self.pending.send_modify(|n| *n += 1);
        if self.jobs.send(cleanup).is_err() {
            self.pending.send_modify(|n| *n -= 1);
        }
    }

    /// Waits until every cleanup submitted so far is done.
    pub(crate) async fn drain(&self) {
        let mut rx = self.pending.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Submits the cleanup of every journal entry whose worker is gone; returns how
    /// many there were.
    pub(crate) fn replay(&self) -> usize {
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut count = 0;
        for path in listing.filter_map(|e| e.ok().map(|e| e.path())) {
            if path.extension().is_some_and(|x| x == "tmp") {
                let _ = std::fs::remove_file(&path); // a write cut short; its rename never happened
                continue;
            }
            let Ok(text) = std::fs::read(&path) else { continue };
            let Ok(entry) = serde_json::from_slice::<Entry>(&text) else {
                tracing::warn!(entry = %path.display(), "ignoring an unreadable cleanup journal entry");
                continue;
            };
            if entry.pid != std::process::id() && process_alive(entry.pid) {
                continue; // another live worker's task
            }
            let mut cleanup = entry.cleanup;
            cleanup.journal = Some(path);
            self.submit(cleanup);
            count += 1;
        }
        count
    }
}

/// Whether a process with this pid exists.
fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Performs one cleanup; failures are logged and the rest still happens.
async fn clean(job: &Cleanup) {
    if let Some(path) = &job.cgroup {
        let cgroup = Cgroup::open(path.clone());
        cgroup.kill();
        if !cgroup.wait_empty(Duration::from_secs(10)).await {
            tracing::warn!(cgroup = %path.display(), "processes survived the cgroup kill for 10 s");
        }
        if let Err(e) = cgroup.remove() {
            tracing::warn!(cgroup = %path.display(), "removing the cgroup: {e}");
        }
    }
    for dir in &job.bounds {
        if let Err(e) = bounds::remove_dir(dir, Duration::from_secs(10)).await {
            tracing::warn!(cgroup = %dir.display(), "removing the task's limit cgroup: {e}");
        }
    }
    for (name, uid) in &job.users {
        if let Err(e) = users::remove_user(name, *uid).await {
            tracing::warn!(user = %name, uid, "removing the task user: {e}");
        }
    }
    // Iterative and symlink-free: a task's 100,000-deep tree is removed like any other, and a tree that cannot be
    // removed (a mount inside, an immutable file) keeps its journal entry, so the next start tries again.
    let mut finished = true;
    if let Some(dir) = &job.sandbox
        && let Err(e) = tree::remove_path(dir)
    {
        tracing::warn!(
            dir = %dir.display(),
            "removing the sandbox directory failed, kept for the next start to retry: {e}"
        );
        finished = false;
    }
    if finished && let Some(entry) = &job.journal {
        let _ = std::fs::remove_file(entry);
    }
}
