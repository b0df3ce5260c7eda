//! Walking and removing directory trees a task shaped, without recursion and without following symlinks.
//!
//! A task controls the shape of everything under its sandbox (and what its user leaves in `/tmp`): a directory
//! 100,000 levels deep, a million empty directories, a symlink swapped in mid-walk. Recursion over such a tree
//! overflows the host's stack (std's `remove_dir_all` does, and aborts the worker at every start after), and a path
//! re-resolved from the top follows whatever was swapped in. So:
//!
//! - [`list_files`] walks with an explicit stack, opening each directory by name from its parent's descriptor with
//!   `O_NOFOLLOW`; it stops with a clear error past a depth or an entry budget. Only the directories on the way down
//!   hold a descriptor, so a walk needs at most `max_depth` of them however wide the tree is.
//! - [`reown`] walks the same way, changing each entry's owner beneath its parent's descriptor, never a symlink's
//!   target, and only entries whose owner the caller may take from.
//! - [`remove`] empties a directory by moving each subdirectory's subdirectories up into the directory being removed
//!   (`renameat2` with `RENAME_NOREPLACE`, which stays on its filesystem and never leaves that directory), so any depth
//!   is removed with two descriptors and no recursion; a crash part-way leaves everything inside the same directory.
//!
//! Must not: follow a symlink, leave the directory it was given, or decide whose tree may be removed (callers do).

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::Arc;

use super::beneath;

/// The kind of a directory entry, as `readdir` (or, where it does not say, `fstatat` without following) tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Other,
}

/// Every entry of the directory `fd` (without `.` and `..`), read through a duplicate of the descriptor.
fn entries(fd: BorrowedFd<'_>) -> io::Result<Vec<(OsString, Kind)>> {
    entries_at_most(fd, usize::MAX).map(Option::unwrap_or_default)
}

/// [`entries`], or `None` when the directory has more than `max` entries: reading stops there, so a directory of
/// ten million names costs no more than `max` of them.
fn entries_at_most(fd: BorrowedFd<'_>, max: usize) -> io::Result<Option<Vec<(OsString, Kind)>>> {
    let own = fd.try_clone_to_owned()?;
    // The duplicate shares the file offset: rewind so that a directory read before is read whole again.
    // SAFETY: lseek on a descriptor we own.
    unsafe { libc::lseek(own.as_raw_fd(), 0, libc::SEEK_SET) };
    // SAFETY: fdopendir takes ownership of the descriptor on success.
    let dir = unsafe { libc::fdopendir(own.as_raw_fd()) };
    if dir.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(own); // now owned by `dir`, closed by closedir
    let mut out = Vec::new();
    let result = loop {
        // SAFETY: readdir on our own DIR*; errno is cleared first to tell the end from an error.
        unsafe { *libc::__errno_location() = 0 };
        let entry = unsafe { libc::readdir64(dir) };
        if entry.is_null() {
            let errno = io::Error::last_os_error();
            break if errno.raw_os_error().unwrap_or(0) == 0 {
                Ok(Some(()))
            } else {
                Err(errno)
            };
        }
        // SAFETY: a valid dirent whose d_name is NUL-terminated.
        let (name, d_type) = unsafe { (CStr::from_ptr((*entry).d_name.as_ptr()), (*entry).d_type) };
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        if out.len() >= max {
            break Ok(None);
        }
        let kind = match d_type {
            libc::DT_DIR => Kind::Dir,
            libc::DT_REG => Kind::File,
            libc::DT_UNKNOWN => kind_at(fd, name),
            _ => Kind::Other,
        };
        out.push((OsString::from_vec(bytes.to_vec()), kind));
    };
    // SAFETY: closes the DIR* and its descriptor.
    unsafe { libc::closedir(dir) };
    result.map(|r| r.map(|()| out))
}

/// `fstatat(AT_SYMLINK_NOFOLLOW)` for file systems whose `readdir` leaves the type out.
fn kind_at(dir: BorrowedFd<'_>, name: &CStr) -> Kind {
    // SAFETY: fstatat fills the struct it is given.
    let st = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) != 0 {
            return Kind::Other;
        }
        st
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFREG => Kind::File,
        _ => Kind::Other,
    }
}

/// Opens the subdirectory `name` of `dir`, never through a symlink.
fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    beneath::open_at(dir, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW)
}

/// How far [`list_files`] goes before it gives up.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Most directory levels below the start.
    pub max_depth: usize,
    /// Most regular files returned.
    pub max_files: usize,
    /// Most entries of any kind looked at (a tree of empty directories costs time too).
    pub max_entries: usize,
}

