//! The plugin side: capabilities.toml parsing, operator-only keys, emptiness, and
//! grant checks on tables built in code.

use super::*;
use crate::policy::validate;

/// `plugins/native/capabilities.toml` as capabilities-design.md §2 describes it.
const NATIVE: &str = r#"
[files]
sandbox = true
[process]
exec = ["**"]
run-as = ["task-user", "worker"]
pty = true
[users]
create = true
[network]
connect = ["*:80", "*:443"]
"#;

#[test]
fn a_plugin_request_parses() {
    let caps = Capabilities::from_plugin_toml(NATIVE).unwrap();
    let process = caps.process.as_ref().unwrap();
    assert_eq!(process.exec, ["**"]);
    assert_eq!(process.run_as, [RunAs::TaskUser, RunAs::Worker]);
    assert!(process.pty && caps.users.as_ref().unwrap().create);
    assert_eq!(caps.network.as_ref().unwrap().connect, ["*:80", "*:443"]);
    assert_eq!(caps.unix_sockets, None);
    let dirs = Capabilities::from_plugin_toml("[files.dirs.cache]\nmode = \"rw\"\n[files.dirs.tools]").unwrap();
    let dirs = &dirs.files.as_ref().unwrap().dirs;
    assert_eq!((dirs["cache"].mode, dirs["tools"].mode), (DirMode::Rw, DirMode::Ro));
    assert_eq!(dirs["cache"].path, None);
}

#[test]
fn operator_only_keys_are_refused() {
    let limit = "an operator limit, not something a plugin requests; remove it from capabilities.toml";
    let setting = "an operator setting, not something a plugin requests; remove it from capabilities.toml";
    let cases = [
        ("[process]\nmax-per-task = 4", format!("process.max-per-task: {limit}")),
        (
            "[process]\nsearch-path = [\"/bin\"]",
            format!("process.search-path: {setting}"),
        ),
        (
            "[network]\nallow-private = false",
            format!("network.allow-private: {setting}"),
        ),
        (
            "[unix-sockets]\nmax-connections = 2",
            format!("unix-sockets.max-connections: {limit}"),
        ),
        (
            "[users]\nuid-range = [1000, 2000]",
            format!("users.uid-range: {setting}"),
        ),
        (
            "[files.dirs.cache]\npath = \"/srv/cache\"",
            "files.dirs.cache.path: the operator chooses where a dir lives (in [plugins.NAME.files.dirs.cache]); \
             remove it from capabilities.toml"
                .to_string(),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(
            Capabilities::from_plugin_toml(text).unwrap_err().to_string(),
            want,
            "{text}"
        );
    }
}

#[test]
fn request_errors_name_the_key() {
    let cases = [
        (
            "[proces]",
            "proces: unknown key; the keys allowed here are files, process, network, unix-sockets, users, endpoint",
        ),
        (
            "[process]\nexec = [\"**\", \"bin/*\"]",
            "process.exec[1]: pattern \"bin/*\" is not absolute; write \"/bin/*\", or \"sandbox:bin/*\" for a path in the task's sandbox",
        ),
        (
            "[process]\nrun-as = \"worker\"",
            "process.run-as: invalid type: string \"worker\", expected a sequence",
        ),
        (
            "[network]\nconnect = [\"*\"]",
            "network.connect[0]: pattern \"*\" has no port; write \"*:443\", or \"*:*\" for every port",
        ),
        (
            "[unix-sockets]\nconnect = [\"sandbox:*.sock\"]",
            "unix-sockets.connect[0]: pattern \"sandbox:*.sock\": the only wildcard is \"sandbox:*\"; otherwise name the socket, e.g. \"sandbox:qmp.sock\"",
        ),
        (
            "[users]\ngroups = [\"9lives\"]",
            "users.groups[0]: \"9lives\" is not a group name (lowercase letters, digits, \"_\" and \"-\", starting with a letter or \"_\"), e.g. \"video\"",
        ),
        (
            "[files.dirs.\"my cache\"]",
            "files.dirs.\"my cache\": \"my cache\" is not a dir name (lowercase letters, digits, \"_\" and \"-\", starting with a letter or digit; it becomes /grants/NAME in the guest), e.g. \"cache\"",
        ),
        (
            "[files]\nsandbox = \"yes\"",
            "files.sandbox: invalid type: string \"yes\", expected a boolean",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(
            Capabilities::from_plugin_toml(text).unwrap_err().to_string(),
            want,
            "{text}"
        );
    }
    let err = Capabilities::from_plugin_toml("[process\n").unwrap_err();
    assert!(err.message.starts_with("TOML parse error at line 1"), "{err}");
}

#[test]
fn operator_keys_set_in_code_are_refused_too() {
    let caps = Capabilities {
        process: Some(ProcessTable {
            max_per_task: Some(3),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = validate::request(&caps).unwrap_err();
    assert_eq!(err.key, "process.max-per-task");
    let caps = Capabilities {
        network: Some(NetworkTable {
            allow_private: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(validate::request(&caps).unwrap_err().key, "network.allow-private");
}

#[test]
fn grants_built_in_code_are_checked() {
    let caps = Capabilities {
        process: Some(ProcessTable {
            exec: vec!["/bin/*".into(), "/usr/../x".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = caps.check_grant("native").unwrap_err();
    assert_eq!(err.key, "plugins.native.process.exec[1]");
    assert!(Capabilities::default().check_grant("native").is_ok());
}

#[test]
fn emptiness() {
    assert!(Capabilities::default().is_empty());
    let defaults = Capabilities {
        files: Some(FilesTable::default()),
        process: Some(ProcessTable::default()),
        network: Some(NetworkTable::default()),
        unix_sockets: Some(UnixSocketsTable::default()),
        users: Some(UsersTable::default()),
        endpoint: Some(EndpointTable::default()),
    };
    assert!(defaults.is_empty());
    assert!(Capabilities::from_plugin_toml("[process]\n[users]").unwrap().is_empty());
    assert!(
        !Capabilities::from_plugin_toml("[process]\npty = true")
            .unwrap()
            .is_empty()
    );
    assert!(!Capabilities::from_plugin_toml("[files.dirs.cache]").unwrap().is_empty());
}
