//! Network checks of [`Policy`]: lookups, connects by address, connects to an
//! address a name resolved to. Used by `caps/net` (the WASI socket-address check and
//! the DNS override) and by `runtime` (the TCP/UDP switches).
//!
//! Each side is checked on its own (request ∩ grant, as for every capability):
//! - a side allows `(name, ip, port)` if a name pattern (`name`, `*.suffix`, `*`)
//!   matches the name and port, or an address pattern (`*`, IP, CIDR) the ip and port;
//! - the request side matches by pattern only;
//! - the grant side refuses a private address (`addr::is_private`), and any of the
//!   worker's own addresses (`own`: every local interface address and anything
//!   routed to this machine, which the caller finds out from the OS), unless an IP
//!   or CIDR pattern names it or `allow-private = true`. Applied to the resolved
//!   address, this also defeats DNS rebinding to internal hosts, and a `*:PORT`
//!   grant never reaches a service the worker itself listens on.

use std::net::{IpAddr, SocketAddr};

use super::super::addr::is_private;
use super::super::net::normalize_name;
use super::{Denied, Hint, Named, NetPattern, Policy};

/// What the grant side says about a connect.
#[derive(Debug, PartialEq, Eq)]
enum Grant {
    Allowed,
    /// A pattern matched, but the address is private and no IP/CIDR pattern names it.
    Private,
    No,
}

impl Policy {
    /// Whether any connection is possible at all: both sides have a `connect`
    /// pattern. Turns wasmtime-wasi's TCP/UDP switches on.
    pub fn network_enabled(&self) -> bool {
        !self.req.connect.is_empty() && !self.grant.connect.is_empty()
    }

    /// Whether the plugin may connect to `ip:port` given as an address (no name
    /// involved). `own`: `ip` is one of the worker's own addresses.
    pub fn connect_ip(&self, ip: IpAddr, port: u16, own: bool) -> Result<(), Denied> {
        let request = SocketAddr::new(ip, port).to_string();
        match self.grant_ip(ip, port, own) {
            Grant::Allowed => {}
            Grant::Private => {
                let what = if own && !is_private(ip) {
                    format!("{ip} is this worker's own address")
                } else {
                    format!("{ip} is a private address")
                };
                return Err(self.private(&request, &what, ip, port));
            }
            Grant::No => {
                return Err(self.not_granted("network.connect", &request, Hint::AddPattern));
            }
        }
        if !self.req.connect.iter().any(|p| p.pattern.matches_ip(ip, port)) {
            return Err(self.not_requested("network.connect", &request));
        }
        Ok(())
    }

    /// Whether the plugin may resolve `name` at all: some pattern on each side could
    /// match it (`name`, `*.suffix` or `*`, any port). IP and CIDR patterns never
    /// allow a lookup.
    pub fn lookup_name(&self, name: &str) -> Result<(), Denied> {
        let normalized = normalize_name(name);
        let any = |patterns: &[Named<NetPattern>]| patterns.iter().any(|p| p.pattern.could_name(&normalized));
        let (granted, requested) = (any(&self.grant.connect), any(&self.req.connect));
        self.decide("network.lookup", name, Hint::AddPattern, granted, requested)
    }

    /// Whether the plugin may connect to `ip:port`, an address `name` resolved to.
    /// The request text is `name:port`. `own`: `ip` is one of the worker's own
    /// addresses.
    pub fn connect_name(&self, name: &str, ip: IpAddr, port: u16, own: bool) -> Result<(), Denied> {
        let normalized = normalize_name(name);
        let request = format!("{name}:{port}");
        let by_name =
            |patterns: &[Named<NetPattern>]| patterns.iter().any(|p| p.pattern.matches_name(&normalized, port));
        let grant = match (by_name(&self.grant.connect), self.grant_ip(ip, port, own)) {
            (_, Grant::Allowed) => Grant::Allowed,
            (true, _) if (!is_private(ip) && !own) || self.allow_private() => Grant::Allowed,
            (true, _) | (false, Grant::Private) => Grant::Private,
            (false, Grant::No) => Grant::No,
        };
        match grant {
            Grant::Allowed => {}
            Grant::Private => {
                let kind = if own && !is_private(ip) {
                    "this worker's own address"
                } else {
                    "a private address"
                };
                let reason = format!("{name} resolved to {ip}, {kind}");
                return Err(self.private(&request, &reason, ip, port));
            }
            Grant::No => {
                return Err(self.not_granted("network.connect", &request, Hint::AddPattern));
            }
        }
        if !by_name(&self.req.connect) && !self.req.connect.iter().any(|p| p.pattern.matches_ip(ip, port)) {
            return Err(self.not_requested("network.connect", &request));
        }
        Ok(())
    }

    pub(super) fn allow_private(&self) -> bool {
        self.granted.network.as_ref().is_some_and(|n| n.allow_private)
    }

    /// The grant side for an address: any address pattern for a public address,
    /// only IP/CIDR patterns for a private one or the worker's own unless
    /// `allow-private`.
    fn grant_ip(&self, ip: IpAddr, port: u16, own: bool) -> Grant {
        let open = (!is_private(ip) && !own) || self.allow_private();
        let mut verdict = Grant::No;
        for p in self.grant.connect.iter().filter(|p| p.pattern.matches_ip(ip, port)) {
            if open || p.pattern.is_address() {
                return Grant::Allowed;
            }
            verdict = Grant::Private;
        }
        verdict
    }

    /// The denial for a private address a name or `*` matched.
    fn private(&self, request: &str, what: &str, ip: IpAddr, port: u16) -> Denied {
        let example = SocketAddr::new(ip.to_canonical(), port);
        let reason = format!(
            "{what}; grant it by IP or CIDR (e.g. \"{example}\") in [{}] connect, or set allow-private = true",
            self.table("network")
        );
        self.denied("network.connect", request, reason)
    }
}

#[cfg(test)]
mod tests;
