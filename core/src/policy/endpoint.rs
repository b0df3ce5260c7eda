//! `endpoint.listen` patterns, where a task's endpoint (the per-task HTTP server)
//! may listen:
//! - `sandbox:*` (a socket at the top of the task's sandbox directory) or
//!   `sandbox:<path>`, as for `unix-sockets.connect`;
//! - `ADDRESS:PORT`: ADDRESS `*` (any local address), an IPv4 address, `[IPv6]` or a
//!   CIDR (`172.16.0.0/12`, the blocks docker gives its networks); PORT `*`, `N` or
//!   `A-B`. No names: the host binds addresses. Port 0 (any free port) is allowed
//!   only by a pattern whose port is `*`.
//!
//! Also [`Peers`], the engine's own filter of who may connect to a TCP endpoint.

use std::net::IpAddr;

use super::addr::Cidr;
use super::net::NetPattern;
use super::unix_socket::SocketPattern;

/// A parsed `endpoint.listen` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ListenPattern {
    /// `sandbox:*` or `sandbox:<path>`.
    Socket(SocketPattern),
    /// `ADDRESS:PORT`.
    Tcp(NetPattern),
}

impl ListenPattern {
    /// Parses a pattern; the error says what is wrong and shows a right one.
    pub(super) fn parse(text: &str) -> Result<ListenPattern, String> {
        if text.starts_with("sandbox:") {
            return match SocketPattern::parse(text)? {
                p @ (SocketPattern::SandboxAny | SocketPattern::Sandbox(_)) => Ok(ListenPattern::Socket(p)),
                _ => Err(format!(
                    "pattern {text:?} names no socket in the sandbox, e.g. \"sandbox:meta.sock\""
                )),
            };
        }
        if text.starts_with('/') {
            return Err(format!(
                "pattern {text:?}: an endpoint's unix socket lives in the task's sandbox; write \"sandbox:*\" or \
                 \"sandbox:meta.sock\""
            ));
        }
        let pattern = NetPattern::parse(text)?;
        if !pattern.is_address() && !pattern.is_any_host() {
            return Err(format!(
                "pattern {text:?}: an endpoint listens on addresses, not names; write an IP or a CIDR, e.g. \
                 \"172.16.0.0/12:80\" or \"127.0.0.1:*\""
            ));
        }
        Ok(ListenPattern::Tcp(pattern))
    }

    /// Whether the pattern allows a socket at `rel` in the sandbox (normalized).
    pub(super) fn matches_sandbox(&self, rel: &str) -> bool {
        matches!(self, ListenPattern::Socket(p) if p.matches_sandbox(rel))
    }

    /// Whether the pattern allows listening on `ip:port` (port 0: any free port).
    pub(super) fn matches_tcp(&self, ip: IpAddr, port: u16) -> bool {
        let ListenPattern::Tcp(p) = self else { return false };
        if port == 0 {
            return p.allows_every_port() && p.matches_ip(ip, 1);
        }
        p.matches_ip(ip, port)
    }

    /// Whether everything `other` allows, `self` allows too.
    pub(super) fn covers(&self, other: &ListenPattern) -> bool {
        match (self, other) {
            (ListenPattern::Socket(a), ListenPattern::Socket(b)) => a.covers(b),
            (ListenPattern::Tcp(a), ListenPattern::Tcp(b)) => a.covers(b),
            _ => false,
        }
    }

    /// Whether nothing is allowed by both (sound, not complete).
    pub(super) fn disjoint(&self, other: &ListenPattern) -> bool {
        match (self, other) {
            (ListenPattern::Socket(a), ListenPattern::Socket(b)) => !a.covers(b) && !b.covers(a),
            (ListenPattern::Tcp(a), ListenPattern::Tcp(b)) => a.disjoint(b),
            _ => true,
        }
    }
}

/// Who may connect to a TCP endpoint: addresses and blocks (`172.18.0.0/16`,
/// `10.0.0.5`, `[fd00::/8]`); empty = anyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peers(Vec<Cidr>);

