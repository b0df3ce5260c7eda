//! Operator config parsing: the design's full example, and one error per way to
//! get a key wrong, each naming its key path.

use std::path::Path;

use super::*;
use crate::policy::{DirMode, RunAs};

/// The full operator config of capabilities-design.md §2.
const FULL: &str = r#"
[host]
work-dir = "/var/lib/enginehost"
tree-kill = "auto"
[engines.script]
command = ["/usr/local/bin/ci-script"]
schema = { type = "object", properties = { url = { type = "string" } } }
[plugins.script.files]
sandbox = true
[plugins.script.process]
exec = ["/usr/local/bin/ci-script"]
run-as = ["worker"]
max-per-task = 4
[engines.native]
createUser = true
groups = ["video"]
[plugins.native.files]
sandbox = true
[plugins.native.process]
exec = ["/bin/**", "/usr/bin/**", "/usr/local/bin/**", "sandbox:**"]
search-path = ["/usr/local/bin", "/usr/bin", "/bin"]
run-as = ["task-user"]
pty = true
max-per-task = 64
[plugins.native.users]
create = true
groups = ["video"]
uid-range = [200000, 209999]
[plugins.native.network]
connect = ["*:80", "*:443"]
allow-private = false
[engines.docker]
dockerSocket = "unix:///var/run/docker.sock"
privileged = "never"
[plugins.docker.unix-sockets]
connect = ["/var/run/docker.sock"]
[plugins.docker.files]
sandbox = true
dirs.cache = { path = "/srv/cache", mode = "rw" }
"#;

#[test]
fn the_design_example_parses() {
    let config = OperatorConfig::parse(FULL).unwrap();
    assert_eq!(config.host.work_dir.as_deref(), Some(Path::new("/var/lib/enginehost")));
    assert_eq!(config.host.tree_kill, TreeKill::Auto);
    assert_eq!(
        config.engine_config("script"),
        serde_json::json!({"command": ["/usr/local/bin/ci-script"],
            "schema": {"type": "object", "properties": {"url": {"type": "string"}}}})
    );
    assert_eq!(config.engine_config("native")["createUser"], serde_json::json!(true));
    assert_eq!(config.engine_config("absent"), serde_json::json!({}));
    let native = config.grants("native");
    let process = native.process.as_ref().unwrap();
    assert_eq!(process.run_as, [RunAs::TaskUser]);
    assert_eq!(process.max_per_task, Some(64));
    assert_eq!(native.users.as_ref().unwrap().uid_range, Some([200000, 209999]));
    assert!(native.files.as_ref().unwrap().sandbox);
    let docker = config.grants("docker");
    assert_eq!(docker.unix_sockets.as_ref().unwrap().connect, ["/var/run/docker.sock"]);
    assert_eq!(docker.files.as_ref().unwrap().dirs["cache"].mode, DirMode::Rw);
    assert!(config.grants("absent").is_empty());
    assert_eq!(OperatorConfig::parse("").unwrap(), OperatorConfig::default());
    for tree_kill in ["cgroup", "fallback"] {
        let config = OperatorConfig::parse(&format!("[host]\ntree-kill = {tree_kill:?}")).unwrap();
        assert_ne!(config.host.tree_kill, TreeKill::Auto);
    }
}

