//! `files.lend-dir`, `files.reclaim-dir` and `files.remove-state`: directories an
//! engine keeps in its state directory across tasks (writable caches) and lends to
//! one task at a time, by renaming them into the task's sandbox and back.
//!
//! A cache is shaped by the tasks that used it, so everything here treats it as
//! hostile: parents are opened beneath their root with no symlink anywhere
//! (`openat2` `RESOLVE_NO_SYMLINKS`), the moved directory itself is opened with
//! `O_NOFOLLOW`, renames never replace anything (`RENAME_NOREPLACE`), and handing
//! a cache to a new task user walks it without recursion, changing each entry
//! through a descriptor opened beneath its parent without following it, and only
//! entries a task user owns that have no other hard link and are on the cache's
//! file system. Before a directory goes back, every process of the task is killed
//! (its cgroup, its users' processes), so the walk at the next lend happens where
//! no task can reach.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use crate::caps::os::{beneath, tree};
use crate::caps::scope::{EngineScope, TaskScope};
use crate::caps::{CapResult, TaskUser, invalid, not_found, os_error};

/// Most directory levels below a lent directory whose owners are changed.
pub(crate) const MAX_DEPTH: usize = 256;
/// Most entries of a lent directory whose owners are changed.
pub(crate) const MAX_ENTRIES: usize = 1_000_000;

