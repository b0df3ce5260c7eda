//! Per-task system users (needs `users.create`, and root on the host).

use super::CapError;
use crate::TaskContext;
pub use crate::wit::enginehost::engine::users::TaskUser;

/// Creates a system user for `task`, member of `groups` (each granted in
/// `users.groups`). Its home is `home` in the sandbox directory, mode 0700; the user
/// and everything it runs are removed when the task ends.
pub async fn create_user(task: &TaskContext, groups: &[String]) -> Result<TaskUser, CapError> {
    crate::wit::enginehost::engine::users::create_user(task, groups.to_vec()).await
}

/// The user [`create_user`] made for `task` with `uid`, again: in
/// [`Engine::recover_sandbox`](crate::Engine::recover_sandbox) (contract 0.1.4).
///
/// # Errors
/// `not-found` when the task has no such user.
pub fn adopt_user(task: &TaskContext, uid: u32) -> Result<TaskUser, CapError> {
    crate::wit::enginehost::engine::users::adopt_user(task, uid)
}