#[test]
fn errors_name_the_key_and_what_would_be_right() {
    let cases = [
        // Unknown keys, at every level.
        (
            "[limit]",
            "limit: unknown key; the keys allowed here are host, engines, plugins, limits, worker, interactive, registries",
        ),
        (
            "[host]\nworkdir = \"/x\"",
            "host.workdir: unknown key; the keys allowed here are work-dir, tree-kill, compile-cache, cache-dir, accounting, trusted-keys, require-signature, require-lock",
        ),
        (
            "[plugins.native.proces]",
            "plugins.native.proces: unknown key; the keys allowed here are files, process, network, unix-sockets, users, endpoint",
        ),
        (
            "[plugins.native.process]\nexecs = []",
            "plugins.native.process.execs: unknown key; the keys allowed here are exec, search-path, run-as, pty, \
             max-per-task, env-allow, network",
        ),
        (
            "[plugins.native.network]\nhosts = []",
            "plugins.native.network.hosts: unknown key; the keys allowed here are connect, allow-private",
        ),
        (
            "[plugins.native.unix-sockets]\npath = \"/x\"",
            "plugins.native.unix-sockets.path: unknown key; the keys allowed here are connect, max-connections",
        ),
        (
            "[plugins.native.users]\ngroup = []",
            "plugins.native.users.group: unknown key; the keys allowed here are create, groups, uid-range",
        ),
        (
            "[plugins.native.files]\nsandboxes = true",
            "plugins.native.files.sandboxes: unknown key; the keys allowed here are sandbox, engine, dirs",
        ),
        (
            "[plugins.native.files.dirs.cache]\npath = \"/x\"\nro = true",
            "plugins.native.files.dirs.cache.ro: unknown key; the keys allowed here are path, mode",
        ),
        // Types and values.
        ("host = 1", "host: expected a table ([host]), found an integer"),
        ("plugins = 1", "plugins: expected a table ([plugins]), found an integer"),
        (
            "[plugins]\nnative = 1",
            "plugins.native: expected a table ([plugins.native]), found an integer",
        ),
        (
            "[engines]\nnative = 1",
            "engines.native: expected a table ([engines.native]), found an integer",
        ),
        (
            "[host]\ntree-kill = \"kill\"",
            "host.tree-kill: unknown variant `kill`, expected one of `auto`, `cgroup`, `fallback`",
        ),
        (
            "[plugins.native.process]\npty = 1",
            "plugins.native.process.pty: invalid type: integer `1`, expected a boolean",
        ),
        (
            "[host]\nwork-dir = \"var/lib/enginehost\"",
            "host.work-dir: \"var/lib/enginehost\" is not absolute; write an absolute path, e.g. \"/var/lib/enginehost\"",
        ),
        (
            "[plugins.Native]",
            "plugins.Native: \"Native\" is not an engine name (lowercase letters, digits and \"-\", starting with a \
             letter), e.g. \"native\"",
        ),
        (
            "[engines.\"my engine\"]",
            "engines.\"my engine\": \"my engine\" is not an engine name (lowercase letters, digits and \"-\", \
             starting with a letter), e.g. \"native\"",
        ),
        // Patterns, with their index.
        (
            "[plugins.native.process]\nexec = [\"/bin/*\", \"/usr/bin/*\", \"usr/bin/*\"]",
            "plugins.native.process.exec[2]: pattern \"usr/bin/*\" is not absolute; write \"/usr/bin/*\", or \
             \"sandbox:usr/bin/*\" for a path in the task's sandbox",
        ),
        (
            "[plugins.native.network]\nconnect = [\"*:443\", \"example.com\"]",
            "plugins.native.network.connect[1]: pattern \"example.com\" has no port; write \"example.com:443\", or \
             \"example.com:*\" for every port",
        ),
        (
            "[plugins.native.process]\nnetwork = { connect = [\"*:443\", \"example.com\"] }",
            "plugins.native.process.network.connect[1]: pattern \"example.com\" has no port; write \
             \"example.com:443\", or \"example.com:*\" for every port",
        ),
        (
            "[plugins.native.process]\nnetwork = \"all\"",
            "plugins.native.process.network: unknown network \"all\", expected \"none\", \"host\" or \
             { connect = [\"host:port\", ...] }",
        ),
        (
            "[plugins.native.process]\nnetwork = { conect = [] }",
            "plugins.native.process.network: unknown key \"conect\" in network, expected \"none\", \"host\" or \
             { connect = [\"host:port\", ...] }",
        ),
        (
            "[plugins.docker.unix-sockets]\nconnect = [\"docker.sock\"]",
            "plugins.docker.unix-sockets.connect[0]: pattern \"docker.sock\" is not absolute; write \
             \"/docker.sock\", or \"sandbox:docker.sock\" for a socket in the task's sandbox",
        ),
        (
            "[plugins.native.users]\ngroups = [\"video\", \"Audio\"]",
            "plugins.native.users.groups[1]: \"Audio\" is not a group name (lowercase letters, digits, \"_\" and \
             \"-\", starting with a letter or \"_\"), e.g. \"video\"",
        ),
        // Grant-only rules.
        (
            "[plugins.native.files.dirs.cache]\nmode = \"rw\"",
            "plugins.native.files.dirs.cache: no path; add path = \"/srv/cache\" (the host directory the plugin \
             sees as /grants/cache)",
        ),
        (
            "[plugins.native.files.dirs.cache]\npath = \"srv/cache\"",
            "plugins.native.files.dirs.cache.path: \"srv/cache\" is not absolute; write an absolute path, e.g. \
             \"/srv/cache\"",
        ),
        (
            "[plugins.native.files.dirs.Cache]\npath = \"/srv/cache\"",
            "plugins.native.files.dirs.Cache: \"Cache\" is not a dir name (lowercase letters, digits, \"_\" and \
             \"-\", starting with a letter or digit; it becomes /grants/NAME in the guest), e.g. \"cache\"",
        ),
        (
            "[plugins.native.process]\nsearch-path = [\"/bin\", \"bin\"]",
            "plugins.native.process.search-path[1]: \"bin\" is not absolute; write an absolute path, e.g. \
             \"/usr/bin\"",
        ),
        (
            "[plugins.native.process]\nmax-per-task = 0",
            "plugins.native.process.max-per-task: 0 would refuse every use; remove the whole table to grant nothing",
        ),
        (
            "[plugins.native.unix-sockets]\nmax-connections = 0",
            "plugins.native.unix-sockets.max-connections: 0 would refuse every use; remove the whole table to grant \
             nothing",
        ),
        (
            "[plugins.native.users]\nuid-range = [209999, 200000]",
            "plugins.native.users.uid-range: [209999, 200000] runs backwards; write [200000, 209999]",
        ),
        (
            "[plugins.native.users]\nuid-range = [0, 100]",
            "plugins.native.users.uid-range: must not include uid 0 (root); e.g. [200000, 209999]",
        ),
        (
            "[plugins.native.users]\nuid-range = [1]",
            "plugins.native.users.uid-range: invalid length 1, expected an array of length 2",
        ),
        (
            "[host]\ncache-dir = \"cache\"",
            "host.cache-dir: \"cache\" is not absolute; write an absolute path, e.g. \"/var/cache/enginehost\"",
        ),
        (
            "[host]\ncompile-cache = \"yes\"",
            "host.compile-cache: invalid type: string \"yes\", expected a boolean",
        ),
        (
            "[engines.x]\nn = nan",
            "engines.x.n: NaN cannot be passed on as JSON; use a finite number",
        ),
    ];
    for (text, want) in cases {
        let err = OperatorConfig::parse(text).unwrap_err();
        assert_eq!(err.to_string(), want, "{text}");
        assert_eq!(err.file, None);
    }
}

