//! Table tests for `process.exec` patterns: parsing, matching, coverage.

use super::*;

fn pattern(text: &str) -> ExecPattern {
    ExecPattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn bad_patterns_say_what_would_be_right() {
    let cases = [
        ("", r#"pattern is empty; e.g. "/usr/bin/*""#),
        (
            "usr/bin/*",
            r#"pattern "usr/bin/*" is not absolute; write "/usr/bin/*", or "sandbox:usr/bin/*" for a path in the task's sandbox"#,
        ),
        (
            "./bin/run",
            r#"pattern "./bin/run" is not absolute; write "/bin/run", or "sandbox:bin/run" for a path in the task's sandbox"#,
        ),
        (
            "/usr/../bin/*",
            r#"pattern "/usr/../bin/*" has a ".." segment; name the directory itself, e.g. "/usr/bin/*""#,
        ),
        (
            "sandbox:../x",
            r#"pattern "sandbox:../x" has a ".." segment; name the directory itself, e.g. "/usr/bin/*""#,
        ),
        (
            "/usr/b**",
            r#"pattern "/usr/b**" has "**" inside a segment; "**" stands for whole segments ("/usr/**"), "*" matches within one ("/usr/b*")"#,
        ),
        (
            "sandbox:/bin/*",
            r#"pattern "sandbox:/bin/*": paths after "sandbox:" are relative to the task's sandbox; write "sandbox:bin/*""#,
        ),
        (
            "sandbox:",
            r#"pattern "sandbox:" names no file; e.g. "sandbox:bin/*", or "sandbox:**" for anything in the task's sandbox"#,
        ),
        (
            "*",
            r#"pattern "*" is not absolute; write "/*", or "sandbox:*" for a path in the task's sandbox"#,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(ExecPattern::parse(text), Err(want.to_string()), "{text}");
    }
}

#[test]
fn patterns_are_kept_by_segment() {
    assert_eq!(pattern("**"), ExecPattern::Any);
    assert_eq!(
        pattern("/usr//bin/./*/"),
        ExecPattern::Abs(vec!["usr".into(), "bin".into(), "*".into()])
    );
    assert_eq!(
        pattern("sandbox:./bin/*"),
        ExecPattern::Sandbox(vec!["bin".into(), "*".into()])
    );
    assert_eq!(pattern("/"), ExecPattern::Abs(vec![]));
}

#[test]
fn globs_match_by_segment() {
    let cases = [
        // `*` stays within one segment.
        ("/usr/bin/*", "/usr/bin/curl", true),
        ("/usr/bin/*", "/usr/bin/x/curl", false),
        ("/usr/bin/*", "/usr/bin", false),
        ("/usr/bin/*", "/usr/binx/curl", false),
        ("/usr/bin/py*", "/usr/bin/python3", true),
        ("/usr/bin/py*", "/usr/bin/py", true),
        ("/usr/bin/*-config", "/usr/bin/gpg-config", true),
        ("/usr/bin/*-config", "/usr/bin/gpg-configx", false),
        ("/usr/*/ls", "/usr/bin/ls", true),
        ("/usr/*/ls", "/usr/local/bin/ls", false),
        // `**` takes whole segments, zero or more.
        ("/usr/**", "/usr/bin/ls", true),
        ("/usr/**", "/usr/local/bin/ls", true),
        ("/usr/**", "/usr", true),
        ("/usr/**", "/usrx/bin/ls", false),
        ("/usr/**", "/bin/ls", false),
        ("/usr/**/ls", "/usr/ls", true),
        ("/usr/**/ls", "/usr/a/b/c/ls", true),
        ("/usr/**/ls", "/usr/a/b/c/lsx", false),
        ("/**/bin/*", "/opt/tool/bin/run", true),
        ("/opt/tool/bin/run", "/opt/tool/bin/run", true),
        ("/opt/tool/bin/run", "/opt/tool/bin/runner", false),
        // Candidates are compared after dropping `//` and `/./`; `..` never matches.
        ("/usr/bin/*", "/usr//bin/./curl", true),
        ("/usr/**", "/usr/../etc/shadow", false),
        ("**", "/usr/../etc/shadow", false),
        // Relative candidates never match; `sandbox:` only matches sandbox candidates.
        ("/usr/bin/*", "usr/bin/curl", false),
        ("**", "bin/run", false),
        ("sandbox:**", "sandbox:bin/run", true),
        ("sandbox:**", "/bin/run", false),
        ("sandbox:bin/*", "sandbox:bin/run", true),
        ("sandbox:bin/*", "sandbox:./bin/run", true),
        ("sandbox:bin/*", "sandbox:bin/x/run", false),
        ("sandbox:bin/*", "sandbox:../bin/run", false),
        ("sandbox:bin/*", "sandbox:/bin/run", false),
        ("/**", "sandbox:bin/run", false),
        ("/bin/*", "sandbox:bin/run", false),
        // `**` alone: anything absolute or in the sandbox.
        ("**", "/bin/sh", true),
        ("**", "sandbox:run.sh", true),
        ("**", "sandbox:", false),
    ];
    for (text, candidate, want) in cases {
        assert_eq!(pattern(text).matches(candidate), want, "{text} vs {candidate}");
    }
}

#[test]
fn coverage_is_sound() {
    let cases = [
        ("**", "/usr/bin/*", true),
        ("**", "sandbox:**", true),
        ("/**", "**", false),
        ("/usr/**", "/usr/bin/*", true),
        ("/usr/**", "/usr/**", true),
        ("/usr/**", "/usr/local/**/bin/*", true),
        ("/usr/bin/*", "/usr/**", false),
        ("/usr/bin/*", "/usr/bin/ls", true),
        ("/usr/bin/*", "/usr/bin/py*", true),
        ("/usr/bin/py*", "/usr/bin/*", false),
        ("/usr/bin/py*", "/usr/bin/python*", true),
        ("/usr/bin/*3", "/usr/bin/py*", false),
        ("/usr/*/ls", "/usr/bin/ls", true),
        ("/usr/**/ls", "/usr/*/ls", true),
        ("/usr/*/ls", "/usr/**/ls", false),
        ("sandbox:**", "sandbox:bin/*", true),
        ("sandbox:**", "/bin/*", false),
        ("/bin/**", "sandbox:bin/*", false),
    ];
    for (a, b, want) in cases {
        assert_eq!(pattern(a).covers(&pattern(b)), want, "{a} covers {b}");
    }
}

#[test]
fn disjointness_is_sound() {
    let cases = [
        ("/usr/bin/*", "/bin/**", true),
        ("/usr/bin/*", "/usr/**", false),
        ("/usr/bin/*", "/usr/bin/ls", false),
        ("/usr/bin/py*", "/usr/bin/ls", true),
        ("/usr/bin/py*", "/usr/bin/*3", false),
        ("/usr/bin/*", "/usr/bin/x/y", true),
        ("/usr/**/ls", "/usr/*/cat", false), // could not tell: after `**`
        ("sandbox:**", "/bin/*", true),
        ("**", "sandbox:x", false),
    ];
    for (a, b, want) in cases {
        assert_eq!(pattern(a).disjoint(&pattern(b)), want, "{a} disjoint {b}");
        assert_eq!(pattern(b).disjoint(&pattern(a)), want, "{b} disjoint {a}");
    }
}
