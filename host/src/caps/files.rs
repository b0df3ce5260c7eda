//! The `files` capability: the task's sandbox directory and the engine's state
//! directory (seen by the engine through WASI preopens, `/sandboxes` and `/engine`,
//! granted by `[plugins.NAME.files] sandbox` and `engine`; operator directories
//! under `/grants/<name>`), and host-side downloads into the sandbox.
//!
//! Preopens are fixed when the Store is made ([`preopens`]): the engine sees all of
//! its tasks' sandbox directories under one `/sandboxes` (capabilities-design.md
//! decision 4), never another engine's.

mod download;
mod read;

use std::path::PathBuf;

use wasmtime::component::{Accessor, HasSelf, Resource, StreamReader};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::scope::EngineScope;
use super::{CapResult, denied, os_error};
use crate::policy::DirMode;
use crate::runtime::HostState;
use crate::runtime::bindings::files as wit;
use crate::runtime::imports::TaskContextRes;
use crate::runtime::streams::host_stream;

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

impl<T> wit::HostWithStore<T> for HasSelf<HostState> {
    async fn sandbox_dir(
        acc: &Accessor<T, Self>,
        task: Resource<TaskContextRes>,
    ) -> wasmtime::Result<CapResult<String>> {
        let scope = acc.with(|mut a| -> wasmtime::Result<_> { Ok(a.get().table.get(&task)?.scope.clone()) })?;
        let policy = scope.engine.policy.clone();
        if let Err(d) = policy.files_sandbox() {
            return Ok(denied(&policy, d));
        }
        Ok(scope.sandbox().map(|s| s.guest.clone()))
    }

    async fn sandbox_host_path(
        acc: &Accessor<T, Self>,
        task: Resource<TaskContextRes>,
    ) -> wasmtime::Result<CapResult<String>> {
        let scope = acc.with(|mut a| -> wasmtime::Result<_> { Ok(a.get().table.get(&task)?.scope.clone()) })?;
        Ok(scope.sandbox().map(|s| s.path.display().to_string()))
    }

    async fn open_file(
        acc: &Accessor<T, Self>,
        task: Resource<TaskContextRes>,
        root: String,
        path: String,
    ) -> wasmtime::Result<CapResult<StreamReader<u8>>> {
        let scope = acc.with(|mut a| -> wasmtime::Result<_> { Ok(a.get().table.get(&task)?.scope.clone()) })?;
        let policy = scope.engine.policy.clone();
        if let Err(d) = policy.files_sandbox() {
            return Ok(denied(&policy, d));
        }
        match read::open_file(&scope, &root, &path) {
            Ok(stream) => Ok(Ok(host_stream(acc, stream)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn list_files(
        acc: &Accessor<T, Self>,
        task: Resource<TaskContextRes>,
        root: String,
        path: String,
    ) -> wasmtime::Result<CapResult<Vec<String>>> {
        let scope = acc.with(|mut a| -> wasmtime::Result<_> { Ok(a.get().table.get(&task)?.scope.clone()) })?;
        let policy = scope.engine.policy.clone();
        if let Err(d) = policy.files_sandbox() {
            return Ok(denied(&policy, d));
        }
        Ok(read::list_files(&scope, &root, &path).await)
    }

    async fn download(
        acc: &Accessor<T, Self>,
        task: Resource<TaskContextRes>,
        url: String,
        dest: String,
    ) -> wasmtime::Result<CapResult<u64>> {
        let scope = acc.with(|mut a| -> wasmtime::Result<_> { Ok(a.get().table.get(&task)?.scope.clone()) })?;
        Ok(download::download(&scope, &url, &dest).await)
    }
}

impl wit::Host for HostState {
    fn state_dir(&mut self) -> wasmtime::Result<CapResult<String>> {
        let policy = self.caps.policy().clone();
        if let Err(d) = policy.files_engine() {
            return Ok(denied(&policy, d));
        }
        Ok(self
            .caps
            .engine
            .state_dir()
            .map(|_| STATE.to_string())
            .map_err(|e| os_error("creating the state directory", e)))
    }
}
