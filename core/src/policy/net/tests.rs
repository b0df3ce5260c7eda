//! Table tests for `network.connect` patterns: parsing, name and address
//! matching, coverage.

use super::*;

fn pattern(text: &str) -> NetPattern {
    NetPattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn good_patterns_parse() {
    for text in [
        "*:*",
        "*:443",
        "example.com:443",
        "Example.COM.:443",
        "*.example.com:80-89",
        "10.1.2.3:80",
        "10.0.0.0/8:*",
        "[::1]:8080",
        "[fd00::/8]:443",
        "[::ffff:10.0.0.1]:80",
        "my_host-1.internal:1",
        "localhost:65535",
    ] {
        pattern(text);
    }
    assert_eq!(pattern("Example.COM.:443"), pattern("example.com:443"));
    assert_eq!(pattern("[::ffff:10.0.0.1]:80"), pattern("10.0.0.1:80"));
}

#[test]
fn bad_patterns_say_what_would_be_right() {
    let examples = r#"e.g. "example.com:443", "*.example.com:443", "10.0.0.0/8:443" or "[fd00::/8]:443""#;
    let port_hint = r#"write e.g. "example.com:443", "example.com:8000-8999" or "example.com:*""#;
    let cases = [
        ("example.com", r#"pattern "example.com" has no port; write "example.com:443", or "example.com:*" for every port"#.to_string()),
        ("[::1]", r#"pattern "[::1]" has no port; write "[::1]:443", or "[::1]:*" for every port"#.to_string()),
        ("fd00::1:443", r#"pattern "fd00::1:443": IPv6 addresses go in brackets, e.g. "[fd00::1]:443""#.to_string()),
        ("example.com:0", format!(r#"pattern "example.com:0": port "0" is not a port number (1-65535); {port_hint}"#)),
        ("example.com:https", format!(r#"pattern "example.com:https": port "https" is not a port number (1-65535); {port_hint}"#)),
        ("example.com:70000", format!(r#"pattern "example.com:70000": port "70000" is not a port number (1-65535); {port_hint}"#)),
        ("example.com:90-80", r#"pattern "example.com:90-80": port range "90-80" runs backwards; write "80-90""#.to_string()),
        ("*example.com:443", r#"pattern "*example.com:443": "*" is either the whole host ("*:443") or starts it as "*." ("*.example.com:443")"#.to_string()),
        ("*.:443", format!(r#"pattern "*.:443": "" after "*." is not a DNS name; {examples}"#)),
        ("exa mple.com:443", format!(r#"pattern "exa mple.com:443": host "exa mple.com" is not a DNS name, an IP address or a CIDR; {examples}"#)),
        ("10.0.0.256:80", format!(r#"pattern "10.0.0.256:80": host "10.0.0.256" is not a DNS name, an IP address or a CIDR; {examples}"#)),
        ("-bad.com:80", format!(r#"pattern "-bad.com:80": host "-bad.com" is not a DNS name, an IP address or a CIDR; {examples}"#)),
        ("10.1.2.3/8:443", r#"pattern "10.1.2.3/8:443": CIDR "10.1.2.3/8" has bits set after the prefix; write "10.0.0.0/8""#.to_string()),
        ("[10.0.0.1]:80", r#"pattern "[10.0.0.1]:80": brackets are for IPv6; write IPv4 addresses without them"#.to_string()),
        ("[10.0.0.0/8]:80", r#"pattern "[10.0.0.0/8]:80": brackets are for IPv6; write IPv4 blocks without them"#.to_string()),
        ("[fd00::1:443", r#"pattern "[fd00::1:443" has no closing "]""#.to_string()),
        ("[nope]:443", format!(r#"pattern "[nope]:443": "nope" is not an IPv6 address; {examples}"#)),
    ];
    for (text, want) in cases {
        assert_eq!(NetPattern::parse(text), Err(want), "{text}");
    }
}

#[test]
fn names_match_by_pattern() {
    let cases = [
        ("*:443", "example.com", 443, true),
        ("*:443", "example.com", 80, false),
        ("example.com:443", "example.com", 443, true),
        ("example.com:443", "www.example.com", 443, false),
        ("*.example.com:443", "www.example.com", 443, true),
        ("*.example.com:443", "a.b.example.com", 443, true),
        ("*.example.com:443", "example.com", 443, false),
        ("*.example.com:443", "badexample.com", 443, false),
        ("*.example.com:8000-8999", "api.example.com", 8999, true),
        ("*.example.com:8000-8999", "api.example.com", 9000, false),
        ("10.0.0.0/8:*", "example.com", 443, false),
        ("10.1.2.3:80", "10.1.2.3", 80, false),
    ];
    for (text, name, port, want) in cases {
        assert_eq!(pattern(text).matches_name(name, port), want, "{text} vs {name}:{port}");
    }
    assert_eq!(normalize_name("WWW.Example.COM."), "www.example.com");
    assert!(pattern("example.com:443").could_name("example.com"));
    assert!(!pattern("[fd00::/8]:443").could_name("example.com"));
}

#[test]
fn addresses_match_by_pattern() {
    let cases = [
        ("*:*", "203.0.113.5", 1, true),
        ("*:*", "::1", 65535, true),
        ("10.1.2.3:80", "10.1.2.3", 80, true),
        ("10.1.2.3:80", "10.1.2.3", 81, false),
        ("10.1.2.3:80", "::ffff:10.1.2.3", 80, true),
        ("10.0.0.0/8:*", "10.200.0.1", 5432, true),
        ("10.0.0.0/8:*", "11.0.0.1", 5432, false),
        ("[fd00::/8]:443", "fd12::1", 443, true),
        ("[fd00::/8]:443", "fe80::1", 443, false),
        ("[::1]:8080", "::1", 8080, true),
        ("[::1]:8080", "127.0.0.1", 8080, false),
        ("example.com:443", "93.184.215.14", 443, false),
        ("*.example.com:443", "93.184.215.14", 443, false),
    ];
    for (text, addr, port, want) in cases {
        assert_eq!(
            pattern(text).matches_ip(ip(addr), port),
            want,
            "{text} vs {addr}:{port}"
        );
    }
    assert!(pattern("10.0.0.0/8:1").is_address() && pattern("[::1]:1").is_address());
    assert!(!pattern("*:1").is_address() && !pattern("x.org:1").is_address());
}

#[test]
fn coverage_and_disjointness() {
    let covers = [
        ("*:*", "example.com:443", true),
        ("*:*", "10.0.0.0/8:80", true),
        ("*:443", "example.com:443", true),
        ("*:443", "example.com:*", false),
        ("*.example.com:*", "*.a.example.com:443", true),
        ("*.example.com:*", "a.example.com:443", true),
        ("*.example.com:*", "example.com:443", false),
        ("example.com:*", "*.example.com:443", false),
        ("10.0.0.0/8:*", "10.1.0.0/16:80", true),
        ("10.0.0.0/8:*", "10.1.2.3:80", true),
        ("10.1.2.3:80", "10.0.0.0/8:80", false),
    ];
    for (a, b, want) in covers {
        assert_eq!(pattern(a).covers(&pattern(b)), want, "{a} covers {b}");
    }
    let disjoint = [
        ("*:80", "*:443", true),
        ("*:80-90", "*:85", false),
        ("a.com:443", "b.com:443", true),
        ("a.com:443", "a.com:443", false),
        ("*.example.com:443", "www.example.com:443", false),
        ("*.example.com:443", "example.com:443", true),
        ("*.example.com:443", "*.a.example.com:443", false),
        ("*.example.com:443", "*.example.org:443", true),
        ("example.com:443", "10.0.0.0/8:443", false),
        ("10.0.0.0/8:443", "192.168.0.0/16:443", true),
        ("10.1.2.3:443", "10.0.0.0/8:443", false),
        ("10.1.2.3:443", "10.1.2.4:443", true),
    ];
    for (a, b, want) in disjoint {
        assert_eq!(pattern(a).disjoint(&pattern(b)), want, "{a} disjoint {b}");
        assert_eq!(pattern(b).disjoint(&pattern(a)), want, "{b} disjoint {a}");
    }
}
