//! Glue of `interface endpoint` (`crate::caps::endpoint`).

use wasmtime::component::{Accessor, Resource, StreamReader};

use super::bindings::endpoint as wit;
use super::host::ProxyHandlerRes;
use super::streams::{guest_stream, host_stream};
use super::{Caps, WitResult, task, wit as w};
use crate::caps::endpoint::{Address, BodyEnd, RouteAction};
use crate::caps::{self, CapsCtxView, Endpoint, EndpointRequest, TaskHandle};

impl<T> wit::HostWithStore<T> for Caps {
    async fn open(
        acc: &Accessor<T, Self>,
        r: Resource<TaskHandle>,
        address: wit::Address,
    ) -> wasmtime::Result<WitResult<Resource<Endpoint>>> {
        let task = acc.with(|mut a| task(a.get(), &r))?;
        let address = match address {
            wit::Address::SandboxSocket(rel) => Address::SandboxSocket(rel),
            wit::Address::Tcp(tcp) => Address::Tcp {
                address: tcp.address,
                peers: tcp.peers,
            },
        };
        match caps::endpoint::open(&task, address).await {
            Ok(endpoint) => Ok(Ok(acc.with(|mut a| a.get().table.push(endpoint))?)),
            Err(e) => Ok(Err(e.into())),
        }
    }
}

impl wit::Host for CapsCtxView<'_> {
    fn adopt(&mut self, r: Resource<TaskHandle>, address: String) -> wasmtime::Result<WitResult<Resource<Endpoint>>> {
        let task = self.table.get(&r)?.clone();
        match caps::endpoint::adopt(&task, &address) {
            Ok(endpoint) => Ok(Ok(self.table.push(endpoint)?)),
            Err(e) => Ok(Err(e.into())),
        }
    }
}

impl wit::HostEndpoint for CapsCtxView<'_> {
    fn address(&mut self, r: Resource<Endpoint>) -> wasmtime::Result<String> {
        Ok(self.table.get(&r)?.address().to_string())
    }

    fn add_route(&mut self, r: Resource<Endpoint>, route: wit::Route) -> wasmtime::Result<WitResult<()>> {
        let to = match route.action {
            wit::Action::Engine => RouteAction::Engine,
            wit::Action::BodyToLog(prefix) => RouteAction::BodyToLog(prefix),
            wit::Action::Fixed((head, body)) => RouteAction::Fixed {
                status: head.status,
                headers: head.headers,
                body,
            },
        };
        Ok(w(self.table.get(&r)?.add_route(
            route.method.as_deref(),
            &route.path,
            to,
        )))
    }

    fn add_proxy(
        &mut self,
        r: Resource<Endpoint>,
        name: String,
        handler: Resource<ProxyHandlerRes>,
    ) -> wasmtime::Result<WitResult<()>> {
        let handler = self.table.get(&handler)?.0.clone();
        Ok(w(self.table.get(&r)?.add_proxy(&name, handler)))
    }

    fn close(&mut self, r: Resource<Endpoint>) -> wasmtime::Result<()> {
        self.table.get(&r)?.close();
        Ok(())
    }

    fn drop(&mut self, r: Resource<Endpoint>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl<T> wit::HostEndpointWithStore<T> for Caps {
    async fn next_request(
        acc: &Accessor<T, Self>,
        r: Resource<Endpoint>,
    ) -> wasmtime::Result<Option<Resource<EndpointRequest>>> {
        let next = acc.with(|mut a| -> wasmtime::Result<_> { Ok(a.get().table.get(&r)?.next_request()) })?;
        match next.await {
            Some(request) => Ok(Some(acc.with(|mut a| a.get().table.push(request))?)),
            None => Ok(None),
        }
    }
}

impl wit::HostRequest for CapsCtxView<'_> {
    fn method(&mut self, r: Resource<EndpointRequest>) -> wasmtime::Result<String> {
        Ok(self.table.get(&r)?.method().to_string())
    }
    fn target(&mut self, r: Resource<EndpointRequest>) -> wasmtime::Result<String> {
        Ok(self.table.get(&r)?.target().to_string())
    }
    fn headers(&mut self, r: Resource<EndpointRequest>) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.table.get(&r)?.headers().to_vec())
    }
    fn drop(&mut self, r: Resource<EndpointRequest>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}

impl<T> wit::HostRequestWithStore<T> for Caps {
    async fn body(acc: &Accessor<T, Self>, r: Resource<EndpointRequest>) -> wasmtime::Result<Option<StreamReader<u8>>> {
        let body = acc.with(|mut a| -> wasmtime::Result<_> { Ok(a.get().table.get_mut(&r)?.take_body()) })?;
        match body {
            Some(stream) => Ok(Some(host_stream(acc, stream)?)),
            None => Ok(None),
        }
    }

    async fn body_end(acc: &Accessor<T, Self>, r: Resource<EndpointRequest>) -> wasmtime::Result<wit::BodyEnd> {
        let end = acc.with(|mut a| -> wasmtime::Result<_> { Ok(a.get().table.get(&r)?.body_end()) })?;
        Ok(match end.await {
            BodyEnd::Complete => wit::BodyEnd::Complete,
            BodyEnd::Truncated => wit::BodyEnd::Truncated,
        })
    }

    async fn respond(
        acc: &Accessor<T, Self>,
        r: Resource<EndpointRequest>,
        head: wit::Response,
        body: StreamReader<u8>,
    ) -> wasmtime::Result<WitResult<()>> {
        let body = guest_stream(acc, body)?;
        let sent = acc.with(|mut a| -> wasmtime::Result<_> {
            Ok(a.get().table.get_mut(&r)?.respond(head.status, &head.headers, body))
        })?;
        Ok(w(sent.await))
    }

    async fn upgrade(
        acc: &Accessor<T, Self>,
        r: Resource<EndpointRequest>,
        headers: Vec<(String, String)>,
        outgoing: StreamReader<u8>,
    ) -> wasmtime::Result<WitResult<StreamReader<u8>>> {
        let outgoing = guest_stream(acc, outgoing)?;
        let upgraded =
            acc.with(|mut a| -> wasmtime::Result<_> { Ok(a.get().table.get_mut(&r)?.upgrade(&headers, outgoing)) })?;
        match upgraded {
            Ok(incoming) => Ok(Ok(host_stream(acc, incoming)?)),
            Err(e) => Ok(Err(e.into())),
        }
    }

    async fn save_body(
        acc: &Accessor<T, Self>,
        r: Resource<EndpointRequest>,
        path: String,
        max_size: u64,
    ) -> wasmtime::Result<WitResult<u64>> {
        let saved =
            acc.with(|mut a| -> wasmtime::Result<_> { Ok(a.get().table.get_mut(&r)?.save_body(path, max_size)) })?;
        Ok(w(saved.await))
    }
}