/// Why a walk stopped.
#[derive(Debug)]
pub enum WalkError {
    /// Deeper than the budget; the path is the first directory past it.
    TooDeep { max_depth: usize, path: String },
    /// More regular files than the budget.
    TooManyFiles { max_files: usize },
    /// More entries than the budget.
    TooManyEntries { max_entries: usize },
    /// Reading the start directory failed.
    Io(io::Error),
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalkError::TooDeep { max_depth, path } => {
                write!(f, "the directory is deeper than {max_depth} levels (at '{path}')")
            }
            WalkError::TooManyFiles { max_files } => write!(f, "more than {max_files} files to list"),
            WalkError::TooManyEntries { max_entries } => {
                write!(f, "more than {max_entries} files and directories to look at")
            }
            WalkError::Io(e) => write!(f, "reading the directory: {e}"),
        }
    }
}

/// The entries of a directory a walk reached at `depth`, after `seen` entries: past the budget an error; a directory
/// below the start that cannot be read (gone, unreadable) is empty.
fn listing(dir: BorrowedFd<'_>, budget: Budget, seen: usize, depth: usize) -> Result<Vec<(OsString, Kind)>, WalkError> {
    match entries_at_most(dir, budget.max_entries.saturating_sub(seen)) {
        Ok(Some(l)) => Ok(l),
        Ok(None) => Err(WalkError::TooManyEntries {
            max_entries: budget.max_entries,
        }),
        Err(e) if depth == 0 => Err(WalkError::Io(e)),
        Err(_) => Ok(Vec::new()),
    }
}

/// The regular files beneath the directory `start`, as `/`-separated paths relative to it, sorted. Symlinks,
/// devices, FIFOs and sockets are left out and never followed; a directory that cannot be opened (gone, swapped for a
/// symlink, unreadable) is skipped like an unreadable file.
pub fn list_files(start: OwnedFd, budget: Budget) -> Result<Vec<String>, WalkError> {
    // A pending directory holds its name, its parent's descriptor and its parent's path, both shared with its
    // siblings: memory grows with the entries, not with entries times path length.
    struct Pending {
        parent: Arc<OwnedFd>,
        parent_rel: Arc<str>,
        name: OsString,
        depth: usize,
    }
    let join = |rel: &str, name: &OsStr| {
        if rel.is_empty() {
            name.to_string_lossy().into_owned()
        } else {
            format!("{rel}/{}", name.to_string_lossy())
        }
    };
    let mut out = Vec::new();
    let mut seen = 0usize;
    let mut stack: Vec<Pending> = Vec::new();
    let mut visit =
        |dir: Arc<OwnedFd>, rel: Arc<str>, depth: usize, stack: &mut Vec<Pending>| -> Result<(), WalkError> {
            let listing = listing(dir.as_fd(), budget, seen, depth)?;
            for (name, kind) in listing {
                seen += 1;
                match kind {
                    Kind::File => {
                        if out.len() >= budget.max_files {
                            return Err(WalkError::TooManyFiles {
                                max_files: budget.max_files,
                            });
                        }
                        out.push(join(&rel, &name));
                    }
                    Kind::Dir => {
                        if depth + 1 > budget.max_depth {
                            return Err(WalkError::TooDeep {
                                max_depth: budget.max_depth,
                                path: join(&rel, &name),
                            });
                        }
                        stack.push(Pending {
                            parent: dir.clone(),
                            parent_rel: rel.clone(),
                            name,
                            depth: depth + 1,
                        });
                    }
                    Kind::Other => {}
                }
            }
            Ok(())
        };
    // The start may be an O_PATH descriptor (cap-std opens directories so): reopen it for reading.
    let start = open_dir(start.as_fd(), OsStr::new(".")).map_err(WalkError::Io)?;
    visit(Arc::new(start), Arc::from(""), 0, &mut stack)?;
    while let Some(next) = stack.pop() {
        let Ok(dir) = open_dir(next.parent.as_fd(), &next.name) else {
            continue;
        };
        drop(next.parent);
        let rel: Arc<str> = Arc::from(join(&next.parent_rel, &next.name));
        visit(Arc::new(dir), rel, next.depth, &mut stack)?;
    }
    out.sort();
    Ok(out)
}

/// What [`reown`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reowned {
    /// Entries given to the new owner (the start directory included).
    pub changed: u64,
    /// Entries left as they were: owned by someone the caller may not take from, a file with other hard links,
    /// or on another file system (a mount).
    pub kept: u64,
}

/// What [`reown_at`] found: whether it changed the entry, and whether it is a directory on the start's file system
/// (to walk into).
struct Seen {
    changed: bool,
    walk: bool,
}

