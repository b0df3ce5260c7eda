//! The `files` capability: the task's sandbox directory and the engine's state
//! directory (seen by the engine through WASI preopens, `/sandboxes` and `/engine`,
//! granted by `[plugins.NAME.files] sandbox` and `engine`; operator directories
//! under `/grants/<name>`), and host-side downloads into the sandbox.
//!
//! Preopens are fixed when the Store is made ([`preopens`]): the engine sees all of
//! its tasks' sandbox directories under one `/sandboxes` (capabilities-design.md
//! decision 4), never another engine's.

mod download;
mod lend;
mod read;

use std::path::PathBuf;
use std::sync::Arc;

use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::scope::{EngineScope, TaskScope};
use super::{CapResult, TaskUser, check, invalid, os_error};
use crate::contract::ByteStream;
use crate::policy::DirMode;

/// The guest path of the state directory.
const STATE: &str = "/engine";

/// Adds the directories the policy grants to a new Store's WASI context.
pub(crate) fn preopens(engine: &EngineScope, wasi: &mut WasiCtxBuilder) -> anyhow::Result<()> {
    let policy = &engine.policy;
    let mut dirs: Vec<(PathBuf, String, FsPerms)> = Vec::new();
    if policy.files_engine().is_ok() {
        dirs.push((engine.state_dir()?, STATE.into(), FsPerms::ReadWrite));
    }
    if policy.files_sandbox().is_ok() {
        dirs.push((engine.sandboxes_dir()?, "/sandboxes".into(), FsPerms::ReadWrite));
    }
    for d in policy.files_dirs() {
        let perms = match d.mode {
            DirMode::Ro => FsPerms::ReadOnly,
            DirMode::Rw => FsPerms::ReadWrite,
        };
        dirs.push((d.path, format!("/grants/{}", d.name), perms));
    }
    for (host, guest, perms) in dirs {
        wasi.preopened_dir(&host, &guest, perms)
            .map_err(|e| anyhow::anyhow!("preopening {} as {guest}: {e}", host.display()))?;
    }
    Ok(())
}

/// `sandbox-dir`: the guest path of the task's sandbox directory.
pub(crate) fn sandbox_dir(scope: &TaskScope) -> CapResult<String> {
    check(&scope.engine.policy, scope.engine.policy.files_sandbox())?;
    Ok(scope.sandbox()?.guest.clone())
}

/// `sandbox-host-path`: the host path of the task's sandbox directory (what its
/// processes see; no grant needed beyond being the task's engine).
pub(crate) fn sandbox_host_path(scope: &TaskScope) -> CapResult<String> {
    Ok(scope.sandbox()?.path.display().to_string())
}

/// `open-file`: the bytes of `path` beneath `root` in the sandbox.
pub(crate) fn open_file(scope: &Arc<TaskScope>, root: &str, path: &str) -> CapResult<ByteStream> {
    check(&scope.engine.policy, scope.engine.policy.files_sandbox())?;
    read::open_file(scope, root, path)
}

/// `list-files`: the files beneath `root`/`path` in the sandbox.
pub(crate) async fn list_files(scope: &Arc<TaskScope>, root: &str, path: &str) -> CapResult<Vec<String>> {
    check(&scope.engine.policy, scope.engine.policy.files_sandbox())?;
    read::list_files(scope, root, path).await
}

/// `download`: `url` into `dest` in the sandbox, by the host (checks in `download`).
pub(crate) async fn download(scope: &Arc<TaskScope>, url: &str, dest: &str) -> CapResult<u64> {
    download::download(scope, url, dest).await
}

/// `lend-dir`: the state directory's `state_path` into the sandbox as
/// `sandbox_path`, given to `owner` (a user of this task).
pub(crate) async fn lend_dir(
    scope: &Arc<TaskScope>,
    state_path: &str,
    sandbox_path: &str,
    owner: Option<&TaskUser>,
) -> CapResult<()> {
    let policy = &scope.engine.policy;
    check(policy, policy.files_engine())?;
    check(policy, policy.files_sandbox())?;
    scope.live()?;
    if let Some(user) = owner
        && !scope.has_user(user.uid())
    {
        return Err(invalid(format!("the owner {} is not a user of this task", user.name())));
    }
    lend::lend(scope, state_path, sandbox_path, owner).await
}

/// `reclaim-dir`: the sandbox's `sandbox_path` back into the state directory.
pub(crate) async fn reclaim_dir(scope: &Arc<TaskScope>, sandbox_path: &str, state_path: &str) -> CapResult<()> {
    let policy = &scope.engine.policy;
    check(policy, policy.files_engine())?;
    check(policy, policy.files_sandbox())?;
    scope.live()?;
    lend::reclaim(scope, sandbox_path, state_path).await
}

/// `remove-state`: `path` and everything beneath it, from the state directory.
pub(crate) async fn remove_state(engine: &EngineScope, path: &str) -> CapResult<()> {
    check(&engine.policy, engine.policy.files_engine())?;
    lend::remove(engine, path).await
}

/// `state-dir`: the guest path of the engine's state directory.
pub(crate) fn state_dir(engine: &EngineScope) -> CapResult<String> {
    check(&engine.policy, engine.policy.files_engine())?;
    engine
        .state_dir()
        .map(|_| STATE.to_string())
        .map_err(|e| os_error("creating the state directory", e))
}
