//! Whether an address is this machine's own: every address of a local interface, v4 and v6, and anything the kernel
//! routes to this machine (the `local` routing table: `ip route add local 198.51.100.0/24 dev lo` makes a whole range
//! ours). The network grant treats these like private addresses: a `*:PORT` grant must not reach a service the
//! worker itself listens on (`0.0.0.0:PORT`) through the machine's public address.
//!
//! Owns the question only. The kernel answers it exactly: binding a socket to an address succeeds only for an address
//! that is local (or with `ip_nonlocal_bind`, for any: then every address counts as ours, the safe side).

use std::net::{IpAddr, SocketAddr, UdpSocket};

/// True when `ip` reaches this machine: unspecified, loopback, or an address the kernel would accept as a local one.
pub fn is_own_address(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    if ip.is_unspecified() || ip.is_loopback() {
        return true;
    }
    if ip.is_multicast() {
        return false;
    }
    // EADDRNOTAVAIL: not ours. Anything else (EACCES, no IPv6 here): not a local address we could bind either.
    UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machines_addresses_are_its_own_and_others_are_not() {
        assert!(is_own_address("127.0.0.1".parse().unwrap()));
        assert!(
            is_own_address("127.8.9.10".parse().unwrap()),
            "all of 127/8 is routed here"
        );
        assert!(is_own_address("0.0.0.0".parse().unwrap()));
        assert!(is_own_address("::ffff:127.0.0.1".parse().unwrap()));
        // TEST-NET-3 is nobody's (unless this machine routes it to itself, which it does not).
        assert!(!is_own_address("203.0.113.77".parse().unwrap()));
        // Every address of an interface here (the first non-loopback one the kernel picks for an outbound route).
        if let Ok(s) = UdpSocket::bind("0.0.0.0:0")
            && s.connect("203.0.113.77:9").is_ok()
            && let Ok(local) = s.local_addr()
        {
            assert!(is_own_address(local.ip()), "{local} is this machine's");
        }
    }
}