#[test]
fn syntax_errors_keep_line_and_column() {
    let err = OperatorConfig::parse("[host]\nwork-dir = \"/x\"\ntree-kill = \n").unwrap_err();
    assert_eq!(err.key, "");
    assert!(
        err.message.starts_with("TOML parse error at line 3, column 13"),
        "{}",
        err.message
    );
}

#[test]
fn errors_from_a_file_name_it() {
    let dir = std::env::temp_dir().join(format!("policy-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("enginehost.toml");
    std::fs::write(&file, "[plugins.native.process]\nexec = [\"/bin/*\", \"usr/bin/*\"]\n").unwrap();
    let err = OperatorConfig::load(&file).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "config {}: plugins.native.process.exec[1]: pattern \"usr/bin/*\" is not absolute; write \"/usr/bin/*\", \
             or \"sandbox:usr/bin/*\" for a path in the task's sandbox",
            file.display()
        )
    );
    std::fs::write(&file, FULL).unwrap();
    assert_eq!(
        OperatorConfig::load(&file).unwrap(),
        OperatorConfig::parse(FULL).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let missing = dir.join("missing.toml");
    let err = OperatorConfig::load(&missing).unwrap_err();
    assert_eq!(err.file.as_deref(), Some(missing.as_path()));
    assert!(
        err.to_string()
            .starts_with(&format!("config {}: cannot read the file: ", missing.display())),
        "{err}"
    );
}

#[test]
fn limits_come_from_limits_and_each_plugins_own_table() {
    let config = OperatorConfig::parse(
        "[limits]\nmemory = \"64MiB\"\ncall-timeout = \"5s\"\n[plugins.native.limits]\nmemory = \"1GiB\"\n[plugins.native.files]\nsandbox = true\n",
    )
    .unwrap();
    assert_eq!(config.limits_for("native").memory, 1 << 30);
    assert_eq!(
        config.limits_for("native").call_timeout,
        std::time::Duration::from_secs(5)
    );
    assert_eq!(config.limits_for("mock").memory, 64 << 20);
    assert!(
        config.grants("native").files.is_some(),
        "the grant tables are still read"
    );
    let e = OperatorConfig::parse("[plugins.native.limits]\nmemory = \"lots\"\n").unwrap_err();
    assert_eq!(e.key, "plugins.native.limits.memory");
    let e = Capabilities::from_plugin_toml("[limits]\nmemory = \"1GiB\"\n").unwrap_err();
    assert_eq!(e.key, "limits", "a plugin cannot ask for limits: {e}");
}

#[test]
fn worker_runners_config_fills_the_worker_table() {
    let json = r#"{
        "rootURL": "https://tc.example.com", "clientId": "worker/pool/w1", "accessToken": "secret",
        "certificate": "", "provisionerId": "proj", "workerType": "linux", "workerGroup": "us-east-1",
        "workerId": "i-0123", "workerLocation": "{\"cloud\":\"static\"}", "workerTypeMetadata": {},
        "enginehost": {"worker": {"capacity": 4, "engines": ["mock"]}, "limits": {"task-pids": 100}}
    }"#;
    let config = OperatorConfig::from_worker_runner(json).unwrap();
    let w = config.worker.unwrap();
    assert_eq!(w.root_url, "https://tc.example.com");
    assert_eq!(w.task_queue_id, "proj/linux");
    assert_eq!(
        (w.worker_group.as_str(), w.worker_id.as_str(), w.capacity),
        ("us-east-1", "i-0123", 4)
    );
    assert!(matches!(
        w.credentials,
        crate::policy::CredentialSource::Static { ref client_id, ref certificate, .. }
            if client_id == "worker/pool/w1" && certificate.is_none()
    ));
    // Mistakes name the key.
    let err = OperatorConfig::from_worker_runner(r#"{"rootURL": "https://x"}"#).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("clientId: missing; worker-runner writes it"),
        "{err}"
    );
    let err = OperatorConfig::from_worker_runner(&json.replace("\"capacity\": 4", "\"capacity\": 0")).unwrap_err();
    assert!(err.to_string().starts_with("worker.capacity"), "{err}");
    let err = OperatorConfig::from_worker_runner("[plugins]").unwrap_err();
    assert!(err.to_string().contains("not the JSON worker-runner writes"), "{err}");
}
