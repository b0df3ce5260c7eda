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
