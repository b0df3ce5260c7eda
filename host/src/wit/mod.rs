//! The WIT glue: the only module that names generated types. It holds the one
//! `bindgen!` (`bindings`), the bridges between component-model streams and the
//! worker's byte channels (`streams`), the WIT ↔ contract conversions
//! (`convert`) and one glue file per imported interface (`host`, `files`,
//! `users`, `process`, `unix_sockets`, `endpoint`, and `net` for the checked
//! `wasi:sockets/ip-name-lookup`). A glue method only unpacks handles, converts
//! and calls one function of `crate::caps`, where the capability's logic and its
//! policy check live.
//!
//! The glue implements the generated traits on [`CapsCtxView`] (through the
//! [`Caps`] `HasData`), so any Store data that implements [`CapsView`] can be
//! linked ([`add_to_linker`]); the runtime's `HostState` is one.

pub(crate) mod bindings;
pub(crate) mod convert;
mod endpoint;
mod files;
pub(crate) mod host;
mod net;
mod process;
pub(crate) mod streams;
mod unix_sockets;
mod users;

use wasmtime::component::{HasData, Linker, Resource};

use crate::caps::{CapError, CapsCtxView, CapsView, TaskHandle};

/// The `HasData` of every enginehost import: the Store's [`CapsCtxView`].
pub(crate) struct Caps;

impl HasData for Caps {
    type Data<'a> = CapsCtxView<'a>;
}

/// A capability call's result as the WIT has it.
pub(crate) type WitResult<T> = Result<T, bindings::caps::CapError>;

impl From<CapError> for bindings::caps::CapError {
    fn from(e: CapError) -> Self {
        use bindings::caps::CapError as W;
        match e {
            CapError::Denied(d) => W::Denied(bindings::caps::Denied {
                capability: d.capability,
                request: d.request,
                grant_key: d.grant_key,
                message: d.message,
            }),
            CapError::TaskEnded => W::TaskEnded,
            CapError::NotFound(s) => W::NotFound(s),
            CapError::Invalid(s) => W::Invalid(s),
            CapError::Os(s) => W::Os(s),
        }
    }
}

/// A domain result as the WIT's.
pub(crate) fn wit<T>(r: crate::caps::CapResult<T>) -> WitResult<T> {
    r.map_err(Into::into)
}

/// The task behind a `task-context` handle (a copy: the table is not held across
/// an await).
pub(crate) fn task(view: CapsCtxView<'_>, r: &Resource<TaskHandle>) -> wasmtime::Result<TaskHandle> {
    Ok(view.table.get(r)?.clone())
}

/// Links the enginehost imports: the host API of contract 0.1.0 and the
/// capability interfaces of 0.1.1 and 0.1.2, and the checked name lookup.
pub(crate) fn add_to_linker<T: CapsView + 'static>(linker: &mut Linker<T>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    fn ctx(r: wasmtime::Result<()>, what: &str) -> anyhow::Result<()> {
        r.map_err(anyhow::Error::from)
            .with_context(|| format!("linking {what}"))
    }
    ctx(net::add_to_linker(linker), "the checked name lookup")?;
    ctx(
        bindings::host::add_to_linker::<T, Caps>(linker, T::caps),
        "the enginehost host API",
    )?;
    ctx(
        bindings::types::add_to_linker::<T, Caps>(linker, T::caps),
        "the enginehost types",
    )?;
    let caps = (|| {
        bindings::caps::add_to_linker::<T, Caps>(linker, T::caps)?;
        bindings::files::add_to_linker::<T, Caps>(linker, T::caps)?;
        bindings::users::add_to_linker::<T, Caps>(linker, T::caps)?;
        bindings::process::add_to_linker::<T, Caps>(linker, T::caps)?;
        bindings::unix_sockets::add_to_linker::<T, Caps>(linker, T::caps)?;
        bindings::endpoint::add_to_linker::<T, Caps>(linker, T::caps)
    })();
    ctx(caps, "the capability imports")
}

impl bindings::caps::Host for CapsCtxView<'_> {}
impl bindings::types::Host for CapsCtxView<'_> {}
