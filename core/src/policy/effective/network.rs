//! Network checks of [`Policy`]: lookups, connects by address, connects to an
//! address a name resolved to. Two sets of rules share them: the plugin's own
//! sockets (`[network] connect`; used by `caps/net`, the downloads and `runtime`'s
//! TCP/UDP switches) and its tasks' proxy (`[process] network = { connect = [...] }`;
//! used by the task network's proxy in `caps/process`).
//!
//! Each side is checked on its own (request ∩ grant, as for every capability):
//! - a side allows `(name, ip, port)` if a name pattern (`name`, `*.suffix`, `*`)
//!   matches the name and port, or an address pattern (`*`, IP, CIDR) the ip and port;
//!   a task side that says `network = "host"` allows everything;
//! - the request side matches by pattern only;
//! - the grant side refuses a private address (`addr::is_private`), and any of the
//!   worker's own addresses (`own`: every local interface address and anything
//!   routed to this machine, which the caller finds out from the OS), unless an IP
//!   or CIDR pattern names it or (plugins only) `allow-private = true`. Applied to
//!   the resolved address, this also defeats DNS rebinding to internal hosts, and a
//!   `*:PORT` grant never reaches a service the worker itself listens on.

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

/// One side's connect patterns; `Any` is a task side that says `network = "host"`.
#[derive(Clone, Copy)]
pub(super) enum Side<'a> {
    Any,
    Patterns(&'a [Named<NetPattern>]),
}

impl Side<'_> {
    fn matches_ip(self, ip: IpAddr, port: u16) -> bool {
        match self {
            Side::Any => true,
            Side::Patterns(ps) => ps.iter().any(|p| p.pattern.matches_ip(ip, port)),
        }
    }

    fn matches_name(self, name: &str, port: u16) -> bool {
        match self {
            Side::Any => true,
            Side::Patterns(ps) => ps.iter().any(|p| p.pattern.matches_name(name, port)),
        }
    }

    fn could_name(self, name: &str) -> bool {
        match self {
            Side::Any => true,
            Side::Patterns(ps) => ps.iter().any(|p| p.pattern.could_name(name)),
        }
    }
}

/// What the effective policy gives a task's processes for a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEgress {
    /// Their own namespace with loopback only (either side says `"none"`).
    None,
    /// Their own namespace and the proxy, which checks [`Policy::task_net`]'s rules
    /// (a side says `{ connect = [...] }`).
    Proxy,
    /// The worker's network (both sides say `"host"`).
    Host,
}