impl Peers {
    /// Parses the engine's list; the error names the bad entry.
    ///
    /// # Errors
    /// An entry that is not an IP address or a CIDR.
    pub fn parse(list: &[String]) -> Result<Peers, String> {
        let one = |text: &String| {
            let inner = text.trim_start_matches('[').trim_end_matches(']');
            if inner.contains('/') {
                return Cidr::parse(inner);
            }
            let ip: IpAddr = inner
                .parse()
                .map_err(|_| format!("peer {text:?} is not an IP address or a CIDR, e.g. \"172.18.0.0/16\""))?;
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            Cidr::parse(&format!("{ip}/{bits}"))
        };
        list.iter().map(one).collect::<Result<_, _>>().map(Peers)
    }

    /// Whether `ip` may connect.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|c| c.contains(ip.to_canonical()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> ListenPattern {
        ListenPattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn patterns_name_sandbox_sockets_or_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(pattern("sandbox:*").matches_sandbox("meta.sock"));
        assert!(!pattern("sandbox:*").matches_sandbox("vm/meta.sock"));
        assert!(pattern("sandbox:vm/meta.sock").matches_sandbox("vm/meta.sock"));
        assert!(!pattern("sandbox:*").matches_tcp(ip("127.0.0.1"), 80));
        assert!(pattern("172.16.0.0/12:80").matches_tcp(ip("172.18.0.1"), 80));
        assert!(!pattern("172.16.0.0/12:80").matches_tcp(ip("172.18.0.1"), 81));
        assert!(!pattern("172.16.0.0/12:80").matches_tcp(ip("10.0.0.1"), 80));
        assert!(pattern("*:80").matches_tcp(ip("10.0.0.1"), 80));
        assert!(pattern("[::1]:8080").matches_tcp(ip("::1"), 8080));
        assert!(!pattern("172.16.0.0/12:80").matches_sandbox("meta.sock"));
    }

    #[test]
    fn port_zero_needs_every_port() {
        let lo = "127.0.0.1".parse().unwrap();
        assert!(pattern("127.0.0.1:*").matches_tcp(lo, 0));
        assert!(!pattern("127.0.0.1:80").matches_tcp(lo, 0));
        assert!(!pattern("127.0.0.1:1-1000").matches_tcp(lo, 0));
    }

    #[test]
    fn bad_patterns_say_what_would_be_right() {
        let cases = [
            (
                "example.com:80",
                r#"pattern "example.com:80": an endpoint listens on addresses, not names; write an IP or a CIDR, e.g. "172.16.0.0/12:80" or "127.0.0.1:*""#,
            ),
            (
                "/run/meta.sock",
                r#"pattern "/run/meta.sock": an endpoint's unix socket lives in the task's sandbox; write "sandbox:*" or "sandbox:meta.sock""#,
            ),
            (
                "10.0.0.1",
                r#"pattern "10.0.0.1" has no port; write "10.0.0.1:443", or "10.0.0.1:*" for every port"#,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(ListenPattern::parse(text), Err(want.to_string()), "{text}");
        }
    }

    #[test]
    fn coverage_for_the_effective_list() {
        assert!(pattern("*:80").covers(&pattern("172.16.0.0/12:80")));
        assert!(!pattern("172.16.0.0/12:80").covers(&pattern("*:80")));
        assert!(pattern("sandbox:*").covers(&pattern("sandbox:meta.sock")));
        assert!(pattern("sandbox:*").disjoint(&pattern("*:80")));
        assert!(pattern("10.0.0.0/8:80").disjoint(&pattern("172.16.0.0/12:80")));
    }

    #[test]
    fn peers_are_addresses_and_blocks() {
        let peers = Peers::parse(&["172.18.0.0/16".into(), "10.0.0.5".into()]).unwrap();
        assert!(peers.allows("172.18.3.4".parse().unwrap()));
        assert!(peers.allows("10.0.0.5".parse().unwrap()));
        assert!(peers.allows("::ffff:172.18.0.9".parse().unwrap()));
        assert!(!peers.allows("10.0.0.6".parse().unwrap()));
        assert!(Peers::default().allows("8.8.8.8".parse().unwrap()));
        assert_eq!(
            Peers::parse(&["docker".into()]),
            Err("peer \"docker\" is not an IP address or a CIDR, e.g. \"172.18.0.0/16\"".into())
        );
    }
}
