//! [`HostEnv`], one per runtime: the work directory, how process trees are
//! killed (cgroup v2, or process groups plus kill-by-user), the janitor; and the
//! [`ProcessBounds`] every task of an engine gets.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64};

use anyhow::Context as _;

use super::janitor::Janitor;
use crate::caps::os::cgroup::{Cgroup, CgroupTree};
use crate::policy::{HostSettings, TreeKill};

/// The host side of capabilities, shared by every engine of a runtime.
pub struct HostEnv {
    pub(crate) work_dir: PathBuf,
    /// `None`: the fallback (process groups and kill-by-user).
    pub(crate) tree: Option<CgroupTree>,
    pub(super) tree_note: String,
    pub(crate) janitor: Arc<Janitor>,
    /// Next uid to try in a plugin's range (round robin: no immediate reuse).
    pub(crate) uid_cursor: AtomicU32,
    pub(super) engines: AtomicU64,
}

/// The work directory used when the config names none.
pub fn default_work_dir() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/enginehost");
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("enginehost")
}

/// Creates `dir` (and parents) and sets its mode.
pub(crate) fn make_dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(mode).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

impl HostEnv {
    /// Prepares the work directory, finishes the cleanup of a previous run that was
    /// killed (journal replay, dead workers' cgroups) and picks the tree-kill mode.
    ///
    /// # Errors
    /// When the work directory cannot be made, or `tree-kill = "cgroup"` and cgroup
    /// v2 is unusable here.
    pub fn new(settings: &HostSettings) -> anyhow::Result<Arc<HostEnv>> {
        crate::caps::os::spawn::raise_open_files();
        let work_dir = settings.work_dir.clone().unwrap_or_else(default_work_dir);
        // 0711: a task user must traverse it to reach its home; nobody may list it.
        make_dir(&work_dir, 0o711).with_context(|| format!("creating the work directory {}", work_dir.display()))?;
        make_dir(&work_dir.join("engines"), 0o711).context("creating the engines directory")?;
        let janitor = Janitor::start(&work_dir.join("journal")).context("starting the janitor")?;
        let (tree, tree_note) = match (settings.tree_kill, CgroupTree::create()) {
            (TreeKill::Fallback, _) => (None, "fallback (tree-kill = \"fallback\")".to_string()),
            (_, Ok(tree)) => {
                let note = format!("cgroup v2 at {}", tree.root().display());
                (Some(tree), note)
            }
            (TreeKill::Cgroup, Err(why)) => anyhow::bail!(
                "[host] tree-kill = \"cgroup\", but cgroup v2 is unusable here: {why}; \
                 use tree-kill = \"auto\" to fall back to process groups and kill-by-user"
            ),
            (TreeKill::Auto, Err(why)) => (
                None,
                format!(
                    "fallback: process groups and kill-by-user ({why}); a task that detaches with setsid and runs as the worker's user can escape"
                ),
            ),
        };
        if let Some(tree) = &tree {
            for dead in tree.sweep_dead() {
                tracing::info!(cgroup = %dead.display(), "removed the cgroup of a worker that is gone");
            }
        }
        for dead in crate::caps::os::bounds::sweep_dead() {
            tracing::info!(cgroup = %dead.display(), "removed the limit cgroup of a worker that is gone");
        }
        tracing::info!(work_dir = %work_dir.display(), "process tree kill: {tree_note}");
        let replayed = janitor.replay();
        if replayed > 0 {
            tracing::info!("cleaning up after {replayed} task(s) of a worker that was killed");
        }
        Ok(Arc::new(HostEnv {
            work_dir,
            tree,
            tree_note,
            janitor,
            uid_cursor: AtomicU32::new(0),
            engines: AtomicU64::new(0),
        }))
    }

    /// How process trees are killed here, for `enginehost plugins` and the logs.
    pub fn tree_kill_mode(&self) -> &str {
        &self.tree_note
    }

    /// Waits until every cleanup queued so far is done (users removed, directories
    /// and cgroups gone).
    pub async fn drain(&self) {
        self.janitor.drain().await;
    }

    /// For a process about to exit without dropping its runtime (a test binary):
    /// kills what is left in this process's cgroup subtree, removes it, and removes
    /// the work directory. Synchronous; never call it while engines run.
    pub fn remove_leftovers(&self) {
        if let Some(tree) = &self.tree {
            let root = Cgroup::open(tree.root().to_path_buf());
            root.kill();
            for _ in 0..200 {
                if !root.is_populated() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let _ = root.remove();
        }
        let _ = crate::caps::os::tree::remove_path(&self.work_dir);
    }

    /// At exit, after the last engine is gone: waits for the cleanup, then removes
    /// this process's cgroup subtree if nothing is left in it.
    pub async fn shutdown(&self) {
        self.drain().await;
        if let Some(tree) = &self.tree
            && let Err(e) = tree.remove_if_empty()
        {
            tracing::debug!("removing {}: {e}", tree.root().display());
        }
    }
}

/// The bounds every task of an engine gets ([`crate::caps::os::bounds`]): the operator's
/// `[limits] task-pids` and `task-memory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessBounds {
    /// Processes and threads.
    pub pids: u64,
    /// Bytes of memory; `None`: three quarters of the machine's.
    pub memory: Option<u64>,
}

impl ProcessBounds {
    pub(super) fn memory_bytes(&self) -> u64 {
        self.memory
            .unwrap_or_else(|| crate::caps::os::bounds::total_memory().map_or(u64::MAX, |m| m / 4 * 3))
    }
}