/// One set of connect rules with the words its denials use: the plugin's own
/// sockets ([`Policy::plugin_net`]) or its tasks' proxy ([`Policy::task_net`]).
pub struct NetRules<'a> {
    policy: &'a Policy,
    grant: Side<'a>,
    req: Side<'a>,
    /// `network.connect` or `process.network.connect`.
    connect: &'static str,
    /// `network.lookup` or `process.network.lookup`.
    lookup: &'static str,
    allow_private: bool,
    /// Where an IP or CIDR grant goes: `[plugins.X.network] connect`.
    grant_here: String,
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
        self.plugin_net().connect_ip(ip, port, own)
    }

    /// Whether the plugin may resolve `name` at all: some pattern on each side could
    /// match it (`name`, `*.suffix` or `*`, any port). IP and CIDR patterns never
    /// allow a lookup.
    pub fn lookup_name(&self, name: &str) -> Result<(), Denied> {
        self.plugin_net().lookup_name(name)
    }

    /// Whether the plugin may connect to `ip:port`, an address `name` resolved to.
    /// The request text is `name:port`. `own`: `ip` is one of the worker's own
    /// addresses.
    pub fn connect_name(&self, name: &str, ip: IpAddr, port: u16, own: bool) -> Result<(), Denied> {
        self.plugin_net().connect_name(name, ip, port, own)
    }

    /// The network of the task's processes: the worker's only when both sides say
    /// `"host"`, none when either says `"none"`, else the proxy.
    pub fn task_network(&self) -> TaskEgress {
        match (self.grant.egress(), self.req.egress()) {
            (Some(Side::Any), Some(Side::Any)) => TaskEgress::Host,
            (None, _) | (_, None) => TaskEgress::None,
            _ => TaskEgress::Proxy,
        }
    }

    pub(super) fn allow_private(&self) -> bool {
        self.granted.network.as_ref().is_some_and(|n| n.allow_private)
    }

    /// The rules of the plugin's own sockets (`[network] connect`).
    pub fn plugin_net(&self) -> NetRules<'_> {
        NetRules {
            policy: self,
            grant: Side::Patterns(&self.grant.connect),
            req: Side::Patterns(&self.req.connect),
            connect: "network.connect",
            lookup: "network.lookup",
            allow_private: self.allow_private(),
            grant_here: format!("[{}] connect, or set allow-private = true", self.table("network")),
        }
    }

    /// The rules of the task network's proxy (`[process] network = { connect = [...] }`).
    pub fn task_net(&self) -> NetRules<'_> {
        let none = Side::Patterns(&[]);
        NetRules {
            policy: self,
            grant: self.grant.egress().unwrap_or(none),
            req: self.req.egress().unwrap_or(none),
            connect: "process.network.connect",
            lookup: "process.network.lookup",
            allow_private: false,
            grant_here: format!("[{}] network.connect", self.table("process")),
        }
    }
}

impl NetRules<'_> {
    /// Whether `ip:port`, given as an address, may be connected to. `own`: `ip`
    /// is one of the worker's own addresses.
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
                return Err(self.policy.not_granted(self.connect, &request, Hint::AddPattern));
            }
        }
        if !self.req.matches_ip(ip, port) {
            return Err(self.policy.not_requested(self.connect, &request));
        }
        Ok(())
    }

    /// Whether `name` may be resolved at all (some pattern on each side could match it).
    pub fn lookup_name(&self, name: &str) -> Result<(), Denied> {
        let normalized = normalize_name(name);
        let (granted, requested) = (self.grant.could_name(&normalized), self.req.could_name(&normalized));
        self.policy
            .decide(self.lookup, name, Hint::AddPattern, granted, requested)
    }

    /// Whether `ip:port`, an address `name` resolved to, may be connected to.
    pub fn connect_name(&self, name: &str, ip: IpAddr, port: u16, own: bool) -> Result<(), Denied> {
        let normalized = normalize_name(name);
        let request = format!("{name}:{port}");
        let grant = match (self.grant.matches_name(&normalized, port), self.grant_ip(ip, port, own)) {
            (_, Grant::Allowed) => Grant::Allowed,
            (true, _) if (!is_private(ip) && !own) || self.allow_private => Grant::Allowed,
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
                return Err(self.policy.not_granted(self.connect, &request, Hint::AddPattern));
            }
        }
        if !self.req.matches_name(&normalized, port) && !self.req.matches_ip(ip, port) {
            return Err(self.policy.not_requested(self.connect, &request));
        }
        Ok(())
    }

    /// The grant side for an address: any address pattern for a public address,
    /// only IP/CIDR patterns for a private one or the worker's own unless
    /// `allow-private` (a `"host"` side allows every address).
    fn grant_ip(&self, ip: IpAddr, port: u16, own: bool) -> Grant {
        let patterns = match self.grant {
            Side::Any => return Grant::Allowed,
            Side::Patterns(ps) => ps,
        };
        let open = (!is_private(ip) && !own) || self.allow_private;
        let mut verdict = Grant::No;
        for p in patterns.iter().filter(|p| p.pattern.matches_ip(ip, port)) {
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
            "{what}; grant it by IP or CIDR (e.g. \"{example}\") in {}",
            self.grant_here
        );
        self.policy.denied(self.connect, request, reason)
    }
}

#[cfg(test)]
mod tests;