/// Gives the entry `name` of `dir` itself (a symlink's own inode, never its target) to `uid:gid`, if `may_take` allows
/// its owner, it is on the file system `dev`, and it is a directory or has no other hard link. The entry is opened
/// once (`O_PATH | O_NOFOLLOW`) and checked and changed through that descriptor, so a name swapped meanwhile changes
/// nothing but what was checked. `None`: gone.
fn reown_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    uid: u32,
    gid: u32,
    dev: u64,
    may_take: &dyn Fn(u32) -> bool,
) -> Option<Seen> {
    let fd = beneath::open_at(dir, name, libc::O_PATH | libc::O_NOFOLLOW).ok()?;
    let st = beneath::stat(fd.as_fd()).ok()?;
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let ours = st.st_dev == dev;
    if !ours || !may_take(st.st_uid) || (!is_dir && st.st_nlink > 1) {
        return Some(Seen {
            changed: false,
            walk: is_dir && ours,
        });
    }
    let empty = c"";
    // SAFETY: fchownat on a descriptor we own, with AT_EMPTY_PATH: the inode it refers to (a symlink's own, opened
    // O_PATH | O_NOFOLLOW).
    let rc = unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            empty.as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    Some(Seen {
        changed: rc == 0,
        walk: is_dir,
    })
}

/// Gives the directory `start` and every entry beneath it whose owner `may_take` accepts to `uid:gid`, without
/// recursion and without following a symlink: each entry is opened once beneath its parent's descriptor (`O_PATH |
/// O_NOFOLLOW`) and checked and changed through it (a symlink's own owner, never its target's), each directory opened
/// from its parent with `O_NOFOLLOW`. Left as they are: entries whose owner `may_take` refuses (root's, another
/// user's), files with other hard links (they are someone else's too), and anything on another file system (a mount
/// is neither walked nor changed). An entry that vanishes meanwhile is skipped. Memory stays bounded by the budget:
/// a pending directory holds its name and its parent's shared descriptor, no path.
///
/// # Errors
/// Past the budget's depth or entries (what was changed before stays changed), or when `start` cannot be read.
pub fn reown(
    start: BorrowedFd<'_>,
    uid: u32,
    gid: u32,
    may_take: &dyn Fn(u32) -> bool,
    budget: Budget,
) -> Result<Reowned, WalkError> {
    struct Pending {
        parent: Arc<OwnedFd>,
        name: OsString,
        depth: usize,
    }
    let mut done = Reowned::default();
    let start = open_dir(start, OsStr::new(".")).map_err(WalkError::Io)?;
    let dev = beneath::stat(start.as_fd()).map_err(WalkError::Io)?.st_dev;
    // SAFETY: fchown on a descriptor we own; the start is given whoever owns it.
    if unsafe { libc::fchown(start.as_raw_fd(), uid, gid) } != 0 {
        return Err(WalkError::Io(io::Error::last_os_error()));
    }
    done.changed += 1;
    let mut seen = 0usize;
    let mut stack: Vec<Pending> = Vec::new();
    let mut dir = Arc::new(start);
    let mut depth = 0usize;
    loop {
        let listing = listing(dir.as_fd(), budget, seen, depth)?;
        for (name, _) in listing {
            seen += 1;
            let Some(entry) = reown_at(dir.as_fd(), &name, uid, gid, dev, may_take) else {
                continue;
            };
            if entry.changed {
                done.changed += 1;
            } else {
                done.kept += 1;
            }
            if entry.walk {
                if depth + 1 > budget.max_depth {
                    return Err(WalkError::TooDeep {
                        max_depth: budget.max_depth,
                        path: name.to_string_lossy().chars().take(255).collect(),
                    });
                }
                stack.push(Pending {
                    parent: dir.clone(),
                    name,
                    depth: depth + 1,
                });
            }
        }
        loop {
            let Some(next) = stack.pop() else {
                return Ok(done);
            };
            if let Ok(sub) = open_dir(next.parent.as_fd(), &next.name) {
                dir = Arc::new(sub);
                depth = next.depth;
                break;
            }
        }
    }
}

/// What [`remove`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Files, symlinks and other non-directories unlinked.
    pub files: u64,
    /// Directories removed.
    pub dirs: u64,
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a name with a NUL byte"))
}

