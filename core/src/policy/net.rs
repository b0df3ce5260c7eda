//! `network.connect` patterns, `HOST:PORT`:
//! - HOST: `*` (any name or address), `*.suffix` (names ending in `.suffix`, not
//!   `suffix` itself), a DNS name (case-insensitive, a trailing dot ignored), an IPv4
//!   address, `[IPv6]`, or a CIDR (`10.0.0.0/8`, `[fd00::/8]`);
//! - PORT: `*`, `N` or `A-B` (inclusive, within 1-65535).
//!
//! Names and addresses are matched separately: a name pattern matches names (for a
//! lookup, or a connect to an address the name resolved to), an IP or CIDR pattern
//! matches addresses, and `*` both. The private-address rule is applied by the
//! caller (`effective::network`), which knows which side it checks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::addr::Cidr;

/// A parsed `HOST:PORT` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NetPattern {
    host: Host,
    /// Inclusive port range.
    ports: (u16, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Any,
    /// `*.suffix`, lowercase, without the `*.`.
    Suffix(String),
    /// A DNS name, lowercase, without a trailing dot.
    Name(String),
    Ip(IpAddr),
    Cidr(Cidr),
}

const EXAMPLES: &str = r#"e.g. "example.com:443", "*.example.com:443", "10.0.0.0/8:443" or "[fd00::/8]:443""#;

impl NetPattern {
    /// Parses a pattern; the error says what is wrong and shows a right one.
    pub(super) fn parse(text: &str) -> Result<NetPattern, String> {
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inner, port) = rest
                .split_once(']')
                .ok_or_else(|| format!("pattern {text:?} has no closing \"]\""))?;
            let port = port
                .strip_prefix(':')
                .ok_or_else(|| no_port(text, &format!("[{inner}]")))?;
            (bracketed(inner, text)?, port)
        } else {
            let (host, port) = text.rsplit_once(':').ok_or_else(|| no_port(text, text))?;
            if host.contains(':') {
                return Err(format!(
                    "pattern {text:?}: IPv6 addresses go in brackets, e.g. \"[{host}]:{port}\""
                ));
            }
            (plain_host(host, text)?, port)
        };
        Ok(NetPattern {
            host,
            ports: ports(port, text)?,
        })
    }

    fn allows_port(&self, port: u16) -> bool {
        (self.ports.0..=self.ports.1).contains(&port)
    }

    /// Whether this is an IP or CIDR pattern (the kind that may name private
    /// addresses without `allow-private`).
    pub(super) fn is_address(&self) -> bool {
        matches!(self.host, Host::Ip(_) | Host::Cidr(_))
    }

    /// Whether the host part is `*`.
    pub(super) fn is_any_host(&self) -> bool {
        self.host == Host::Any
    }

    /// Whether the port part is `*`.
    pub(super) fn allows_every_port(&self) -> bool {
        self.ports == (1, u16::MAX)
    }

    /// Whether the pattern could match `name` (normalized by [`normalize_name`]) on
    /// some port: `*`, `*.suffix` or the name itself.
    pub(super) fn could_name(&self, name: &str) -> bool {
        match &self.host {
            Host::Any => true,
            Host::Suffix(suffix) => under(name, suffix),
            Host::Name(n) => n == name,
            Host::Ip(_) | Host::Cidr(_) => false,
        }
    }

    /// Whether the pattern matches `name` (normalized) and `port`.
    pub(super) fn matches_name(&self, name: &str, port: u16) -> bool {
        self.allows_port(port) && self.could_name(name)
    }

    /// Whether the pattern matches the address `ip` and `port` (`*`, an IP or a CIDR).
    pub(super) fn matches_ip(&self, ip: IpAddr, port: u16) -> bool {
        self.allows_port(port)
            && match &self.host {
                Host::Any => true,
                Host::Ip(a) => *a == ip.to_canonical(),
                Host::Cidr(c) => c.contains(ip),
                Host::Suffix(_) | Host::Name(_) => false,
            }
    }

    /// Whether every (host, port) `other` matches, `self` matches too.
    pub(super) fn covers(&self, other: &NetPattern) -> bool {
        let ports = self.ports.0 <= other.ports.0 && other.ports.1 <= self.ports.1;
        ports && self.host_covers(other)
    }

    /// The intersection as one pattern's text, when one host covers the other
    /// (`*:80` and `10.0.0.0/8:*` meet in `10.0.0.0/8:80`); `None` otherwise or when
    /// the ports do not overlap. `text`s are the patterns as written.
    pub(super) fn meet(&self, other: &NetPattern, self_text: &str, other_text: &str) -> Option<String> {
        let (lo, hi) = (self.ports.0.max(other.ports.0), self.ports.1.min(other.ports.1));
        let narrower = match (self.host_covers(other), other.host_covers(self)) {
            (true, _) => other_text,
            (_, true) => self_text,
            _ => return None,
        };
        let (host, _) = narrower.rsplit_once(':')?;
        let port = match (lo, hi) {
            _ if lo > hi => return None,
            (1, u16::MAX) => "*".to_string(),
            _ if lo == hi => lo.to_string(),
            _ => format!("{lo}-{hi}"),
        };
        Some(format!("{host}:{port}"))
    }

    fn host_covers(&self, other: &NetPattern) -> bool {
        match (&self.host, &other.host) {
            (Host::Any, _) => true,
            (Host::Suffix(s), Host::Suffix(t)) => t == s || under(t, s),
            (Host::Suffix(s), Host::Name(t)) => under(t, s),
            (Host::Name(a), Host::Name(b)) => a == b,
            (Host::Ip(a), Host::Ip(b)) => a == b,
            (Host::Cidr(c), Host::Ip(b)) => c.contains(*b),
            (Host::Cidr(c), Host::Cidr(d)) => c.covers(d),
            _ => false,
        }
    }

    /// Whether nothing matches both (sound, not complete). A name and an address
    /// are never called disjoint: the name may resolve to the address.
    pub(super) fn disjoint(&self, other: &NetPattern) -> bool {
        let ports = self.ports.1 < other.ports.0 || other.ports.1 < self.ports.0;
        ports
            || match (&self.host, &other.host) {
                (Host::Name(a), Host::Name(b)) => a != b,
                (Host::Suffix(s), Host::Name(n)) | (Host::Name(n), Host::Suffix(s)) => !under(n, s),
                (Host::Suffix(s), Host::Suffix(t)) => s != t && !under(s, t) && !under(t, s),
                (Host::Ip(a), Host::Ip(b)) => a != b,
                (Host::Ip(a), Host::Cidr(c)) | (Host::Cidr(c), Host::Ip(a)) => !c.contains(*a),
                (Host::Cidr(c), Host::Cidr(d)) => c.disjoint(d),
                _ => false,
            }
    }
}

