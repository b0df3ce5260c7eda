//! request ∩ grant for every capability, and every denial naming the right key:
//! "not granted" (the grant is checked first) and "not requested".

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::*;
use crate::policy::{NetworkTable, ProcessTable, RunAs, reader};

/// A grant for plugin `native`, written as its `[plugins.native]` tables read.
pub(super) fn grant(text: &str) -> Capabilities {
    let table = reader::parse_toml(text).unwrap();
    let caps = reader::capabilities(&table, "plugins.native").unwrap();
    caps.check_grant("native").unwrap();
    caps
}

/// Plugin `native` 0.1.0 with this request and grant.
pub(super) fn policy(request: &str, granted: &str) -> Policy {
    Policy::new(
        "native",
        "0.1.0",
        Capabilities::from_plugin_toml(request).unwrap(),
        grant(granted),
    )
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn message<T: std::fmt::Debug>(result: Result<T, Denied>) -> String {
    result.unwrap_err().message
}

const NOT_REQUESTED: &str = "not requested by plugin native 0.1.0 (capabilities.toml)";

#[test]
fn denials_name_the_grant_key_then_the_request() {
    let everything = "[files]\nsandbox = true\nengine = true\n[process]\nexec = [\"**\"]\nrun-as = [\"worker\", \
                      \"task-user\"]\npty = true\n[network]\nconnect = [\"*:*\"]\n[unix-sockets]\nconnect = \
                      [\"/var/run/docker.sock\", \"sandbox:*\"]\n[users]\ncreate = true\ngroups = [\"video\"]";
    let none = Policy::none("native", "0.1.0");
    let unrequested = Policy::new("native", "0.1.0", Capabilities::default(), grant(everything));
    let full = policy(everything, everything);
    let exec = |p: &Policy| p.exec(&["/usr/bin/curl".into()]);
    let docker = Path::new("/var/run/docker.sock");
    type Check = fn(&Policy) -> Result<(), Denied>;
    let cases: [(&str, Check, &str, &str, &str); 13] = [
        (
            "files.sandbox",
            |p| p.files_sandbox(),
            "sandbox",
            "files.sandbox",
            "set sandbox = true in [plugins.native.files]",
        ),
        (
            "files.engine",
            |p| p.files_engine(),
            "engine",
            "files.engine",
            "set engine = true in [plugins.native.files]",
        ),
        (
            "process.exec",
            |p| p.exec(&["/usr/bin/curl".into(), "/usr/lib/curl".into()]),
            "/usr/bin/curl",
            "process.exec",
            "add a matching pattern to [plugins.native.process] exec",
        ),
        (
            "process.run-as",
            |p| p.run_as(RunAs::TaskUser),
            "task-user",
            "process.run-as",
            "add \"task-user\" to [plugins.native.process] run-as",
        ),
        (
            "process.run-as",
            |p| p.run_as(RunAs::Worker),
            "worker",
            "process.run-as",
            "add \"worker\" to [plugins.native.process] run-as",
        ),
        (
            "process.pty",
            |p| p.pty(),
            "pty",
            "process.pty",
            "set pty = true in [plugins.native.process]",
        ),
        (
            "network.connect",
            |p| p.connect_ip(ip("93.184.215.14"), 443, false),
            "93.184.215.14:443",
            "network.connect",
            "add a matching pattern to [plugins.native.network] connect",
        ),
        (
            "network.connect",
            |p| p.connect_name("example.com", ip("93.184.215.14"), 443, false),
            "example.com:443",
            "network.connect",
            "add a matching pattern to [plugins.native.network] connect",
        ),
        (
            "network.lookup",
            |p| p.lookup_name("example.com"),
            "example.com",
            "network.connect",
            "add a matching pattern to [plugins.native.network] connect",
        ),
        (
            "unix-sockets.connect",
            |p| p.unix_connect(Path::new("/var/run/docker.sock")),
            "/var/run/docker.sock",
            "unix-sockets.connect",
            "add the path to [plugins.native.unix-sockets] connect",
        ),
        (
            "unix-sockets.connect",
            |p| p.unix_connect_sandbox("qmp.sock"),
            "sandbox:qmp.sock",
            "unix-sockets.connect",
            "add \"sandbox:qmp.sock\" (or \"sandbox:*\") to [plugins.native.unix-sockets] connect",
        ),
        (
            "users.create",
            |p| p.users_create(),
            "create",
            "users.create",
            "set create = true in [plugins.native.users]",
        ),
        (
            "users.groups",
            |p| p.users_group("video"),
            "video",
            "users.groups",
            "add \"video\" to [plugins.native.users] groups",
        ),
    ];
    for (capability, check, request, key, hint) in cases {
        // Nothing granted: the grant is checked first and named.
        assert_eq!(
            check(&none),
            Err(Denied {
                capability: capability.into(),
                request: request.into(),
                grant_key: format!("plugins.native.{key}"),
                message: format!("{capability} {request:?}: not granted; {hint}"),
            }),
            "{capability} {request}"
        );
        // Granted but not requested.
        assert_eq!(
            check(&unrequested),
            Err(Denied {
                capability: capability.into(),
                request: request.into(),
                grant_key: "capabilities.toml".into(),
                message: format!("{capability} {request:?}: {NOT_REQUESTED}"),
            }),
            "{capability} {request}"
        );
        assert_eq!(check(&full), Ok(()), "{capability} {request}");
    }
    assert_eq!(
        message(exec(&none)),
        "process.exec \"/usr/bin/curl\": not granted; add a matching pattern to [plugins.native.process] exec"
    );
    assert_eq!(
        message(exec(&unrequested)),
        format!("process.exec \"/usr/bin/curl\": {NOT_REQUESTED}")
    );
    assert_eq!(
        none.unix_connect(docker).unwrap_err().to_string(),
        message(none.unix_connect(docker))
    );
}

#[test]
fn exec_needs_a_candidate_on_each_side() {
    let p = policy(
        "[process]\nexec = [\"/usr/bin/*\", \"sandbox:bin/*\"]",
        "[process]\nexec = [\"/usr/lib/**\", \"sandbox:**\"]",
    );
    let ok = |c: &[&str]| p.exec(&c.iter().map(|s| s.to_string()).collect::<Vec<_>>()).is_ok();
    // The lexical path matches the request, the canonical one the grant: allowed.
    assert!(ok(&["/usr/bin/python3", "/usr/lib/python3.12/bin/python3"]));
    assert!(!ok(&["/usr/bin/python3"]));
    assert!(!ok(&["/usr/lib/python3.12/bin/python3"]));
    assert!(ok(&["sandbox:bin/run"]));
    assert!(!ok(&["sandbox:tools/run"]));
    assert!(!ok(&[]));
    assert_eq!(
        message(p.exec(&["/usr/bin/python3".into()])),
        "process.exec \"/usr/bin/python3\": not granted; add a matching pattern to [plugins.native.process] exec"
    );
    assert_eq!(
        message(p.exec(&["sandbox:tools/run".into()])),
        format!("process.exec \"sandbox:tools/run\": {NOT_REQUESTED}")
    );
}

#[test]
fn invalid_patterns_that_slip_through_never_match() {
    let bad = Capabilities {
        process: Some(ProcessTable {
            exec: vec!["usr/bin/*".into(), "**".into()],
            ..Default::default()
        }),
        network: Some(NetworkTable {
            connect: vec!["nonsense".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let p = Policy::new("native", "0.1.0", bad.clone(), bad);
    assert!(p.exec(&["/usr/bin/x".into()]).is_ok()); // via "**"
    assert!(!p.network_enabled());
    assert!(p.connect_ip(ip("8.8.8.8"), 53, false).is_err());
}

#[test]
fn files_intersect() {
    let p = policy(
        "[files]\nsandbox = true\n[files.dirs.cache]\nmode = \"rw\"\n[files.dirs.tools]\nmode = \"rw\"\n[files.dirs.extra]",
        "[files]\nengine = true\n[files.dirs.cache]\npath = \"/srv/cache\"\nmode = \"rw\"\n[files.dirs.tools]\npath = \
         \"/opt/tools\"\n[files.dirs.other]\npath = \"/srv/other\"\nmode = \"rw\"",
    );
    assert!(p.files_sandbox().is_err() && p.files_engine().is_err());
    assert_eq!(
        p.files_dirs(),
        [
            EffectiveDir {
                name: "cache".into(),
                path: PathBuf::from("/srv/cache"),
                mode: DirMode::Rw
            },
            EffectiveDir {
                name: "tools".into(),
                path: PathBuf::from("/opt/tools"),
                mode: DirMode::Ro
            },
        ]
    );
    assert_eq!(Policy::none("x", "1").files_dirs(), []);
}

#[test]
fn process_settings_come_from_the_grant() {
    let p = policy(
        "[process]\nexec = [\"**\"]",
        "[process]\nexec = [\"/bin/*\"]\nsearch-path = [\"/opt/bin\"]\nmax-per-task = 8",
    );
    assert_eq!(p.search_path(), [PathBuf::from("/opt/bin")]);
    assert_eq!(p.max_processes_per_task(), Some(8));
    let none = Policy::none("native", "0.1.0");
    assert_eq!(
        none.search_path(),
        ["/usr/local/bin", "/usr/bin", "/bin"].map(PathBuf::from)
    );
    assert_eq!(none.max_processes_per_task(), None);
    assert_eq!(none.unix_max_connections(), None);
    assert_eq!(none.uid_range(), (200000, 209999));
    let p = policy(
        "",
        "[users]\nuid-range = [300000, 300099]\n[unix-sockets]\nmax-connections = 4",
    );
    assert_eq!(p.uid_range(), (300000, 300099));
    assert_eq!(p.unix_max_connections(), Some(4));
    assert_eq!(p.plugin(), "native");
    assert!(p.requested().is_empty() && !p.granted().is_empty());
}

#[test]
fn unix_sockets_match_after_normalization() {
    let p = policy(
        "[unix-sockets]\nconnect = [\"/var/run/docker.sock\", \"sandbox:*\", \"sandbox:vm/qmp.sock\"]",
        "[unix-sockets]\nconnect = [\"/var/run//docker.sock\", \"sandbox:qmp.sock\", \"sandbox:vm/qmp.sock\"]",
    );
    let cases = [
        ("/var/run/docker.sock", true),
        ("/var/run/./docker.sock", true),
        ("/var//run/docker.sock/", true),
        ("/var/run/../run/docker.sock", false),
        ("/run/docker.sock", false),
    ];
    for (path, want) in cases {
        assert_eq!(p.unix_connect(Path::new(path)).is_ok(), want, "{path}");
    }
    assert_eq!(
        message(p.unix_connect(Path::new("/var/run/../run/docker.sock"))),
        "unix-sockets.connect \"/var/run/../run/docker.sock\": not an absolute path without \"..\"; name the socket \
         by its absolute path"
    );
    assert_eq!(
        message(p.unix_connect(Path::new("docker.sock"))),
        "unix-sockets.connect \"docker.sock\": not an absolute path without \"..\"; name the socket by its absolute path"
    );
    let cases = [
        ("qmp.sock", true),
        ("./qmp.sock", true),
        ("vm/qmp.sock", true),
        ("other.sock", false),
        ("../qmp.sock", false),
    ];
    for (rel, want) in cases {
        assert_eq!(p.unix_connect_sandbox(rel).is_ok(), want, "{rel}");
    }
    assert_eq!(
        message(p.unix_connect_sandbox("vm/x.sock")),
        "unix-sockets.connect \"sandbox:vm/x.sock\": not granted; add \"sandbox:vm/x.sock\" to \
         [plugins.native.unix-sockets] connect"
    );
    assert_eq!(
        message(p.unix_connect_sandbox("../x.sock")),
        "unix-sockets.connect \"sandbox:../x.sock\": not a path inside the task's sandbox; name the socket relative \
         to it, without \"..\""
    );
}

#[test]
fn users_intersect() {
    let p = policy(
        "[users]\ncreate = true\ngroups = [\"video\", \"audio\"]",
        "[users]\ncreate = true\ngroups = [\"video\", \"kvm\"]",
    );
    assert!(p.users_create().is_ok());
    assert!(p.users_group("video").is_ok());
    assert_eq!(
        message(p.users_group("audio")),
        "users.groups \"audio\": not granted; add \"audio\" to [plugins.native.users] groups"
    );
    assert_eq!(
        message(p.users_group("kvm")),
        format!("users.groups \"kvm\": {NOT_REQUESTED}")
    );
}

#[test]
fn odd_plugin_names_are_quoted_in_keys() {
    let p = Policy::none("my.plugin", "2.0.0");
    let denied = p.pty().unwrap_err();
    assert_eq!(denied.grant_key, "plugins.\"my.plugin\".process.pty");
    assert_eq!(
        denied.message,
        "process.pty \"pty\": not granted; set pty = true in [plugins.\"my.plugin\".process]"
    );
}
