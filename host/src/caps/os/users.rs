//! Per-task system users: creating and removing them with shadow's `groupadd`/`useradd`/`userdel`, and user/group
//! lookups through NSS.
//!
//! Owns: the account lifecycle (private group, user, removal) and the cleanup that must come with removal (every
//! process of the uid killed first, since `userdel` refuses while one runs; the uid's files in the world-writable temp
//! dirs swept after, so a later task reusing the uid cannot inherit them). All account changes are serialized by one
//! process-wide async mutex: the tools take /etc/passwd and /etc/group locks and fail, not wait, when they are busy.
//!
//! Must not: edit /etc/passwd itself, create or remove home directories (the caller owns the sandbox), touch a user
//! whose name and uid do not match what the caller created, or ever act on uid 0. Needs root.

use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

pub use super::uidkill::kill_by_uid;
use super::uidkill::procs_with_uid;

/// A user made by [`create_user`]: its name, uid and private group's gid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemUser {
    /// The login name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary group's gid (the private group's, for users made by [`create_user`]).
    pub gid: u32,
}

static ACCOUNTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The lock file other enginehost processes on this machine take around the same
/// check-then-create (workers with their own work directories, tests).
const HOST_LOCK: &str = "/run/enginehost-accounts.lock";

/// Takes [`HOST_LOCK`] (`flock`, released when the file is dropped); `None` where
/// it cannot be opened (no `/run`): the in-process lock and the check under it
/// still stand, and a clash is an `AlreadyExists` error for the caller to retry.
async fn host_lock() -> Option<fs::File> {
    tokio::task::spawn_blocking(|| {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(HOST_LOCK)
            .ok()?;
        // Root's alone: anyone who could open it could hold it (flock needs no
        // write access) and stop every task user's creation.
        file.set_permissions(fs::Permissions::from_mode(0o600)).ok()?;
        // SAFETY: flock on a descriptor we own; it blocks until the lock is ours.
        (unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0).then_some(file)
    })
    .await
    .ok()
    .flatten()
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// A portable user/group name: `[a-z_][a-z0-9_-]{0,31}`. Stricter than shadow, and never parsed as an option.
fn check_name(name: &str) -> io::Result<()> {
    let ok = name.len() <= 32
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("bad user or group name {name:?}")))
    }
}

/// Creates system user `name` with uid `uid`, a private group of its own (same name, gid = uid when that gid is free),
/// supplementary `groups` (names that must exist), home `home` (NOT created; the caller makes it), shell /bin/bash.
/// Serialized with a process-wide async mutex (useradd/userdel lock /etc/passwd; concurrent calls must not fail).
/// Errors name the command and its stderr. On failure nothing is left behind (the group is removed again).
///
/// `useradd -r` (system account: no /etc/subuid range, no password aging), `-M` (no home), `-l` (no lastlog/faillog
/// entry: with uids around 200000 those sparse files would grow to tens of MB).
pub async fn create_user(name: &str, uid: u32, groups: &[String], home: &Path) -> io::Result<SystemUser> {
    check_name(name)?;
    groups.iter().try_for_each(|g| check_name(g))?;
    let bad_home = || invalid(format!("home {home:?} must be absolute UTF-8 without ':' or newline"));
    let home = home
        .to_str()
        .filter(|h| h.starts_with('/') && !h.contains([':', '\n']))
        .ok_or_else(bad_home)?;
    if uid == 0 {
        return Err(invalid("refusing to create a user with uid 0".into()));
    }
    let _lock = ACCOUNTS.lock().await;
    let _host = host_lock().await;
    if let Some(u) = user_by_name(name).or_else(|| user_by_uid(uid)) {
        let msg = format!("cannot create {name} ({uid}): user {} has uid {}", u.name, u.uid);
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, msg));
    }
    let uid_s = uid.to_string();
    // The private group first, with gid = uid when that is free, so that ids line up in `ls -n` and logs.
    let gid_args = if gid_in_use(uid) { vec![] } else { vec!["-g", &uid_s] };
    run("/usr/sbin/groupadd", &[&gid_args[..], &[name]].concat(), &[]).await?;
    let supplementary = groups.join(",");
    let mut args = vec!["-r", "-M", "-N", "-l", "-g", name, "-u", &uid_s];
    args.extend(["-d", home, "-s", "/bin/bash"]);
    if !groups.is_empty() {
        args.extend(["-G", &supplementary]);
    }
    args.push(name);
    if let Err(e) = run("/usr/sbin/useradd", &args, &[]).await {
        let _ = run("/usr/sbin/groupdel", &[name], &[]).await;
        return Err(e);
    }
    user_by_name(name).ok_or_else(|| io::Error::other(format!("useradd {name} succeeded but NSS does not see it")))
}