/// Whether `name` lies strictly under `suffix` (`a.example.com` under `example.com`).
fn under(name: &str, suffix: &str) -> bool {
    name.strip_suffix(suffix).is_some_and(|head| head.ends_with('.'))
}

/// A name as patterns compare it: lowercase, without a trailing dot.
pub(super) fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

fn no_port(text: &str, host: &str) -> String {
    format!("pattern {text:?} has no port; write \"{host}:443\", or \"{host}:*\" for every port")
}

/// The inside of `[...]`: an IPv6 address or block.
fn bracketed(inner: &str, text: &str) -> Result<Host, String> {
    if inner.contains('/') {
        let cidr = Cidr::parse(inner).map_err(|e| format!("pattern {text:?}: {e}"))?;
        return match inner.split_once('/').map(|(a, _)| a.parse::<Ipv6Addr>()) {
            Some(Ok(_)) => Ok(Host::Cidr(cidr)),
            _ => Err(format!(
                "pattern {text:?}: brackets are for IPv6; write IPv4 blocks without them"
            )),
        };
    }
    match inner.parse::<Ipv6Addr>() {
        Ok(ip) => Ok(Host::Ip(IpAddr::V6(ip).to_canonical())),
        Err(_) if inner.parse::<Ipv4Addr>().is_ok() => Err(format!(
            "pattern {text:?}: brackets are for IPv6; write IPv4 addresses without them"
        )),
        Err(_) => Err(format!(
            "pattern {text:?}: {inner:?} is not an IPv6 address; {EXAMPLES}"
        )),
    }
}

/// A host outside brackets: `*`, `*.suffix`, an IPv4 address or block, or a name.
fn plain_host(host: &str, text: &str) -> Result<Host, String> {
    if host == "*" {
        return Ok(Host::Any);
    }
    if let Some(suffix) = host.strip_prefix("*.") {
        return match dns_name(suffix) {
            Some(suffix) => Ok(Host::Suffix(suffix)),
            None => Err(format!(
                "pattern {text:?}: {suffix:?} after \"*.\" is not a DNS name; {EXAMPLES}"
            )),
        };
    }
    if host.contains('*') {
        return Err(format!(
            "pattern {text:?}: \"*\" is either the whole host (\"*:443\") or starts it as \"*.\" \
             (\"*.example.com:443\")"
        ));
    }
    if host.contains('/') {
        let cidr = Cidr::parse(host).map_err(|e| format!("pattern {text:?}: {e}"))?;
        return Ok(Host::Cidr(cidr));
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    dns_name(host).map(Host::Name).ok_or_else(|| {
        format!("pattern {text:?}: host {host:?} is not a DNS name, an IP address or a CIDR; {EXAMPLES}")
    })
}

/// A valid DNS name, normalized; `None` otherwise. A name whose last label is all
/// digits is refused: it is a mistyped IPv4 address (`10.0.0.256`).
fn dns_name(host: &str) -> Option<String> {
    let name = normalize_name(host);
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let numeric = labels.last().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    (name.len() <= 253 && labels.iter().all(label_ok) && !numeric).then_some(name)
}

/// `*`, `N` or `A-B`.
fn ports(port: &str, text: &str) -> Result<(u16, u16), String> {
    let number = |p: &str| match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "pattern {text:?}: port {p:?} is not a port number (1-65535); write e.g. \"example.com:443\", \
             \"example.com:8000-8999\" or \"example.com:*\""
        )),
    };
    if port == "*" {
        return Ok((1, u16::MAX));
    }
    let Some((lo, hi)) = port.split_once('-') else {
        let n = number(port)?;
        return Ok((n, n));
    };
    let (lo, hi) = (number(lo)?, number(hi)?);
    if lo > hi {
        return Err(format!(
            "pattern {text:?}: port range {port:?} runs backwards; write \"{hi}-{lo}\""
        ));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests;