/// `rel` split into its parent (possibly empty) and last part, after checking it is
/// a plain relative path (`what` names it in the error).
fn split<'a>(rel: &'a str, what: &str) -> CapResult<(&'a Path, &'a OsStr)> {
    let plain = !rel.is_empty() && rel.split('/').all(|p| !p.is_empty() && p != "." && p != "..");
    let path = Path::new(rel);
    match (plain, path.parent(), path.file_name()) {
        (true, Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(invalid(format!(
            "{what} '{rel}' must be a relative path without '.', '..' or empty parts, e.g. \"caches/3\""
        ))),
    }
}

/// Opens the directory `rel` beneath `root`, through no symlink.
fn open_dir(root: BorrowedFd<'_>, rel: &Path, what: &str) -> CapResult<OwnedFd> {
    beneath::open(root, rel, libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|e| not_found(format!("the parent of the {what} path: {e}")))
}

/// Whether `name` in `dir` is a directory itself (not a symlink to one).
fn is_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> CapResult<bool> {
    let c = CString::new(name.as_bytes()).map_err(|_| invalid("a path with a NUL byte"))?;
    // SAFETY: fstatat fills the struct it is given; a valid dirfd and NUL-terminated name.
    let (rc, st) = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        let rc = libc::fstatat(dir.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW);
        (rc, st)
    };
    if rc != 0 {
        return Ok(false);
    }
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// `renameat2(RENAME_NOREPLACE)`.
fn rename(from: BorrowedFd<'_>, old: &OsStr, to: BorrowedFd<'_>, new: &OsStr) -> std::io::Result<()> {
    let nul = |_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a path with a NUL byte");
    let old = CString::new(old.as_bytes()).map_err(nul)?;
    let new = CString::new(new.as_bytes()).map_err(nul)?;
    // SAFETY: valid dirfds and NUL-terminated names.
    let rc = unsafe {
        libc::renameat2(
            from.as_raw_fd(),
            old.as_ptr(),
            to.as_raw_fd(),
            new.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The engine's state directory, opened.
fn state_root(engine: &EngineScope) -> CapResult<OwnedFd> {
    let path = engine
        .state_dir()
        .map_err(|e| os_error("creating the state directory", e))?;
    let dir = std::fs::File::open(&path).map_err(|e| os_error("opening the state directory", e))?;
    Ok(dir.into())
}

/// The task's sandbox directory, opened.
fn sandbox_root(scope: &TaskScope) -> CapResult<OwnedFd> {
    let sandbox = scope.sandbox()?;
    sandbox
        .dir
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| os_error("opening the sandbox directory", e))
}

/// Moves `state_path` into the sandbox as `sandbox_path`, first giving it to
/// `owner` (checks done by the caller).
pub(super) async fn lend(
    scope: &Arc<TaskScope>,
    state_path: &str,
    sandbox_path: &str,
    owner: Option<&TaskUser>,
) -> CapResult<()> {
    let (from_parent, from_name) = split(state_path, "state")?;
    let (to_parent, to_name) = split(sandbox_path, "sandbox")?;
    let state = state_root(&scope.engine)?;
    let sandbox = sandbox_root(scope)?;
    let owner = owner.map(|u| (u.uid(), u.gid()));
    let (lo, hi) = scope.engine.policy.uid_range();
    let (from_parent, from_name) = (from_parent.to_owned(), from_name.to_owned());
    let (to_parent, to_name) = (to_parent.to_owned(), to_name.to_owned());
    let (state_path, sandbox_path) = (state_path.to_string(), sandbox_path.to_string());
    tokio::task::spawn_blocking(move || -> CapResult<()> {
        let source_parent = open_dir(state.as_fd(), &from_parent, "state")?;
        let source = beneath::open_at(
            source_parent.as_fd(),
            &from_name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        )
        .map_err(|e| not_found(format!("'{state_path}' in the state directory is not a directory: {e}")))?;
        let dest_parent = open_dir(sandbox.as_fd(), &to_parent, "sandbox")?;
        if let Some((uid, gid)) = owner {
            let budget = tree::Budget {
                max_depth: MAX_DEPTH,
                max_files: usize::MAX,
                max_entries: MAX_ENTRIES,
            };
            tree::reown(source.as_fd(), uid, gid, &|owner| (lo..=hi).contains(&owner), budget)
                .map_err(|e| invalid(format!("'{state_path}' cannot be handed to the task's user: {e}")))?;
        }
        drop(source);
        rename(source_parent.as_fd(), &from_name, dest_parent.as_fd(), &to_name).map_err(|e| {
            if e.raw_os_error() == Some(libc::EEXIST) {
                invalid(format!("'{sandbox_path}' already exists in the sandbox"))
            } else {
                os_error(&format!("moving '{state_path}' to '{sandbox_path}'"), e)
            }
        })
    })
    .await
    .map_err(|e| os_error("lending a directory", e))?
}

/// Moves the directory `sandbox_path` back into the state directory as `state_path`
/// (checks done by the caller).
pub(super) async fn reclaim(scope: &Arc<TaskScope>, sandbox_path: &str, state_path: &str) -> CapResult<()> {
    let (from_parent, from_name) = split(sandbox_path, "sandbox")?;
    let (to_parent, to_name) = split(state_path, "state")?;
    let state = state_root(&scope.engine)?;
    let sandbox = sandbox_root(scope)?;
    let (from_parent, from_name) = (from_parent.to_owned(), from_name.to_owned());
    let (to_parent, to_name) = (to_parent.to_owned(), to_name.to_owned());
    let (state_path, sandbox_path) = (state_path.to_string(), sandbox_path.to_string());
    let task = scope.clone();
    tokio::task::spawn_blocking(move || -> CapResult<()> {
        // Nothing of the task may still hold a way into the directory once it is
        // back where the next task's walk changes owners.
        task.kill_processes();
        let source_parent = open_dir(sandbox.as_fd(), &from_parent, "sandbox")?;
        if !is_dir_at(source_parent.as_fd(), &from_name)? {
            return Err(not_found(format!(
                "'{sandbox_path}' in the sandbox is no longer a directory"
            )));
        }
        let dest_parent = open_dir(state.as_fd(), &to_parent, "state")?;
        rename(source_parent.as_fd(), &from_name, dest_parent.as_fd(), &to_name).map_err(|e| {
            if e.raw_os_error() == Some(libc::EEXIST) {
                invalid(format!("'{state_path}' already exists in the state directory"))
            } else {
                os_error(&format!("moving '{sandbox_path}' back to '{state_path}'"), e)
            }
        })
    })
    .await
    .map_err(|e| os_error("reclaiming a directory", e))?
}

/// Removes `path` from the state directory (checks done by the caller).
pub(super) async fn remove(engine: &EngineScope, path: &str) -> CapResult<()> {
    let (parent, name) = split(path, "state")?;
    let state = state_root(engine)?;
    let (parent, name) = (parent.to_owned(), name.to_owned());
    let path = path.to_string();
    tokio::task::spawn_blocking(move || -> CapResult<()> {
        let parent = match beneath::open(state.as_fd(), &parent, libc::O_RDONLY | libc::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(not_found(format!("the parent of '{path}': {e}"))),
        };
        tree::remove(parent.as_fd(), &name)
            .map(|_| ())
            .map_err(|e| os_error(&format!("removing '{path}' from the state directory"), e))
    })
    .await
    .map_err(|e| os_error("removing a directory", e))?
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn paths_are_plain_and_relative() {
        assert!(split("caches/3", "state").is_ok());
        assert!(split("home/.cache/pip", "sandbox").is_ok());
        for bad in ["", "/etc", "a/../b", "./a", "a//b", "a/./b", "a/b/", ".."] {
            let e = split(bad, "state").unwrap_err().to_string();
            assert!(e.contains("must be a relative path"), "{bad}: {e}");
        }
    }
}
