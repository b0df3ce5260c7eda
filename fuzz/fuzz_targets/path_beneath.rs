//! Opening a task-shaped path beneath the sandbox (`beneath::open`, the socket
//! lookups): whatever the relative path, what opens is inside the root. The root
//! holds directories, a file, a socket and symlinks pointing out (`/etc`, `..`, an
//! absolute path, a loop) and in; none may be followed. Checked by where the opened
//! descriptor really is (`/proc/self/fd`).
#![no_main]

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use enginehost_core::beneath;
use libfuzzer_sys::fuzz_target;

struct Root {
    _dir: tempfile::TempDir,
    path: PathBuf,
    fd: OwnedFd,
}

fn root() -> &'static Root {
    static ROOT: OnceLock<Root> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(path.join("a/b/c")).unwrap();
        std::fs::write(path.join("a/file"), b"x").unwrap();
        std::os::unix::net::UnixListener::bind(path.join("a/sock"))
            .map(std::mem::forget)
            .unwrap();
        for (link, to) in [
            ("etc", "/etc"),
            ("up", ".."),
            ("a/b/out", "../../.."),
            ("a/in", "b"),
            ("a/loop", "loop"),
            ("a/b/sock", "../sock"),
            ("shadow", "/etc/shadow"),
        ] {
            std::os::unix::fs::symlink(to, path.join(link)).unwrap();
        }
        let fd = std::fs::File::open(&path).unwrap().into();
        // libFuzzer ends the run with exit(): statics are never dropped, so the
        // fixture is removed by an atexit handler instead of left in /tmp.
        let _ = FIXTURE.set(path.clone());
        unsafe { libc::atexit(remove_fixture) };
        Root { _dir: dir, path, fd }
    })
}

static FIXTURE: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_fixture() {
    if let Some(path) = FIXTURE.get() {
        let _ = std::fs::remove_dir_all(path);
    }
}

fn inside(root: &Root, fd: &OwnedFd, rel: &Path) {
    let at = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    assert!(
        at.starts_with(&root.path),
        "{rel:?} opened {at:?}, outside {:?}",
        root.path
    );
}

fuzz_target!(|data: &[u8]| {
    let root = root();
    let rel = Path::new(OsStr::from_bytes(data));
    for flags in [
        libc::O_PATH,
        libc::O_RDONLY | libc::O_NOFOLLOW,
        libc::O_RDONLY | libc::O_DIRECTORY,
    ] {
        if let Ok(fd) = beneath::open(root.fd.as_fd(), rel, flags) {
            inside(root, &fd, rel);
        }
    }
    if let Ok(fd) = beneath::socket_beneath(root.fd.as_fd(), rel) {
        inside(root, &fd, rel);
    }
    if let Some(name) = rel.file_name().filter(|_| !data.contains(&b'/')) {
        if let Ok(fd) = beneath::open_at(root.fd.as_fd(), name, libc::O_PATH | libc::O_NOFOLLOW) {
            inside(root, &fd, rel);
        }
    }
});
