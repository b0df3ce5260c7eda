//! `describe()` and `ungranted()` output: requested, granted and effective lines,
//! and one warning per ungranted request.

use super::super::tests::policy;
use super::*;

fn report(capability: &'static str, requested: &str, granted: &str, effective: &str) -> CapabilityReport {
    CapabilityReport {
        capability,
        requested: requested.into(),
        granted: granted.into(),
        effective: effective.into(),
    }
}

fn exec_effective(request: &str, grant: &str) -> String {
    let p = policy(
        &format!("[process]\nexec = {request}\nrun-as = [\"worker\"]"),
        &format!("[process]\nexec = {grant}\nrun-as = [\"worker\"]"),
    );
    p.describe()[0].effective.clone()
}

#[test]
fn the_design_example() {
    let p = policy(
        "[process]\nexec = [\"**\"]\nrun-as = [\"task-user\", \"worker\"]\npty = true",
        "[process]\nexec = [\"/bin/**\", \"/usr/bin/**\"]\nrun-as = [\"task-user\"]\npty = true\nmax-per-task = 64",
    );
    assert_eq!(
        p.describe(),
        [report(
            "process",
            r#"exec ["**"], run-as [task-user, worker], pty"#,
            r#"exec ["/bin/**", "/usr/bin/**"], run-as [task-user], pty, max-per-task 64"#,
            r#"exec ["/bin/**", "/usr/bin/**"], run-as [task-user], pty, max-per-task 64"#,
        )]
    );
}