fn unlink_at(dir: BorrowedFd<'_>, name: &OsStr, flags: i32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: a valid dirfd and a NUL-terminated name.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes a directory the caller could not change writable and searchable for its owner (a task that ran as the
/// worker's user may have left a directory 0500); ignored where it fails.
fn make_writable(dir: BorrowedFd<'_>) {
    // SAFETY: fchmod on a valid descriptor.
    unsafe { libc::fchmod(dir.as_raw_fd(), 0o700) };
}

/// Removes the entry `name` of the directory `parent` and, if it is a directory, everything in it, at any depth,
/// without recursion and without following symlinks. A missing entry is not an error.
///
/// # Errors
/// The first failure that stops the removal (a mount point inside, an immutable file, no permission), naming
/// the entry; what could be removed before it is gone.
pub fn remove(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<Removed> {
    let mut done = Removed::default();
    let top = match open_dir(parent, name) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(done),
        // Not a directory (or a symlink to one): unlink the entry itself.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
            return match unlink_at(parent, name, 0) {
                Ok(()) => {
                    done.files += 1;
                    Ok(done)
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(done),
                Err(e) => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    empty(top.as_fd(), &mut done)?;
    drop(top);
    match unlink_at(parent, name, libc::AT_REMOVEDIR) {
        Ok(()) => done.dirs += 1,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    Ok(done)
}

/// Empties the directory `top`: files are unlinked, and each subdirectory's own subdirectories are renamed into
/// `top` before that subdirectory is removed, until `top` holds nothing.
fn empty(top: BorrowedFd<'_>, done: &mut Removed) -> io::Result<()> {
    let mut fresh = 0u64;
    let mut stuck_passes = 0;
    loop {
        let listing = entries(top).or_else(|_| {
            make_writable(top);
            entries(top)
        })?;
        if listing.is_empty() {
            return Ok(());
        }
        let before = (done.files, done.dirs);
        let mut last_error = None;
        for (name, kind) in listing {
            if let Err(e) = remove_one(top, &name, kind, &mut fresh, done) {
                last_error = Some(io::Error::new(e.kind(), format!("{}: {e}", name.to_string_lossy())));
            }
        }
        if (done.files, done.dirs) == before {
            // Nothing moved in a whole pass: a mount point, an immutable file, no permission.
            stuck_passes += 1;
            if stuck_passes >= 2 {
                return Err(last_error.unwrap_or_else(|| io::Error::other("the directory does not empty")));
            }
        } else {
            stuck_passes = 0;
        }
    }
}

/// One entry of `top`: unlinked, or (a directory) emptied one level by moving its subdirectories up, then removed.
fn remove_one(top: BorrowedFd<'_>, name: &OsStr, kind: Kind, fresh: &mut u64, done: &mut Removed) -> io::Result<()> {
    if kind != Kind::Dir {
        return match unlink_at(top, name, 0) {
            Ok(()) => {
                done.files += 1;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => remove_one(top, name, Kind::Dir, fresh, done),
            Err(e) => Err(e),
        };
    }
    let sub = match open_dir(top, name) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
            return remove_one(top, name, Kind::File, fresh, done);
        }
        Err(e) => return Err(e),
    };
    let listing = entries(sub.as_fd()).or_else(|_| {
        make_writable(sub.as_fd());
        entries(sub.as_fd())
    })?;
    let mut retried = false;
    for (child, kind) in listing {
        let result = if kind == Kind::Dir {
            move_up(sub.as_fd(), &child, top, fresh)
        } else {
            unlink_at(sub.as_fd(), &child, 0).map(|()| done.files += 1)
        };
        match result {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) && !retried => {
                retried = true;
                make_writable(sub.as_fd());
                if kind == Kind::Dir {
                    move_up(sub.as_fd(), &child, top, fresh)?;
                } else {
                    unlink_at(sub.as_fd(), &child, 0)?;
                    done.files += 1;
                }
            }
            Err(e) => return Err(e),
        }
    }
    drop(sub);
    match unlink_at(top, name, libc::AT_REMOVEDIR) {
        Ok(()) => done.dirs += 1,
        // Something appeared meanwhile (or a subdirectory could not move): the next pass sees it.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOTEMPTY) | Some(libc::EEXIST) | Some(libc::ENOENT)
            ) => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Renames `from/name` to a fresh name in `top` (never replacing anything there).
fn move_up(from: BorrowedFd<'_>, name: &OsStr, top: BorrowedFd<'_>, fresh: &mut u64) -> io::Result<()> {
    let old = cstr(name)?;
    loop {
        *fresh += 1;
        let new = cstr(OsStr::new(&format!(".enginehost-rm-{fresh}")))?;
        // SAFETY: valid dirfds and NUL-terminated names.
        let rc = unsafe {
            libc::renameat2(
                from.as_raw_fd(),
                old.as_ptr(),
                top.as_raw_fd(),
                new.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
}

/// Removes `path` (a file, or a directory and everything in it) the way [`remove`] does. The directory part of
/// `path` is the host's own (the work directory, `/tmp`) and is resolved as usual; `path` itself is never followed.
///
/// # Errors
/// As [`remove`]; a path without a last part is refused.
pub fn remove_path(path: &Path) -> io::Result<Removed> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{}' names nothing to remove", path.display()),
        ));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let dir = match std::fs::File::open(parent) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Removed::default()),
        Err(e) => return Err(e),
    };
    remove(dir.as_fd(), name)
}

/// Opens a directory for [`list_files`] (a test's own path).
#[cfg(test)]
pub fn open_path(path: &Path) -> io::Result<OwnedFd> {
    Ok(std::fs::File::open(path)?.into())
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
