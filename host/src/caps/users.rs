//! The `users` capability: a system user per task (the seed's native engine
//! `createUser`), granted by `[plugins.NAME.users]` (`create`, `groups`,
//! `uid-range`). Needs root. The user is journaled before `useradd` runs, its home
//! is `home/` in the task's sandbox (0700, its own), and it is removed with every
//! process it runs when the task ends.

use std::os::unix::fs::PermissionsExt;

use std::sync::Arc;

use super::os::spawn::Ids;
use super::os::users::{self, SystemUser};
use super::{CapResult, TaskScope, check, invalid, os_error};

/// The host side of a `task-user`: the user lives until its task ends, whatever
/// happens to the handle.
#[derive(Clone)]
pub struct TaskUser {
    pub(crate) user: SystemUser,
    groups: Vec<u32>,
}

impl TaskUser {
    /// The ids a process of this user runs with.
    pub(crate) fn ids(&self) -> Ids {
        Ids {
            uid: self.user.uid,
            gid: self.user.gid,
            groups: self.groups.clone(),
        }
    }

    /// The user's name (`eh-<uid>`).
    pub(crate) fn name(&self) -> &str {
        &self.user.name
    }

    /// The user's uid.
    pub(crate) fn uid(&self) -> u32 {
        self.user.uid
    }

    /// The user's primary gid.
    pub(crate) fn gid(&self) -> u32 {
        self.user.gid
    }

    /// The home directory, relative to the sandbox.
    pub(crate) fn home(&self) -> &'static str {
        HOME
    }
}

/// The home directory, relative to the sandbox.
const HOME: &str = "home";

/// `adopt-user`: the task's user with `uid` again, for a fresh instance that took
/// the task over (only a user `create-user` made for this very task).
pub(crate) fn adopt_user(scope: &Arc<TaskScope>, uid: u32) -> CapResult<TaskUser> {
    scope.live()?;
    let (user, groups) = scope
        .user(uid)
        .ok_or_else(|| super::CapError::NotFound(format!("the task has no user with uid {uid}")))?;
    Ok(TaskUser { user, groups })
}

/// `create-user`: a new system user for the task, in `groups`, with its home in
/// the sandbox (root only; `[plugins.NAME.users]`).
pub(crate) async fn create_user(scope: &Arc<TaskScope>, groups: &[String]) -> CapResult<TaskUser> {
    let policy = scope.engine.policy.clone();
    check(&policy, policy.users_create())?;
    for group in groups {
        check(&policy, policy.users_group(group))?;
    }
    scope.live()?;
    if !users::is_root() {
        return Err(os_error("creating a task user", "the worker does not run as root"));
    }
    let mut gids = Vec::new();
    for group in groups {
        gids.push(
            users::group_id(group).ok_or_else(|| invalid(format!("group '{group}' does not exist on this host")))?,
        );
    }
    let sandbox = scope.sandbox()?;
    let (lo, hi) = policy.uid_range();
    let span = hi.saturating_sub(lo).saturating_add(1);
    let cursor = &scope.engine.host.uid_cursor;
    let home = sandbox.path.join(HOME);
    let mut clashes = 0;
    let user = loop {
        let uid = (0..span.min(100_000))
            .map(|_| lo + cursor.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % span)
            .find(|uid| !users::uid_in_use(*uid))
            .ok_or_else(|| os_error("allocating a uid", format!("every uid in {lo}..={hi} is in use")))?;
        let name = format!("eh-{uid:08x}");
        scope.journal_user(&name, uid)?;
        match users::create_user(&name, uid, groups, &home).await {
            Ok(user) => break user,
            // Another process took the uid or name between the check and the
            // creation (it checked under the same locks): never ours to remove.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && clashes < 16 => {
                scope.unjournal_user(&name)?;
                clashes += 1;
            }
            Err(e) => return Err(os_error("useradd", e)),
        }
    };
    let made = (|| {
        super::scope::make_dir(&home, 0o700)?;
        std::os::unix::fs::chown(&home, Some(user.uid), Some(user.gid))?;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))
    })();
    scope.add_user(user.clone(), gids.clone())?;
    made.map_err(|e| os_error("creating the user's home", e))?;
    Ok(TaskUser { user, groups: gids })
}
