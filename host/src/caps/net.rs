//! The network capability: outbound TCP and UDP through WASI sockets (p2 and p3),
//! and name lookups through WASI 0.3, allowed only where `[plugins.NAME.network]
//! connect` and the plugin's request both allow.
//!
//! wasmtime-wasi checks every socket address with the Store's `socket_addr_check`
//! before any system call ([`NetCheck::allows`]): the implicit bind of a connect to
//! the unspecified address, then the connect or send itself. Listening and
//! accepting are refused. WASI's own name lookup is one switch for all names, so
//! enginehost replaces `wasi:sockets/ip-name-lookup@0.3.0` with a lookup that checks
//! the name first ([`NetCheck::lookup`], linked by `crate::wit::net`) and remembers which addresses a granted name
//! resolved to, so that a connect to such an address is judged by the name's
//! patterns (loopback, private and link-local addresses still need an IP or CIDR
//! grant, or `allow-private`: that also stops DNS rebinding; so do the worker's own
//! addresses, [`is_own_address`], public or not). WASI 0.2 name lookup
//! stays off. A denial reaches the engine as `access-denied`; the operator's log has
//! the whole message.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

use super::os::local::is_own_address;
use crate::policy::{Denied, NetRules, Policy};

/// How long an address learned from a lookup stays attributed to its name.
const LEARNED_TTL: Duration = Duration::from_secs(600);
/// Most addresses remembered per engine (a hostile engine looking up names in a
/// loop cannot grow the map without end; the oldest are forgotten).
const LEARNED_MAX: usize = 4096;

/// Why `host:port` cannot be reached under a set of rules.
pub(crate) enum Unreachable {
    /// The policy refuses it (the name, or every address it resolved to).
    Denied(Denied),
    /// The name could not be resolved.
    Lookup(String),
}

/// How long a lookup made for a download or the task proxy may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);

/// The addresses `host:port` may be reached at under `rules`, the one check that
/// host-made connections (downloads, the task network's proxy) go through: an
/// address is checked as given; a name is checked for lookup, resolved, and each
/// address it resolved to is checked again, so a granted name never leads to a
/// private or own address that no IP/CIDR pattern grants. Connect only to these.
pub(crate) async fn allowed_addrs(rules: &NetRules<'_>, host: &str, port: u16) -> Result<Vec<SocketAddr>, Unreachable> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        let ip = ip.to_canonical();
        return match rules.connect_ip(ip, port, is_own_address(ip)) {
            Ok(()) => Ok(vec![SocketAddr::new(ip, port)]),
            Err(d) => Err(Unreachable::Denied(d)),
        };
    }
    rules.lookup_name(host).map_err(Unreachable::Denied)?;
    let resolved = match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => addrs,
        Ok(Err(e)) => return Err(Unreachable::Lookup(format!("looking up {host}: {e}"))),
        Err(_) => {
            return Err(Unreachable::Lookup(format!(
                "looking up {host}: no answer in {LOOKUP_TIMEOUT:?}"
            )));
        }
    };
    let mut allowed = Vec::new();
    let mut refusal = None;
    for addr in resolved {
        let ip = addr.ip().to_canonical();
        match rules.connect_name(host, ip, port, is_own_address(ip)) {
            Ok(()) => allowed.push(SocketAddr::new(ip, port)),
            Err(d) => refusal = Some(d),
        }
    }
    match (allowed.is_empty(), refusal) {
        (false, _) => Ok(allowed),
        (true, Some(d)) => Err(Unreachable::Denied(d)),
        (true, None) => Err(Unreachable::Lookup(format!("looking up {host}: no address"))),
    }
}

/// One engine's network checks and what its lookups learned.
pub(crate) struct NetCheck {
    policy: Arc<Policy>,
    learned: RwLock<HashMap<IpAddr, Vec<(String, Instant)>>>,
}

