//! Glue of `interface users` (`crate::caps::users`).

use wasmtime::component::{Accessor, Resource};

use super::bindings::users as wit;
use super::{Caps, WitResult, task};
use crate::caps::{self, CapsCtxView, TaskHandle, TaskUser};

impl<T> wit::HostWithStore<T> for Caps {
    async fn create_user(
        acc: &Accessor<T, Self>,
        r: Resource<TaskHandle>,
        groups: Vec<String>,
    ) -> wasmtime::Result<WitResult<Resource<TaskUser>>> {
        let task = acc.with(|mut a| task(a.get(), &r))?;
        match caps::users::create_user(&task.scope, &groups).await {
            Ok(user) => Ok(Ok(acc.with(|mut a| a.get().table.push(user))?)),
            Err(e) => Ok(Err(e.into())),
        }
    }
}

impl wit::Host for CapsCtxView<'_> {
    fn adopt_user(&mut self, r: Resource<TaskHandle>, uid: u32) -> wasmtime::Result<WitResult<Resource<TaskUser>>> {
        let task = self.table.get(&r)?.clone();
        match caps::users::adopt_user(&task.scope, uid) {
            Ok(user) => Ok(Ok(self.table.push(user)?)),
            Err(e) => Ok(Err(e.into())),
        }
    }
}

impl wit::HostTaskUser for CapsCtxView<'_> {
    fn name(&mut self, r: Resource<TaskUser>) -> wasmtime::Result<String> {
        Ok(self.table.get(&r)?.name().to_string())
    }
    fn uid(&mut self, r: Resource<TaskUser>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&r)?.uid())
    }
    fn gid(&mut self, r: Resource<TaskUser>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&r)?.gid())
    }
    fn home(&mut self, r: Resource<TaskUser>) -> wasmtime::Result<String> {
        Ok(self.table.get(&r)?.home().to_string())
    }
    fn drop(&mut self, r: Resource<TaskUser>) -> wasmtime::Result<()> {
        // The user stays until its task ends.
        self.table.delete(r)?;
        Ok(())
    }
}
