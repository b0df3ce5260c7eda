//! Glue of `interface files` (`crate::caps::files`).

use wasmtime::component::{Accessor, Resource, StreamReader};

use super::bindings::files as wit;
use super::streams::host_stream;
use super::{Caps, WitResult, task, wit as w};
use crate::caps::{self, CapsCtxView, TaskHandle};

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
}

impl wit::Host for CapsCtxView<'_> {
    fn state_dir(&mut self) -> wasmtime::Result<WitResult<String>> {
        Ok(w(caps::files::state_dir(&self.ctx.engine)))
    }
}
