//! The network policy: with `*:*` requested and granted (what an operator grants
//! an engine that fetches from the internet), no address that is private, loopback,
//! link-local, unique-local, mapped or NAT64-wrapped onto one of those, nor one of
//! the worker's own, is ever allowed, whether given as an address or as what a name
//! resolved to, by an engine or through its tasks' proxy. The private ranges are written out here again, independently of the
//! policy's own table. Input: 16 address bytes, 2 port bytes, 1 flag byte, then a
//! pattern string that must parse or be refused without a panic.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use enginehost_core::policy::{Capabilities, OperatorConfig, Policy};
use libfuzzer_sys::fuzz_target;

fn wide_open() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let config = OperatorConfig::parse(
            "[plugins.net.network]\nconnect = [\"*:*\"]\n\
             [plugins.net.process]\nnetwork = { connect = [\"*:*\"] }\n",
        )
        .unwrap();
        let requested =
            Capabilities::from_plugin_toml("[network]\nconnect = [\"*:*\"]\n[process]\nnetwork = \"host\"\n").unwrap();
        Policy::new("net", "1.0.0", requested, config.grants("net"))
    })
}

/// Written from the RFCs (1112, 1918, 2544, 3927, 4193, 4291, 6052, 6598, 6890), not from the policy's code.
fn reference_private(ip: IpAddr) -> bool {
    fn v4(a: Ipv4Addr) -> bool {
        let [a0, a1, ..] = a.octets();
        a0 == 0
            || a0 == 10
            || a0 == 127
            || (a0 == 169 && a1 == 254)
            || (a0 == 172 && (16..32).contains(&a1))
            || (a0 == 192 && a1 == 168)
            || (a0 == 100 && (64..128).contains(&a1))
            || (a0 == 192 && a1 == 0 && a.octets()[2] == 0)
            || (a0 == 198 && (a1 == 18 || a1 == 19))
            || a0 >= 224
    }
    match ip {
        IpAddr::V4(a) => v4(a),
        IpAddr::V6(a) => {
            let s = a.segments();
            if let Some(mapped) = a.to_ipv4_mapped() {
                return v4(mapped);
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return v4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ));
            }
            a.is_loopback()
                || a.is_unspecified()
                || s[0] >= 0xff00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xfe00) == 0xfc00
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 19 {
        return;
    }
    let bytes: [u8; 16] = data[..16].try_into().unwrap();
    let port = u16::from_be_bytes([data[16], data[17]]);
    let flags = data[18];
    let ip = if flags & 1 == 0 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(bytes))
    };
    let own = flags & 2 != 0;
    let policy = wide_open();
    if reference_private(ip) || own {
        assert!(
            policy.connect_ip(ip, port, own).is_err(),
            "{ip}:{port} (own: {own}) was allowed"
        );
        assert!(
            policy.connect_name("example.com", ip, port, own).is_err(),
            "example.com resolving to {ip}:{port} (own: {own}) was allowed"
        );
        // The same for the task network's proxy.
        let task = policy.task_net();
        assert!(
            task.connect_ip(ip, port, own).is_err(),
            "a task reached {ip}:{port} (own: {own})"
        );
        assert!(
            task.connect_name("example.com", ip, port, own).is_err(),
            "a task reached example.com resolving to {ip}:{port} (own: {own})"
        );
    }
    // Any pattern an operator or a plugin writes: parsed or refused, and then used.
    if let Ok(pattern) = std::str::from_utf8(&data[19..]) {
        let quoted = serde_json::to_string(pattern).unwrap();
        let requested = Capabilities::from_plugin_toml(&format!("[network]\nconnect = [{quoted}]\n"));
        let granted = OperatorConfig::parse(&format!("[plugins.net.network]\nconnect = [{quoted}]\n"));
        if let (Ok(requested), Ok(granted)) = (requested, granted) {
            let policy = Policy::new("net", "1.0.0", requested, granted.grants("net"));
            let _ = policy.connect_ip(ip, port, own);
            let _ = policy.lookup_name(pattern);
            let _ = policy.connect_name(pattern, ip, port, own);
            let _ = policy.describe();
        }
    }
});
