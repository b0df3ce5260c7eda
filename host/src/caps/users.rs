//! The `users` capability: a system user per task (the seed's native engine
//! `createUser`), granted by `[plugins.NAME.users]` (`create`, `groups`,
//! `uid-range`). Needs root. The user is journaled before `useradd` runs, its home
//! is `home/` in the task's sandbox (0700, its own), and it is removed with every
//! process it runs when the task ends.

use std::os::unix::fs::PermissionsExt;

use wasmtime::component::{Accessor, HasSelf, Resource};

use super::os::spawn::Ids;
use super::os::users::{self, SystemUser};
use super::{CapResult, denied, invalid, os_error};
use crate::runtime::HostState;
use crate::runtime::bindings::users as wit;
use crate::runtime::imports::TaskContextRes;

/// The host side of a `task-user`.
pub struct TaskUserRes {
    pub(crate) user: SystemUser,
    groups: Vec<u32>,
}

impl TaskUserRes {
    /// The ids a process of this user runs with.
    pub(crate) fn ids(&self) -> Ids {
        Ids {
            uid: self.user.uid,
            gid: self.user.gid,
            groups: self.groups.clone(),
        }
    }
}

/// The home directory, relative to the sandbox.
const HOME: &str = "home";

impl<T> wit::HostWithStore<T> for HasSelf<HostState> {
    async fn create_user(
        acc: &Accessor<T, Self>,
        task: Resource<TaskContextRes>,
        groups: Vec<String>,
    ) -> wasmtime::Result<CapResult<Resource<TaskUserRes>>> {
        let scope = acc.with(|mut a| -> wasmtime::Result<_> { Ok(a.get().table.get(&task)?.scope.clone()) })?;
        let policy = scope.engine.policy.clone();
        if let Err(d) = policy.users_create() {
            return Ok(denied(&policy, d));
        }
        for group in &groups {
            if let Err(d) = policy.users_group(group) {
                return Ok(denied(&policy, d));
            }
        }
        let made = async {
            scope.live()?;
            if !users::is_root() {
                return Err(os_error("creating a task user", "the worker does not run as root"));
            }
            let mut gids = Vec::new();
            for group in &groups {
                gids.push(
                    users::group_id(group)
                        .ok_or_else(|| invalid(format!("group '{group}' does not exist on this host")))?,
                );
            }
            let sandbox = scope.sandbox()?;
            let (lo, hi) = policy.uid_range();
            let span = hi.saturating_sub(lo).saturating_add(1);
            let cursor = &scope.engine.host.uid_cursor;
            let uid = (0..span.min(100_000))
                .map(|_| lo + cursor.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % span)
                .find(|uid| !users::uid_in_use(*uid))
                .ok_or_else(|| os_error("allocating a uid", format!("every uid in {lo}..={hi} is in use")))?;
            let name = format!("eh-{uid:08x}");
            scope.journal_user(&name, uid)?;
            let home = sandbox.path.join(HOME);
            let user = users::create_user(&name, uid, &groups, &home)
                .await
                .map_err(|e| os_error("useradd", e))?;
            let made = (|| {
                super::scope::make_dir(&home, 0o700)?;
                std::os::unix::fs::chown(&home, Some(user.uid), Some(user.gid))?;
                std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))
            })();
            scope.add_user(user.clone())?;
            made.map_err(|e| os_error("creating the user's home", e))?;
            Ok(TaskUserRes { user, groups: gids })
        };
        match made.await {
            Ok(user) => Ok(Ok(acc.with(|mut a| a.get().table.push(user))?)),
            Err(e) => Ok(Err(e)),
        }
    }
}

impl wit::Host for HostState {}

impl wit::HostTaskUser for HostState {
    fn name(&mut self, r: Resource<TaskUserRes>) -> wasmtime::Result<String> {
        Ok(self.table.get(&r)?.user.name.clone())
    }
    fn uid(&mut self, r: Resource<TaskUserRes>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&r)?.user.uid)
    }
    fn gid(&mut self, r: Resource<TaskUserRes>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&r)?.user.gid)
    }
    fn home(&mut self, r: Resource<TaskUserRes>) -> wasmtime::Result<String> {
        self.table.get(&r)?;
        Ok(HOME.to_string())
    }
    fn drop(&mut self, r: Resource<TaskUserRes>) -> wasmtime::Result<()> {
        // The user stays until its task ends.
        self.table.delete(r)?;
        Ok(())
    }
}