/// Kills every process of `uid` until none is left (see [`kill_by_uid`]), then `userdel` (which also drops its private
/// group; a leftover private group is removed with `groupdel`), then removes files owned by uid directly under /tmp,
/// /var/tmp and /dev/shm (recursively for dirs it owns; never following symlinks). Idempotent: a user that is already
/// gone is fine (journal replay). Refuses when `name` and `uid` belong to different existing users.
pub async fn remove_user(name: &str, uid: u32) -> io::Result<()> {
    check_name(name)?;
    if uid == 0 {
        return Err(invalid("refusing to remove uid 0".into()));
    }
    let by_name = user_by_name(name);
    let clash = match (&by_name, user_by_uid(uid)) {
        (Some(u), _) if u.uid != uid => Some(u.clone()),
        (_, Some(u)) if u.name != name => Some(u),
        _ => None,
    };
    if let Some(u) = clash {
        return Err(invalid(format!(
            "remove_user({name}, {uid}): user {} has uid {}",
            u.name, u.uid
        )));
    }
    kill_blocking(uid).await?;
    let lock = ACCOUNTS.lock().await;
    let private_gid = by_name.map_or(uid, |u| u.gid);
    for attempt in 1.. {
        // 6: no such user (already gone); 8: a process still runs as it (one raced past the kill).
        match run("/usr/sbin/userdel", &[name], &[6, 8]).await? {
            8 if attempt < 5 => kill_blocking(uid).await?,
            8 => {
                return Err(io::Error::other(format!(
                    "userdel {name}: processes of uid {uid} keep running"
                )));
            }
            _ => break,
        }
    }
    if group_id(name) == Some(private_gid) {
        run("/usr/sbin/groupdel", &[name], &[6]).await?;
    }
    drop(lock);
    tokio::task::spawn_blocking(move || sweep_temp_dirs(uid))
        .await
        .map_err(io::Error::other)
}

async fn kill_blocking(uid: u32) -> io::Result<()> {
    match tokio::task::spawn_blocking(move || kill_by_uid(uid))
        .await
        .map_err(io::Error::other)?
    {
        0 => Ok(()),
        n => Err(io::Error::other(format!(
            "{n} processes of uid {uid} survived SIGKILL for 2 s"
        ))),
    }
}

/// Runs an account tool with a clean environment; Ok(exit code) when it is 0 or in `ok`. Retries while another
/// process (outside our mutex) holds the /etc locks.
async fn run(prog: &str, args: &[&str], ok: &[i32]) -> io::Result<i32> {
    for attempt in 1.. {
        let out = tokio::process::Command::new(prog)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("{prog}: {e}")))?;
        let code = out.status.code().unwrap_or(-1);
        if code == 0 || ok.contains(&code) {
            return Ok(code);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if attempt < 20 && stderr.contains("cannot lock") {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        return Err(io::Error::other(format!(
            "{prog} {} exited with {code}: {}",
            args.join(" "),
            stderr.trim()
        )));
    }
    unreachable!()
}

/// Removes what `uid` owns directly under the shared temp dirs. lstat only: a symlink is removed, never followed,
/// and a directory is removed without recursion or following a symlink inside ([`super::tree::remove`]), however deep
/// the task made it. Failures are logged, not returned: they must not block the rest of the cleanup.
fn sweep_temp_dirs(uid: u32) {
    for dir in ["/tmp", "/var/tmp", "/dev/shm"] {
        let Ok(handle) = fs::File::open(dir) else { continue };
        let Ok(entries) = fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.uid() != uid {
                continue;
            }
            if let Err(e) = super::tree::remove(std::os::fd::AsFd::as_fd(&handle), &entry.file_name()) {
                tracing::warn!("removing {} of uid {uid}: {e}", entry.path().display());
            }
        }
    }
}

/// Calls a `get*_r` function, growing the buffer on ERANGE. None when not found or on error.
fn nss<T>(mut call: impl FnMut(&mut [libc::c_char]) -> (libc::c_int, Option<T>)) -> Option<T> {
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        match call(&mut buf) {
            (libc::ERANGE, _) if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            (0, found) => return found,
            _ => return None,
        }
    }
}

fn passwd(by_name: Option<&CStr>, uid: u32) -> Option<SystemUser> {
    nss(|buf| {
        // SAFETY: every pointer is valid for the call; the result points into `pwd`/`buf`, read before they go away.
        unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut res = std::ptr::null_mut();
            let rc = match by_name {
                Some(n) => libc::getpwnam_r(n.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut res),
                None => libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut res),
            };
            let name = || CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned();
            (
                rc,
                (!res.is_null()).then(|| SystemUser {
                    name: name(),
                    uid: pwd.pw_uid,
                    gid: pwd.pw_gid,
                }),
            )
        }
    })
}

fn group(by_name: Option<&CStr>, gid: u32) -> Option<u32> {
    nss(|buf| {
        // SAFETY: as in `passwd`.
        unsafe {
            let mut grp: libc::group = std::mem::zeroed();
            let mut res = std::ptr::null_mut();
            let rc = match by_name {
                Some(n) => libc::getgrnam_r(n.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut res),
                None => libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut res),
            };
            (rc, (!res.is_null()).then_some(grp.gr_gid))
        }
    })
}

/// The user called `name` (getpwnam_r), if any.
pub fn user_by_name(name: &str) -> Option<SystemUser> {
    passwd(Some(&CString::new(name).ok()?), 0)
}

/// The user that has `uid` (getpwuid_r), if any.
pub fn user_by_uid(uid: u32) -> Option<SystemUser> {
    passwd(None, uid)
}

/// The gid of group `name` (getgrnam_r).
pub fn group_id(name: &str) -> Option<u32> {
    group(Some(&CString::new(name).ok()?), 0)
}

/// getgrgid_r says a group has `gid`.
pub fn gid_in_use(gid: u32) -> bool {
    group(None, gid).is_some()
}

/// getpwuid_r says a user has `uid`, or a process (even a zombie) runs as it.
pub fn uid_in_use(uid: u32) -> bool {
    user_by_uid(uid).is_some() || !procs_with_uid(uid, true).is_empty()
}

/// getpwnam_r knows `name` (the tests' check).
#[cfg(test)]
pub fn user_exists(name: &str) -> bool {
    user_by_name(name).is_some()
}

/// The effective uid is 0 (needed for everything that changes accounts or ids).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
#[path = "users_tests.rs"]
mod tests;
