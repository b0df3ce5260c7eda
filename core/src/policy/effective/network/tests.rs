//! Network checks: the private-address rule and its exceptions, names resolved to
//! addresses, lookups.

use super::super::tests::policy;
use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

const NOT_REQUESTED: &str = "not requested by plugin native 0.1.0 (capabilities.toml)";
const ANY: &str = "[network]\nconnect = [\"*:*\"]";

#[test]
fn switches_need_both_sides() {
    assert!(policy(ANY, ANY).network_enabled());
    assert!(!policy(ANY, "").network_enabled());
    assert!(!policy("", ANY).network_enabled());
    assert!(!policy("[network]", "[network]\nallow-private = true").network_enabled());
}

#[test]
fn private_addresses_need_an_address_grant() {
    let grants = [
        ("*:*", "10.1.2.3", 80, false),
        ("*:*", "127.0.0.1", 8080, false),
        ("*:*", "169.254.169.254", 80, false),
        ("*:*", "::1", 80, false),
        ("*:*", "fd00::1", 443, false),
        ("*:*", "::ffff:10.1.2.3", 80, false),
        ("*:*", "93.184.215.14", 443, true),
        ("*:*", "2606:4700::1111", 443, true),
        ("10.0.0.0/8:*", "10.1.2.3", 80, true),
        ("10.0.0.0/8:*", "::ffff:10.1.2.3", 80, true),
        ("10.1.2.3:80", "10.1.2.3", 80, true),
        ("10.1.2.3:80", "10.1.2.3", 81, false),
        ("[fd00::/8]:443", "fd00::1", 443, true),
        ("[::1]:8080", "::1", 8080, true),
        ("127.0.0.1:8080", "127.0.0.1", 8080, true),
        ("example.com:443", "93.184.215.14", 443, false),
    ];
    for (pattern, addr, port, want) in grants {
        let p = policy(ANY, &format!("[network]\nconnect = [{pattern:?}]"));
        assert_eq!(
            p.connect_ip(ip(addr), port, false).is_ok(),
            want,
            "{pattern} grants {addr}:{port}"
        );
    }
    let open = policy(ANY, "[network]\nconnect = [\"*:*\"]\nallow-private = true");
    for addr in ["10.1.2.3", "127.0.0.1", "fd00::1", "169.254.169.254"] {
        assert!(
            open.connect_ip(ip(addr), 80, false).is_ok(),
            "allow-private lets {addr} through"
        );
    }
}

#[test]
fn the_request_side_matches_by_pattern_only() {
    // The request's `*` covers private addresses; the grant's CIDR allows them.
    let p = policy(ANY, "[network]\nconnect = [\"10.0.0.0/8:5432\"]");
    assert!(p.connect_ip(ip("10.1.2.3"), 5432, false).is_ok());
    let p = policy("[network]\nconnect = [\"example.com:443\"]", ANY);
    assert_eq!(
        p.connect_ip(ip("93.184.215.14"), 443, false).unwrap_err().message,
        format!("network.connect \"93.184.215.14:443\": {NOT_REQUESTED}")
    );
}

#[test]
fn private_denials_say_how_to_grant() {
    let p = policy(ANY, "[network]\nconnect = [\"*:*\"]");
    let denied = p.connect_ip(ip("10.1.2.3"), 80, false).unwrap_err();
    assert_eq!(denied.grant_key, "plugins.native.network.connect");
    assert_eq!(denied.request, "10.1.2.3:80");
    assert_eq!(
        denied.message,
        "network.connect \"10.1.2.3:80\": 10.1.2.3 is a private address; grant it by IP or CIDR (e.g. \
         \"10.1.2.3:80\") in [plugins.native.network] connect, or set allow-private = true"
    );
    assert_eq!(
        p.connect_ip(ip("fd00::1"), 443, false).unwrap_err().message,
        "network.connect \"[fd00::1]:443\": fd00::1 is a private address; grant it by IP or CIDR (e.g. \
         \"[fd00::1]:443\") in [plugins.native.network] connect, or set allow-private = true"
    );
    let p = policy(ANY, "[network]\nconnect = [\"db.internal:5432\"]");
    assert_eq!(
        p.connect_name("db.internal", ip("10.1.2.3"), 5432, false)
            .unwrap_err()
            .message,
        "network.connect \"db.internal:5432\": db.internal resolved to 10.1.2.3, a private address; grant it by \
         IP or CIDR (e.g. \"10.1.2.3:5432\") in [plugins.native.network] connect, or set allow-private = true"
    );
    // Not a private-rule refusal when no pattern matched at all.
    assert_eq!(
        p.connect_name("db.internal", ip("10.1.2.3"), 5433, false)
            .unwrap_err()
            .message,
        "network.connect \"db.internal:5433\": not granted; add a matching pattern to [plugins.native.network] \
         connect"
    );
}