#[test]
fn effective_exec_patterns() {
    let cases = [
        // A grant pattern the request covers is kept, and the other way round.
        (
            r#"["**"]"#,
            r#"["/bin/**", "sandbox:**"]"#,
            r#"exec ["/bin/**", "sandbox:**"], run-as [worker]"#,
        ),
        (
            r#"["/usr/bin/*"]"#,
            r#"["/usr/**"]"#,
            r#"exec ["/usr/bin/*"], run-as [worker]"#,
        ),
        (
            r#"["/usr/bin/*"]"#,
            r#"["/usr/bin/*"]"#,
            r#"exec ["/usr/bin/*"], run-as [worker]"#,
        ),
        (
            r#"["/usr/**", "/bin/sh"]"#,
            r#"["/usr/bin/*", "/bin/*"]"#,
            r#"exec ["/usr/bin/*", "/bin/sh"], run-as [worker]"#,
        ),
        // Overlapping pairs neither covers are shown as A ∩ B; disjoint pairs are dropped.
        (
            r#"["/usr/*/python3", "/opt/**"]"#,
            r#"["/usr/bin/*"]"#,
            r#"exec ["/usr/*/python3" ∩ "/usr/bin/*"], run-as [worker]"#,
        ),
        (r#"["sandbox:**", "/opt/**"]"#, r#"["/usr/bin/*"]"#, "nothing"),
        (r#"[]"#, r#"["/usr/bin/*"]"#, "nothing"),
    ];
    for (request, grant, want) in cases {
        assert_eq!(exec_effective(request, grant), want, "{request} ∩ {grant}");
    }
}

#[test]
fn every_capability_is_summarized() {
    let p = policy(
        "[files]\nsandbox = true\n[files.dirs.cache]\nmode = \"rw\"\n[files.dirs.tools]\n\
         [network]\nconnect = [\"*:80\", \"*:443\"]\n\
         [unix-sockets]\nconnect = [\"/var/run/docker.sock\", \"sandbox:*\"]\n\
         [users]\ncreate = true\ngroups = [\"video\", \"audio\"]",
        "[files]\nsandbox = true\nengine = true\n[files.dirs.cache]\npath = \"/srv/cache\"\nmode = \"rw\"\n\
         [files.dirs.tools]\npath = \"/opt/tools\"\nmode = \"rw\"\n\
         [network]\nconnect = [\"*.example.com:443\", \"10.0.0.0/8:*\"]\nallow-private = true\n\
         [unix-sockets]\nconnect = [\"/var/run/docker.sock\", \"sandbox:qmp.sock\"]\nmax-connections = 4\n\
         [users]\ncreate = true\ngroups = [\"video\"]\nuid-range = [300000, 300999]",
    );
    assert_eq!(
        p.describe(),
        [
            report(
                "files",
                "sandbox, dirs [cache (rw), tools (ro)]",
                "sandbox, engine, dirs [cache = /srv/cache (rw), tools = /opt/tools (rw)]",
                "sandbox, dirs [cache = /srv/cache (rw), tools = /opt/tools (ro)]",
            ),
            report(
                "network",
                r#"connect ["*:80", "*:443"]"#,
                r#"connect ["*.example.com:443", "10.0.0.0/8:*"], allow-private"#,
                r#"connect ["*.example.com:443", "10.0.0.0/8:80", "10.0.0.0/8:443"], allow-private"#,
            ),
            report(
                "unix-sockets",
                r#"connect ["/var/run/docker.sock", "sandbox:*"]"#,
                r#"connect ["/var/run/docker.sock", "sandbox:qmp.sock"], max-connections 4"#,
                r#"connect ["/var/run/docker.sock", "sandbox:qmp.sock"], max-connections 4"#,
            ),
            report(
                "users",
                "create, groups [video, audio]",
                "create, groups [video], uid-range 300000-300999",
                "create, groups [video], uid-range 300000-300999",
            ),
        ]
    );
}

#[test]
fn one_sided_capabilities_show_nothing() {
    let p = policy(
        "[process]\nexec = [\"**\"]\n[unix-sockets]",
        "[users]\ncreate = true\nuid-range = [1000, 1999]\n[files]",
    );
    assert_eq!(
        p.describe(),
        [
            report("process", r#"exec ["**"]"#, "nothing", "nothing"),
            report("users", "nothing", "create, uid-range 1000-1999", "nothing"),
        ]
    );
    assert_eq!(policy("", "").describe(), []);
    let grant_only = policy(
        "",
        "[process]\nexec = [\"/bin/*\"]\nsearch-path = [\"/opt/bin\", \"/bin\"]",
    );
    assert_eq!(
        grant_only.describe()[0].granted,
        r#"exec ["/bin/*"], search-path [/opt/bin, /bin]"#
    );
}

#[test]
fn ungranted_requests_are_one_line_each() {
    let p = policy(
        "[files]\nsandbox = true\nengine = true\n[files.dirs.cache]\nmode = \"rw\"\n[files.dirs.tools]\n\
         [process]\nexec = [\"/usr/bin/*\", \"sandbox:**\"]\nrun-as = [\"task-user\", \"worker\"]\npty = true\n\
         [network]\nconnect = [\"*:443\", \"example.org:80\"]\n\
         [unix-sockets]\nconnect = [\"/var/run/docker.sock\", \"sandbox:*\"]\n\
         [users]\ncreate = true\ngroups = [\"video\", \"audio\"]",
        "[files]\nsandbox = true\n[files.dirs.cache]\npath = \"/srv/cache\"\n\
         [process]\nexec = [\"/usr/**\"]\nrun-as = [\"task-user\"]\n\
         [network]\nconnect = [\"*.example.com:443\"]\n\
         [unix-sockets]\nconnect = [\"sandbox:qmp.sock\"]\n\
         [users]\ngroups = [\"video\"]",
    );
    let x = "plugins.native";
    assert_eq!(
        p.ungranted(),
        [
            format!("files.engine \"engine\": not granted; set engine = true in [{x}.files]"),
            format!(
                "files.dirs \"cache\": requested rw, granted read-only; set mode = \"rw\" in [{x}.files.dirs.cache] \
                 to allow writes"
            ),
            format!(
                "files.dirs \"tools\": not granted; add [{x}.files.dirs.tools] with path = \"/srv/tools\" (the host \
                 directory)"
            ),
            format!("process.exec \"sandbox:**\": not granted; add a matching pattern to [{x}.process] exec"),
            format!("process.run-as \"worker\": not granted; add \"worker\" to [{x}.process] run-as"),
            format!("process.pty \"pty\": not granted; set pty = true in [{x}.process]"),
            format!("network.connect \"example.org:80\": not granted; add a matching pattern to [{x}.network] connect"),
            format!(
                "unix-sockets.connect \"/var/run/docker.sock\": not granted; add \"/var/run/docker.sock\" to \
                 [{x}.unix-sockets] connect"
            ),
            format!("users.create \"create\": not granted; set create = true in [{x}.users]"),
            format!("users.groups \"audio\": not granted; add \"audio\" to [{x}.users] groups"),
        ]
    );
    let x = "plugins.native";
    assert_eq!(
        policy("[process]\nnetwork = \"host\"", "").ungranted(),
        [format!(
            "process.network \"host\": not granted (task processes get loopback only); set network = \"host\" or \
             network = {{ connect = [\"host:port\", ...] }} in [{x}.process]"
        )]
    );
    assert_eq!(
        policy(
            "[process]\nnetwork = \"host\"",
            "[process]\nnetwork = { connect = [\"*:443\"] }"
        )
        .ungranted(),
        [format!(
            "process.network \"host\": granted only through the task proxy ([{x}.process] network.connect); set \
             network = \"host\" in [{x}.process] for the worker's network"
        )]
    );
    assert_eq!(
        policy("", "[process]\nexec = [\"**\"]").ungranted(),
        Vec::<String>::new()
    );
}
