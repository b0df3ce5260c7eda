//! Glue of `interface files` (`crate::caps::files`).

use wasmtime::component::{Accessor, Resource, StreamReader};

use super::bindings::files as wit;
use super::streams::host_stream;
use super::{Caps, WitResult, task, wit as w};
use crate::caps::{self, CapsCtxView, TaskHandle, TaskUser};

impl<T> wit::HostWithStore<T> for Caps {
    async fn sandbox_dir(acc: &Accessor<T, Self>, r: Resource<TaskHandle>) -> wasmtime::Result<WitResult<String>> {
        let task = acc.with(|mut a| task(a.get(), &r))?;
        Ok(w(caps::files::sandbox_dir(&task.scope)))
    }

    async fn sandbox_host_path(
        acc: &Accessor<T, Self>,
        r: Resource<TaskHandle>,
    ) -> wasmtime::Result<WitResult<String>> {
        let task = acc.with(|mut a| task(a.get(), &r))?;
        Ok(w(caps::files::sandbox_host_path(&task.scope)))
    }

    async fn open_file(
        acc: &Accessor<T, Self>,
        r: Resource<TaskHandle>,
        root: String,
        path: String,
    ) -> wasmtime::Result<WitResult<StreamReader<u8>>> {
        let task = acc.with(|mut a| task(a.get(), &r))?;
        match caps::files::open_file(&task.scope, &root, &path) {
            Ok(stream) => Ok(Ok(host_stream(acc, stream)?)),
            Err(e) => Ok(Err(e.into())),
        }
    }

    async fn list_files(
        acc: &Accessor<T, Self>,
        r: Resource<TaskHandle>,
        root: String,
        path: String,
    ) -> wasmtime::Result<WitResult<Vec<String>>> {
        let task = acc.with(|mut a| task(a.get(), &r))?;
        Ok(w(caps::files::list_files(&task.scope, &root, &path).await))
    }

    async fn download(
        acc: &Accessor<T, Self>,
        r: Resource<TaskHandle>,
        url: String,
        dest: String,
    ) -> wasmtime::Result<WitResult<u64>> {
        let task = acc.with(|mut a| task(a.get(), &r))?;
        Ok(w(caps::files::download(&task.scope, &url, &dest).await))
    }

    async fn lend_dir(
        acc: &Accessor<T, Self>,
        r: Resource<TaskHandle>,
        state_path: String,
        sandbox_path: String,
        owner: Option<Resource<TaskUser>>,
    ) -> wasmtime::Result<WitResult<()>> {
        let (task, owner) = acc.with(|mut a| -> wasmtime::Result<(TaskHandle, Option<TaskUser>)> {
            let owner = match &owner {
                Some(u) => Some(a.get().table.get(u)?.clone()),
                None => None,
            };
            Ok((task(a.get(), &r)?, owner))
        })?;
        Ok(w(caps::files::lend_dir(
            &task.scope,
            &state_path,
            &sandbox_path,
            owner.as_ref(),
        )
        .await))
    }

    async fn reclaim_dir(
        acc: &Accessor<T, Self>,
        r: Resource<TaskHandle>,
        sandbox_path: String,
        state_path: String,
    ) -> wasmtime::Result<WitResult<()>> {
        let task = acc.with(|mut a| task(a.get(), &r))?;
        Ok(w(
            caps::files::reclaim_dir(&task.scope, &sandbox_path, &state_path).await
        ))
    }

    async fn remove_state(acc: &Accessor<T, Self>, path: String) -> wasmtime::Result<WitResult<()>> {
        let engine = acc.with(|mut a| a.get().ctx.engine.clone());
        Ok(w(caps::files::remove_state(&engine, &path).await))
    }
}

impl wit::Host for CapsCtxView<'_> {
    fn state_dir(&mut self) -> wasmtime::Result<WitResult<String>> {
        Ok(w(caps::files::state_dir(&self.ctx.engine)))
    }
}