#[test]
fn names_connect_by_name_or_by_address_on_each_side() {
    let public = ip("93.184.215.14");
    let cases = [
        // (request, grant, name, ip, port, allowed)
        ("example.com:443", "example.com:443", "example.com", public, 443, true),
        ("example.com:443", "example.com:443", "Example.COM.", public, 443, true),
        ("example.com:443", "example.com:443", "example.com", public, 80, false),
        ("*:443", "*.example.com:443", "api.example.com", public, 443, true),
        ("*:443", "*.example.com:443", "example.com", public, 443, false),
        ("*.example.com:443", "*:443", "example.com", public, 443, false),
        // A side may allow by address instead: the plugin names the host, the operator the block.
        ("example.com:443", "93.184.0.0/16:443", "example.com", public, 443, true),
        ("93.184.0.0/16:443", "example.com:443", "example.com", public, 443, true),
        // Private resolved addresses: a name grant is not enough, an address grant or allow-private is.
        (
            "db.internal:5432",
            "db.internal:5432",
            "db.internal",
            ip("10.1.2.3"),
            5432,
            false,
        ),
        (
            "db.internal:5432",
            "10.0.0.0/8:5432",
            "db.internal",
            ip("10.1.2.3"),
            5432,
            true,
        ),
        ("*:*", "*:*", "localhost", ip("127.0.0.1"), 80, false),
    ];
    for (request, granted, name, addr, port, want) in cases {
        let p = policy(
            &format!("[network]\nconnect = [{request:?}]"),
            &format!("[network]\nconnect = [{granted:?}]"),
        );
        let got = p.connect_name(name, addr, port, false);
        assert_eq!(
            got.is_ok(),
            want,
            "{request} ∩ {granted}: {name} ({addr}) port {port}: {got:?}"
        );
    }
    let open = policy(
        "[network]\nconnect = [\"db.internal:5432\"]",
        "[network]\nconnect = [\"db.internal:5432\"]\nallow-private = true",
    );
    assert!(open.connect_name("db.internal", ip("10.1.2.3"), 5432, false).is_ok());
    let p = policy(
        "[network]\nconnect = [\"other.org:443\"]",
        "[network]\nconnect = [\"*:443\"]",
    );
    assert_eq!(
        p.connect_name("example.com", public, 443, false).unwrap_err().message,
        format!("network.connect \"example.com:443\": {NOT_REQUESTED}")
    );
}

#[test]
fn lookups_need_a_name_pattern_on_each_side() {
    let cases = [
        ("*:*", "*:443", "example.com", true),
        ("*:*", "*.example.com:443", "api.example.com", true),
        ("*:*", "*.example.com:443", "API.Example.COM.", true),
        ("*:*", "*.example.com:443", "example.com", false),
        ("*:*", "example.com:443", "example.com", true),
        ("*:*", "10.0.0.0/8:*", "example.com", false),
        ("*:*", "[fd00::/8]:*", "db.internal", false),
        ("example.com:443", "*:*", "example.com", true),
        ("example.com:443", "*:*", "other.org", false),
        ("10.0.0.0/8:443", "*:*", "example.com", false),
    ];
    for (request, granted, name, want) in cases {
        let p = policy(
            &format!("[network]\nconnect = [{request:?}]"),
            &format!("[network]\nconnect = [{granted:?}]"),
        );
        assert_eq!(
            p.lookup_name(name).is_ok(),
            want,
            "{request} ∩ {granted}: lookup {name}"
        );
    }
    let p = policy(ANY, "[network]\nconnect = [\"10.0.0.0/8:*\"]");
    let denied = p.lookup_name("example.com").unwrap_err();
    assert_eq!(denied.capability, "network.lookup");
    assert_eq!(denied.grant_key, "plugins.native.network.connect");
    assert_eq!(
        denied.message,
        "network.lookup \"example.com\": not granted; add a matching pattern to [plugins.native.network] connect"
    );
    let p = policy("[network]\nconnect = [\"10.0.0.0/8:*\"]", ANY);
    assert_eq!(
        p.lookup_name("example.com").unwrap_err().message,
        format!("network.lookup \"example.com\": {NOT_REQUESTED}")
    );
}

