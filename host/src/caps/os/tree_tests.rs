use std::os::unix::fs::symlink;

use super::*;

/// Makes a chain `root/d/d/.../d/leaf` `depth` levels deep through descriptors (the path is far longer than
/// PATH_MAX, as a task can make it).
pub(crate) fn deep_chain(root: &Path, depth: usize) {
    let mut dir: OwnedFd = open_path(root).unwrap();
    for _ in 0..depth {
        let c = CString::new("d").unwrap();
        // SAFETY: a valid dirfd and name.
        assert_eq!(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) }, 0);
        dir = open_dir(dir.as_fd(), OsStr::new("d")).unwrap();
    }
    beneath::open_at(dir.as_fd(), OsStr::new("leaf"), libc::O_CREAT | libc::O_WRONLY).unwrap();
}

/// Runs `f` on a thread with a small stack: any recursion per level would overflow it.
fn small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

const BUDGET: Budget = Budget {
    max_depth: 64,
    max_files: 1000,
    max_entries: 10_000,
};

#[test]
fn a_tree_deeper_than_any_stack_is_removed() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("sandbox");
    std::fs::create_dir(&root).unwrap();
    deep_chain(&root, 100_000);
    let removed = small_stack(move || remove_path(&root)).unwrap();
    assert_eq!(
        removed,
        Removed {
            files: 1,
            dirs: 100_001
        }
    );
    assert_eq!(
        std::fs::read_dir(t.path()).unwrap().count(),
        0,
        "nothing is left, not even a moved directory"
    );
}

#[test]
fn listing_a_deep_tree_stops_at_the_budget_with_the_path() {
    let t = tempfile::tempdir().unwrap();
    deep_chain(t.path(), 100_000);
    let start = open_path(t.path()).unwrap();
    let e = small_stack(move || list_files(start, BUDGET)).unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("the directory is deeper than 64 levels"), "{text}");
    assert!(text.contains(&"d/".repeat(64)), "{text}");
    // TempDir's own removal recurses: remove the chain first.
    remove_path(&t.path().join("d")).unwrap();
}

#[test]
fn listing_counts_files_and_entries_and_never_follows_symlinks() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    std::fs::create_dir_all(r.join("a/b")).unwrap();
    std::fs::write(r.join("a/b/f"), b"x").unwrap();
    std::fs::write(r.join("top"), b"x").unwrap();
    symlink("/etc", r.join("etc")).unwrap();
    symlink("/etc/passwd", r.join("a/passwd")).unwrap();
    symlink("b", r.join("a/loop")).unwrap();
    let files = list_files(open_path(r).unwrap(), BUDGET).unwrap();
    assert_eq!(files, ["a/b/f", "top"]);

    for i in 0..20 {
        std::fs::create_dir(r.join(format!("e{i}"))).unwrap();
    }
    let few = Budget {
        max_entries: 10,
        ..BUDGET
    };
    let e = list_files(open_path(r).unwrap(), few).unwrap_err();
    assert_eq!(e.to_string(), "more than 10 files and directories to look at");
    let one = Budget { max_files: 1, ..BUDGET };
    let e = list_files(open_path(r).unwrap(), one).unwrap_err();
    assert_eq!(e.to_string(), "more than 1 files to list");
}

#[test]
fn a_wide_tree_needs_few_descriptors() {
    let t = tempfile::tempdir().unwrap();
    for i in 0..3000 {
        std::fs::create_dir_all(t.path().join(format!("w{i}/x"))).unwrap();
        std::fs::write(t.path().join(format!("w{i}/x/f")), b"").unwrap();
    }
    // Far fewer descriptors than directories: pending siblings hold none of their own.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert!(limit.rlim_cur > 100);
    let files = list_files(
        open_path(t.path()).unwrap(),
        Budget {
            max_files: 10_000,
            ..BUDGET
        },
    )
    .unwrap();
    assert_eq!(files.len(), 3000);
    assert_eq!(
        remove_path(t.path()).unwrap(),
        Removed {
            files: 3000,
            dirs: 6001
        }
    );
}

#[test]
fn removal_unlinks_symlinks_and_never_follows_them() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), b"x").unwrap();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("s");
    std::fs::create_dir_all(root.join("a")).unwrap();
    symlink(outside.path(), root.join("a/out")).unwrap();
    symlink(outside.path(), root.join("out")).unwrap();
    let fifo = CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    remove_path(&root).unwrap();
    assert!(!root.exists());
    assert!(
        outside.path().join("keep").exists(),
        "the symlinks' target is untouched"
    );
    // The path itself a symlink: the link goes, the directory it names stays.
    symlink(outside.path(), t.path().join("link")).unwrap();
    remove_path(&t.path().join("link")).unwrap();
    assert!(outside.path().join("keep").exists());
    // Missing: nothing to do.
    assert_eq!(remove_path(&t.path().join("nothing")).unwrap(), Removed::default());
}

#[test]
fn read_only_directories_left_by_a_task_are_removed() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("s");
    std::fs::create_dir_all(root.join("ro/sub")).unwrap();
    std::fs::write(root.join("ro/f"), b"x").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("ro"), std::fs::Permissions::from_mode(0o500)).unwrap();
    remove_path(&root).unwrap();
    assert!(!root.exists());
}

#[test]
fn reowning_stops_at_the_budget_and_takes_only_what_it_may() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("cache");
    std::fs::create_dir(&root).unwrap();
    deep_chain(&root, 100);
    let start = open_path(&root).unwrap();
    let me = (unsafe { libc::geteuid() }, unsafe { libc::getegid() });
    let err = small_stack(move || reown(start.as_fd(), me.0, me.1, &|_| true, BUDGET).unwrap_err());
    assert!(matches!(err, WalkError::TooDeep { max_depth: 64, .. }), "{err}");

    // Outside the budget's reach: entries whose owner may not be taken are kept, and a
    // symlink is changed itself (its target never is).
    let flat = t.path().join("flat");
    std::fs::create_dir_all(flat.join("sub")).unwrap();
    std::fs::write(flat.join("sub/file"), "x").unwrap();
    let outside = t.path().join("outside");
    std::fs::write(&outside, "x").unwrap();
    symlink(&outside, flat.join("sub/link")).unwrap();
    let start = open_path(&flat).unwrap();
    let taken = std::sync::Mutex::new(Vec::new());
    let done = reown(
        start.as_fd(),
        me.0,
        me.1,
        &|uid| {
            taken.lock().unwrap().push(uid);
            false
        },
        BUDGET,
    )
    .unwrap();
    assert_eq!(
        done,
        Reowned { changed: 1, kept: 3 },
        "the start, then sub, file and link kept"
    );
    assert_eq!(taken.lock().unwrap().len(), 3);
    let done = reown(start.as_fd(), me.0, me.1, &|_| true, BUDGET).unwrap();
    assert_eq!(done, Reowned { changed: 4, kept: 0 });
}
