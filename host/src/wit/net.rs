//! Glue of the checked `wasi:sockets/ip-name-lookup@0.3.0` (WASI's own lookup is
//! one switch for all names; `crate::caps::net::NetCheck::lookup` checks each).

use wasmtime::component::{Accessor, Linker};
use wasmtime_wasi::p3::bindings::sockets::ip_name_lookup::{self, ErrorCode};
use wasmtime_wasi::p3::bindings::sockets::types::IpAddress;

use super::Caps;
use crate::caps::net::LookupError;
use crate::caps::{CapsCtxView, CapsView};

impl ip_name_lookup::Host for CapsCtxView<'_> {}

impl<U> ip_name_lookup::HostWithStore<U> for Caps {
    async fn resolve_addresses(
        store: &Accessor<U, Self>,
        name: String,
    ) -> wasmtime::Result<Result<Vec<IpAddress>, ErrorCode>> {
        let check = store.with(|mut view| view.get().ctx.net.clone());
        Ok(match check.lookup(name).await {
            Ok(ips) => Ok(ips.into_iter().map(IpAddress::from).collect()),
            Err(LookupError::Denied) => Err(ErrorCode::AccessDenied),
            Err(LookupError::Unresolvable) => Err(ErrorCode::NameUnresolvable),
        })
    }
}

/// Links the checked lookup.
pub(super) fn add_to_linker<T: CapsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    ip_name_lookup::add_to_linker::<T, Caps>(linker, T::caps)
}
