//! A task's sandbox directory ([`SandboxDir`]): its host path and a handle that
//! opens paths beneath it only.

use std::path::{Path, PathBuf};

use super::TaskScope;
use crate::caps::{CapResult, invalid, os_error};

/// A task's sandbox directory: its host path and a handle that opens paths
/// beneath it only (`..`, absolute paths and escaping symlinks are refused).
pub(crate) struct SandboxDir {
    pub(crate) path: PathBuf,
    pub(crate) dir: cap_std::fs::Dir,
    /// The guest path (`/sandboxes/<key>`).
    pub(crate) guest: String,
}

impl SandboxDir {
    /// Opens `rel` beneath the sandbox as a regular file: for reading, or for
    /// writing (created or truncated, parents created). FIFOs, devices and a
    /// symlink as the last part are refused, without blocking on a FIFO.
    pub(crate) fn open_file(&self, rel: &str, write: bool) -> CapResult<std::fs::File> {
        use cap_std::fs::{OpenOptions, OpenOptionsExt as _};
        TaskScope::check_relative(rel)?;
        if rel.is_empty() {
            return Err(invalid("the file path is empty"));
        }
        if write && let Some(parent) = Path::new(rel).parent().filter(|p| !p.as_os_str().is_empty()) {
            self.dir
                .create_dir_all(parent)
                .map_err(|e| invalid(format!("creating the directory of '{rel}' in the sandbox: {e}")))?;
        }
        let mut options = OpenOptions::new();
        if write {
            options.write(true).create(true).truncate(true);
        } else {
            options.read(true);
        }
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
        let file = self
            .dir
            .open_with(rel, &options)
            .map_err(|e| invalid(format!("'{rel}' in the sandbox: {e}")))?;
        let meta = file.metadata().map_err(|e| os_error("reading file metadata", e))?;
        if !meta.is_file() {
            return Err(invalid(format!("'{rel}' in the sandbox is not a regular file")));
        }
        let file = file.into_std();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: fcntl on a descriptor this function owns; back to blocking I/O.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
        if write {
            // A file the host makes in a task user's home is the user's.
            let parent = Path::new(rel).parent().unwrap_or(Path::new(""));
            if let Ok(meta) = std::fs::metadata(self.path.join(parent)) {
                use std::os::unix::fs::MetadataExt;
                // SAFETY: fchown on a descriptor this function owns.
                unsafe { libc::fchown(fd, meta.uid(), meta.gid()) };
            }
        }
        Ok(file)
    }
}
