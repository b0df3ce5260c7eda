//! IP addresses for `network.connect`: CIDR blocks (hand-written; two masks do not
//! need a crate) and the "private" classification behind `allow-private`.
//!
//! Private, i.e. reachable only by an IP/CIDR grant or `allow-private = true`:
//! loopback, "this network" (0.0.0.0/8), RFC 1918, CGNAT (100.64.0.0/10), link-local
//! (169.254.0.0/16, fe80::/10), unique-local (fc00::/7), deprecated site-local
//! (fec0::/10), unspecified, broadcast and multicast; IPv4-mapped (`::ffff:a.b.c.d`)
//! and NAT64 (`64:ff9b::a.b.c.d`) forms of private IPv4 addresses too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address block: `10.0.0.0/8`, `fd00::/8`. IPv4-mapped IPv6 blocks of /96 or
/// longer are kept as IPv4, as addresses are compared in canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX`; the address must have no bits set after the prefix.
    pub(super) fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a CIDR (ADDR/PREFIX)"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{addr:?} in CIDR {text:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = match prefix.parse() {
            Ok(p) if p <= max => p,
            _ => {
                return Err(format!(
                    "prefix {prefix:?} in CIDR {text:?} is not a number from 0 to {max}"
                ));
            }
        };
        let cidr = Cidr { addr, prefix };
        if cidr.network() != addr {
            let (network, prefix) = (cidr.network(), cidr.prefix);
            return Err(format!(
                "CIDR {text:?} has bits set after the prefix; write \"{network}/{prefix}\""
            ));
        }
        Ok(match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Cidr {
                    addr: IpAddr::V4(v4),
                    prefix: prefix - 96,
                },
                None => cidr,
            },
            _ => cidr,
        })
    }

    /// The block's first address.
    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from_bits(a.to_bits() & mask32(self.prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from_bits(a.to_bits() & mask128(self.prefix))),
        }
    }

    /// Whether `ip` lies in the block (compared in canonical form).
    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => ip.to_bits() & mask32(self.prefix) == net.to_bits(),
            (IpAddr::V6(net), IpAddr::V6(ip)) => ip.to_bits() & mask128(self.prefix) == net.to_bits(),
            _ => false,
        }
    }

    /// Whether every address of `other` lies in this block.
    pub(super) fn covers(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// Whether the two blocks share no address.
    pub(super) fn disjoint(&self, other: &Cidr) -> bool {
        !self.covers(other) && !other.covers(self)
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// Whether `ip` is private in the sense of `allow-private` (see the module doc).
pub(super) fn is_private(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            let nat64 = Cidr {
                addr: IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0)),
                prefix: 96,
            };
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || first & 0xffc0 == 0xfe80 // link-local
                || first & 0xffc0 == 0xfec0 // site-local (deprecated)
                || first & 0xfe00 == 0xfc00 // unique-local
                || (nat64.contains(ip) && private_v4(Ipv4Addr::from_bits(v6.to_bits() as u32)))
        }
    }
}

fn private_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_broadcast()
        || v4.is_multicast()
        || a == 0 // "this network", 0.0.0.0 included
        || (a == 100 && b & 0xc0 == 64) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments 192.0.0.0/24
        || (a == 198 && b & 0xfe == 18) // benchmarking 198.18.0.0/15, often used inside networks
        || a >= 240 // reserved 240.0.0.0/4 (never public), the broadcast address included
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_strictly() {
        let cases = [
            ("10.0.0.0/8", Ok(())),
            ("0.0.0.0/0", Ok(())),
            ("fd00::/8", Ok(())),
            (
                "10.1.2.3/8",
                Err(r#"CIDR "10.1.2.3/8" has bits set after the prefix; write "10.0.0.0/8""#),
            ),
            (
                "10.0.0.0/33",
                Err(r#"prefix "33" in CIDR "10.0.0.0/33" is not a number from 0 to 32"#),
            ),
            (
                "fd00::/x",
                Err(r#"prefix "x" in CIDR "fd00::/x" is not a number from 0 to 128"#),
            ),
            ("10.0.0/8", Err(r#""10.0.0" in CIDR "10.0.0/8" is not an IP address"#)),
        ];
        for (text, want) in cases {
            assert_eq!(Cidr::parse(text).map(|_| ()), want.map_err(str::to_string), "{text}");
        }
    }

    #[test]
    fn cidrs_contain_and_cover() {
        let net = |t: &str| Cidr::parse(t).unwrap();
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        let cases = [
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.0.0.0/8", "::ffff:10.1.2.3", true),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::ffff:10.0.0.0/104", "10.9.9.9", true),
            ("192.0.2.7/32", "192.0.2.7", true),
            ("192.0.2.7/32", "192.0.2.8", false),
        ];
        for (block, addr, want) in cases {
            assert_eq!(net(block).contains(ip(addr)), want, "{block} contains {addr}");
        }
        assert!(net("10.0.0.0/8").covers(&net("10.1.0.0/16")));
        assert!(!net("10.1.0.0/16").covers(&net("10.0.0.0/8")));
        assert!(net("10.0.0.0/8").disjoint(&net("192.168.0.0/16")));
        assert!(net("10.0.0.0/8").disjoint(&net("fd00::/8")));
        assert!(!net("10.0.0.0/8").disjoint(&net("10.1.0.0/16")));
    }

    #[test]
    fn private_addresses() {
        let private = [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "255.0.155.0",
            "192.0.0.170",
            "198.18.0.1",
            "198.19.255.255",
            "::ffff:250.1.2.3",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::10.0.0.1",
        ];
        let public = [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "100.63.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "192.0.2.1",
            "2001:db8::1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
        ];
        for ip in private {
            assert!(is_private(ip.parse().unwrap()), "{ip} is private");
        }
        for ip in public {
            assert!(!is_private(ip.parse().unwrap()), "{ip} is public");
        }
    }
}