#[test]
fn the_workers_own_addresses_are_not_public() {
    // 192.0.2.5 stands for a public address that is also one of this worker's own.
    let own = ip("192.0.2.5");
    let p = policy(ANY, ANY);
    assert!(p.connect_ip(own, 8080, false).is_ok(), "someone else's public address");
    let e = p.connect_ip(own, 8080, true).unwrap_err();
    assert!(
        e.message.contains("192.0.2.5 is this worker's own address"),
        "{}",
        e.message
    );
    assert!(e.message.contains("grant it by IP or CIDR"), "{}", e.message);
    let e = p.connect_name("me.example", own, 8080, true).unwrap_err();
    assert!(
        e.message.contains("resolved to 192.0.2.5, this worker's own address"),
        "{}",
        e.message
    );
    // Named as such, or with allow-private, it is reachable.
    let by_ip = policy(ANY, "[network]\nconnect = [\"192.0.2.5:8080\"]");
    assert!(by_ip.connect_ip(own, 8080, true).is_ok());
    let open = policy(ANY, "[network]\nconnect = [\"*:*\"]\nallow-private = true");
    assert!(open.connect_ip(own, 8080, true).is_ok());
    assert!(open.connect_name("me.example", own, 8080, true).is_ok());
}

const TASK_HOST: &str = "[process]\nnetwork = \"host\"";
const TASK_CONNECT: &str = "[process]\nnetwork = { connect = [\"example.com:443\", \"10.0.0.0/8:*\"] }";

#[test]
fn the_task_network_is_the_workers_only_when_both_sides_say_host() {
    use crate::policy::TaskEgress;
    assert_eq!(policy(TASK_HOST, TASK_HOST).task_network(), TaskEgress::Host);
    assert_eq!(policy(TASK_HOST, "").task_network(), TaskEgress::None);
    assert_eq!(policy("", TASK_HOST).task_network(), TaskEgress::None);
    assert_eq!(policy("", TASK_CONNECT).task_network(), TaskEgress::None);
    assert_eq!(policy(TASK_HOST, TASK_CONNECT).task_network(), TaskEgress::Proxy);
    assert_eq!(policy(TASK_CONNECT, TASK_HOST).task_network(), TaskEgress::Proxy);
    assert_eq!(policy(TASK_CONNECT, TASK_CONNECT).task_network(), TaskEgress::Proxy);
}

#[test]
fn the_task_proxy_reaches_only_what_both_sides_list() {
    let p = policy(TASK_HOST, TASK_CONNECT);
    assert!(p.task_net().lookup_name("example.com").is_ok());
    assert!(
        p.task_net()
            .connect_name("example.com", ip("93.184.215.14"), 443, false)
            .is_ok()
    );
    assert!(
        p.task_net().connect_ip(ip("10.1.2.3"), 22, false).is_ok(),
        "a CIDR names private addresses"
    );
    let d = p
        .task_net()
        .connect_name("example.com", ip("93.184.215.14"), 80, false)
        .unwrap_err();
    assert_eq!(d.grant_key, "plugins.native.process.network.connect");
    assert_eq!(
        d.message,
        "process.network.connect \"example.com:80\": not granted; add a matching pattern to \
         [plugins.native.process] network.connect"
    );
    let d = p.task_net().lookup_name("evil.example").unwrap_err();
    assert_eq!(d.grant_key, "plugins.native.process.network.connect");
    // A name that resolves to a private or the worker's own address needs an address grant.
    for (addr, own, kind) in [
        ("127.0.0.1", false, "a private address"),
        ("203.0.113.9", true, "this worker's own address"),
    ] {
        let d = p
            .task_net()
            .connect_name("example.com", ip(addr), 443, own)
            .unwrap_err();
        assert_eq!(
            d.message,
            format!(
                "process.network.connect \"example.com:443\": example.com resolved to {addr}, {kind}; grant it \
                 by IP or CIDR (e.g. \"{addr}:443\") in [plugins.native.process] network.connect"
            )
        );
    }
    // The request side narrows a wider grant.
    let p = policy(TASK_CONNECT, "[process]\nnetwork = { connect = [\"*:*\"] }");
    let d = p
        .task_net()
        .connect_name("other.org", ip("93.184.215.14"), 443, false)
        .unwrap_err();
    assert!(d.message.ends_with(NOT_REQUESTED), "{}", d.message);
    // Neither the plugin's own sockets nor a "none" side get anything from it.
    let p = policy(TASK_HOST, TASK_CONNECT);
    assert!(p.connect_ip(ip("10.1.2.3"), 22, false).is_err());
    let p = policy("", TASK_CONNECT);
    assert!(p.task_net().connect_ip(ip("10.1.2.3"), 22, false).is_err());
}