impl NetCheck {
    pub(crate) fn new(policy: Arc<Policy>) -> Self {
        NetCheck {
            policy,
            learned: RwLock::default(),
        }
    }

    /// Turns WASI's socket switches on as far as the policy needs, and installs the
    /// per-address check.
    pub(crate) fn configure(self: &Arc<Self>, wasi: &mut WasiCtxBuilder) {
        if !self.policy.network_enabled() {
            return; // every socket stays refused (WASI's default)
        }
        wasi.allow_tcp(true).allow_udp(true);
        let check = self.clone();
        wasi.socket_addr_check(move |addr, usage| {
            let ok = check.allows(addr, usage);
            Box::pin(async move { ok })
        });
    }

    /// The socket check: may the engine use `addr` this way?
    pub(crate) fn allows(&self, addr: SocketAddr, usage: SocketAddrUse) -> bool {
        match usage {
            // The implicit bind a connect does first; nothing else may bind.
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => addr.ip().is_unspecified() && addr.port() == 0,
            SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend => self.connect(addr.ip(), addr.port(), true),
            // A datagram from an address the engine may not talk to is dropped quietly.
            SocketAddrUse::UdpReceive => self.connect(addr.ip(), addr.port(), false),
            _ => {
                tracing::warn!(plugin = self.policy.plugin(), %addr, ?usage, "network: listening and accepting are not allowed");
                false
            }
        }
    }

    fn connect(&self, ip: IpAddr, port: u16, log: bool) -> bool {
        let ip = ip.to_canonical();
        let own = is_own_address(ip);
        let first = match self.policy.connect_ip(ip, port, own) {
            Ok(()) => return true,
            Err(d) => d,
        };
        let names: Vec<String> = {
            let learned = self.learned.read().expect("learned names");
            let now = Instant::now();
            learned
                .get(&ip)
                .map(|v| v.iter().filter(|(_, t)| *t > now).map(|(n, _)| n.clone()).collect())
                .unwrap_or_default()
        };
        let mut last = first;
        for name in names {
            match self.policy.connect_name(&name, ip, port, own) {
                Ok(()) => return true,
                Err(d) => last = d,
            }
        }
        if log {
            tracing::warn!(plugin = self.policy.plugin(), grant_key = %last.grant_key, "{}", last.message);
        }
        false
    }

    fn learn(&self, name: &str, ips: &[IpAddr]) {
        let mut learned = self.learned.write().expect("learned names");
        let now = Instant::now();
        if learned.len() + ips.len() > LEARNED_MAX {
            learned.retain(|_, v| {
                v.retain(|(_, t)| *t > now);
                !v.is_empty()
            });
            if learned.len() + ips.len() > LEARNED_MAX {
                learned.clear();
            }
        }
        for ip in ips {
            let names = learned.entry(ip.to_canonical()).or_default();
            names.retain(|(n, t)| n != name && *t > now);
            names.push((name.to_string(), now + LEARNED_TTL));
        }
    }

    /// The checked lookup of `name`.
    pub(crate) async fn lookup(self: Arc<Self>, name: String) -> Result<Vec<IpAddr>, LookupError> {
        if let Ok(ip) = name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            return Ok(vec![ip]); // a literal address: checked when it is connected to
        }
        if let Err(d) = self.policy.lookup_name(&name) {
            tracing::warn!(plugin = self.policy.plugin(), grant_key = %d.grant_key, "{}", d.message);
            return Err(LookupError::Denied);
        }
        let addrs = tokio::net::lookup_host((name.as_str(), 0))
            .await
            .map_err(|_| LookupError::Unresolvable)?;
        let ips: Vec<IpAddr> = addrs.map(|a| a.ip().to_canonical()).collect();
        self.learn(&name, &ips);
        Ok(ips)
    }
}

/// Why a checked name lookup gave no address.
pub(crate) enum LookupError {
    /// The policy does not allow looking the name up (the operator's log says why).
    Denied,
    /// The name did not resolve.
    Unresolvable,
}
